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
