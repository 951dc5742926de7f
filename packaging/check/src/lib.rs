//! Checks of nodewarden's packaging, used by `tests/manifests.rs`:
//!
//! - [`load_objects`] / [`strict_roundtrip`]: every YAML document parses into the
//!   k8s-openapi type of its `kind`, and nothing is lost on the way back (an unknown
//!   or misspelt field is an error; k8s-openapi types do not deny unknown fields
//!   themselves, so a field that vanishes in deserialise → serialise is one).
//! - [`render`]: a renderer for the small subset of Helm's Go templates that
//!   `packaging/helm/nodewarden` uses (see the module docs of [`render`]).
//! - [`scan`]: the Kubernetes API calls the agent's source makes, found lexically.
//! - [`rbac`]: what the ClusterRoles and Roles grant.
//! - [`unit`]: the systemd version each line of the unit and its drop-ins needs.

pub mod rbac;
pub mod render;
pub mod scan;
pub mod unit;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("packaging/check has a grandparent")
        .to_path_buf()
}

/// One Kubernetes object from a YAML stream.
#[derive(Debug, Clone)]
pub struct Object {
    /// Where it came from (file name, or `helm:<template>`), and its index in that stream.
    pub source: String,
    pub index: usize,
    /// The object as written (YAML → JSON).
    pub value: Value,
}

impl Object {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
    /// `kind/namespace/name`, unique within a set of manifests.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind(),
            self.namespace().unwrap_or("-"),
            self.name()
        )
    }
}

impl std::ops::Index<&str> for Object {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        &self.value[key]
    }
}

/// Parse a YAML stream (documents separated by `---`) into objects; documents that
/// are empty or only comments are skipped.
pub fn parse_stream(source: &str, text: &str) -> Result<Vec<Object>, String> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| format!("{source}: YAML: {e}"))?;
    Ok(docs
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(index, value)| Object {
            source: source.to_string(),
            index,
            value,
        })
        .collect())
}

/// Every object of the `*.yaml` files directly in `dir`, except kustomize's own
/// `kustomization.yaml`, in file-name order.
pub fn load_objects(dir: &Path) -> Result<Vec<Object>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        out.extend(parse_stream(&name, &text)?);
    }
    Ok(out)
}

fn roundtrip_as<T>(v: &Value) -> Result<Value, String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&t).map_err(|e| e.to_string())
}

/// Deserialise `obj` into the k8s-openapi type of its `apiVersion`/`kind`, serialise
/// it back, and return the result; an error lists every path that vanished or
/// changed (an unknown field, a value of the wrong type coerced away).
pub fn strict_roundtrip(obj: &Object) -> Result<Value, String> {
    use k8s_openapi::api::{admissionregistration::v1 as adm, apps::v1 as apps, core::v1 as core};
    use k8s_openapi::api::{policy::v1 as policy, rbac::v1 as rbac};
    let v = &obj.value;
    let api_version = v["apiVersion"].as_str().unwrap_or("");
    let back = match (api_version, obj.kind()) {
        ("v1", "Namespace") => roundtrip_as::<core::Namespace>(v),
        ("v1", "ServiceAccount") => roundtrip_as::<core::ServiceAccount>(v),
        ("v1", "ConfigMap") => roundtrip_as::<core::ConfigMap>(v),
        ("v1", "Service") => roundtrip_as::<core::Service>(v),
        ("apps/v1", "DaemonSet") => roundtrip_as::<apps::DaemonSet>(v),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => roundtrip_as::<rbac::ClusterRole>(v),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            roundtrip_as::<rbac::ClusterRoleBinding>(v)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => roundtrip_as::<rbac::Role>(v),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => roundtrip_as::<rbac::RoleBinding>(v),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
            roundtrip_as::<adm::ValidatingAdmissionPolicy>(v)
        }
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
            roundtrip_as::<adm::ValidatingAdmissionPolicyBinding>(v)
        }
        ("policy/v1", "PodDisruptionBudget") => roundtrip_as::<policy::PodDisruptionBudget>(v),
        (a, k) => Err(format!(
            "no k8s-openapi type known for apiVersion {a:?} kind {k:?} (add it to strict_roundtrip)"
        )),
    }
    .map_err(|e| format!("{}#{} {}: {e}", obj.source, obj.index, obj.id()))?;
    let mut diffs = Vec::new();
    diff_values("", v, &back, &mut diffs);
    if diffs.is_empty() {
        Ok(back)
    } else {
        Err(format!(
            "{}#{} {}: not a faithful {}:\n  {}",
            obj.source,
            obj.index,
            obj.id(),
            obj.kind(),
            diffs.join("\n  ")
        ))
    }
}

/// Paths where `orig` and `back` differ: `unknown field` when a key vanished.
pub fn diff_values(path: &str, orig: &Value, back: &Value, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, av) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    None => out.push(format!("{p}: unknown field (dropped by the type)")),
                    Some(bv) => diff_values(&p, av, bv, out),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: added by the type"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                diff_values(&format!("{path}[{i}]"), av, bv, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: {a} became {b}")),
    }
}

/// `v` with every object's keys sorted (a stable text form for snapshots).
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Pretty JSON with sorted keys (serde_json may preserve insertion order when a
/// dependency enables `preserve_order`; this sorts in either case).
pub fn to_sorted_json(v: &Value) -> String {
    fn write(v: &Value, ind: usize, out: &mut String) {
        let pad = |n: usize| "  ".repeat(n);
        match v {
            Value::Object(m) if !m.is_empty() => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push_str("{\n");
                for (i, k) in keys.iter().enumerate() {
                    out.push_str(&pad(ind + 1));
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push_str(": ");
                    write(&m[*k], ind + 1, out);
                    if i + 1 < keys.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                out.push_str(&pad(ind));
                out.push('}');
            }
            Value::Array(a) if !a.is_empty() => {
                out.push_str("[\n");
                for (i, x) in a.iter().enumerate() {
                    out.push_str(&pad(ind + 1));
                    write(x, ind + 1, out);
                    if i + 1 < a.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                out.push_str(&pad(ind));
                out.push(']');
            }
            other => out.push_str(&serde_json::to_string(other).unwrap()),
        }
    }
    let mut s = String::new();
    write(v, 0, &mut s);
    s.push('\n');
    s
}

/// A short line diff of two texts: the first differing region with context, and
/// the line counts (enough to see what changed; `diff -u` the written files for more).
pub fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut pre = 0;
    while pre < a.len() && pre < b.len() && a[pre] == b[pre] {
        pre += 1;
    }
    let mut suf = 0;
    while suf < a.len() - pre && suf < b.len() - pre && a[a.len() - 1 - suf] == b[b.len() - 1 - suf]
    {
        suf += 1;
    }
    let mut out = String::new();
    let from = pre.saturating_sub(3);
    out.push_str(&format!("@@ line {} @@\n", from + 1));
    for l in &a[from..pre] {
        out.push_str(&format!(" {l}\n"));
    }
    let removed = &a[pre..a.len() - suf];
    let added = &b[pre..b.len() - suf];
    for l in removed.iter().take(60) {
        out.push_str(&format!("-{l}\n"));
    }
    if removed.len() > 60 {
        out.push_str(&format!("-… {} more lines\n", removed.len() - 60));
    }
    for l in added.iter().take(60) {
        out.push_str(&format!("+{l}\n"));
    }
    if added.len() > 60 {
        out.push_str(&format!("+… {} more lines\n", added.len() - 60));
    }
    for l in a[a.len() - suf..].iter().take(3) {
        out.push_str(&format!(" {l}\n"));
    }
    out
}
