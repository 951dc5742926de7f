use super::*;

#[test]
fn classification() {
    let api = |code| KubeError::Api {
        what: "x".into(),
        code,
        reason: String::new(),
        message: String::new(),
    };
    assert!(api(429).is_retriable());
    assert!(api(409).is_retriable() && api(409).is_conflict());
    assert!(api(503).is_retriable());
    assert!(!api(403).is_retriable());
    assert!(!api(404).is_retriable() && api(404).is_not_found());
    let t = KubeError::Timeout {
        what: "get node".into(),
        after: Duration::from_secs(1),
    };
    assert!(t.is_retriable() && t.is_unreachable());
    assert!(matches!(ActError::from(t), ActError::Timeout { .. }));
    let u = KubeError::Unreachable {
        what: "get".into(),
        detail: "refused".into(),
    };
    assert!(matches!(ActError::from(u), ActError::ApiUnreachable(_)));
    assert!(matches!(ActError::from(api(403)), ActError::Failed(_)));
}

#[test]
fn bad_url_is_a_config_error() {
    // kube's client panics on a URL without a scheme (exit 134): refused first.
    for bad in [
        "not a url",
        "127.0.0.1:18600",
        "notaurl",
        "ftp://h",
        "http://",
    ] {
        match Kube::from_url(bad, DEFAULT_CALL_TIMEOUT) {
            Err(KubeError::BadServerUrl(m)) => assert!(!m.contains('\n'), "{m}"),
            other => panic!("{bad}: {:?}", other.err()),
        }
    }
}
