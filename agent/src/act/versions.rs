//! The Kubernetes versions the agent's API calls need (docs/install.md,
//! "Version floors"), and the clear error an older server gets instead of a
//! bare 400.
//!
//! - Evictions are `policy/v1` (served since Kubernetes 1.22). A 1.21 server
//!   decodes the subresource body as `policy/v1beta1` only and answers 400
//!   "the API version in the data (policy/v1) does not match the expected API
//!   version (policy/v1beta1)" (apiserver `transformDecodeError`); an older
//!   decoder path says `no kind "Eviction" is registered for version "policy/v1"`.

use super::kube::KubeError;

/// The first Kubernetes version that serves `policy/v1` Evictions.
pub const EVICTION_V1_SINCE: &str = "1.22";

/// Whether an API error is an old server refusing the `policy/v1` Eviction body.
pub fn eviction_v1_unsupported(code: u16, message: &str) -> bool {
    code == 400
        && message.contains("policy/v1")
        && (message.contains("does not match the expected API version")
            || message.contains("no kind \"Eviction\" is registered"))
}

/// The error for that refusal: names the version needed.
pub fn eviction_v1_error(what: String, code: u16, message: &str) -> KubeError {
    KubeError::Api {
        what,
        code,
        reason: "UnsupportedServerVersion".into(),
        message: format!(
            "this API server does not serve policy/v1 Evictions: nodewarden needs Kubernetes >= {EVICTION_V1_SINCE} (server said: {message})"
        ),
    }
}

#[cfg(test)]
mod tests;
