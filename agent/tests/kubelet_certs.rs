//! Issue 16 (seed 000): the kubelet's certificates and this node's CSRs, judged against
//! the API server's time. Certificates are generated here with chosen validity windows.

#[path = "cluster/pki.rs"]
mod pki;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use nodewarden::domain::{Dur, Timestamp};
use nodewarden::probe::certs::{
    self, CsrState, CsrView, Level, Policy, Role, SIGNER_CLIENT, SIGNER_SERVING, TimeRef,
};
use serde_json::json;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

const CLIENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

#[test]
fn reads_validity_subject_and_issuer_of_generated_certificates() {
    let pem = pki::cert_pem("system:node:k8s-vm02", "2026-01-02", "2027-01-02");
    let info = certs::cert_info_pem(pem.as_bytes()).unwrap();
    assert_eq!(info.validity.not_before, ts("2026-01-02T00:00:00Z"));
    assert_eq!(info.validity.not_after, ts("2027-01-02T00:00:00Z"));
    assert_eq!(info.subject_cn.as_deref(), Some("system:node:k8s-vm02"));
    assert!(!info.self_signed);
    // a certificate past 2049 is written as GeneralizedTime
    let pem = pki::self_signed_pem("k8s-vm02@1700000000", "2025-03-01", "2051-03-01");
    let info = certs::cert_info_pem(pem.as_bytes()).unwrap();
    assert_eq!(info.validity.not_after, ts("2051-03-01T00:00:00Z"));
    assert!(info.self_signed);
    // the key alone, or garbage, is no certificate
    assert!(
        certs::cert_info_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .is_err()
    );
    assert!(certs::cert_info_pem(b"not pem").is_err());
}

#[test]
fn seed_000_clock_jump_before_not_before() {
    let pem = pki::cert_pem("system:node:k8s-vm02", "2026-01-02", "2027-01-02");
    let info = certs::cert_info_pem(pem.as_bytes()).unwrap();
    let j = certs::judge_cert(
        Role::Client,
        CLIENT,
        &info,
        TimeRef::Server(ts("2025-12-30T00:00:00Z")),
        &Policy::default(),
    );
    assert_eq!(j.level, Level::Fail);
    assert_eq!(
        j.evidence,
        "client cert /var/lib/kubelet/pki/kubelet-client-current.pem valid 2026-01-02..2027-01-02, API server time 2025-12-30 (before notBefore)"
    );
    assert!(j.problem.unwrap().contains("not valid for another 3d"));
}

#[test]
fn expiry_thresholds_warn_at_30_days_and_fail_at_7() {
    let pem = pki::cert_pem("system:node:n1", "2026-01-01", "2027-01-01");
    let info = certs::cert_info_pem(pem.as_bytes()).unwrap();
    let p = Policy::default();
    let at =
        |t: &str| certs::judge_cert(Role::Serving, "/s.pem", &info, TimeRef::Server(ts(t)), &p);
    assert_eq!(at("2026-06-01T00:00:00Z").level, Level::Ok);
    // 31 days left: still fine; 30 days left is not "within 30 days"; 29 is
    assert_eq!(at("2026-12-01T00:00:00Z").level, Level::Ok);
    assert_eq!(at("2026-12-02T00:00:00Z").level, Level::Ok);
    let w = at("2026-12-03T00:00:00Z");
    assert_eq!(w.level, Level::Warn, "{w:?}");
    assert!(
        w.evidence.contains("(expires in 29d, warning within 30d)"),
        "{}",
        w.evidence
    );
    // exactly 7 days left is not "within 7 days"
    assert_eq!(at("2026-12-25T00:00:00Z").level, Level::Warn);
    let f = at("2026-12-26T00:00:00Z");
    assert_eq!(f.level, Level::Fail, "{f:?}");
    assert!(f.problem.unwrap().contains("expires in 6d"));
    let e = at("2027-01-03T12:00:00Z");
    assert_eq!(e.level, Level::Fail);
    assert!(e.evidence.contains("(expired 2d ago)"), "{}", e.evidence);
    // on the local clock, it says so
    let l = certs::judge_cert(
        Role::Client,
        CLIENT,
        &info,
        TimeRef::Local(ts("2026-06-01T10:00:00Z")),
        &p,
    );
    assert!(
        l.evidence
            .contains("local time (the API server's is unknown) 2026-06-01T10:00:00Z"),
        "{}",
        l.evidence
    );
}

