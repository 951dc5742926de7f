//! The object store and the semantics of the apiserver and the controllers
//! the fake stands in for (disruption controller, kubelet, StatefulSet /
//! ReplicaSet / DaemonSet controllers).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::select::selector_object_matches;
use crate::util::{ApiError, rfc3339, server_now, uuid};
use crate::{Mode, RequestRecord};

/// The resources the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `v1` `nodes` (cluster-scoped, status subresource).
    Node,
    /// `v1` `pods` (status and eviction subresources).
    Pod,
    /// `policy/v1` `poddisruptionbudgets`.
    PodDisruptionBudget,
    /// `apps/v1` `deployments` (scale subresource).
    Deployment,
    /// `apps/v1` `replicasets` (scale subresource).
    ReplicaSet,
    /// `apps/v1` `statefulsets` (scale subresource).
    StatefulSet,
    /// `apps/v1` `daemonsets`.
    DaemonSet,
    /// `coordination.k8s.io/v1` `leases`.
    Lease,
    /// `events.k8s.io/v1` `events`.
    Event,
    /// `v1` `events` (the core API's events).
    CoreEvent,
    /// `v1` `persistentvolumes` (cluster-scoped).
    PersistentVolume,
    /// `v1` `persistentvolumeclaims`.
    PersistentVolumeClaim,
    /// `certificates.k8s.io/v1` `certificatesigningrequests` (cluster-scoped, status
    /// subresource; see `csr.rs` for what the create does).
    CertificateSigningRequest,
}

impl Kind {
    /// Every kind the fake serves.
    pub const ALL: [Kind; 13] = [
        Kind::Node,
        Kind::Pod,
        Kind::PodDisruptionBudget,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::Lease,
        Kind::Event,
        Kind::CoreEvent,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
        Kind::CertificateSigningRequest,
    ];

    /// API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Node
            | Kind::Pod
            | Kind::CoreEvent
            | Kind::PersistentVolume
            | Kind::PersistentVolumeClaim => "",
            Kind::PodDisruptionBudget => "policy",
            Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet | Kind::DaemonSet => "apps",
            Kind::Lease => "coordination.k8s.io",
            Kind::Event => "events.k8s.io",
            Kind::CertificateSigningRequest => "certificates.k8s.io",
        }
    }

    /// `apiVersion` of the objects (`v1`, `apps/v1`, ...).
    pub fn api_version(self) -> String {
        match self.group() {
            "" => "v1".to_string(),
            g => format!("{g}/v1"),
        }
    }

    /// The resource name in URLs (`pods`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::PodDisruptionBudget => "poddisruptionbudgets",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::Lease => "leases",
            Kind::Event | Kind::CoreEvent => "events",
            Kind::PersistentVolume => "persistentvolumes",
            Kind::PersistentVolumeClaim => "persistentvolumeclaims",
            Kind::CertificateSigningRequest => "certificatesigningrequests",
        }
    }

    /// The `kind` of the objects (`Pod`).
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::PodDisruptionBudget => "PodDisruptionBudget",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Lease => "Lease",
            Kind::Event | Kind::CoreEvent => "Event",
            Kind::PersistentVolume => "PersistentVolume",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::CertificateSigningRequest => "CertificateSigningRequest",
        }
    }

    /// Whether objects live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            Kind::Node | Kind::PersistentVolume | Kind::CertificateSigningRequest
        )
    }

    pub(crate) fn has_status(self) -> bool {
        !matches!(self, Kind::Lease | Kind::Event | Kind::CoreEvent)
    }

    pub(crate) fn tracks_generation(self) -> bool {
        matches!(
            self,
            Kind::PodDisruptionBudget
                | Kind::Deployment
                | Kind::ReplicaSet
                | Kind::StatefulSet
                | Kind::DaemonSet
        )
    }

    pub(crate) fn has_scale(self) -> bool {
        matches!(
            self,
            Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet
        )
    }

    /// `pods`, `leases.coordination.k8s.io`: the name used in error messages.
    pub(crate) fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_string(),
            g => format!("{}.{g}", self.plural()),
        }
    }

    pub(crate) fn from_path(group: &str, plural: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.group() == group && k.plural() == plural)
    }

    fn affects_pdbs(self) -> bool {
        matches!(
            self,
            Kind::Pod
                | Kind::PodDisruptionBudget
                | Kind::Deployment
                | Kind::ReplicaSet
                | Kind::StatefulSet
        )
    }
}

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

