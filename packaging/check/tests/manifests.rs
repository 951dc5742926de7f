//! CI checks of the Kubernetes packaging (issue 7):
//!
//! - every object under `packaging/kubernetes/` and every object the Helm chart
//!   renders is a faithful k8s-openapi object (unknown fields are errors);
//! - the normalised objects match the reviewed `packaging/kubernetes/snapshot.json`
//!   (`UPDATE_SNAPSHOTS=1 cargo test -p nodewarden-packaging` rewrites it);
//! - the Helm chart with default values renders exactly the kustomize objects, and
//!   its options do what values.yaml says;
//! - the RBAC rules match the API calls the agent's code makes
//!   (`packaging/kubernetes/api-calls.txt` + a scan of `agent/src`);
//! - the admission policy names the agent's ServiceAccount and its conditions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use nodewarden_packaging::scan::Call;
use nodewarden_packaging::{
    Object, canonical, line_diff, load_objects, parse_stream, rbac, render, repo_root, scan,
    strict_roundtrip, to_sorted_json,
};
use serde_json::{Value, json};

fn k8s_dir() -> PathBuf {
    repo_root().join("packaging/kubernetes")
}

fn chart_dir() -> PathBuf {
    repo_root().join("packaging/helm/nodewarden")
}

/// Files under packaging/kubernetes/ that kustomization.yaml leaves out on purpose.
const OPT_IN_FILES: &[&str] = &["rbac-surge.yaml"];

fn k8s_objects() -> Vec<Object> {
    load_objects(&k8s_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn by_id(objs: &[Object]) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for o in objs {
        let back = strict_roundtrip(o).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            m.insert(o.id(), canonical(&back)).is_none(),
            "duplicate object {}",
            o.id()
        );
    }
    m
}

/// Compare two object sets by id; a readable report of what differs.
fn compare_sets(what: &str, want: &BTreeMap<String, Value>, got: &BTreeMap<String, Value>) {
    let mut report = String::new();
    for id in want.keys().filter(|k| !got.contains_key(*k)) {
        report.push_str(&format!("missing: {id}\n"));
    }
    for id in got.keys().filter(|k| !want.contains_key(*k)) {
        report.push_str(&format!("extra: {id}\n"));
    }
    for (id, w) in want {
        if let Some(g) = got.get(id)
            && w != g
        {
            let mut d = Vec::new();
            nodewarden_packaging::diff_values("", w, g, &mut d);
            report.push_str(&format!("differs: {id}\n  {}\n", d.join("\n  ")));
        }
    }
    assert!(report.is_empty(), "{what}:\n{report}");
}

// ---------------------------------------------------------------- manifests

#[test]
fn every_manifest_is_a_faithful_kubernetes_object() {
    let objs = k8s_objects();
    assert!(objs.len() >= 12, "only {} objects found", objs.len());
    let errors: Vec<String> = objs
        .iter()
        .filter_map(|o| strict_roundtrip(o).err())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    by_id(&objs); // unique ids
}

#[test]
fn an_unknown_field_is_an_error() {
    let text = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  selector: {}\n  template:\n    spec:\n      hostPid: true\n      containers: []\n";
    let o = &parse_stream("t.yaml", text).unwrap()[0];
    let e = strict_roundtrip(o).unwrap_err();
    assert!(
        e.contains(".spec.template.spec.hostPid: unknown field"),
        "{e}"
    );
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: 1}\n";
    let o = &parse_stream("t.yaml", text).unwrap()[0];
    assert!(
        strict_roundtrip(o).is_err(),
        "a number where a string belongs"
    );
}

#[test]
fn kustomization_lists_the_manifests_and_builds_them() {
    let k = std::fs::read_to_string(k8s_dir().join("kustomization.yaml")).unwrap();
    let k: Value = serde_saphyr::from_str(&k).unwrap();
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let objs = k8s_objects();
    let files: BTreeSet<String> = objs.iter().map(|o| o.source.clone()).collect();
    for f in &files {
        assert!(
            listed.contains(f) || OPT_IN_FILES.contains(&f.as_str()),
            "{f} is neither in kustomization.yaml nor an opt-in file"
        );
    }
    for f in &listed {
        assert!(
            files.contains(f),
            "kustomization.yaml lists {f}, which has no objects"
        );
    }

    // `kubectl kustomize` (kustomize v5 built in) when the machine has kubectl
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(k8s_dir())
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let built = parse_stream("kustomize", &String::from_utf8_lossy(&out.stdout)).unwrap();
            let want: Vec<Object> = objs
                .into_iter()
                .filter(|o| listed.contains(&o.source))
                .collect();
            compare_sets(
                "kubectl kustomize vs the files",
                &by_id(&want),
                &by_id(&built),
            );
        }
        Ok(out) => panic!(
            "kubectl kustomize failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("NOTE kubectl not available ({e}): kustomize build not checked"),
    }
}

