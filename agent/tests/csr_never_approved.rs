//! The agent never approves a CertificateSigningRequest (issue 16, seed 000).
//!
//! Approving a node's own certificate from the node is the privilege escalation the CSR
//! flow exists to prevent: a compromised node could then mint itself any node identity
//! the signer accepts. nodewarden reports the Pending requests with the command a person
//! runs; it holds neither the code path nor the permission to run it itself. The real
//! API server's answer (403 for the packaged ServiceAccount) is checked by the suite
//! scenario `kubelet_csrs_listed_never_approved` (`cluster/suite_csr.rs`).

use std::path::Path;

use nodewarden_packaging::{load_objects, rbac, repo_root, scan};

fn product_sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).expect("read agent/src").flatten() {
        let p = e.path();
        if p.is_dir() {
            product_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).expect("read source");
            out.push((p.display().to_string(), scan::strip_comments(&text)));
        }
    }
}

/// No approval call in the product: not kube's `patch_approval`/`replace_approval`, not a
/// raw request to `…/certificatesigningrequests/NAME/approval` (the only way to add an
/// `Approved` condition: `/status` refuses it), and no impersonation (which could borrow
/// someone else's right). Reading a CSR's `Approved` condition is fine.
#[test]
fn the_product_has_no_approval_call() {
    let mut files = Vec::new();
    product_sources(&repo_root().join("agent/src"), &mut files);
    assert!(files.len() > 20, "{} files", files.len());
    let mut found = Vec::new();
    for (path, code) in &files {
        for (i, line) in code.lines().enumerate() {
            let l = line.to_ascii_lowercase();
            let bad = l.contains("approval")
                || l.contains("impersonate")
                || l.contains("certificatesigningrequests/");
            if bad {
                found.push(format!("{path}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "approval-shaped code in the product:\n{}",
        found.join("\n")
    );

    // And the API-call scan finds CSRs read, never written.
    let root = repo_root();
    let scanned = scan::scan_dir(&root.join("agent/src"), &root);
    let csr_calls: Vec<String> = scanned
        .found
        .iter()
        .filter(|f| f.call.resource.starts_with("certificatesigningrequests"))
        .map(|f| format!("{} ({}:{})", f.call, f.file, f.line))
        .collect();
    assert!(
        !csr_calls.is_empty(),
        "the scan sees the CSR list (act/csr.rs)"
    );
    for c in &csr_calls {
        assert!(
            c.starts_with("list certificatesigningrequests.certificates.k8s.io "),
            "{c}"
        );
    }
}

/// The packaged RBAC grants `list` on certificatesigningrequests and nothing else of the
/// certificates API: no update/patch on `certificatesigningrequests/approval`, no
/// `approve` on `signers`, no write on the CSRs themselves (wildcards are refused by
/// `rbac::grants` already). The Helm chart renders the same rules
/// (`nodewarden-packaging`'s manifests test holds the two equal).
#[test]
fn the_packaged_rbac_grants_no_approval() {
    let objs = load_objects(&repo_root().join("packaging/kubernetes")).expect("manifests");
    let grants = rbac::grants(&objs).expect("rbac");
    let certs: Vec<String> = grants
        .keys()
        .filter(|c| c.resource.contains("certificates.k8s.io") || c.verb == "approve")
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        certs,
        ["list certificatesigningrequests.certificates.k8s.io"]
    );
    assert!(
        !grants
            .keys()
            .any(|c| c.resource.contains("approval") || c.resource.contains("signers")),
        "{grants:?}"
    );
}
