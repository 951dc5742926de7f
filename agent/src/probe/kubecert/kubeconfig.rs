//! The kubelet's kubeconfig (`--kubeconfig`), read only for the current user's client
//! certificate, as client-go resolves it (k8s.io/client-go/tools/clientcmd):
//! `current-context` → that context's `user` → that user's `client-certificate` (a path;
//! a relative one is taken against the kubeconfig's own directory, `loader.go`
//! `ResolveLocalPaths`) or `client-certificate-data` (the PEM, base64-encoded, as
//! `kubectl config set-credentials --embed-certs` writes it). A user without either
//! authenticates otherwise (`exec`, a token) and has no client certificate.
//!
//! The file is read bounded and never trusted: a document that is not a kubeconfig, names
//! a context or user it does not hold, or is too large is an error for a person to read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::yaml::Spanned;
use serde::Deserialize;

use crate::probe::io;
use crate::safe_fs::{self, Follow, ReadError};

/// The largest kubeconfig read: the bound the agent's own kubeconfig has.
pub use crate::act::kubeconfig::MAX_KUBECONFIG;

/// The current user's credentials, as far as certificates go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCred {
    /// `client-certificate`, resolved against the kubeconfig's directory, and its `path:line`.
    pub file: Option<(PathBuf, String)>,
    /// `client-certificate-data`, decoded, and its `path:line`.
    pub data: Option<(Vec<u8>, String)>,
    /// How the user authenticates when it has no certificate (`exec aws-iam-authenticator`,
    /// `token`), for evidence.
    pub other: Option<String>,
    /// The user's name, for evidence.
    pub user: String,
}

#[derive(Debug, Default, Deserialize)]
struct Doc {
    #[serde(rename = "current-context")]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Option<Vec<NamedContext>>,
    #[serde(default)]
    users: Option<Vec<NamedUser>>,
}

#[derive(Debug, Deserialize)]
struct NamedContext {
    name: String,
    context: Option<ContextDoc>,
}

#[derive(Debug, Deserialize)]
struct ContextDoc {
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NamedUser {
    name: String,
    user: Option<UserDoc>,
}

#[derive(Debug, Default, Deserialize)]
struct UserDoc {
    #[serde(rename = "client-certificate")]
    client_certificate: Option<Spanned<String>>,
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: Option<Spanned<String>>,
    exec: Option<ExecDoc>,
    token: Option<serde::de::IgnoredAny>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct ExecDoc {
    command: Option<String>,
}

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(MAX_KUBECONFIG as usize);
    serde_saphyr::options! {
        budget: Some(budget),
        with_snippet: false,
    }
}

/// The current user's credentials in `text`, the kubeconfig at `path` (as the host names
/// it: relative certificate paths are resolved against its directory).
pub fn client_cred(text: &str, path: &Path) -> Result<ClientCred, String> {
    let shown = path.display();
    let doc: Doc = crate::yaml::from_str_with_options::<Option<Doc>>(text, options())
        .map_err(|e| {
            let e = e.to_string();
            format!(
                "{shown}: not a kubeconfig ({})",
                e.lines().next().unwrap_or("")
            )
        })?
        .unwrap_or_default();
    let ctx_name = doc
        .current_context
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("{shown}: no current-context"))?;
    let user_name = doc
        .contexts
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == ctx_name)
        .ok_or_else(|| format!("{shown}: current-context {ctx_name:?} is not among its contexts"))?
        .context
        .and_then(|c| c.user)
        .unwrap_or_default();
    let user = doc
        .users
        .unwrap_or_default()
        .into_iter()
        .find(|u| u.name == user_name)
        .ok_or_else(|| {
            format!("{shown}: user {user_name:?} of context {ctx_name:?} is not among its users")
        })?
        .user
        .unwrap_or_default();
    let at = |line: u64| format!("{shown}:{line}");
    let base = path.parent().unwrap_or(Path::new("/"));
    let file = user
        .client_certificate
        .filter(|f| !f.value.is_empty())
        .map(|f| (base.join(&f.value), at(f.referenced.line())));
    let data = match user.client_certificate_data.filter(|d| !d.value.is_empty()) {
        Some(d) => {
            let line = at(d.referenced.line());
            let bytes: k8s_openapi::ByteString =
                serde_json::from_value(serde_json::Value::String(d.value.trim().to_string()))
                    .map_err(|e| format!("client-certificate-data ({line}) is not base64: {e}"))?;
            Some((bytes.0, line))
        }
        None => None,
    };
    let other = if let Some(e) = &user.exec {
        Some(format!(
            "exec {}",
            e.command.as_deref().unwrap_or("(no command)")
        ))
    } else if user.token.is_some() {
        Some("a token".to_string())
    } else if let Some(f) = &user.token_file {
        Some(format!("tokenFile {f}"))
    } else if user.auth_provider.is_some() {
        Some("an auth-provider".to_string())
    } else {
        None
    };
    Ok(ClientCred {
        file,
        data,
        other,
        user: user_name,
    })
}

/// Reads the kubeconfig at `open` (this process's path to it) off the runtime's threads,
/// bounded, under `deadline`, and parses it; `shown` is the host's name for it.
/// `Ok(None)`: it does not exist.
pub async fn read(
    open: PathBuf,
    shown: PathBuf,
    deadline: Duration,
) -> Result<Option<ClientCred>, String> {
    let read = tokio::task::spawn_blocking(move || {
        safe_fs::read_file(&open, MAX_KUBECONFIG, Follow::Symlinks)
    });
    let bytes = match tokio::time::timeout(deadline, read).await {
        Ok(Ok(Ok(b))) => b,
        Ok(Ok(Err(ReadError::NotFound))) => return Ok(None),
        Ok(Ok(Err(e))) => return Err(format!("{}: {e}", shown.display())),
        Ok(Err(e)) => return Err(format!("{}: read task failed: {e}", shown.display())),
        Err(_) => {
            return Err(format!(
                "{}: no answer within {}",
                shown.display(),
                io::fmt_secs(deadline)
            ));
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", shown.display()))?;
    client_cred(&text, &shown).map(Some)
}
