//! Kubeconfig files read as kube-rs's `Kubeconfig::read_from` and `Kubeconfig::read` read
//! them (relative paths made absolute against the file's directory, `$KUBECONFIG`'s list
//! merged first-wins, else `~/.kube/config`), parsed by [`crate::yaml`].
//!
//! Why not kube's own loaders: they parse with serde-saphyr straight into kube's types,
//! which compiled the YAML deserializer once per kubeconfig type, 270 KB of the binary
//! (docs/benchmarks.md, pass 4). kube's `Kubeconfig` type, its merge and
//! `Config::from_custom_kubeconfig` are still kube's.
//!
//! Differences, on purpose: a file is read only if it is a regular file and at most
//! [`MAX_KUBECONFIG`] (a FIFO in its place is refused at once; the caller reads on a
//! blocking thread under its deadline, so a hung mount does not hang it); a file of several
//! YAML documents is refused (kubectl writes one).

use std::path::{Path, PathBuf};

use kube::config::Kubeconfig;

use crate::safe_fs::{self, Follow};

/// The largest kubeconfig read, the agent's own and the kubelet's (with certificates
/// embedded as data, a kubeconfig is a few KiB; an admin's with many clusters, tens).
pub const MAX_KUBECONFIG: u64 = 1 << 20;

/// The kubeconfig at `path`.
pub fn read_from(path: &Path) -> Result<Kubeconfig, String> {
    let shown = path.display();
    let bytes = safe_fs::read_file(path, MAX_KUBECONFIG, Follow::Symlinks)
        .map_err(|e| format!("{shown}: {e}"))?;
    let text = decode(bytes).map_err(|e| format!("{shown}: {e}"))?;
    let mut kc: Kubeconfig = crate::yaml::from_str::<Option<Kubeconfig>>(&text)
        .map_err(|e| format!("{shown}: not a kubeconfig: {e}"))?
        .unwrap_or_default();
    if let Some(dir) = path.parent() {
        absolute_paths(&mut kc, dir);
    }
    Ok(kc)
}

/// `$KUBECONFIG`'s files merged (the first to set a value wins), else `~/.kube/config`.
pub fn read_default() -> Result<Kubeconfig, String> {
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            let mut merged = Kubeconfig::default();
            for p in paths {
                merged = merged
                    .merge(read_from(&p)?)
                    .map_err(|e| format!("KUBECONFIG: {e}"))?;
            }
            return Ok(merged);
        }
    }
    let home = std::env::home_dir().ok_or("no $KUBECONFIG and no home directory")?;
    read_from(&home.join(".kube").join("config"))
}

/// Text as kube reads it: UTF-16 with its byte-order mark, else UTF-8 (a UTF-8 mark
/// dropped).
fn decode(bytes: Vec<u8>) -> Result<String, String> {
    let utf16 = |body: &[u8], unit: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = body
            .chunks(2)
            .map(|c| unit([c[0], c.get(1).copied().unwrap_or(0)]))
            .collect();
        String::from_utf16(&units).map_err(|_| "not valid UTF-16 text".to_string())
    };
    match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        [0xEF, 0xBB, 0xBF, rest @ ..] => {
            String::from_utf8(rest.to_vec()).map_err(|_| "not valid UTF-8 text".to_string())
        }
        _ => String::from_utf8(bytes).map_err(|_| "not valid UTF-8 text".to_string()),
    }
}

/// Relative file references made absolute against `dir`, the file's directory, as
/// client-go does: certificate authority, client certificate and key, token file, and an
/// exec command that holds a path separator (a bare `aws` is looked up in PATH).
fn absolute_paths(kc: &mut Kubeconfig, dir: &Path) {
    let abs = |p: &mut Option<String>| {
        if let Some(s) = p
            && !s.is_empty()
            && Path::new(s.as_str()).is_relative()
        {
            *s = dir.join(s.as_str()).display().to_string();
        }
    };
    for c in kc.clusters.iter_mut().filter_map(|n| n.cluster.as_mut()) {
        abs(&mut c.certificate_authority);
    }
    for a in kc
        .auth_infos
        .iter_mut()
        .filter_map(|n| n.auth_info.as_mut())
    {
        abs(&mut a.client_certificate);
        abs(&mut a.client_key);
        abs(&mut a.token_file);
        if let Some(exec) = a.exec.as_mut()
            && exec
                .command
                .as_deref()
                .is_some_and(|c| c.contains(std::path::MAIN_SEPARATOR))
        {
            abs(&mut exec.command);
        }
    }
}

#[cfg(test)]
mod tests;
