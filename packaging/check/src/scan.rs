//! The Kubernetes API calls in the agent's source, found lexically.
//!
//! What it understands (per `.rs` file under `agent/src`, after removing comments,
//! string contents and `#[cfg(test)]` modules and files):
//!
//! - names bound to an `Api<K>`: `name: Api<K>` / `name: &Api<K>` (a `let` with a
//!   type, a struct field, a function parameter), `let name = Api::<K>::…`,
//!   `let name = something.other.clone()` when `other` is bound, and functions
//!   `fn name(…) -> Api<K>`;
//! - calls `name.METHOD(` and `name().METHOD(` on those names (the name resolves
//!   to its nearest binding above the call in the same file, else to any binding of
//!   it in the file), and `Api::<K>::all(…).METHOD(`;
//! - `watcher(name…)`, `metadata_watcher(…)`, `reflector(…, watcher(name…))`
//!   → list + watch; `Recorder::new` → create + patch events.events.k8s.io.
//!
//! METHOD → verb: get/get_opt/get_metadata(_opt) → get; list(_metadata) → list;
//! watch(_metadata) → watch; create → create; replace → update; patch(_metadata)
//! → patch; delete → delete; delete_collection → deletecollection;
//! get/patch/replace_status → verb on K/status; evict → create pods/eviction;
//! get/patch/replace_scale → verb on K/scale; entry → get, create, update.
//!
//! Limits (honest ones): a call through a name bound elsewhere (another file, a
//! generic `Api<K>` with K a type parameter, a closure argument), a raw
//! `Client::request`, or a method on a differently named alias is not seen; a
//! name reused for an `Api` of another kind can be attributed to the wrong kind
//! (nearest binding wins). Such calls go in `packaging/kubernetes/api-calls.txt`
//! by hand. Generic kinds (`Api<K>`) are reported as notes, unknown kinds as errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::Regex;

/// One API call: `verb` on `resource` in kubectl's notation
/// (`pods`, `pods/eviction`, `deployments.apps/scale`, `leases.coordination.k8s.io`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    pub verb: String,
    pub resource: String,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)
    }
}

/// k8s-openapi type name → (plural resource, API group).
pub fn kind_resource(kind: &str, core_event: bool) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "Node" => ("nodes", ""),
        "Pod" => ("pods", ""),
        "Namespace" => ("namespaces", ""),
        "ConfigMap" => ("configmaps", ""),
        "Secret" => ("secrets", ""),
        "Service" => ("services", ""),
        "ServiceAccount" => ("serviceaccounts", ""),
        "Endpoints" => ("endpoints", ""),
        "PersistentVolume" => ("persistentvolumes", ""),
        "PersistentVolumeClaim" => ("persistentvolumeclaims", ""),
        "Event" if core_event => ("events", ""),
        "Event" => ("events", "events.k8s.io"),
        "Lease" => ("leases", "coordination.k8s.io"),
        "PodDisruptionBudget" => ("poddisruptionbudgets", "policy"),
        "Deployment" => ("deployments", "apps"),
        "ReplicaSet" => ("replicasets", "apps"),
        "StatefulSet" => ("statefulsets", "apps"),
        "DaemonSet" => ("daemonsets", "apps"),
        "ControllerRevision" => ("controllerrevisions", "apps"),
        "Job" => ("jobs", "batch"),
        "CronJob" => ("cronjobs", "batch"),
        "EndpointSlice" => ("endpointslices", "discovery.k8s.io"),
        "CertificateSigningRequest" => ("certificatesigningrequests", "certificates.k8s.io"),
        _ => return None,
    })
}

/// kubectl notation: `resource` for the core group, else `resource.group`; `/sub` appended.
pub fn resource_key(resource: &str, group: &str, sub: Option<&str>) -> String {
    let mut s = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    if let Some(sub) = sub {
        s.push('/');
        s.push_str(sub);
    }
    s
}

