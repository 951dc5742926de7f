//! This node's CertificateSigningRequests, read for the kubelet-certificate probe
//! (`probe/kubecert.rs`, which decides when to ask: rarely). Read-only: the agent lists
//! CSRs and never approves, denies or changes one (the packaged RBAC grants `list` on
//! `certificatesigningrequests` and nothing on `certificatesigningrequests/approval`;
//! `agent/tests/csr_never_approved.rs` holds both to that).
//!
//! There is no field selector for the requester or the subject (the API server offers
//! `spec.signerName` only), so the list is of every CSR, filtered here. It asks with
//! `resourceVersion=0`: the API server answers from its watch cache instead of a quorum
//! read of etcd, the cheapest full list it serves.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, ListParams};

use super::kube::{Kube, KubeError};
use crate::probe::ApiFuture;
use crate::probe::certs::{CsrSource, CsrView};

/// Lists the CSRs of one node.
#[derive(Clone)]
pub struct CsrLister {
    kube: Kube,
    node: String,
}

impl CsrLister {
    pub fn new(kube: Kube, node: impl Into<String>) -> Self {
        CsrLister {
            kube,
            node: node.into(),
        }
    }

    /// The CSRs asked by or for this node (any state), under the client's call deadline.
    pub async fn list(&self) -> Result<Vec<CsrView>, KubeError> {
        let csrs: Api<CertificateSigningRequest> = Api::all(self.kube.client().clone());
        let lp = ListParams::default().match_any();
        let list = self
            .kube
            .call("list certificatesigningrequests", csrs.list(&lp))
            .await?;
        Ok(list
            .items
            .iter()
            .map(CsrView::of)
            .filter(|v| v.is_for_node(&self.node))
            .collect())
    }
}

impl CsrSource for CsrLister {
    fn this_node(&self) -> ApiFuture<'_, Vec<CsrView>> {
        Box::pin(async move { self.list().await.map_err(|e| e.to_string()) })
    }
}