#[derive(Debug, Clone)]
pub(crate) struct HistoryEvent {
    pub rv: u64,
    pub kind: Kind,
    pub typ: EventType,
    pub object: Value,
    pub prev: Option<Value>,
}

#[derive(Debug, Clone)]
struct Terminating {
    ns: String,
    name: String,
    node: String,
    start: Instant,
    grace: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub mode: Mode,
    pub skew: SignedDuration,
    pub latency: Duration,
    pub grace_scale: f64,
    pub kubelet_alive: bool,
    pub dead_kubelets: BTreeSet<String>,
    pub replacement_node: Option<String>,
    pub controllers: bool,
    pub disruption_controller: bool,
    /// Period of a watch's timed BOOKMARKs (the real cacher: one minute).
    pub bookmark_every: Duration,
}

const HISTORY_CAP: usize = 50_000;

pub(crate) type Key = (Kind, String, String);

pub(crate) struct State {
    objects: BTreeMap<Key, Value>,
    pub rv: u64,
    seq: u64,
    seed: u64,
    pub history: VecDeque<HistoryEvent>,
    /// The resourceVersion of the latest change to each kind: what the real
    /// cacher of that resource has processed (its bookmarks carry it).
    kind_rv: BTreeMap<Kind, u64>,
    /// Watches may resume from any resourceVersion >= floor.
    pub floor: u64,
    terminating: BTreeMap<String, Terminating>,
    frozen_pdbs: BTreeSet<(String, String)>,
    pub log: Vec<RequestRecord>,
    pub settings: Settings,
    notify: watch::Sender<u64>,
    syncing: bool,
}

/// Subresource an update goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Main,
    Status,
}

fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

pub(crate) fn is_pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

fn controller_ref(obj: &Value) -> Option<&Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
}

/// An int-or-percent value scaled against `total`, rounding up.
fn scaled(v: &Value, total: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            Some((pct * total + 99) / 100)
        }
        _ => None,
    }
}

