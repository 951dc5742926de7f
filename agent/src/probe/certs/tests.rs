use super::*;

#[test]
fn spans() {
    assert_eq!(fmt_span(3 * 86_400 + 5), "3d");
    assert_eq!(fmt_span(-3 * 3600), "3h");
    assert_eq!(fmt_span(119), "119s");
    assert_eq!(fmt_span(600), "10m");
}

#[test]
fn approve_command_is_pasteable() {
    assert_eq!(
        approve_command(["csr-abc12", "node-csr-x.y"]),
        "kubectl certificate approve csr-abc12 node-csr-x.y"
    );
    assert_eq!(
        approve_command(["a b'c"]),
        r"kubectl certificate approve 'a b'\''c'"
    );
}

#[test]
fn asn1_times() {
    assert_eq!(
        asn1_time(0x17, b"250102030405Z").unwrap().to_string(),
        "2025-01-02T03:04:05Z"
    );
    assert_eq!(
        asn1_time(0x17, b"991231235959Z").unwrap().to_string(),
        "1999-12-31T23:59:59Z"
    );
    assert_eq!(
        asn1_time(0x18, b"20510102030405Z").unwrap().to_string(),
        "2051-01-02T03:04:05Z"
    );
    assert!(asn1_time(0x17, b"2501020304Z").is_err());
    assert!(asn1_time(0x17, b"250102030405+0100").is_err());
}

#[test]
fn der_walk_rejects_garbage() {
    assert!(cert_validity_der(&[]).is_err());
    assert!(cert_validity_der(&[0x30, 0x82, 0xff]).is_err());
    assert!(cert_validity_der(&[0x04, 0x00]).is_err());
}

#[test]
fn names_without_cn() {
    assert_eq!(name_cn(&[]).unwrap(), None);
    assert!(name_cn(&[0x30, 0x00]).is_err());
}