#[test]
fn the_runbook_configmap_is_the_default_runbook() {
    let default = std::fs::read_to_string(repo_root().join("runbooks/default.yaml")).unwrap();
    let cm = k8s_objects()
        .into_iter()
        .find(|o| o.kind() == "ConfigMap" && o.name() == "nodewarden-runbook")
        .expect("ConfigMap nodewarden-runbook");
    assert!(
        cm.value["data"]["runbook.yaml"].as_str() == Some(default.as_str()),
        "packaging/kubernetes/configmap.yaml is not a verbatim copy of runbooks/default.yaml:\n{}",
        line_diff(
            &default,
            cm.value["data"]["runbook.yaml"].as_str().unwrap_or("")
        )
    );
}

// ---------------------------------------------------------------- Helm chart

fn chart_values() -> Value {
    let t = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    serde_saphyr::from_str(&t).unwrap()
}

/// Deep-merge `over` into `base` (as `--set`/`-f` would).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Render every template (alphabetical, as `helm template` sorts by kind then
/// name; order does not matter to the checks) with values.yaml + `overrides`.
fn render_chart(namespace: &str, overrides: Value) -> Vec<Object> {
    let mut values = chart_values();
    merge(&mut values, &overrides);
    let chart: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    let ctx = json!({
        "Values": values,
        "Release": {"Name": "nodewarden", "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
    });
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("templates"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = format!("helm:{}", f.file_name().unwrap().to_string_lossy());
        let text = render::render(&std::fs::read_to_string(&f).unwrap(), &ctx)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.extend(parse_stream(&name, &text).unwrap_or_else(|e| panic!("{e}\n{text}")));
    }
    out
}

#[test]
fn the_chart_with_defaults_renders_the_kustomize_objects() {
    let rendered = render_chart("nodewarden", json!({}));
    let want: Vec<Object> = k8s_objects()
        .into_iter()
        // the chart leaves the namespace to `helm install --create-namespace`
        // (or to kubectl, for the Pod Security label: docs/install.md)
        .filter(|o| o.kind() != "Namespace" && !OPT_IN_FILES.contains(&o.source.as_str()))
        .collect();
    compare_sets(
        "helm template (defaults) vs packaging/kubernetes",
        &by_id(&want),
        &by_id(&rendered),
    );
}

fn find<'a>(objs: &'a [Object], kind: &str, name: &str) -> Option<&'a Object> {
    objs.iter().find(|o| o.kind() == kind && o.name() == name)
}

fn container(objs: &[Object]) -> Value {
    find(objs, "DaemonSet", "nodewarden").expect("DaemonSet")["spec"]["template"]["spec"]
        ["containers"][0]
        .clone()
}