impl State {
    pub fn new(notify: watch::Sender<u64>) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        State {
            objects: BTreeMap::new(),
            rv: 1000,
            seq: 0,
            seed,
            history: VecDeque::new(),
            kind_rv: BTreeMap::new(),
            floor: 1000,
            terminating: BTreeMap::new(),
            frozen_pdbs: BTreeSet::new(),
            log: Vec::new(),
            settings: Settings {
                mode: Mode::Up,
                skew: SignedDuration::ZERO,
                latency: Duration::ZERO,
                grace_scale: 1.0,
                kubelet_alive: true,
                dead_kubelets: BTreeSet::new(),
                replacement_node: None,
                controllers: true,
                disruption_controller: true,
                bookmark_every: crate::server::BOOKMARK_FREQUENCY,
            },
            notify,
            syncing: false,
        }
    }

    pub fn now(&self) -> Timestamp {
        server_now(self.settings.skew)
    }

    pub fn wake(&self) {
        self.notify.send_replace(self.rv);
    }

    fn next_seed(&mut self) -> u64 {
        self.seq += 1;
        self.seed ^ self.seq.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn new_uid(&mut self) -> String {
        let s = self.next_seed();
        uuid(s)
    }

    pub fn new_suffix(&mut self) -> String {
        let s = self.next_seed();
        crate::util::name_suffix(s)
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<&Value> {
        let ns = if kind.namespaced() { ns } else { "" };
        self.objects.get(&(kind, ns.to_string(), name.to_string()))
    }

    /// Objects of a kind, in key order (namespace, name), optionally in one namespace.
    pub fn iter_kind<'a>(
        &'a self,
        kind: Kind,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .range((kind, String::new(), String::new())..)
            .take_while(move |((k, _, _), _)| *k == kind)
            .filter(move |((_, n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
    }

    fn key_of(kind: Kind, obj: &Value) -> Key {
        let ns = if kind.namespaced() {
            meta_str(obj, "namespace").unwrap_or("").to_string()
        } else {
            String::new()
        };
        (kind, ns, meta_str(obj, "name").unwrap_or("").to_string())
    }

    /// Records a change: bumps the global resourceVersion, stores (or
    /// removes) the object, appends to the watch history and wakes watchers.
    fn commit(&mut self, kind: Kind, typ: EventType, mut obj: Value, prev: Option<Value>) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let key = Self::key_of(kind, &obj);
        match typ {
            EventType::Deleted => {
                self.objects.remove(&key);
            }
            _ => {
                self.objects.insert(key, obj.clone());
            }
        }
        self.kind_rv.insert(kind, self.rv);
        self.history.push_back(HistoryEvent {
            rv: self.rv,
            kind,
            typ,
            object: obj.clone(),
            prev,
        });
        while self.history.len() > HISTORY_CAP {
            if let Some(e) = self.history.pop_front() {
                self.floor = e.rv;
            }
        }
        if kind.affects_pdbs() && !self.syncing {
            self.sync_pdbs();
        }
        self.wake();
        obj
    }

    /// The resourceVersion of the latest change to `kind` (0: none since start).
    pub fn kind_rv(&self, kind: Kind) -> u64 {
        self.kind_rv.get(&kind).copied().unwrap_or(0)
    }

    /// Forgets the watch history: watches from an older resourceVersion get
    /// `410 Gone` (as after an etcd compaction).
    pub fn compact(&mut self) {
        self.history.clear();
        self.floor = self.rv;
    }

    // ----- create -------------------------------------------------------

    /// Creates an object. `via_api` applies the create strategy of the real
    /// apiserver (status reset, defaults); seeding from tests keeps the
    /// given status.
    pub fn create(
        &mut self,
        kind: Kind,
        ns: &str,
        mut obj: Value,
        via_api: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        obj["apiVersion"] = Value::String(kind.api_version());
        obj["kind"] = Value::String(kind.kind().to_string());
        let meta = &mut obj["metadata"];
        if kind.namespaced() {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => meta["namespace"] = Value::String(ns.to_string()),
            }
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(g) if !g.is_empty() => {
                    let g = g.to_string();
                    format!("{g}{}", self.new_suffix())
                }
                _ => {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                            kind.kind()
                        ),
                    ));
                }
            },
        };
        if self.get(kind, ns, &name).is_some() {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", kind.qualified()),
            )
            .details(details(kind, &name)));
        }
        let uid = self.new_uid();
        let now = rfc3339(self.now());
        let meta = &mut obj["metadata"];
        meta["name"] = Value::String(name);
        meta["uid"] = Value::String(uid);
        meta["creationTimestamp"] = Value::String(now);
        if let Some(m) = meta.as_object_mut() {
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
        }
        if kind.tracks_generation() {
            meta["generation"] = json!(1);
        }
        if via_api && kind.has_status() && kind != Kind::Node {
            obj["status"] = json!({});
        }
        if kind == Kind::Pod {
            if !obj.get("spec").is_some_and(Value::is_object) {
                obj["spec"] = json!({});
            }
            if obj.pointer("/spec/terminationGracePeriodSeconds").is_none() {
                obj["spec"]["terminationGracePeriodSeconds"] = json!(30);
            }
            if !obj.get("status").is_some_and(Value::is_object) {
                obj["status"] = json!({});
            }
            if obj.pointer("/status/phase").is_none() {
                obj["status"]["phase"] = json!("Pending");
            }
        }
        Ok(self.commit(kind, EventType::Added, obj, None))
    }

    // ----- update / patch ----------------------------------------------

    /// Stores a new version of an existing object, with the rules of the
    /// real apiserver: optimistic concurrency on `metadata.resourceVersion`,
    /// status-subresource isolation, immutable identity, generation bumps,
    /// and no-op updates that change nothing (no new resourceVersion).
    pub fn write(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        new: Value,
        target: Target,
    ) -> Result<Value, ApiError> {
        let old = self
            .get(kind, ns, name)
            .cloned()
            .ok_or_else(|| not_found(kind, name))?;
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        if let Some(rv) = meta_str(&new, "resourceVersion")
            && !rv.is_empty()
            && rv != meta_str(&old, "resourceVersion").unwrap_or("")
        {
            return Err(conflict(kind, name));
        }
        if let Some(uid) = meta_str(&new, "uid")
            && !uid.is_empty()
            && Some(uid) != meta_str(&old, "uid")
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    kind.qualified(),
                    meta_str(&old, "uid").unwrap_or("")
                ),
            )
            .details(details(kind, name)));
        }
        if let Some(n) = meta_str(&new, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let mut fin = match target {
            Target::Status => {
                let mut f = old.clone();
                match new.get("status") {
                    Some(s) => f["status"] = s.clone(),
                    None => {
                        if let Some(m) = f.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                f
            }
            Target::Main => {
                let mut f = new;
                if kind.has_status()
                    && let Some(m) = f.as_object_mut()
                {
                    match old.get("status") {
                        Some(s) => {
                            m.insert("status".into(), s.clone());
                        }
                        None => {
                            m.remove("status");
                        }
                    }
                }
                f
            }
        };
        fin["apiVersion"] = Value::String(kind.api_version());
        fin["kind"] = Value::String(kind.kind().to_string());
        if !fin.get("metadata").is_some_and(Value::is_object) {
            fin["metadata"] = json!({});
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old["metadata"].get(field) {
                Some(v) => fin["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = fin["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        if kind.tracks_generation() && fin.get("spec") != old.get("spec") {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            fin["metadata"]["generation"] = json!(g + 1);
        }
        if fin == old {
            return Ok(old);
        }
        Ok(self.commit(kind, EventType::Modified, fin, Some(old)))
    }

    /// Mutates an object in place as a controller would (test helper).
    pub fn modify(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let old = self.get(kind, ns, name)?.clone();
        let mut new = old.clone();
        f(&mut new);
        if new == old {
            return Some(old);
        }
        Some(self.commit(kind, EventType::Modified, new, Some(old)))
    }

    // ----- delete -------------------------------------------------------

    /// DELETE: graceful for pods (deletionTimestamp, then the kubelet
    /// removes them), immediate for everything else.
    pub fn delete(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        grace: Option<i64>,
        preconditions: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let old = self
            .get(kind, ns, name)
            .cloned()
            .ok_or_else(|| not_found(kind, name))?;
        if let Some(pre) = preconditions {
            if let Some(uid) = pre.get("uid").and_then(Value::as_str)
                && Some(uid) != meta_str(&old, "uid")
            {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        kind.qualified(),
                        meta_str(&old, "uid").unwrap_or("")
                    ),
                )
                .details(details(kind, name)));
            }
            if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str)
                && Some(rv) != meta_str(&old, "resourceVersion")
            {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        kind.qualified(),
                        meta_str(&old, "resourceVersion").unwrap_or("")
                    ),
                )
                .details(details(kind, name)));
            }
        }
        if kind != Kind::Pod {
            // Only pods return the deleted object; other resources answer a
            // Status (the generic registry's `ReturnDeletedObject: false`).
            let gone = self.remove_now(kind, old);
            let mut d = details(kind, name);
            d["uid"] = gone["metadata"]["uid"].clone();
            return Ok(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Success", "details": d,
            }));
        }
        self.delete_pod(old, grace)
    }

    fn remove_now(&mut self, kind: Kind, obj: Value) -> Value {
        if kind == Kind::Pod
            && let Some(uid) = meta_str(&obj, "uid")
        {
            self.terminating.remove(uid);
        }
        let prev = obj.clone();
        let gone = self.commit(kind, EventType::Deleted, obj, Some(prev));
        if kind == Kind::Pod && self.settings.controllers {
            self.replace_pod(&gone);
        }
        gone
    }

    fn delete_pod(&mut self, pod: Value, grace: Option<i64>) -> Result<Value, ApiError> {
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut period = grace.unwrap_or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        });
        if node.is_empty() || matches!(phase(&pod), "Succeeded" | "Failed") {
            period = 0;
        }
        if period < 0 {
            period = 1;
        }
        let uid = meta_str(&pod, "uid").unwrap_or("").to_string();
        let ns = meta_str(&pod, "namespace").unwrap_or("").to_string();
        let name = meta_str(&pod, "name").unwrap_or("").to_string();
        if is_terminating(&pod) {
            let current = pod
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if grace.is_none() || period >= current {
                return Ok(pod);
            }
        }
        if period == 0 {
            return Ok(self.remove_now(Kind::Pod, pod));
        }
        let deadline = self
            .now()
            .checked_add(SignedDuration::from_secs(period))
            .unwrap_or_else(|_| self.now());
        let prev = pod.clone();
        let mut p = pod;
        p["metadata"]["deletionTimestamp"] = Value::String(rfc3339(deadline));
        p["metadata"]["deletionGracePeriodSeconds"] = json!(period);
        self.terminating.insert(
            uid,
            Terminating {
                ns,
                name,
                node,
                start: Instant::now(),
                grace: period as u64,
            },
        );
        Ok(self.commit(Kind::Pod, EventType::Modified, p, Some(prev)))
    }

    /// What the workload controllers do after a pod is gone.
    fn replace_pod(&mut self, gone: &Value) {
        let Some(owner) = controller_ref(gone).cloned() else {
            return;
        };
        let owner_kind = owner.get("kind").and_then(Value::as_str).unwrap_or("");
        let owner_name = owner.get("name").and_then(Value::as_str).unwrap_or("");
        let ns = meta_str(gone, "namespace").unwrap_or("").to_string();
        let old_node = gone.pointer("/spec/nodeName").and_then(Value::as_str);
        let (name, node) = match owner_kind {
            "StatefulSet" => (
                meta_str(gone, "name").unwrap_or("").to_string(),
                self.settings.replacement_node.clone(),
            ),
            "ReplicaSet" => (
                format!("{owner_name}-{}", self.new_suffix()),
                self.settings.replacement_node.clone(),
            ),
            "DaemonSet" => (
                format!("{owner_name}-{}", self.new_suffix()),
                old_node.map(str::to_string),
            ),
            _ => return,
        };
        let owner_key_kind = match owner_kind {
            "StatefulSet" => Kind::StatefulSet,
            "ReplicaSet" => Kind::ReplicaSet,
            _ => Kind::DaemonSet,
        };
        // A controller that no longer exists (or was scaled to zero) makes no replacement.
        if let Some(ctrl) = self.get(owner_key_kind, &ns, owner_name)
            && ctrl.pointer("/spec/replicas").and_then(Value::as_i64) == Some(0)
        {
            return;
        }
        let spec = gone
            .get("spec")
            .filter(|s| s.is_object())
            .cloned()
            .unwrap_or(json!({}));
        let mut pod = json!({
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": gone["metadata"].get("labels").cloned().unwrap_or(json!({})),
                "ownerReferences": gone["metadata"]["ownerReferences"].clone(),
            },
            "spec": spec,
            "status": {"phase": "Pending"},
        });
        if let Some(a) = gone["metadata"].get("annotations") {
            pod["metadata"]["annotations"] = a.clone();
        }
        match node {
            Some(n) => pod["spec"]["nodeName"] = Value::String(n),
            None => {
                if let Some(s) = pod["spec"].as_object_mut() {
                    s.remove("nodeName");
                }
            }
        }
        let _ = self.create(Kind::Pod, &ns, pod, false);
    }

    /// The kubelet: removes terminating pods whose grace period has passed.
    /// Returns when it next has something to do.
    pub fn kubelet_step(&mut self) -> Option<Instant> {
        if !self.settings.kubelet_alive {
            return None;
        }
        let now = Instant::now();
        let scale = self.settings.grace_scale.max(0.0);
        let deadline =
            |t: &Terminating| t.start + Duration::from_secs_f64((t.grace as f64 * scale).min(1e9));
        let due: Vec<(String, Terminating)> = self
            .terminating
            .iter()
            .filter(|(_, t)| !self.settings.dead_kubelets.contains(&t.node) && deadline(t) <= now)
            .map(|(u, t)| (u.clone(), t.clone()))
            .collect();
        for (uid, t) in due {
            self.terminating.remove(&uid);
            if let Some(pod) = self.get(Kind::Pod, &t.ns, &t.name).cloned()
                && meta_str(&pod, "uid") == Some(uid.as_str())
            {
                self.remove_now(Kind::Pod, pod);
            }
        }
        self.terminating
            .values()
            .filter(|t| !self.settings.dead_kubelets.contains(&t.node))
            .map(deadline)
            .min()
    }

    // ----- eviction and the disruption controller ----------------------

    pub fn set_pdb_frozen(&mut self, ns: &str, name: &str, frozen: bool) {
        let key = (ns.to_string(), name.to_string());
        if frozen {
            self.frozen_pdbs.insert(key);
            self.modify(Kind::PodDisruptionBudget, ns, name, |p| {
                p["status"]["observedGeneration"] = json!(0);
            });
        } else {
            self.frozen_pdbs.remove(&key);
            self.sync_pdbs();
        }
    }

    pub fn sync_pdbs(&mut self) {
        if !self.settings.disruption_controller {
            return;
        }
        let was = self.syncing;
        self.syncing = true;
        let pdbs: Vec<Value> = self
            .iter_kind(Kind::PodDisruptionBudget, None)
            .cloned()
            .collect();
        for pdb in pdbs {
            let ns = meta_str(&pdb, "namespace").unwrap_or("").to_string();
            let name = meta_str(&pdb, "name").unwrap_or("").to_string();
            if self.frozen_pdbs.contains(&(ns.clone(), name.clone())) {
                continue;
            }
            let status = self.pdb_status(&pdb);
            if pdb.get("status") != Some(&status) {
                let mut new = pdb.clone();
                new["status"] = status;
                self.commit(
                    Kind::PodDisruptionBudget,
                    EventType::Modified,
                    new,
                    Some(pdb),
                );
            }
        }
        self.syncing = was;
    }

    fn expected_scale(&self, ns: &str, pods: &[&Value]) -> Option<i64> {
        let mut seen = BTreeMap::new();
        for pod in pods {
            let owner = controller_ref(pod)?;
            let oname = owner.get("name").and_then(Value::as_str)?;
            let ctrl = match owner.get("kind").and_then(Value::as_str)? {
                "ReplicaSet" => {
                    let rs = self.get(Kind::ReplicaSet, ns, oname)?;
                    match controller_ref(rs) {
                        Some(d) if d.get("kind").and_then(Value::as_str) == Some("Deployment") => {
                            self.get(Kind::Deployment, ns, d.get("name")?.as_str()?)?
                        }
                        _ => rs,
                    }
                }
                "StatefulSet" => self.get(Kind::StatefulSet, ns, oname)?,
                _ => return None,
            };
            let uid = meta_str(ctrl, "uid")?.to_string();
            let replicas = ctrl
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            seen.insert(uid, replicas);
        }
        Some(seen.values().sum())
    }

    /// What the disruption controller writes into a PDB's status.
    fn pdb_status(&self, pdb: &Value) -> Value {
        let ns = meta_str(pdb, "namespace").unwrap_or("");
        let pods: Vec<&Value> = self
            .iter_kind(Kind::Pod, Some(ns))
            .filter(|p| selector_object_matches(pdb.pointer("/spec/selector"), p))
            .collect();
        let healthy = pods
            .iter()
            .filter(|p| !is_terminating(p) && phase(p) == "Running" && is_pod_ready(p))
            .count() as i64;
        let count = pods.len() as i64;
        let (expected, desired) = if let Some(mu) = pdb.pointer("/spec/maxUnavailable") {
            let expected = self.expected_scale(ns, &pods).unwrap_or(count);
            let mu = scaled(mu, expected).unwrap_or(0);
            (expected, (expected - mu).max(0))
        } else if let Some(ma) = pdb.pointer("/spec/minAvailable") {
            if ma.is_number() {
                (count, ma.as_i64().unwrap_or(0))
            } else {
                let expected = self.expected_scale(ns, &pods).unwrap_or(count);
                (expected, scaled(ma, expected).unwrap_or(0))
            }
        } else {
            (count, 0)
        };
        let allowed = if expected <= 0 {
            0
        } else {
            (healthy - desired).max(0)
        };
        let disrupted: serde_json::Map<String, Value> = pdb
            .pointer("/status/disruptedPods")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(pod, _)| {
                        self.get(Kind::Pod, ns, pod)
                            .is_some_and(|p| !is_terminating(p))
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let generation = pdb
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let cond_status = if allowed > 0 { "True" } else { "False" };
        let old_cond = pdb
            .pointer("/status/conditions/0")
            .filter(|c| c.get("status").and_then(Value::as_str) == Some(cond_status));
        let ltt = old_cond
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| Value::String(rfc3339(self.now())));
        let mut status = json!({
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": [{
                "type": "DisruptionAllowed",
                "status": cond_status,
                "reason": if allowed > 0 { "SufficientPods" } else { "InsufficientPods" },
                "message": "",
                "observedGeneration": generation,
                "lastTransitionTime": ltt,
            }],
        });
        if !disrupted.is_empty() {
            status["disruptedPods"] = Value::Object(disrupted);
        }
        status
    }

    /// `POST pods/NAME/eviction`, as `pkg/registry/core/pod/storage/eviction.go`.
    pub fn evict(&mut self, ns: &str, name: &str, grace: Option<i64>) -> Result<(), ApiError> {
        let pod = self
            .get(Kind::Pod, ns, name)
            .cloned()
            .ok_or_else(|| not_found(Kind::Pod, name))?;
        if is_terminating(&pod) {
            // Already being deleted: success, nothing changes.
            return Ok(());
        }
        if matches!(phase(&pod), "Succeeded" | "Failed" | "Pending") {
            return self.evict_delete(pod, grace);
        }
        let pdbs: Vec<Value> = self
            .iter_kind(Kind::PodDisruptionBudget, Some(ns))
            .filter(|p| selector_object_matches(p.pointer("/spec/selector"), &pod))
            .cloned()
            .collect();
        if pdbs.len() > 1 {
            return Err(ApiError::new(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        let Some(pdb) = pdbs.into_iter().next() else {
            return self.evict_delete(pod, grace);
        };
        let pdb_name = meta_str(&pdb, "name").unwrap_or("").to_string();
        let st = |f: &str| {
            pdb.pointer(&format!("/status/{f}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let generation = pdb
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let observed = st("observedGeneration") >= generation;
        // Unhealthy pods: unhealthyPodEvictionPolicy (IfHealthyBudget by default).
        if !is_pod_ready(&pod) {
            let policy = pdb
                .pointer("/spec/unhealthyPodEvictionPolicy")
                .and_then(Value::as_str)
                .unwrap_or("IfHealthyBudget");
            if policy == "AlwaysAllow"
                || (observed
                    && st("currentHealthy") >= st("desiredHealthy")
                    && st("desiredHealthy") > 0)
            {
                return self.evict_delete(pod, grace);
            }
        }
        if !observed {
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            )
            .details(json!({
                "causes": [{
                    "reason": "DisruptionBudget",
                    "message": format!("The disruption budget {pdb_name} is still being processed by the server."),
                }],
                "retryAfterSeconds": 10,
            }));
            e.retry_after = Some(10);
            return Err(e);
        }
        let allowed = st("disruptionsAllowed");
        if allowed < 0 {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "poddisruptionbudgets.policy \"{pdb_name}\" is forbidden: pdb disruptions allowed is negative"
                ),
            ));
        }
        if allowed == 0 {
            return Err(ApiError::new(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            )
            .details(json!({
                "causes": [{
                    "reason": "DisruptionBudget",
                    "message": format!(
                        "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                        st("desiredHealthy"),
                        st("currentHealthy")
                    ),
                }],
            })));
        }
        // The apiserver itself decrements the budget and records the pod.
        let mut new = pdb.clone();
        if !new["status"].is_object() {
            new["status"] = json!({});
        }
        new["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if !new["status"]["disruptedPods"].is_object() {
            new["status"]["disruptedPods"] = json!({});
        }
        new["status"]["disruptedPods"][name] = Value::String(rfc3339(self.now()));
        let was = self.syncing;
        self.syncing = true;
        self.commit(
            Kind::PodDisruptionBudget,
            EventType::Modified,
            new,
            Some(pdb),
        );
        self.syncing = was;
        self.evict_delete(pod, grace)
    }

    /// Adds the `DisruptionTarget` condition, then deletes like DELETE does.
    fn evict_delete(&mut self, pod: Value, grace: Option<i64>) -> Result<(), ApiError> {
        let ns = meta_str(&pod, "namespace").unwrap_or("").to_string();
        let name = meta_str(&pod, "name").unwrap_or("").to_string();
        let now = rfc3339(self.now());
        let was = self.syncing;
        self.syncing = true;
        let pod = self
            .modify(Kind::Pod, &ns, &name, |p| {
                if !p["status"].is_object() {
                    p["status"] = json!({});
                }
                let conds = p["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut conds: Vec<Value> = conds
                    .into_iter()
                    .filter(|c| c.get("type").and_then(Value::as_str) != Some("DisruptionTarget"))
                    .collect();
                conds.push(json!({
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting",
                    "lastProbeTime": null,
                    "lastTransitionTime": now,
                }));
                p["status"]["conditions"] = Value::Array(conds);
            })
            .unwrap_or(pod);
        self.syncing = was;
        self.delete_pod(pod, grace).map(|_| ())
    }

    // ----- raw access for the test API ---------------------------------

    pub fn all(&self, kind: Kind) -> Vec<Value> {
        self.iter_kind(kind, None).cloned().collect()
    }
}

pub(crate) fn details(kind: Kind, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": kind.plural()});
    if !kind.group().is_empty() {
        d["group"] = Value::String(kind.group().to_string());
    }
    d
}

pub(crate) fn not_found(kind: Kind, name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", kind.qualified()),
    )
    .details(details(kind, name))
}

pub(crate) fn conflict(kind: Kind, name: &str) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            kind.qualified()
        ),
    )
    .details(details(kind, name))
}
