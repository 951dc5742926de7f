//! Where the kubelet keeps its certificates, found the way the kubelet finds them, from
//! its own invocation (flags over the KubeletConfiguration, the kubelet's rule). Checked in
//! the kubelet's source (kubernetes/kubernetes):
//!
//! - **serving** (cmd/kubelet/app/server.go `InitializeTLS`; pkg/kubelet/kubelet.go;
//!   pkg/kubelet/certificate/kubelet.go `NewKubeletServerCertificateManager`):
//!   with `serverTLSBootstrap` (`--rotate-server-certificates`) the certificate manager
//!   serves from its file store (client-go util/certificate/certificate_store.go
//!   `Current`): `<cert-dir>/kubelet-server-current.pem`, else `tlsCertFile` (with its
//!   key), else `<cert-dir>/kubelet-server.crt`. Without it: `tlsCertFile`
//!   (`--tls-cert-file`), else the self-signed `<cert-dir>/kubelet.crt` it generates.
//! - **client** (server.go `buildKubeletClientConfig`, `buildClientCertificateManager`):
//!   with `rotateCertificates` (`--rotate-certificates`) the same store, prefix
//!   `kubelet-client`: `<cert-dir>/kubelet-client-current.pem`, else the kubeconfig's
//!   `client-certificate`, else `<cert-dir>/kubelet-client.crt`, else the kubeconfig's
//!   embedded `client-certificate-data` (the manager's bootstrap certificate). Without it:
//!   the kubeconfig's current user, as it stands.
//! - `--cert-dir` is a flag only (no KubeletConfiguration field); default
//!   `/var/lib/kubelet/pki` (cmd/kubelet/app/options/options.go `NewKubeletFlags`).
//!
//! Pure: [`KubeletCertFacts::of`] takes the [`Invocation`] read elsewhere, [`serving`] and
//! [`client`] take the facts and the parsed kubeconfig.

use std::path::{Path, PathBuf};

use super::kubeconfig::ClientCred;
use crate::probe::kubelet_invocation::{Invocation, Setting};

/// The kubelet's default `--cert-dir`.
pub const DEFAULT_CERT_DIR: &str = "/var/lib/kubelet/pki";

/// One place a certificate may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A file, as the host names it.
    File(PathBuf),
    /// PEM embedded in a kubeconfig (`client-certificate-data`); `at` is its `path:line`.
    Inline { pem: Vec<u8>, at: String },
}

/// Where one certificate is looked for, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// In the kubelet's order: the first that exists is the one it uses. Empty: the
    /// kubelet has no such certificate (`from` says why).
    pub places: Vec<Place>,
    /// Where the places came from (flags, `file:line`), for evidence.
    pub from: String,
}

impl Lookup {
    fn files(places: impl IntoIterator<Item = PathBuf>, from: String) -> Lookup {
        Lookup {
            places: places.into_iter().map(Place::File).collect(),
            from,
        }
    }
}

/// What the kubelet was started with, as far as its certificates go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletCertFacts {
    pub cert_dir: Setting<String>,
    pub tls_cert_file: Option<Setting<String>>,
    pub server_rotation: Setting<bool>,
    pub client_rotation: Setting<bool>,
    /// `--kubeconfig`; `None`: the kubelet runs standalone, without an API server.
    pub kubeconfig: Option<Setting<String>>,
    /// Why the KubeletConfiguration could not be read (its fields then taken as unset).
    pub config_error: Option<String>,
}

impl KubeletCertFacts {
    /// The facts from the kubelet's invocation; an error when its command line could not
    /// be read (then nothing says which `--kubeconfig` or `--cert-dir` it runs with).
    pub fn of(inv: &Invocation) -> Result<KubeletCertFacts, String> {
        inv.command_line()?;
        let (cfg, config_error) = match inv.config() {
            Ok(c) => (c, None),
            // no --config and no file at the default place: every field unset
            Err(_) if inv.config.is_none() && inv.flag("--config").is_none() => {
                (Default::default(), None)
            }
            Err(e) => (Default::default(), Some(e)),
        };
        let cert_dir = inv.flag("--cert-dir").unwrap_or_else(|| Setting {
            value: DEFAULT_CERT_DIR.into(),
            source: format!("--cert-dir unset: the kubelet's default {DEFAULT_CERT_DIR}"),
        });
        let tls_cert_file = inv.flag("--tls-cert-file").or_else(|| {
            cfg.tls_cert_file
                .as_ref()
                .filter(|v| !v.value.is_empty())
                .map(|v| Setting {
                    value: v.value.clone(),
                    source: format!(
                        "KubeletConfiguration tlsCertFile={} ({})",
                        v.value,
                        inv.at(v)
                    ),
                })
        });
        let boolean = |flag: &str, field: &str, v: &Option<crate::yaml::Spanned<bool>>| {
            inv.bool_flag(flag).unwrap_or_else(|| match v {
                Some(v) => Setting {
                    value: v.value,
                    source: format!("KubeletConfiguration {field}={} ({})", v.value, inv.at(v)),
                },
                None => Setting {
                    value: false,
                    source: format!("{field} unset: off"),
                },
            })
        };
        Ok(KubeletCertFacts {
            cert_dir,
            tls_cert_file,
            server_rotation: boolean(
                "--rotate-server-certificates",
                "serverTLSBootstrap",
                &cfg.server_tls_bootstrap,
            ),
            client_rotation: boolean(
                "--rotate-certificates",
                "rotateCertificates",
                &cfg.rotate_certificates,
            ),
            kubeconfig: inv.flag("--kubeconfig").filter(|k| !k.value.is_empty()),
            config_error,
        })
    }

