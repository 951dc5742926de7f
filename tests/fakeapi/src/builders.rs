//! Fixture builders.

use serde_json::{Map, Value, json};

use crate::store::Kind;

/// A PodDisruptionBudget's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// `minAvailable: N`.
    MinAvailable(i64),
    /// `minAvailable: "N%"`.
    MinAvailablePercent(u32),
    /// `maxUnavailable: N`.
    MaxUnavailable(i64),
    /// `maxUnavailable: "N%"`.
    MaxUnavailablePercent(u32),
}

impl Budget {
    pub(crate) fn to_json(self) -> (&'static str, Value) {
        match self {
            Budget::MinAvailable(n) => ("minAvailable", json!(n)),
            Budget::MinAvailablePercent(p) => ("minAvailable", json!(format!("{p}%"))),
            Budget::MaxUnavailable(n) => ("maxUnavailable", json!(n)),
            Budget::MaxUnavailablePercent(p) => ("maxUnavailable", json!(format!("{p}%"))),
        }
    }
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect::<Map<_, _>>(),
    )
}

pub(crate) fn set_ready(p: &mut Value, ready: bool) {
    if !p["status"].is_object() {
        p["status"] = json!({});
    }
    if ready {
        p["status"]["phase"] = json!("Running");
    }
    let flag = if ready { "True" } else { "False" };
    let mut conds: Vec<Value> = p["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            !matches!(
                c.get("type").and_then(Value::as_str),
                Some("Ready" | "ContainersReady")
            )
        })
        .collect();
    conds.push(json!({"type": "Ready", "status": flag}));
    conds.push(json!({"type": "ContainersReady", "status": flag}));
    p["status"]["conditions"] = Value::Array(conds);
}

/// Workload objects (Deployment, ReplicaSet, StatefulSet, DaemonSet).
pub(crate) fn workload(
    name: &str,
    replicas: i64,
    pod_labels: &[(&str, &str)],
    owner: Option<(&str, String, String)>,
) -> Value {
    let mut w = json!({
        "metadata": {"name": name, "labels": labels(pod_labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels(pod_labels)},
            "template": {
                "metadata": {"labels": labels(pod_labels)},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    });
    if let Some((kind, oname, uid)) = owner {
        w["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": kind, "name": oname, "uid": uid,
            "controller": true, "blockOwnerDeletion": true,
        }]);
    }
    w
}

/// Starts a pod fixture: `Running`, `Ready`, one container, unscheduled
/// until [`PodBuilder::node`].
pub fn pod(namespace: &str, name: &str) -> PodBuilder {
    PodBuilder {
        namespace: namespace.to_string(),
        name: name.to_string(),
        node: None,
        phase: "Running".to_string(),
        ready: true,
        owner: None,
        volumes: Vec::new(),
        grace: None,
        labels: Vec::new(),
        annotations: Vec::new(),
        mirror: false,
    }
}

/// A pod fixture; see [`pod`].
#[derive(Debug, Clone)]
pub struct PodBuilder {
    namespace: String,
    name: String,
    node: Option<String>,
    phase: String,
    ready: bool,
    owner: Option<(String, String)>,
    volumes: Vec<Value>,
    grace: Option<i64>,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    mirror: bool,
}

