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
mod tests {
    use super::*;

    #[test]
    fn an_old_servers_refusal_names_the_version() {
        let m = "the API version in the data (policy/v1) does not match the expected API version (policy/v1beta1)";
        assert!(eviction_v1_unsupported(400, m));
        assert!(eviction_v1_unsupported(
            400,
            "no kind \"Eviction\" is registered for version \"policy/v1\" in scheme \"pkg/api/legacyscheme\""
        ));
        let e = eviction_v1_error("evict pod a/b".into(), 400, m);
        assert!(e.to_string().contains(">= 1.22"), "{e}");
        assert!(!e.is_retriable());
        // Other 400s and other codes are not this.
        assert!(!eviction_v1_unsupported(
            400,
            "DeleteOptions: invalid grace period"
        ));
        assert!(!eviction_v1_unsupported(404, m));
    }
}