#[test]
fn chart_options_do_what_values_yaml_says() {
    // surge: the opt-in ClusterRole and binding, identical to rbac-surge.yaml
    let surge = render_chart("nodewarden", json!({"surge": {"enabled": true}}));
    let surge_objs: Vec<Object> = surge
        .into_iter()
        .filter(|o| o.source == "helm:rbac-surge.yaml")
        .collect();
    let want: Vec<Object> = k8s_objects()
        .into_iter()
        .filter(|o| o.source == "rbac-surge.yaml")
        .collect();
    compare_sets("surge RBAC", &by_id(&want), &by_id(&surge_objs));

    // kmsg: the device mounted read-only, and (only then) a privileged container
    let objs = render_chart("nodewarden", json!({"kmsg": {"enabled": true}}));
    let c = container(&objs);
    assert_eq!(c["securityContext"]["privileged"], json!(true));
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/dev/kmsg" && m["readOnly"] == json!(true)),
        "{c}"
    );
    let c = container(&render_chart("nodewarden", json!({})));
    assert_eq!(c["securityContext"]["privileged"], json!(false));
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));

    // every runtime socket is reached under /host: no per-socket option
    assert!(chart_values().get("dockerSocket").is_none());

    // admission policy off
    let objs = render_chart("nodewarden", json!({"admissionPolicy": {"enabled": false}}));
    assert!(
        objs.iter()
            .all(|o| !o.kind().starts_with("ValidatingAdmissionPolicy"))
    );

    // image, resources, port
    let c = container(&render_chart(
        "nodewarden",
        json!({"image": {"repository": "r.example/nw", "tag": "1.2.3"},
               "resources": {"limits": {"memory": "96Mi"}}, "metricsPort": 9999}),
    ));
    assert_eq!(c["image"], "r.example/nw:1.2.3");
    assert_eq!(c["resources"]["limits"]["memory"], "96Mi");
    assert_eq!(c["resources"]["requests"]["memory"], "24Mi");
    assert_eq!(c["ports"][0]["containerPort"], 9999);
    assert!(c["args"].to_string().contains("127.0.0.1:9999"), "{c}");

    // maxConcurrentDisruptions lands in the built-in runbook
    let objs = render_chart("nodewarden", json!({"maxConcurrentDisruptions": 3}));
    let rb = find(&objs, "ConfigMap", "nodewarden-runbook").unwrap()["data"]["runbook.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    let rbv: Value = serde_saphyr::from_str(&rb).unwrap();
    assert_eq!(rbv["spec"]["safety"]["maxConcurrentDisruptions"], json!(3));
    let default = std::fs::read_to_string(repo_root().join("runbooks/default.yaml")).unwrap();
    assert_eq!(
        rb.replace(
            "maxConcurrentDisruptions: 3 ",
            "maxConcurrentDisruptions: 1 "
        ),
        default
    );

    // a runbook of one's own, verbatim
    let mine = "apiVersion: nodewarden.io/v1alpha1\nkind: Runbook\nmetadata:\n  name: mine\n\nspec:\n  steps: []\n";
    let objs = render_chart("nodewarden", json!({"runbook": mine}));
    assert_eq!(
        find(&objs, "ConfigMap", "nodewarden-runbook").unwrap()["data"]["runbook.yaml"],
        json!(mine)
    );

    // another namespace: everything follows, except the node-heartbeat Lease Role
    let objs = render_chart("ops", json!({}));
    for o in &objs {
        if let Some(ns) = o.namespace() {
            let want = if o.name() == "nodewarden-node-lease" {
                "kube-node-lease"
            } else {
                "ops"
            };
            assert_eq!(ns, want, "{}", o.id());
        }
        for s in o["subjects"].as_array().into_iter().flatten() {
            assert_eq!(s["namespace"], "ops", "{}", o.id());
        }
    }
    let vap = find(
        &objs,
        "ValidatingAdmissionPolicy",
        "nodewarden-own-node-only",
    )
    .unwrap();
    assert!(
        vap["spec"]["matchConditions"][0]["expression"]
            .as_str()
            .unwrap()
            .contains("'system:serviceaccount:ops:nodewarden'")
    );
}

// ---------------------------------------------------------------- snapshot