impl PodBuilder {
    /// `spec.nodeName`.
    pub fn node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// `status.phase` (`Running` by default). Pods that are not Running are
    /// never Ready.
    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = phase.to_string();
        self
    }

    /// The `Ready` condition (true by default).
    pub fn ready(mut self, ready: bool) -> Self {
        self.ready = ready;
        self
    }

    /// A controller owner reference (`ReplicaSet`, `StatefulSet`,
    /// `DaemonSet`, `Job`, `ReplicationController`...).
    pub fn owner(mut self, kind: &str, name: &str) -> Self {
        self.owner = Some((kind.to_string(), name.to_string()));
        self
    }

    /// Shorthand for `.owner("DaemonSet", name)`.
    pub fn daemonset(self, name: &str) -> Self {
        self.owner("DaemonSet", name)
    }

    /// Shorthand for `.owner("StatefulSet", name)`.
    pub fn statefulset(self, name: &str) -> Self {
        self.owner("StatefulSet", name)
    }

    /// Shorthand for `.owner("ReplicaSet", name)`.
    pub fn replicaset(self, name: &str) -> Self {
        self.owner("ReplicaSet", name)
    }

    /// An `emptyDir` volume.
    pub fn empty_dir(mut self, volume: &str) -> Self {
        self.volumes.push(json!({"name": volume, "emptyDir": {}}));
        self
    }

    /// A `hostPath` volume.
    pub fn host_path(mut self, volume: &str, path: &str) -> Self {
        self.volumes
            .push(json!({"name": volume, "hostPath": {"path": path, "type": ""}}));
        self
    }

    /// A `persistentVolumeClaim` volume (see [`crate::FakeApi::add_pvc`] and
    /// [`crate::FakeApi::add_pv`] for a local PV).
    pub fn pvc(mut self, volume: &str, claim: &str) -> Self {
        self.volumes
            .push(json!({"name": volume, "persistentVolumeClaim": {"claimName": claim}}));
        self
    }

    /// `spec.terminationGracePeriodSeconds` (30 by default, as the apiserver defaults it).
    pub fn grace(mut self, seconds: i64) -> Self {
        self.grace = Some(seconds);
        self
    }

    /// A label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    /// An annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.push((key.to_string(), value.to_string()));
        self
    }

    /// A mirror (static) pod: `kubernetes.io/config.mirror` annotation and a
    /// Node owner reference, as the kubelet creates them.
    pub fn mirror(mut self) -> Self {
        self.mirror = true;
        self
    }

    pub(crate) fn build(
        self,
        uid_of: impl Fn(Kind, &str, &str) -> Option<String>,
    ) -> (String, Value) {
        let mut p = json!({
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": self.grace.unwrap_or(30),
                "schedulerName": "default-scheduler",
            },
            "status": {"phase": self.phase},
        });
        if let Some(n) = &self.node {
            p["spec"]["nodeName"] = json!(n);
        }
        if !self.volumes.is_empty() {
            p["spec"]["volumes"] = Value::Array(self.volumes);
        }
        let lab: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        p["metadata"]["labels"] = labels(&lab);
        let mut ann: Vec<(String, String)> = self.annotations;
        let mut owner = self.owner;
        if self.mirror {
            ann.push((
                "kubernetes.io/config.mirror".into(),
                format!("{:x}", crate::util::mix(7)),
            ));
            ann.push(("kubernetes.io/config.source".into(), "file".into()));
            if owner.is_none()
                && let Some(n) = &self.node
            {
                owner = Some(("Node".into(), n.clone()));
            }
        }
        if !ann.is_empty() {
            let a: Vec<(&str, &str)> = ann.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            p["metadata"]["annotations"] = labels(&a);
        }
        if let Some((kind, name)) = owner {
            let (api_version, k) = match kind.as_str() {
                "ReplicaSet" => ("apps/v1", Some(Kind::ReplicaSet)),
                "StatefulSet" => ("apps/v1", Some(Kind::StatefulSet)),
                "DaemonSet" => ("apps/v1", Some(Kind::DaemonSet)),
                "Deployment" => ("apps/v1", Some(Kind::Deployment)),
                "Job" => ("batch/v1", None),
                "Node" => ("v1", Some(Kind::Node)),
                _ => ("v1", None),
            };
            let uid = k
                .and_then(|k| uid_of(k, &self.namespace, &name))
                .unwrap_or_else(|| crate::util::uuid(crate::util::mix(name.len() as u64 ^ 0x55)));
            p["metadata"]["ownerReferences"] = json!([{
                "apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true,
            }]);
        }
        if self.phase == "Running" {
            p["status"]["conditions"] = json!([
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
            ]);
            set_ready(&mut p, self.ready);
        } else if self.node.is_some() {
            p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True"}]);
        }
        (self.namespace, p)
    }
}
