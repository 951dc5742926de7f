//! Manifests on a real server, kubectl-free: every object of
//! `packaging/kubernetes` and of the rendered Helm chart goes through the
//! API (server-side apply, the resource found by discovery), and each one is
//! accepted or reported as needing a newer Kubernetes.

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use nodewarden_packaging::{Object, load_objects, parse_stream, render};
use serde_json::{Value, json};

use super::control_plane::repo_root;

/// What the server said about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Accepted,
    /// The server does not serve this apiVersion/kind (too old).
    NotServed(String),
    Refused(String),
}

pub fn k8s_dir() -> PathBuf {
    repo_root().join("packaging/kubernetes")
}

/// The objects `kubectl apply -k packaging/kubernetes` would create, plus the opt-in files.
pub fn kustomize_objects() -> Vec<Object> {
    load_objects(&k8s_dir()).unwrap_or_else(|e| panic!("{e}"))
}

/// Files of `packaging/kubernetes` by name (namespace.yaml, serviceaccount.yaml, rbac.yaml…).
pub fn objects_of(files: &[&str]) -> Vec<Object> {
    kustomize_objects()
        .into_iter()
        .filter(|o| files.contains(&o.source.as_str()))
        .collect()
}

/// `helm template` of packaging/helm/nodewarden with its default values (and
/// the opt-ins turned on, so that every template is applied).
pub fn helm_objects(namespace: &str) -> Vec<Object> {
    let dir = repo_root().join("packaging/helm/nodewarden");
    let mut values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("values.yaml")).expect("values"))
            .expect("values.yaml");
    values["surge"]["enabled"] = json!(true);
    let chart: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("Chart.yaml")).expect("chart"))
            .expect("Chart.yaml");
    let ctx = json!({
        "Values": values,
        "Release": {"Name": "nodewarden", "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
    });
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("templates"))
        .expect("templates")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = format!(
            "helm:{}",
            f.file_name().unwrap_or_default().to_string_lossy()
        );
        let text = render::render(&std::fs::read_to_string(&f).expect("template"), &ctx)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.extend(parse_stream(&name, &text).unwrap_or_else(|e| panic!("{e}")));
    }
    out
}

fn gvk_of(v: &Value) -> GroupVersionKind {
    let api_version = v["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, v["kind"].as_str().unwrap_or_default())
}

/// Server-side applies one object as `client` (field manager `nodewarden-realk8s`).
pub async fn apply(client: &kube::Client, obj: &Value) -> Applied {
    let gvk = gvk_of(obj);
    let found = tokio::time::timeout(
        Duration::from_secs(10),
        discovery::pinned_kind(client, &gvk),
    )
    .await;
    let (ar, caps) = match found {
        Err(_) => return Applied::Refused("discovery timed out".into()),
        Ok(Err(e)) => {
            return Applied::NotServed(format!(
                "{}/{} is not served: {e}",
                gvk.api_version(),
                gvk.kind
            ));
        }
        Ok(Ok(x)) => x,
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Cluster => Api::all_with(client.clone(), &ar),
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            obj["metadata"]["namespace"].as_str().unwrap_or("default"),
            &ar,
        ),
    };
    let pp = PatchParams::apply("nodewarden-realk8s").force();
    match tokio::time::timeout(
        Duration::from_secs(10),
        api.patch(name, &pp, &Patch::Apply(obj)),
    )
    .await
    {
        Ok(Ok(_)) => Applied::Accepted,
        Ok(Err(e)) => Applied::Refused(e.to_string()),
        Err(_) => Applied::Refused("apply timed out".into()),
    }
}

/// Applies `objs` in order; returns (object id, outcome) for each.
pub async fn apply_all(client: &kube::Client, objs: &[Object]) -> Vec<(String, Applied)> {
    let mut out = Vec::new();
    for o in objs {
        out.push((
            format!("{} {}", o.source, o.id()),
            apply(client, &o.value).await,
        ));
    }
    out
}

