//! An in-process fake kube-apiserver for nodewarden's integration tests.
//!
//! It speaks plain HTTP/1.1 on `127.0.0.1:<ephemeral port>` to the real kube
//! client and reproduces the apiserver (and controller) semantics nodewarden
//! relies on: nodes with the status subresource, pods with field selectors,
//! `pods/eviction` checked against PodDisruptionBudgets (429), optimistic
//! concurrency (409), Leases, Events, watches, the kubelet's graceful
//! termination and the StatefulSet controller's same-name replacement. See
//! `docs/platform-facts.md` for the observed behaviour it follows, and
//! the crate `README.md` for the list of deliberate simplifications.
//!
//! Objects are stored as JSON (`serde_json::Value`); there is no typed API.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let api = nodewarden_fakeapi::FakeApi::start().await;
//! api.add_node("node-1");
//! // In the test (kube 5):
//! // let mut config = kube::Config::new(api.url().parse()?);
//! // config.default_retry = false; // see README: otherwise 429s are retried 15 times
//! // let client = kube::Client::try_from(config)?;
//! // let nodes: kube::Api<Node> = kube::Api::all(client);
//! # Ok(()) }
//! ```

mod builders;
mod csr;
mod kubelet;
mod patch;
mod select;
mod server;
mod store;
mod util;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jiff::SignedDuration;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use builders::{Budget, PodBuilder, pod};
pub use kubelet::NodeKubelet;
pub use store::Kind;

use store::State;

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Normal operation.
    #[default]
    Up,
    /// The listener is closed: connections are refused; open connections are cut.
    Down,
    /// Connections are accepted but no request is ever answered (and open
    /// watches stop delivering events).
    Hang,
    /// Every request answers `500 InternalError`.
    Error500,
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// `GET`, `POST`, ...
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw (still percent-encoded) query string.
    pub query: Option<String>,
    /// Kubernetes verb: `get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection` (an eviction is `create` on `pods/eviction`).
    pub verb: String,
    /// Resource from the path (`pods`), even when the fake does not serve it.
    pub resource: String,
    /// `status`, `eviction`, `scale`.
    pub subresource: Option<String>,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Object name from the path.
    pub name: Option<String>,
    /// HTTP status answered; `0` when the request was never answered (Hang).
    pub status: u16,
    /// When the request arrived (real clock, not skewed).
    pub at: jiff::Timestamp,
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// The request body (lossy UTF-8).
    pub body: String,
}

impl RequestRecord {
    /// `pods` or `pods/eviction`.
    pub fn resource_path(&self) -> String {
        match &self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.clone(),
        }
    }
}

pub(crate) struct Inner {
    pub state: Mutex<State>,
    /// Bumped on every change (and on setting changes): wakes watches and the kubelet.
    pub changes: watch::Receiver<u64>,
    /// Bumped to cut every open connection.
    pub kill: watch::Sender<u64>,
}