/// Verbs (and subresource) of an `Api` method; empty for methods that call nothing.
fn method_verbs(m: &str) -> Vec<(&'static str, Option<&'static str>)> {
    match m {
        "get" | "get_opt" | "get_metadata" | "get_metadata_opt" => vec![("get", None)],
        "list" | "list_metadata" => vec![("list", None)],
        "watch" | "watch_metadata" => vec![("watch", None)],
        "create" => vec![("create", None)],
        "replace" => vec![("update", None)],
        "patch" | "patch_metadata" => vec![("patch", None)],
        "delete" => vec![("delete", None)],
        "delete_collection" => vec![("deletecollection", None)],
        "get_status" => vec![("get", Some("status"))],
        "patch_status" => vec![("patch", Some("status"))],
        "replace_status" => vec![("update", Some("status"))],
        "get_scale" => vec![("get", Some("scale"))],
        "patch_scale" => vec![("patch", Some("scale"))],
        "replace_scale" => vec![("update", Some("scale"))],
        "evict" => vec![("create", Some("eviction"))],
        "entry" => vec![("get", None), ("create", None), ("update", None)],
        _ => vec![],
    }
}

/// A call found, with where.
#[derive(Debug, Clone)]
pub struct Found {
    pub call: Call,
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Default)]
pub struct ScanResult {
    pub found: Vec<Found>,
    /// Unknown kinds and other things that need a human (errors).
    pub errors: Vec<String>,
    /// Generic `Api<K>` uses that could not be resolved (notes).
    pub notes: Vec<String>,
    pub files_scanned: usize,
}

impl ScanResult {
    pub fn calls(&self) -> BTreeMap<Call, Vec<String>> {
        let mut m: BTreeMap<Call, Vec<String>> = BTreeMap::new();
        for f in &self.found {
            m.entry(f.call.clone())
                .or_default()
                .push(format!("{}:{}", f.file, f.line));
        }
        m
    }
}

/// Scan every `.rs` file under `src_dir` (paths in results are relative to `base`).
pub fn scan_dir(src_dir: &Path, base: &Path) -> ScanResult {
    let mut files = Vec::new();
    collect_rs(src_dir, &mut files);
    files.sort();
    let test_files = test_only_files(&files);
    let mut res = ScanResult::default();
    for f in files {
        if test_files.contains(&f) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let rel = f.strip_prefix(base).unwrap_or(&f).display().to_string();
        scan_source(&rel, &text, &mut res);
        res.files_scanned += 1;
    }
    res
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Files declared as `#[cfg(test)] mod name;` (test-only modules in their own file).
fn test_only_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let re = Regex::new(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;").unwrap();
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let dir = f.parent().unwrap();
        let stem = f.file_stem().unwrap().to_string_lossy();
        let mod_dir = if stem == "mod" || stem == "lib" || stem == "main" {
            dir.to_path_buf()
        } else {
            dir.join(&*stem)
        };
        for c in re.captures_iter(&text) {
            out.push(mod_dir.join(format!("{}.rs", &c[1])));
            out.push(mod_dir.join(&c[1]).join("mod.rs"));
        }
    }
    out
}

/// Remove comments and the contents of string and char literals (keeping line
/// breaks, so line numbers stay right).
pub fn strip_source(src: &str) -> String {
    strip(src, false)
}

/// Remove comments only (string literals stay), keeping line breaks.
pub fn strip_comments(src: &str) -> String {
    strip(src, true)
}

fn strip(src: &str, keep_strings: bool) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
        {
            // raw string r"…", r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let start = i;
            out.push_str("\"\"");
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                if b[j] == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            if keep_strings {
                out.truncate(out.len() - 2 - b[start..j].iter().filter(|c| **c == '\n').count());
                out.extend(&b[start..j.min(b.len())]);
            }
            i = j;
        } else if c == '"' {
            let start = i;
            out.push_str("\"\"");
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                if b.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            if keep_strings {
                let n = b[start..i.min(b.len())]
                    .iter()
                    .filter(|c| **c == '\n')
                    .count();
                out.truncate(out.len() - 2 - n);
                out.extend(&b[start..i.min(b.len())]);
            }
        } else if c == '\'' {
            // char literal ('x', '\n', '\u{..}') or a lifetime ('a)
            if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                out.push_str("' '");
                i = j + 1;
            } else if b.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Blank out `#[cfg(test)] mod name { … }` blocks (keeping line breaks).
