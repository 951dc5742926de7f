//! One scenario suite, two API servers (issue 18).
//!
//! [`Cluster`] is what a scenario needs from an API server: the agent's
//! identity, an admin identity for fixtures, and the kubelet it plays. Two
//! implementations:
//!
//! - [`fake::FakeCluster`]: `tests/fakeapi`, in-process, a fresh one per scenario;
//! - [`real::RealCluster`]: the real kube-apiserver + controller-manager of
//!   `../shared/realk8s` (started once per test binary), the agent running as
//!   the ServiceAccount that `packaging/kubernetes/rbac.yaml` binds.
//!
//! Fixtures ([`fixtures`]) are created through the API on both, with objects
//! the real server accepts, so the fake is held to what the real one does.
//! The scenarios ([`suite`]) are written once, generic over [`Cluster`]; a
//! difference between the servers fails one of them.
#![allow(dead_code, async_fn_in_trait)]

pub mod control_plane;
pub mod fake;
pub mod fixtures;
pub mod kubelet;
pub mod manifests;
pub mod pki;
pub mod real;
pub mod suite;
pub mod suite_csr;
pub mod suite_reach;

use nodewarden::act::kube::Kube;

/// What a scenario needs from an API server.
pub trait Cluster {
    /// `fake` or `real`, for messages.
    fn name(&self) -> &'static str;
    /// The agent's client: on the real server, the packaged ServiceAccount's token.
    fn agent(&self) -> Kube;
    /// A client that may do anything (fixtures, the harness kubelet).
    fn admin(&self) -> kube::Client;
    /// Makes `ns` ready for pods (the real server needs the Namespace and its
    /// `default` ServiceAccount; the fake has no namespaces).
    async fn namespace(&self, ns: &str);
    /// The kubelet of `node` stops finishing terminating pods (and renewing
    /// its Lease) while stuck.
    fn set_kubelet_stuck(&self, node: &str, stuck: bool);
    /// Forgets the watch history, so that a watch resumed from an older
    /// resourceVersion gets 410 Expired. `false`: this server cannot.
    async fn compact(&self) -> bool;
    /// `true`: the API server stops answering (connections accepted or kept,
    /// nothing answered: the real one is SIGSTOPped); `false`: it goes on.
    async fn hang_api(&self, hung: bool);
    /// The API server process restarts: connections refused while it is
    /// down, then a new server (the real one's watch cache starts empty).
    /// Returns once it answers again.
    async fn restart_api(&self);
}
