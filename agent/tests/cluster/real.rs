//! The real control plane as a [`Cluster`]: the agent runs as the
//! ServiceAccount `nodewarden/nodewarden` bound by the packaged RBAC, with a
//! token from the TokenRequest API, never as admin.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use nodewarden::act::kube::{Kube, KubeOptions, Source};
use serde_json::{Value, json};

use super::Cluster;
use super::control_plane::ControlPlane;
use super::kubelet::HarnessKubelet;
use super::manifests::{self, Applied};

pub const AGENT_NS: &str = "nodewarden";
pub const AGENT_SA: &str = "nodewarden";

pub struct RealCluster {
    admin: Kube,
    agent: Kube,
    kubelet: HarnessKubelet,
    kubelet_task: tokio::task::JoinHandle<()>,
    pub token: String,
    /// The control plane's REALK8S_DIR (PIDs, logs).
    dir: PathBuf,
}

async fn connect(kubeconfig: PathBuf) -> Kube {
    Kube::connect(&KubeOptions {
        source: Source::Kubeconfig {
            path: Some(kubeconfig),
            context: None,
        },
        call_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .expect("kube client from kubeconfig")
}

/// A TokenRequest for `ns/sa` (what the kubelet does for a projected token).
pub async fn token_for(admin: &kube::Client, ns: &str, sa: &str) -> String {
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    });
    let req = http::Request::post(format!(
        "/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&body).expect("json"))
    .expect("request");
    let resp: Value = tokio::time::timeout(Duration::from_secs(10), admin.request(req))
        .await
        .expect("token request in time")
        .expect("token request");
    resp["status"]["token"]
        .as_str()
        .expect("status.token")
        .to_string()
}

/// A kubeconfig with the admin's server and CA and `token` as the user.
fn token_kubeconfig(admin_kubeconfig: &std::path::Path, token: &str) -> String {
    let kc = kube::config::Kubeconfig::read_from(admin_kubeconfig).expect("admin kubeconfig");
    let cluster = kc.clusters[0].cluster.as_ref().expect("cluster");
    let server = cluster.server.clone().expect("server");
    let ca = cluster.certificate_authority_data.clone().expect("CA data");
    format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: realk8s, cluster: {{server: \"{server}\", certificate-authority-data: {ca}}}}}]\nusers: [{{name: nodewarden, user: {{token: \"{token}\"}}}}]\ncontexts: [{{name: nodewarden, context: {{cluster: realk8s, user: nodewarden}}}}]\ncurrent-context: nodewarden\n"
    )
}

impl RealCluster {
    /// Applies the agent's Namespace, ServiceAccount and RBAC as admin, gets
    /// the ServiceAccount's token, and starts the harness kubelet.
    pub async fn start(cp: &ControlPlane) -> RealCluster {
        let admin = connect(cp.admin_kubeconfig()).await;
        let objs = manifests::objects_of(&["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"]);
        assert!(objs.len() >= 5, "{objs:?}");
        for (id, r) in manifests::apply_all(admin.client(), &objs).await {
            assert_eq!(r, Applied::Accepted, "{id}");
        }
        let token = token_for(admin.client(), AGENT_NS, AGENT_SA).await;
        let path = cp.dir().join("agent.kubeconfig");
        std::fs::write(&path, token_kubeconfig(&cp.admin_kubeconfig(), &token))
            .expect("write agent kubeconfig");
        let agent = connect(path).await;
        let kubelet = HarnessKubelet::new(admin.client().clone());
        let kubelet_task = kubelet.clone().spawn();
        RealCluster {
            admin,
            agent,
            kubelet,
            kubelet_task,
            token,
            dir: cp.dir().to_path_buf(),
        }
    }
}

impl RealCluster {
    /// Stops the harness kubelet's loop (it lists every pod each 100 ms and renews the
    /// Leases every 2 s): a measurement that wants a node kubelet's pace renews the
    /// Lease itself ([`super::kubelet::renew_lease`], every 10 s as a kubelet does).
    pub fn quiet_kubelet(&self) {
        self.kubelet_task.abort();
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        // Never leave a SIGSTOPped API server behind (a failed scenario may).
        if let Some(pid) = super::control_plane::pid_in(&self.dir, "kube-apiserver") {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        self.kubelet_task.abort();
    }
}

impl Cluster for RealCluster {
    fn name(&self) -> &'static str {
        "real"
    }
    fn agent(&self) -> Kube {
        self.agent.clone()
    }
    fn admin(&self) -> kube::Client {
        self.admin.client().clone()
    }
    async fn namespace(&self, ns: &str) {
        let nss: Api<Namespace> = Api::all(self.admin());
        let obj: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns json");
        match nss.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create namespace {ns}: {e}"),
        }
        // ServiceAccount admission refuses pods until the controller made `default`.
        let sas: Api<ServiceAccount> = Api::namespaced(self.admin(), ns);
        for _ in 0..200 {
            if matches!(sas.get_opt("default").await, Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no default ServiceAccount in {ns} after 20 s");
    }
    fn set_kubelet_stuck(&self, node: &str, stuck: bool) {
        self.kubelet.set_stuck(node, stuck);
    }
    /// etcd compacted to its current revision, then kube-apiserver restarted:
    /// its watch cache starts at the current resourceVersion and etcd holds no
    /// older history, so a watch from before answers 410 Expired.
    async fn compact(&self) -> bool {
        let port = std::env::var("ETCD_PORT").unwrap_or_else(|_| "2379".into());
        let etcdctl = |args: &[&str]| {
            let out = std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg("--endpoints")
                .arg(format!("http://127.0.0.1:{port}"))
                .args(args)
                .output()
                .expect("etcdctl");
            assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let status = etcdctl(&["endpoint", "status", "-w", "json"]);
        let v: Value = serde_json::from_str(&status).expect("etcd status json");
        let rev = v[0]["Status"]["header"]["revision"]
            .as_i64()
            .expect("revision");
        etcdctl(&["compact", &rev.to_string()]);
        super::control_plane::restart_apiserver(&self.dir).expect("restart kube-apiserver");
        self.wait_ready().await;
        true
    }
    async fn hang_api(&self, hung: bool) {
        self.signal_apiserver(if hung { "-STOP" } else { "-CONT" });
    }
    async fn restart_api(&self) {
        super::control_plane::restart_apiserver(&self.dir).expect("restart kube-apiserver");
        self.wait_ready().await;
    }
}

impl RealCluster {
    /// Sends `sig` (`-STOP`, `-CONT`) to kube-apiserver by its saved PID.
    fn signal_apiserver(&self, sig: &str) {
        let pid = super::control_plane::pid_in(&self.dir, "kube-apiserver").expect("apiserver pid");
        let st = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill {sig} {pid}: {st}");
    }

    /// Waits until `/readyz` answers `ok` (at most 60 s).
    async fn wait_ready(&self) {
        for _ in 0..300 {
            let req = http::Request::get("/readyz").body(Vec::new()).expect("req");
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_secs(2), self.admin().request_text(req)).await
                && s == "ok"
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("kube-apiserver not ready 60 s after its restart");
    }
}