pub fn strip_test_modules(src: &str) -> String {
    let re = Regex::new(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{").unwrap();
    let mut out = src.to_string();
    while let Some(m) = re.find(&out) {
        let bytes = out.as_bytes();
        let mut depth = 0usize;
        let mut end = bytes.len();
        for (k, &ch) in bytes.iter().enumerate().skip(m.end() - 1) {
            match ch {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let blank: String = out[m.start()..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(m.start()..end, &blank);
    }
    out
}

fn line_of(text: &str, pos: usize) -> usize {
    text[..pos].matches('\n').count() + 1
}

/// Scan one source file.
pub fn scan_source(file: &str, raw: &str, res: &mut ScanResult) {
    let core_event = raw.contains("core::v1::Event")
        || raw.contains("core::v1::{Event")
        || Regex::new(r"core::v1::\{[^}]*\bEvent\b")
            .unwrap()
            .is_match(raw);
    let src = strip_test_modules(&strip_source(raw));

    // bindings: name -> [(pos, kind)]
    let mut binds: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let typed = Regex::new(r"\b(\w+)\s*:\s*&?\s*(?:mut\s+)?Api\s*<\s*(\w+)\s*>").unwrap();
    for c in typed.captures_iter(&src) {
        let m = c.get(0).unwrap();
        binds
            .entry(c[1].to_string())
            .or_default()
            .push((m.start(), c[2].to_string()));
    }
    let turbofish = Regex::new(r"\blet\s+(?:mut\s+)?(\w+)\s*=\s*Api\s*::\s*<\s*(\w+)\s*>").unwrap();
    for c in turbofish.captures_iter(&src) {
        let m = c.get(0).unwrap();
        binds
            .entry(c[1].to_string())
            .or_default()
            .push((m.start(), c[2].to_string()));
    }
    let fn_ret =
        Regex::new(r"\bfn\s+(\w+)\s*(?:<[^>]*>)?\s*\([^)]*\)\s*->\s*Api\s*<\s*(\w+)\s*>").unwrap();
    let mut fn_binds: BTreeMap<String, String> = BTreeMap::new();
    for c in fn_ret.captures_iter(&src) {
        fn_binds.insert(c[1].to_string(), c[2].to_string());
    }
    let resolve = |binds: &BTreeMap<String, Vec<(usize, String)>>, name: &str, pos: usize| {
        let v = binds.get(name)?;
        v.iter()
            .filter(|(p, _)| *p < pos)
            .max_by_key(|(p, _)| *p)
            .or_else(|| v.first())
            .map(|(_, k)| k.clone())
    };
    // aliases: let x = a.b.c.clone();  (repeat: aliases of aliases)
    let alias = Regex::new(r"\blet\s+(?:mut\s+)?(\w+)\s*=\s*(?:&\s*)?((?:\w+\s*\.\s*)*)(\w+)\s*(?:\.\s*clone\s*\(\s*\))?\s*;").unwrap();
    for _ in 0..3 {
        let mut add = Vec::new();
        for c in alias.captures_iter(&src) {
            let m = c.get(0).unwrap();
            if let Some(k) = resolve(&binds, &c[3], m.start()) {
                add.push((c[1].to_string(), m.start(), k));
            }
        }
        for (n, p, k) in add {
            let e = binds.entry(n).or_default();
            if !e.iter().any(|(q, _)| *q == p) {
                e.push((p, k));
            }
        }
    }

    let push = |kind: &str,
                verbs: Vec<(&str, Option<&str>)>,
                pos: usize,
                what: &str,
                res: &mut ScanResult| {
        let line = line_of(&src, pos);
        let Some((resource, group)) = kind_resource(kind, core_event) else {
            if kind.len() == 1 || kind.chars().all(|c| c.is_ascii_uppercase()) {
                res.notes.push(format!(
                    "{file}:{line}: {what} on a generic Api<{kind}>: not resolved; declare its calls in api-calls.txt"
                ));
            } else {
                res.errors.push(format!(
                    "{file}:{line}: {what} on Api<{kind}>: unknown kind; add it to kind_resource() in packaging/check/src/scan.rs"
                ));
            }
            return;
        };
        for (verb, sub) in verbs {
            let sub = if sub == Some("eviction") && resource != "pods" {
                res.errors
                    .push(format!("{file}:{line}: evict on Api<{kind}>"));
                continue;
            } else {
                sub
            };
            res.found.push(Found {
                call: Call {
                    verb: verb.to_string(),
                    resource: resource_key(resource, group, sub),
                },
                file: file.to_string(),
                line,
            });
        }
    };

    // name.method(  and  name().method(
    let call_re =
        Regex::new(r"\b(\w+)\s*(\(\s*\))?\s*\.\s*(\w+)\s*(?:::\s*<[^>]*>\s*)?\(").unwrap();
    // overlapping: in `self.pods().list(` the method `pods` starts the next match
    let mut at = 0;
    while let Some(c) = call_re.captures_at(&src, at) {
        let m = c.get(0).unwrap();
        at = c.get(3).unwrap().start();
        let verbs = method_verbs(&c[3]);
        if verbs.is_empty() {
            continue;
        }
        let kind = if c.get(2).is_some() {
            fn_binds.get(&c[1]).cloned()
        } else {
            // `.name.method(` or `name.method(`: a binding, not a fn of the same name
            resolve(&binds, &c[1], m.start())
        };
        if let Some(kind) = kind {
            push(&kind, verbs, m.start(), &c[3], res);
        }
    }
    // Api::<K>::all(…).method(
    let direct =
        Regex::new(r"Api\s*::\s*<\s*(\w+)\s*>\s*::\s*\w+\s*\([^;{}]*?\)\s*\.\s*(\w+)\s*\(")
            .unwrap();
    for c in direct.captures_iter(&src) {
        let verbs = method_verbs(&c[2]);
        if !verbs.is_empty() {
            push(&c[1], verbs, c.get(0).unwrap().start(), &c[2], res);
        }
    }
    // watcher(name…) / metadata_watcher(name…)
    let watch_re =
        Regex::new(r"\b(?:metadata_)?watcher\s*\(\s*&?\s*((?:\w+\s*\.\s*)*\w+)").unwrap();
    for c in watch_re.captures_iter(&src) {
        let pos = c.get(0).unwrap().start();
        let parts: Vec<&str> = c[1]
            .split('.')
            .map(str::trim)
            .filter(|p| *p != "clone")
            .collect();
        let name = parts.last().copied().unwrap_or("");
        let kind = if name == "Api" {
            None
        } else {
            resolve(&binds, name, pos).or_else(|| fn_binds.get(name).cloned())
        };
        match kind {
            Some(kind) => push(&kind, vec![("list", None), ("watch", None)], pos, "watcher", res),
            None => res.notes.push(format!(
                "{file}:{}: watcher({}…) not resolved to an Api<K>; declare list+watch in api-calls.txt",
                line_of(&src, pos),
                &c[1]
            )),
        }
    }
    // raw requests: kube::core::Request::new("/api/v1/…" or format!("/apis/G/V/…", …))
    // followed by a builder method (list, get, create, create_subresource("eviction", …), …)
    let kept = strip_test_modules(&strip_comments(raw));
    let req_re =
        Regex::new(r#"Request\s*::\s*new\s*\(\s*(?:&\s*)?(?:format!\s*\(\s*)?"(/apis?/[^"]*)""#)
            .unwrap();
    let builder = Regex::new(r#"^[^;]*?\)\s*\.\s*(\w+)\s*\(\s*(?:&\s*)?(?:"(\w+)")?"#).unwrap();
    for c in req_re.captures_iter(&kept) {
        let pos = c.get(0).unwrap().start();
        let line = line_of(&kept, pos);
        let segs: Vec<&str> = c[1].trim_matches('/').split('/').collect();
        let (group, rest) = match segs.as_slice() {
            ["api", _v, rest @ ..] => ("", rest),
            ["apis", g, _v, rest @ ..] => (*g, rest),
            _ => ("", &[][..]),
        };
        let resource = rest
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                // drop placeholders ({}) and the "namespaces" before a namespace name
                let placeholder = s.contains('{');
                let ns_prefix = i % 2 == 0 && **s == "namespaces" && rest.len() > i + 1;
                !placeholder && !ns_prefix
            })
            .map(|(_, s)| *s)
            .next_back();
        let tail = &kept[c.get(0).unwrap().end()..];
        let (Some(resource), Some(b)) = (resource, builder.captures(tail)) else {
            res.errors.push(format!(
                "{file}:{line}: raw request to {} not understood; declare it in api-calls.txt and extend scan.rs",
                &c[1]
            ));
            continue;
        };
        let sub = b.get(2).map(|m| m.as_str());
        let verb = match (&b[1], sub) {
            ("list", None) => "list",
            ("get", None) => "get",
            ("watch", None) => "watch",
            ("create", None) => "create",
            ("replace", None) => "update",
            ("patch", None) => "patch",
            ("delete", None) => "delete",
            ("get_subresource", Some(_)) => "get",
            ("create_subresource", Some(_)) => "create",
            ("patch_subresource", Some(_)) => "patch",
            ("replace_subresource", Some(_)) => "update",
            (m, _) => {
                res.errors.push(format!(
                    "{file}:{line}: raw request .{m}(…) to {} not understood; extend scan.rs",
                    &c[1]
                ));
                continue;
            }
        };
        res.found.push(Found {
            call: Call {
                verb: verb.to_string(),
                resource: resource_key(resource, group, sub),
            },
            file: file.to_string(),
            line,
        });
    }
    // kube's event Recorder: create, and patch for a repeated event (series)
    let rec = Regex::new(r"\bRecorder\s*::\s*new\b").unwrap();
    for m in rec.find_iter(&src) {
        push(
            "Event",
            vec![("create", None), ("patch", None)],
            m.start(),
            "Recorder",
            res,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(src: &str) -> Vec<String> {
        let mut r = ScanResult::default();
        scan_source("x.rs", src, &mut r);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let mut v: Vec<String> = r.found.iter().map(|f| f.call.to_string()).collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn finds_the_usual_shapes() {
        let src = r#"
            struct C { api: Api<Node>, pods: Api<Pod> }
            impl C {
                fn leases(&self) -> Api<Lease> { Api::namespaced(self.c.clone(), "ns") }
                async fn f(&self) {
                    self.api.get(&self.node).await;          // "self.api.delete(" in a comment
                    self.node.api.patch_status("n", &pp, &p).await;
                    let s = "pods.delete(";
                    self.pods.evict("p", &ep).await;
                    self.leases().replace("l", &pp, &l).await;
                    let api = self.api.clone();
                    let st = watcher(api.clone(), cfg);
                    let d: Api<Deployment> = Api::namespaced(c, ns);
                    d.patch_scale("x", &pp, &p).await;
                    Api::<PersistentVolume>::all(c.clone()).get_opt("pv").await;
                    let r = Recorder::new(c, reporter);
                    let q = kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", ns))
                        .create_subresource("eviction", &name, &pp, b);
                    let q = kube::core::Request::new("/api/v1/nodes").list(&lp);
                }
            }
            #[cfg(test)]
            mod tests { fn t(api: Api<Secret>) { api.delete("x"); } }
        "#;
        assert_eq!(
            scan(src),
            [
                "create events.events.k8s.io",
                "create pods/eviction",
                "get nodes",
                "get persistentvolumes",
                "list nodes",
                "patch deployments.apps/scale",
                "patch events.events.k8s.io",
                "patch nodes/status",
                "update leases.coordination.k8s.io",
                "watch nodes",
            ]
        );
    }

    #[test]
    fn nearest_binding_wins_and_unknown_kinds_are_errors() {
        let src = "fn a(api: Api<Pod>) { api.list(&lp); }\nfn b(api: Api<Node>) { api.list(&lp); }";
        assert_eq!(scan(src), ["list nodes", "list pods"]);
        let mut r = ScanResult::default();
        scan_source("x.rs", "fn a(api: Api<Widget>) { api.list(&lp); }", &mut r);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        let mut r = ScanResult::default();
        scan_source("x.rs", "fn a<K>(api: Api<K>) { api.list(&lp); }", &mut r);
        assert!(r.errors.is_empty() && r.notes.len() == 1, "{r:?}");
    }
}