/// The objects of a kustomization as `kubectl apply -k DIR` would create them,
/// for the subset of kustomize packaging/kubernetes uses: `resources` (files
/// and directories with their own kustomization) and `patches` that delete
/// an object (`$patch: delete`). Anything else is refused, so the packaging
/// cannot grow a feature this reading does not follow.
pub fn kustomization_objects(dir: &std::path::Path) -> Vec<Object> {
    let k: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization.yaml"),
    )
    .expect("kustomization yaml");
    for key in k.as_object().expect("kustomization map").keys() {
        assert!(
            ["apiVersion", "kind", "resources", "patches", "images"].contains(&key.as_str()),
            "{}: kustomize field {key} not followed by this check",
            dir.display()
        );
    }
    let mut out = Vec::new();
    for r in k["resources"].as_array().into_iter().flatten() {
        let path = dir.join(r.as_str().expect("resource path"));
        if path.is_dir() {
            out.extend(kustomization_objects(&path));
        } else {
            let text = std::fs::read_to_string(&path).expect("resource");
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            out.extend(parse_stream(&name, &text).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    for p in k["patches"].as_array().into_iter().flatten() {
        let patch: Value =
            serde_saphyr::from_str(p["patch"].as_str().expect("inline patch")).expect("patch");
        assert_eq!(
            patch["$patch"], "delete",
            "only delete patches are followed: {patch}"
        );
        let before = out.len();
        out.retain(|o| {
            !(o.value["apiVersion"] == patch["apiVersion"]
                && o.kind() == patch["kind"]
                && o.name() == patch["metadata"]["name"])
        });
        assert_eq!(out.len() + 1, before, "patch matches one object: {patch}");
    }
    out
}

/// `major.minor` of the server.
pub async fn server_minor(client: &kube::Client) -> u32 {
    let v = client.apiserver_version().await.expect("/version");
    // A build without version ldflags leaves `minor` empty; gitVersion (v1.28.7) has it.
    v.minor
        .trim_end_matches('+')
        .parse()
        .ok()
        .or_else(|| {
            v.git_version
                .trim_start_matches('v')
                .split('.')
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("server version {v:?}"))
}

/// Whether an object needs a newer server than `minor`: the admission
/// policy's `admissionregistration.k8s.io/v1` is served from 1.30.
pub fn needs(o: &Value) -> Option<u32> {
    let av = o["apiVersion"].as_str().unwrap_or_default();
    (av == "admissionregistration.k8s.io/v1"
        && o["kind"]
            .as_str()
            .unwrap_or_default()
            .starts_with("ValidatingAdmissionPolicy"))
    .then_some(30)
}

/// Applies every packaged object (kustomize files, opt-ins included, and the
/// rendered chart) as admin; returns what went wrong.
pub async fn check(client: &kube::Client) -> Vec<String> {
    let minor = server_minor(client).await;
    let mut objs = kustomize_objects();
    // Namespace first, as kubectl orders it.
    objs.sort_by_key(|o| o.kind() != "Namespace");
    objs.extend(helm_objects("nodewarden"));
    let mut failures = Vec::new();
    let mut accepted = 0;
    for (o, (id, got)) in objs.iter().zip(apply_all(client, &objs).await) {
        match (needs(&o.value), got) {
            (None, Applied::Accepted) => accepted += 1,
            (Some(floor), Applied::Accepted) if minor >= floor => accepted += 1,
            (Some(floor), Applied::NotServed(why)) if minor < floor => {
                eprintln!("realk8s: {id}: needs Kubernetes 1.{floor} (server 1.{minor}): {why}")
            }
            (_, other) => failures.push(format!("{id} on 1.{minor}: {other:?}")),
        }
    }
    eprintln!(
        "realk8s: manifests: {accepted} of {} objects accepted by 1.{minor}",
        objs.len()
    );
    failures
}
