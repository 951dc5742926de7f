//! What the ClusterRoles and Roles grant, and the declared table of API calls
//! (`packaging/kubernetes/api-calls.txt`).

use std::collections::BTreeMap;

use crate::Object;
use crate::scan::{Call, resource_key};

/// Where a grant comes from: a ClusterRole, or a Role in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Cluster,
    Namespace(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Cluster => write!(f, "ClusterRole"),
            Scope::Namespace(ns) => write!(f, "Role in {ns}"),
        }
    }
}

/// Every (verb, resource) granted, with the scope and role names granting it.
/// Wildcards and resourceNames are errors: the agent's rules name everything.
pub fn grants(objs: &[Object]) -> Result<BTreeMap<Call, Vec<(Scope, String)>>, String> {
    let mut out: BTreeMap<Call, Vec<(Scope, String)>> = BTreeMap::new();
    for o in objs {
        let scope = match o.kind() {
            "ClusterRole" => Scope::Cluster,
            "Role" => Scope::Namespace(o.namespace().unwrap_or("default").to_string()),
            _ => continue,
        };
        let rules = o.value["rules"].as_array().cloned().unwrap_or_default();
        for r in rules {
            if r.get("resourceNames").is_some() || r.get("nonResourceURLs").is_some() {
                return Err(format!(
                    "{}: resourceNames/nonResourceURLs are not expected",
                    o.id()
                ));
            }
            let list = |k: &str| -> Vec<String> {
                r[k].as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for g in list("apiGroups") {
                for res in list("resources") {
                    for v in list("verbs") {
                        if [&g, &res, &v].iter().any(|s| s.contains('*')) {
                            return Err(format!("{}: wildcard in a rule ({g} {res} {v})", o.id()));
                        }
                        let (base, sub) = match res.split_once('/') {
                            Some((b, s)) => (b.to_string(), Some(s.to_string())),
                            None => (res.clone(), None),
                        };
                        out.entry(Call {
                            verb: v.clone(),
                            resource: resource_key(&base, &g, sub.as_deref()),
                        })
                        .or_default()
                        .push((scope.clone(), o.name().to_string()));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One line of `api-calls.txt`: `VERB RESOURCE [@NAMESPACE] [optional] # why`.
#[derive(Debug, Clone)]
pub struct Declared {
    pub call: Call,
    /// `@ns`: granted by a Role in that namespace (and no ClusterRole); else a ClusterRole.
    pub scope: Scope,
    /// Granted although the scan may not find it in code (opt-in feature, code
    /// the scan cannot see, or code not written yet); the comment says which.
    pub optional: bool,
    pub why: String,
    pub line: usize,
}

pub fn parse_declared(text: &str) -> Result<Vec<Declared>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let (body, why) = match raw.split_once('#') {
            Some((b, w)) => (b, w.trim().to_string()),
            None => (raw, String::new()),
        };
        let words: Vec<&str> = body.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        if words.len() < 2 {
            return Err(format!("api-calls.txt:{line}: expected `VERB RESOURCE`"));
        }
        let mut d = Declared {
            call: Call {
                verb: words[0].to_string(),
                resource: words[1].to_string(),
            },
            scope: Scope::Cluster,
            optional: false,
            why,
            line,
        };
        for w in &words[2..] {
            match *w {
                "optional" => d.optional = true,
                w if w.starts_with('@') && w.len() > 1 => {
                    d.scope = Scope::Namespace(w[1..].to_string())
                }
                w => return Err(format!("api-calls.txt:{line}: unknown marker {w:?}")),
            }
        }
        if d.optional && d.why.is_empty() {
            return Err(format!(
                "api-calls.txt:{line}: an optional call needs a `# reason`"
            ));
        }
        out.push(d);
    }
    Ok(out)
}
