//! Certificates and PKCS#10 requests made in the tests, with chosen validity windows
//! (rcgen: real ECDSA P-256 signatures, so the real API server accepts the requests; it
//! checks a CSR's signature on create, `pkg/apis/certificates/validation`).

use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair, date_time_ymd};

/// `YYYY-MM-DD` as (year, month, day).
fn ymd(s: &str) -> (i32, u8, u8) {
    let p: Vec<i32> = s.split('-').map(|x| x.parse().expect("date")).collect();
    (p[0], p[1] as u8, p[2] as u8)
}

fn params(cn: &str, not_before: &str, not_after: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "system:nodes");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    let (y, m, d) = ymd(not_before);
    p.not_before = date_time_ymd(y, m, d);
    let (y, m, d) = ymd(not_after);
    p.not_after = date_time_ymd(y, m, d);
    p
}

/// A certificate for `cn` signed by a throw-away CA, valid `not_before..not_after`
/// (`YYYY-MM-DD`), PEM with its key after it (like `kubelet-client-current.pem`).
pub fn cert_pem(cn: &str, not_before: &str, not_after: &str) -> String {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.distinguished_name.push(DnType::CommonName, "kubernetes");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = params(cn, not_before, not_after)
        .signed_by(&key, &issuer)
        .expect("sign");
    format!("{}{}", cert.pem(), key.serialize_pem())
}

/// A self-signed certificate (the kubelet's own `kubelet.crt`).
pub fn self_signed_pem(cn: &str, not_before: &str, not_after: &str) -> String {
    let key = KeyPair::generate().expect("key");
    let cert = params(cn, not_before, not_after)
        .self_signed(&key)
        .expect("self-sign");
    cert.pem()
}

/// A PKCS#10 request for `CN=<cn>, O=system:nodes`, PEM (what `spec.request` holds).
pub fn csr_pem(cn: &str) -> String {
    let key = KeyPair::generate().expect("key");
    params(cn, "2000-01-01", "2100-01-01")
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("csr pem")
}