/// The pod sees the host through one read-only root at /host (`--host-root`), acts
/// through the system bus only, and writes only its ledger (docs/architecture.md).
#[test]
fn the_daemonset_reads_the_host_under_one_read_only_root() {
    let objs = k8s_objects();
    let ds = find(&objs, "DaemonSet", "nodewarden").expect("DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    let c = container(&objs);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(args.contains(&"--host-root=/host"), "{args:?}");
    let host_path = |name: &str| -> Option<String> {
        spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .and_then(|v| v["hostPath"]["path"].as_str().map(str::to_string))
    };
    let mut writable = Vec::new();
    for m in c["volumeMounts"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        if let Some(hp) = host_path(name) {
            if m["readOnly"] != json!(true) {
                writable.push((hp.clone(), m["mountPath"].as_str().unwrap().to_string()));
            }
            if m["mountPath"] == "/host" {
                assert_eq!(hp, "/", "{m}");
                assert_eq!(m["mountPropagation"], "HostToContainer", "{m}");
            }
        }
    }
    assert_eq!(
        writable,
        [(
            "/var/lib/nodewarden".to_string(),
            "/var/lib/nodewarden".to_string()
        )],
        "only the ledger is writable"
    );
    let bus = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DBUS_SYSTEM_BUS_ADDRESS")
        .and_then(|e| e["value"].as_str())
        .expect("DBUS_SYSTEM_BUS_ADDRESS");
    assert_eq!(bus, "unix:path=/run/dbus/system_bus_socket");
    assert_eq!(host_path("dbus").as_deref(), Some("/run/dbus"));
    assert_eq!(
        c["securityContext"]["capabilities"]["add"],
        json!(["SYS_CHROOT"]),
        "chroot into /host for the host's journalctl and rpm, nothing else"
    );
}

#[test]
fn objects_match_the_reviewed_snapshot() {
    let mut k8s = Vec::new();
    for o in k8s_objects() {
        let back = strict_roundtrip(&o).unwrap_or_else(|e| panic!("{e}"));
        k8s.push(json!({"file": o.source, "object": canonical(&back)}));
    }
    // the chart with every option on (with defaults it equals the above: tested)
    let mut helm = Vec::new();
    let all_on = json!({"surge": {"enabled": true}, "kmsg": {"enabled": true}});
    for o in render_chart("nodewarden", all_on) {
        let back = strict_roundtrip(&o).unwrap_or_else(|e| panic!("{e}"));
        helm.push(json!({"file": o.source, "object": canonical(&back)}));
    }
    let snap = json!({
        "comment": "Reviewed snapshot of packaging/kubernetes/*.yaml and of the Helm chart with every option on, normalised by k8s-openapi. Regenerate with UPDATE_SNAPSHOTS=1 cargo test -p nodewarden-packaging --test manifests, then review the diff.",
        "kubernetes": k8s,
        "helmAllOptions": helm,
    });
    let text = to_sorted_json(&snap);
    let path = k8s_dir().join("snapshot.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if old != text {
        let new_path = repo_root().join("target/snapshot.json.new");
        let _ = std::fs::write(&new_path, &text);
        panic!(
            "packaging/kubernetes/snapshot.json is out of date (new version in {}; \
             `diff -u` them, and if the change is intended: UPDATE_SNAPSHOTS=1 cargo test \
             -p nodewarden-packaging --test manifests):\n{}",
            new_path.display(),
            line_diff(&old, &text)
        );
    }
}

// ---------------------------------------------------------------- RBAC vs code

#[test]
fn rbac_rules_match_the_agents_api_calls() {
    let root = repo_root();
    let objs = k8s_objects();
    let grants = rbac::grants(&objs).unwrap_or_else(|e| panic!("{e}"));
    let table_text = std::fs::read_to_string(k8s_dir().join("api-calls.txt")).unwrap();
    let declared = rbac::parse_declared(&table_text).unwrap_or_else(|e| panic!("{e}"));
    let scanned = scan::scan_dir(&root.join("agent/src"), &root);
    assert!(
        scanned.files_scanned > 10,
        "scanned only {} files",
        scanned.files_scanned
    );
    let calls = scanned.calls();

    let mut fail = Vec::new();
    fail.extend(scanned.errors.iter().cloned());
    // a call may be declared once per scope (get leases: the slots, the node heartbeat)
    let mut table: BTreeMap<Call, Vec<&rbac::Declared>> = BTreeMap::new();
    for d in &declared {
        let same = table.entry(d.call.clone()).or_default();
        if same.iter().any(|o| o.scope == d.scope) {
            fail.push(format!("api-calls.txt:{}: {} listed twice", d.line, d.call));
        }
        same.push(d);
    }
    // 1. every call in code has a rule, and a line in the table
    for (call, wh) in &calls {
        if !grants.contains_key(call) {
            fail.push(format!(
                "the agent calls `{call}` ({}) but no ClusterRole/Role grants it: add a rule to packaging/kubernetes/rbac.yaml (and the chart)",
                wh.join(", ")
            ));
        }
        if !table.contains_key(call) {
            fail.push(format!(
                "the agent calls `{call}` ({}) but packaging/kubernetes/api-calls.txt does not list it",
                wh.join(", ")
            ));
        }
    }
    // 2. every table line is granted in the right scope, and made by code unless optional
    for d in &declared {
        let scopes: Vec<&rbac::Scope> = grants
            .get(&d.call)
            .map(|v| v.iter().map(|(s, _)| s).collect())
            .unwrap_or_default();
        if !scopes.contains(&&d.scope) {
            fail.push(format!(
                "api-calls.txt:{}: `{}` should be granted by a {} but is granted by {scopes:?}",
                d.line, d.call, d.scope
            ));
        }
        if let rbac::Scope::Namespace(_) = d.scope
            && scopes.contains(&&rbac::Scope::Cluster)
        {
            fail.push(format!(
                "api-calls.txt:{}: `{}` is namespaced but a ClusterRole grants it too",
                d.line, d.call
            ));
        }
        match (d.optional, calls.get(&d.call)) {
            (false, None) => fail.push(format!(
                "api-calls.txt:{}: `{}` is not made anywhere in agent/src (as far as the scan sees): remove the rule, or mark the line `optional # reason`",
                d.line, d.call
            )),
            (true, Some(wh)) => eprintln!(
                "NOTE api-calls.txt:{}: optional `{}` is now made by code ({}): the `optional` marker can go",
                d.line,
                d.call,
                wh.join(", ")
            ),
            _ => {}
        }
    }
    // 3. every granted (verb, resource) is a declared call
    for (call, by) in &grants {
        if !table.contains_key(call) {
            fail.push(format!(
                "`{call}` is granted ({by:?}) but no call declares it in api-calls.txt: remove the rule or declare the call"
            ));
        }
    }
    for n in &scanned.notes {
        eprintln!("NOTE {n}");
    }
    eprintln!(
        "scanned {} files: {} distinct calls: {}",
        scanned.files_scanned,
        calls.len(),
        calls
            .keys()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(fail.is_empty(), "RBAC vs code:\n{}", fail.join("\n"));
}

// ---------------------------------------------------------------- admission policy

#[test]
fn the_admission_policy_fits_the_agent() {
    let objs = k8s_objects();
    let sa = find(&objs, "ServiceAccount", "nodewarden").unwrap();
    let user = format!(
        "system:serviceaccount:{}:{}",
        sa.namespace().unwrap(),
        sa.name()
    );
    let vap = find(
        &objs,
        "ValidatingAdmissionPolicy",
        "nodewarden-own-node-only",
    )
    .unwrap();
    let binding = find(
        &objs,
        "ValidatingAdmissionPolicyBinding",
        "nodewarden-own-node-only",
    )
    .unwrap();
    assert_eq!(binding["spec"]["policyName"], vap["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert_eq!(vap["spec"]["failurePolicy"], "Fail");
    let cond = vap["spec"]["matchConditions"][0]["expression"]
        .as_str()
        .unwrap();
    assert!(cond.contains(&format!("'{user}'")), "{cond}");
    let all = vap.value.to_string();
    assert!(all.contains("authentication.kubernetes.io/node-name"));
    assert!(all.contains("object.metadata.name"));
    for r in vap["spec"]["matchConstraints"]["resourceRules"]
        .as_array()
        .unwrap()
    {
        let res = r["resources"].to_string();
        assert!(
            res.contains("\"nodes\"") && res.contains("\"nodes/status\""),
            "{res}"
        );
    }

    // the conditions it lets the agent write = the agent's condition types
    let vars = vap["spec"]["variables"].as_array().unwrap();
    let own = vars.iter().find(|v| v["name"] == "ownConditions").unwrap()["expression"]
        .as_str()
        .unwrap();
    let listed: BTreeSet<String> = own
        .trim_matches(['[', ']'])
        .split(',')
        .map(|s| s.trim().trim_matches('\'').to_string())
        .collect();
    let root = repo_root();
    let mut want = BTreeSet::new();
    let model = std::fs::read_to_string(root.join("agent/src/domain.rs")).unwrap();
    let re = regex::Regex::new(r#"Problem::\w+ => "(\w+)""#).unwrap();
    want.extend(re.captures_iter(&model).map(|c| c[1].to_string()));
    assert_eq!(
        want.len(),
        11,
        "Problem::as_str not found in agent/src/domain.rs"
    );
    if let Ok(node) = std::fs::read_to_string(root.join("agent/src/act/node.rs")) {
        let re = regex::Regex::new(r#"pub const COND_\w+: &str = "(\w+)";"#).unwrap();
        want.extend(re.captures_iter(&node).map(|c| c[1].to_string()));
    }
    assert_eq!(
        listed, want,
        "ownConditions in admission-policy.yaml vs the condition types in agent/src"
    );
}