struct Acceptor {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The fake apiserver. Dropping it stops the server.
pub struct FakeApi {
    inner: Arc<Inner>,
    addr: SocketAddr,
    acceptor: tokio::sync::Mutex<Option<Acceptor>>,
    kubelet: JoinHandle<()>,
    /// What each node's kubelet does (`kubelet.rs`).
    kubelets: std::sync::Mutex<std::collections::BTreeMap<String, NodeKubelet>>,
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn serve_connection(inner: Arc<Inner>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut kill = inner.kill.subscribe();
    let io = TokioIo::new(stream);
    let svc = service_fn(move |req| {
        let inner = inner.clone();
        async move { Ok::<_, Infallible>(server::handle(inner, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
    tokio::select! {
        _ = conn => {}
        _ = kill.changed() => {}
    }
}

fn spawn_acceptor(inner: Arc<Inner>, listener: TcpListener) -> Acceptor {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        tokio::spawn(serve_connection(inner.clone(), stream));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                },
            }
        }
        drop(listener);
    });
    Acceptor { stop, task }
}

async fn kubelet_loop(inner: Arc<Inner>) {
    let mut rx = inner.changes.clone();
    loop {
        let next = {
            let mut s = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            s.kubelet_step()
        };
        rx.borrow_and_update();
        let sleep = match next {
            Some(t) => tokio::time::sleep_until(t.into()),
            None => tokio::time::sleep(Duration::from_secs(3600)),
        };
        tokio::select! {
            _ = sleep => {}
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

impl FakeApi {
    /// Binds `127.0.0.1:0` and starts serving. Needs a tokio runtime.
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn start() -> FakeApi {
        let (tx, rx) = watch::channel(0);
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(tx)),
            changes: rx,
            kill: watch::channel(0).0,
        });
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let acceptor = spawn_acceptor(inner.clone(), listener);
        let kubelet = tokio::spawn(kubelet_loop(inner.clone()));
        FakeApi {
            inner,
            addr,
            acceptor: tokio::sync::Mutex::new(Some(acceptor)),
            kubelet,
            kubelets: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address (stable across Down/Up).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and cuts every connection.
    pub async fn shutdown(self) {
        if let Some(a) = self.acceptor.lock().await.take() {
            let _ = a.stop.send(());
            let _ = a.task.await;
        }
        self.inner.kill.send_modify(|g| *g += 1);
        // Drop does the rest.
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- switches ----------------------------------------------------

    /// Switches the failure mode. `Down` closes the listener and cuts open
    /// connections; leaving `Down` binds the same port again.
    ///
    /// # Panics
    /// If the port cannot be bound again.
    pub async fn set_mode(&self, mode: Mode) {
        let mut acceptor = self.acceptor.lock().await;
        {
            let mut s = self.state();
            s.settings.mode = mode;
            s.wake();
        }
        if mode == Mode::Down {
            if let Some(a) = acceptor.take() {
                let _ = a.stop.send(());
                let _ = a.task.await;
            }
            self.inner.kill.send_modify(|g| *g += 1);
        } else if acceptor.is_none() {
            let mut tries = 0;
            let listener = loop {
                match bind(self.addr) {
                    Ok(l) => break l,
                    Err(e) if tries < 100 => {
                        tries += 1;
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => panic!("re-binding {}: {e}", self.addr),
                }
            };
            *acceptor = Some(spawn_acceptor(self.inner.clone(), listener));
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.state().settings.mode
    }

    /// Shifts the server clock: the `Date` header of every response and the
    /// timestamps the server writes (creationTimestamp, deletionTimestamp...).
    pub fn set_date_skew(&self, skew: SignedDuration) {
        self.state().settings.skew = skew;
    }

    /// Delay added before answering every request.
    /// Period of the timed BOOKMARKs sent to watches that allow them (default
    /// one minute, as the real API server; shorter for tests). Applies to
    /// watches opened afterwards.
    pub fn set_bookmark_every(&self, every: Duration) {
        self.state().settings.bookmark_every = every;
    }

    pub fn set_latency(&self, latency: Duration) {
        self.state().settings.latency = latency;
    }

    /// Real seconds per second of grace period (`0.01`: a 30 s grace takes
    /// 300 ms). Applies to pods already terminating too.
    pub fn set_grace_scale(&self, scale: f64) {
        let mut s = self.state();
        s.settings.grace_scale = scale;
        s.wake();
    }

    /// A dead kubelet never confirms termination: terminating pods stay.
    pub fn set_kubelet_alive(&self, alive: bool) {
        let mut s = self.state();
        s.settings.kubelet_alive = alive;
        s.wake();
    }

    /// Like [`FakeApi::set_kubelet_alive`] for the kubelet of one node.
    pub fn set_node_kubelet_alive(&self, node: &str, alive: bool) {
        let mut s = self.state();
        if alive {
            s.settings.dead_kubelets.remove(node);
        } else {
            s.settings.dead_kubelets.insert(node.to_string());
        }
        s.wake();
    }

    /// Node the controllers put replacement pods on (`None`: unscheduled, the default).
    pub fn set_replacement_node(&self, node: Option<&str>) {
        self.state().settings.replacement_node = node.map(str::to_string);
    }

    /// Whether the StatefulSet/ReplicaSet/DaemonSet controllers create
    /// replacement pods (default on).
    pub fn set_controllers(&self, enabled: bool) {
        self.state().settings.controllers = enabled;
    }

    /// Turns the disruption controller on or off (default on). Off: PDB
    /// status is no longer recomputed; new or changed PDBs stay unobserved.
    pub fn set_disruption_controller(&self, enabled: bool) {
        let mut s = self.state();
        s.settings.disruption_controller = enabled;
        if enabled {
            s.sync_pdbs();
        }
    }

    /// Marks one PDB's status as not yet observed by the disruption
    /// controller (`observedGeneration` 0, frozen): evictions of Running
    /// pods it covers answer 429 "still being processed". `true` resumes.
    pub fn set_pdb_observed(&self, ns: &str, name: &str, observed: bool) {
        self.state().set_pdb_frozen(ns, name, !observed);
    }

    /// Forgets the watch history (like an etcd compaction): watches resuming
    /// from an older resourceVersion get a 410 Expired ERROR event.
    pub fn compact(&self) {
        self.state().compact();
    }

    // ----- request log -------------------------------------------------

    /// Every request so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().log.clone()
    }

    /// Requests with this verb on this resource (`"pods"` or `"pods/eviction"`).
    pub fn count(&self, verb: &str, resource: &str) -> usize {
        self.state()
            .log
            .iter()
            .filter(|r| {
                r.verb == verb
                    && (r.resource_path() == resource
                        || (r.resource == resource && r.subresource.is_none()))
            })
            .count()
    }

    /// Empties the request log.
    pub fn clear_log(&self) {
        self.state().log.clear();
    }

    // ----- generic access ----------------------------------------------

    /// An object (`ns` is ignored for cluster-scoped kinds).
    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.state().get(kind, ns, name).cloned()
    }

    /// All objects of a kind, ordered by namespace and name.
    pub fn list(&self, kind: Kind) -> Vec<Value> {
        self.state().all(kind)
    }

    /// Creates any object as a test fixture (status kept as given).
    ///
    /// # Panics
    /// If the object already exists or has no name.
    pub fn create(&self, kind: Kind, ns: &str, obj: Value) -> Value {
        self.state()
            .create(kind, ns, obj, false)
            .unwrap_or_else(|e| panic!("create {}: {}", kind.qualified(), e.message))
    }

    /// Changes an object as a controller would (new resourceVersion, MODIFIED
    /// event). Returns the new object, `None` if it does not exist.
    pub fn modify(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        self.state().modify(kind, ns, name, f)
    }

    /// Removes an object at once (DELETED event), bypassing grace periods
    /// and controllers.
    pub fn remove(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        let mut s = self.state();
        let controllers = s.settings.controllers;
        s.settings.controllers = false;
        let r = s.delete(kind, ns, name, Some(0), None).ok();
        s.settings.controllers = controllers;
        r
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state().rv
    }

    // ----- fixtures ----------------------------------------------------

    /// A Ready node with the usual labels.
    pub fn add_node(&self, name: &str) -> Value {
        self.create(
            Kind::Node,
            "",
            json!({
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                }},
                "spec": {},
                "status": {
                    "conditions": [
                        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
                        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
                        {"type": "Ready", "status": "True", "reason": "KubeletReady",
                         "message": "kubelet is posting ready status"},
                    ],
                    "addresses": [{"type": "Hostname", "address": name}],
                },
            }),
        )
    }

    /// Adds a pod built with [`pod`]; owner references resolve to the UID of
    /// the owner when it exists.
    pub fn add_pod(&self, builder: PodBuilder) -> Value {
        let mut s = self.state();
        let (ns, obj) = builder.build(|kind, ns, name| {
            s.get(kind, ns, name).and_then(|o| {
                o.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        });
        s.create(Kind::Pod, &ns, obj, false)
            .unwrap_or_else(|e| panic!("add_pod: {}", e.message))
    }

    /// Sets a pod's phase (`Running`, `Pending`, `Succeeded`, `Failed`).
    pub fn set_pod_phase(&self, ns: &str, name: &str, phase: &str) -> Option<Value> {
        self.modify(Kind::Pod, ns, name, |p| p["status"]["phase"] = json!(phase))
    }

    /// Sets a pod's `Ready` condition (and makes it Running when ready).
    pub fn set_pod_ready(&self, ns: &str, name: &str, ready: bool) -> Option<Value> {
        self.modify(Kind::Pod, ns, name, |p| builders::set_ready(p, ready))
    }

    /// A PodDisruptionBudget selecting `matchLabels`. Its status is computed
    /// by the fake disruption controller (see [`FakeApi::set_pdb_observed`]).
    pub fn add_pdb(
        &self,
        ns: &str,
        name: &str,
        match_labels: &[(&str, &str)],
        budget: Budget,
    ) -> Value {
        let mut spec = json!({"selector": {"matchLabels": builders::labels(match_labels)}});
        let (field, value) = budget.to_json();
        spec[field] = value;
        let mut s = self.state();
        let created = s
            .create(
                Kind::PodDisruptionBudget,
                ns,
                json!({"metadata": {"name": name}, "spec": spec}),
                true,
            )
            .unwrap_or_else(|e| panic!("add_pdb: {}", e.message));
        s.get(Kind::PodDisruptionBudget, ns, name)
            .cloned()
            .unwrap_or(created)
    }

    /// A Deployment with `replicas` and pod labels.
    pub fn add_deployment(
        &self,
        ns: &str,
        name: &str,
        replicas: i64,
        labels: &[(&str, &str)],
    ) -> Value {
        self.create(
            Kind::Deployment,
            ns,
            builders::workload(name, replicas, labels, None),
        )
    }

    /// A ReplicaSet, optionally owned by a Deployment of this namespace.
    pub fn add_replicaset(
        &self,
        ns: &str,
        name: &str,
        replicas: i64,
        labels: &[(&str, &str)],
        deployment: Option<&str>,
    ) -> Value {
        let owner = deployment.map(|d| {
            let uid = self
                .get(Kind::Deployment, ns, d)
                .and_then(|o| {
                    o.pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_else(|| util::uuid(d.len() as u64));
            ("Deployment", d.to_string(), uid)
        });
        self.create(
            Kind::ReplicaSet,
            ns,
            builders::workload(name, replicas, labels, owner),
        )
    }

    /// A StatefulSet.
    pub fn add_statefulset(
        &self,
        ns: &str,
        name: &str,
        replicas: i64,
        labels: &[(&str, &str)],
    ) -> Value {
        self.create(
            Kind::StatefulSet,
            ns,
            builders::workload(name, replicas, labels, None),
        )
    }

    /// A DaemonSet.
    pub fn add_daemonset(&self, ns: &str, name: &str, labels: &[(&str, &str)]) -> Value {
        let mut w = builders::workload(name, 0, labels, None);
        if let Some(spec) = w["spec"].as_object_mut() {
            spec.remove("replicas");
        }
        self.create(Kind::DaemonSet, ns, w)
    }

    /// A PersistentVolume: `local` with node affinity to `node` when given,
    /// otherwise a network volume (NFS).
    pub fn add_pv(&self, name: &str, node: Option<&str>) -> Value {
        let spec = match node {
            Some(n) => json!({
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "local-storage",
                "local": {"path": format!("/mnt/disks/{name}")},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{
                    "key": "kubernetes.io/hostname", "operator": "In", "values": [n],
                }]}]}},
            }),
            None => json!({
                "capacity": {"storage": "10Gi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "nfs": {"server": "nfs.example", "path": format!("/exports/{name}")},
            }),
        };
        self.create(
            Kind::PersistentVolume,
            "",
            json!({
                "metadata": {"name": name}, "spec": spec, "status": {"phase": "Bound"},
            }),
        )
    }

    /// A PersistentVolumeClaim bound to `pv`.
    pub fn add_pvc(&self, ns: &str, name: &str, pv: &str) -> Value {
        self.create(
            Kind::PersistentVolumeClaim,
            ns,
            json!({
                "metadata": {"name": name},
                "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": pv,
                         "resources": {"requests": {"storage": "10Gi"}}},
                "status": {"phase": "Bound"},
            }),
        )
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Ok(mut a) = self.acceptor.try_lock()
            && let Some(a) = a.take()
        {
            let _ = a.stop.send(());
            a.task.abort();
        }
        self.kubelet.abort();
        self.inner.kill.send_modify(|g| *g += 1);
    }
}
