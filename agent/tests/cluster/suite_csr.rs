//! The CSR scenario of issue 16 (seed 000), on both servers: this node's Pending
//! requests are found by the agent's own identity (the packaged ServiceAccount on the
//! real server: `list` is granted) and the agent cannot approve one (403 there).

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, DeleteParams};
use nodewarden::act::csr::CsrLister;
use nodewarden::domain::{Dur, Timestamp};
use nodewarden::probe::certs::{self, CsrState, SIGNER_CLIENT, SIGNER_SERVING};
use serde_json::{Value, json};

use super::Cluster;
use super::pki;

/// Creates a CSR as `system:node:<node>` (impersonated by admin), as that node's kubelet
/// would: the API server sets `spec.username` from the requester.
async fn create_as_node<C: Cluster>(c: &C, name: &str, node: &str, signer: &str, usage: &str) {
    let mut csr: CertificateSigningRequest = serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": "", "signerName": signer,
                 "usages": ["digital signature", usage],
                 // ignored: the server says who asked
                 "username": "system:node:somebody-else"},
    }))
    .expect("csr json");
    csr.spec.request =
        k8s_openapi::ByteString(pki::csr_pem(&format!("system:node:{node}")).into_bytes());
    let req = http::Request::post("/apis/certificates.k8s.io/v1/certificatesigningrequests")
        .header("content-type", "application/json")
        .header("Impersonate-User", format!("system:node:{node}"))
        .header("Impersonate-Group", "system:nodes")
        .body(serde_json::to_vec(&csr).expect("json"))
        .expect("request");
    let created: Value = c
        .admin()
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    assert_eq!(
        created["spec"]["username"],
        format!("system:node:{node}"),
        "{created}"
    );
}

pub async fn kubelet_csrs_listed_never_approved<C: Cluster>(c: &C) {
    let node = "csr1-n1";
    let names = ["csr1-client", "csr1-serving", "csr1-other"];
    let admin_csrs: Api<CertificateSigningRequest> = Api::all(c.admin());
    for n in names {
        let _ = admin_csrs.delete(n, &DeleteParams::default()).await;
    }
    create_as_node(c, "csr1-client", node, SIGNER_CLIENT, "client auth").await;
    create_as_node(c, "csr1-serving", node, SIGNER_SERVING, "server auth").await;
    create_as_node(c, "csr1-other", "csr1-n2", SIGNER_CLIENT, "client auth").await;

    // The agent's identity lists them (RBAC `list` on the real server).
    let lister = CsrLister::new(c.agent(), node);
    let mut mine = lister.list().await.expect("the agent may list CSRs");
    mine.sort_by(|a, b| a.name.cmp(&b.name));
    let got: Vec<&str> = mine.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(got, ["csr1-client", "csr1-serving"], "on {}", c.name());
    for v in &mine {
        assert_eq!(v.state, CsrState::Pending);
        assert_eq!(v.requester, "system:node:csr1-n1");
        assert_eq!(v.subject_cn.as_deref(), Some("system:node:csr1-n1"));
        assert!(v.created.is_some());
    }
    let pending = certs::pending(&mine, Timestamp::now(), Dur::ZERO);
    let cmd = certs::approve_command(pending.iter().map(|p| p.name.as_str()));
    assert!(
        cmd == "kubectl certificate approve csr1-client csr1-serving"
            || cmd == "kubectl certificate approve csr1-serving csr1-client",
        "{cmd}"
    );

    // The agent cannot approve: the real server forbids it (no RBAC on
    // certificatesigningrequests/approval); the fake does not serve the subresource.
    let mut obj = admin_csrs.get("csr1-client").await.expect("get csr");
    obj.status = Some(
        serde_json::from_value(json!({"conditions": [{
        "type": "Approved", "status": "True", "reason": "NodewardenMustNot",
        "message": "the agent must never be able to do this"}]}))
        .expect("status json"),
    );
    let req = http::Request::put(
        "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr1-client/approval",
    )
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&obj).expect("json"))
    .expect("request");
    let refused = c.agent().client().request::<Value>(req).await;
    let code = match refused {
        Err(kube::Error::Api(s)) => s.code,
        other => panic!("approval as the agent on {}: {other:?}", c.name()),
    };
    let expected = if c.name() == "real" { 403 } else { 404 };
    assert_eq!(code, expected, "approval as the agent on {}", c.name());
    let after = lister.list().await.expect("list again");
    assert!(
        after.iter().all(|v| v.state == CsrState::Pending),
        "{after:?}"
    );

    for n in names {
        admin_csrs
            .delete(n, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {n}: {e}"));
    }
}