    fn dir(&self) -> &Path {
        Path::new(&self.cert_dir.value)
    }

    /// The KubeletConfiguration's trouble, appended to a `from`.
    fn config_note(&self) -> String {
        match &self.config_error {
            Some(e) => format!("; KubeletConfiguration unread ({e}), its fields taken as unset"),
            None => String::new(),
        }
    }
}

/// The serving certificate's places.
pub fn serving(f: &KubeletCertFacts) -> Lookup {
    let dir = f.dir();
    let note = f.config_note();
    if f.server_rotation.value {
        let mut places = vec![dir.join("kubelet-server-current.pem")];
        let mut then = String::new();
        if let Some(t) = &f.tls_cert_file {
            places.push(PathBuf::from(&t.value));
            then = format!(", then {}", t.source);
        }
        places.push(dir.join("kubelet-server.crt"));
        return Lookup::files(
            places,
            format!(
                "{}: the certificate manager's kubelet-server-current.pem in {} ({}){then}, then kubelet-server.crt{note}",
                f.server_rotation.source,
                dir.display(),
                f.cert_dir.source
            ),
        );
    }
    match &f.tls_cert_file {
        Some(t) => Lookup::files([PathBuf::from(&t.value)], format!("{}{note}", t.source)),
        None => Lookup::files(
            [dir.join("kubelet.crt")],
            format!(
                "no tlsCertFile nor serverTLSBootstrap: the kubelet's self-signed kubelet.crt in {} ({}){note}",
                dir.display(),
                f.cert_dir.source
            ),
        ),
    }
}

/// The client certificate's places, given the kubeconfig as read: `Ok(None)` when it does
/// not exist (or there is no `--kubeconfig`), an error when it could not be read or parsed.
pub fn client(
    f: &KubeletCertFacts,
    kubeconfig: Result<Option<ClientCred>, String>,
) -> Result<Lookup, String> {
    let dir = f.dir();
    let current = dir.join("kubelet-client-current.pem");
    let Some(kc) = &f.kubeconfig else {
        return Ok(Lookup::files(
            [],
            "no --kubeconfig: the kubelet runs standalone, without a client certificate".into(),
        ));
    };
    let cred = kubeconfig.map_err(|e| format!("the kubelet's kubeconfig ({}): {e}", kc.source))?;
    let Some(cred) = cred else {
        // The kubelet bootstraps (--bootstrap-kubeconfig) and writes a kubeconfig that
        // names the store's current file (k8s.io/kubernetes pkg/kubelet/certificate/bootstrap).
        return Ok(Lookup::files(
            [current],
            format!(
                "{} absent (not bootstrapped yet?): the certificate manager's kubelet-client-current.pem in {} ({})",
                kc.value,
                dir.display(),
                f.cert_dir.source
            ),
        ));
    };
    let user = format!("user {:?} of {}", cred.user, kc.source);
    if f.client_rotation.value {
        let mut places = vec![Place::File(current.clone())];
        let mut said = vec![format!(
            "{}: the certificate manager's kubelet-client-current.pem in {} ({})",
            f.client_rotation.source,
            dir.display(),
            f.cert_dir.source
        )];
        // kubeadm's kubelet.conf names the current file itself: looked at once
        if let Some((p, at)) = cred.file.as_ref().filter(|(p, _)| *p != current) {
            places.push(Place::File(p.clone()));
            said.push(format!("client-certificate {} ({at})", p.display()));
        }
        places.push(Place::File(dir.join("kubelet-client.crt")));
        said.push("kubelet-client.crt".into());
        if let Some((pem, at)) = &cred.data {
            places.push(Place::Inline {
                pem: pem.clone(),
                at: at.clone(),
            });
            said.push(format!("client-certificate-data ({at})"));
        }
        return Ok(Lookup {
            places,
            from: format!("{}; {user}", said.join(", then ")),
        });
    }
    // client-go: data and a file both set, the data wins (clientcmd validation.go:
    // "client-cert-data and client-cert are both specified … client-cert-data will override")
    if let Some((pem, at)) = &cred.data {
        return Ok(Lookup {
            places: vec![Place::Inline {
                pem: pem.clone(),
                at: at.clone(),
            }],
            from: format!("client-certificate-data ({at}) of {user}"),
        });
    }
    if let Some((p, at)) = &cred.file {
        return Ok(Lookup::files(
            [p.clone()],
            format!("client-certificate ({at}) of {user}"),
        ));
    }
    Ok(Lookup::files(
        [],
        format!(
            "{user} authenticates with {}, without a client certificate",
            cred.other.as_deref().unwrap_or("no credentials")
        ),
    ))
}

/// The runbook's defaults when the kubelet's invocation could not be read (kubeadm's
/// layout), and why.
pub fn fallback(why: &str) -> (Lookup, Lookup) {
    let dir = Path::new(DEFAULT_CERT_DIR);
    let from =
        format!("the kubelet's invocation unread ({why}): kubeadm's layout in {DEFAULT_CERT_DIR}");
    (
        Lookup::files([dir.join("kubelet-client-current.pem")], from.clone()),
        Lookup::files(
            [
                dir.join("kubelet-server-current.pem"),
                dir.join("kubelet.crt"),
            ],
            from,
        ),
    )
}

/// A runbook's explicit path: it wins over the kubelet's own settings.
pub fn explicit(path: &str, setting: &str) -> Lookup {
    Lookup::files(
        [PathBuf::from(path)],
        format!("the runbook's {setting} (explicit; the kubelet's own settings not consulted)"),
    )
}

#[cfg(test)]
mod tests;