fn csr(
    name: &str,
    signer: &str,
    username: &str,
    cn: &str,
    created: &str,
    conds: &[&str],
) -> CertificateSigningRequest {
    let conditions: Vec<_> = conds
        .iter()
        .map(|t| json!({"type": t, "status": "True", "lastUpdateTime": created}))
        .collect();
    let mut c: CertificateSigningRequest = serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"request": "", "signerName": signer, "username": username,
                 "usages": ["digital signature", "client auth"]},
        "status": {"conditions": conditions},
    }))
    .expect("csr json");
    c.spec.request = k8s_openapi::ByteString(pki::csr_pem(cn).into_bytes());
    c
}

#[test]
fn this_nodes_pending_csrs_past_the_threshold_with_the_command() {
    let now = ts("2026-03-01T12:00:00Z");
    let all = [
        // renewal by the kubelet itself, 3 h Pending
        csr(
            "csr-renew",
            SIGNER_CLIENT,
            "system:node:k8s-vm02",
            "system:node:k8s-vm02",
            "2026-03-01T09:00:00Z",
            &[],
        ),
        // serving certificate, 2 h Pending
        csr(
            "csr-serve",
            SIGNER_SERVING,
            "system:node:k8s-vm02",
            "system:node:k8s-vm02",
            "2026-03-01T10:00:00Z",
            &[],
        ),
        // bootstrap: asked by the token user, for this node (its subject)
        csr(
            "node-csr-boot",
            SIGNER_CLIENT,
            "system:bootstrap:abcdef",
            "system:node:k8s-vm02",
            "2026-03-01T08:00:00Z",
            &[],
        ),
        // too young
        csr(
            "csr-young",
            SIGNER_CLIENT,
            "system:node:k8s-vm02",
            "system:node:k8s-vm02",
            "2026-03-01T11:30:00Z",
            &[],
        ),
        // approved, denied
        csr(
            "csr-ok",
            SIGNER_CLIENT,
            "system:node:k8s-vm02",
            "system:node:k8s-vm02",
            "2026-03-01T01:00:00Z",
            &["Approved"],
        ),
        csr(
            "csr-no",
            SIGNER_CLIENT,
            "system:node:k8s-vm02",
            "system:node:k8s-vm02",
            "2026-03-01T01:00:00Z",
            &["Denied"],
        ),
        // another node's; someone else's signer
        csr(
            "csr-vm01",
            SIGNER_CLIENT,
            "system:node:k8s-vm01",
            "system:node:k8s-vm01",
            "2026-03-01T01:00:00Z",
            &[],
        ),
        csr(
            "csr-other",
            "example.com/signer",
            "system:node:k8s-vm02",
            "system:node:k8s-vm02",
            "2026-03-01T01:00:00Z",
            &[],
        ),
    ];
    let views: Vec<CsrView> = all.iter().map(CsrView::of).collect();
    assert_eq!(views[4].state, CsrState::Approved);
    assert_eq!(views[5].state, CsrState::Denied);
    assert_eq!(views[2].requester, "system:bootstrap:abcdef");
    assert_eq!(views[2].subject_cn.as_deref(), Some("system:node:k8s-vm02"));
    let mine: Vec<CsrView> = views
        .into_iter()
        .filter(|v| v.is_for_node("k8s-vm02"))
        .collect();
    assert_eq!(mine.len(), 7);
    let p = certs::pending(&mine, now, Dur::from_secs(3600));
    let names: Vec<&str> = p.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["node-csr-boot", "csr-renew", "csr-serve"]);
    assert_eq!(p[0].age_secs, 4 * 3600);
    assert_eq!(
        certs::approve_command(names.iter().copied()),
        "kubectl certificate approve node-csr-boot csr-renew csr-serve"
    );
}
