//! Label and field selectors, as the apiserver parses and applies them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::store::Kind;
use crate::util::{ApiError, field_string};

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector` query parameter (equality- and set-based).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<LabelReq>);

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(key: &str, rest: &str, raw: &str) -> Result<(String, Vec<String>), ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: {raw}")))?;
    let values = inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    Ok((key.trim().to_string(), values))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let bad = || ApiError::bad_request(format!("unable to parse requirement: {part}"));
            if let Some(k) = part.strip_prefix('!') {
                reqs.push(LabelReq::NotExists(k.trim().to_string()));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(LabelReq::NotEq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once("==") {
                reqs.push(LabelReq::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once('=') {
                reqs.push(LabelReq::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                let (k, vs) = parse_set(k, rest, part)?;
                reqs.push(LabelReq::NotIn(k, vs));
            } else if let Some((k, rest)) = part.split_once(" in ") {
                let (k, vs) = parse_set(k, rest, part)?;
                reqs.push(LabelReq::In(k, vs));
            } else if part.contains(' ') || part.contains('(') {
                return Err(bad());
            } else {
                reqs.push(LabelReq::Exists(part.to_string()));
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = labels_of(obj);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => labels.get(k.as_str()) == Some(&v.as_str()),
            LabelReq::NotEq(k, v) => labels.get(k.as_str()) != Some(&v.as_str()),
            LabelReq::In(k, vs) => labels
                .get(k.as_str())
                .is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => !labels
                .get(k.as_str())
                .is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => labels.contains_key(k.as_str()),
            LabelReq::NotExists(k) => !labels.contains_key(k.as_str()),
        })
    }
}

pub(crate) fn labels_of(obj: &Value) -> BTreeMap<&str, &str> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Does a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`)
/// select `obj`? A missing/null selector selects nothing; `{}` selects all.
pub(crate) fn selector_object_matches(selector: Option<&Value>, obj: &Value) -> bool {
    let Some(sel) = selector.filter(|s| s.is_object()) else {
        return false;
    };
    let labels = labels_of(obj);
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if labels.get(k.as_str()).copied() != v.as_str() {
                return false;
            }
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let have = labels.get(key);
            let ok = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => have.is_some_and(|h| values.contains(h)),
                "NotIn" => !have.is_some_and(|h| values.contains(h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// A parsed `fieldSelector` (`a=b`, `a==b`, `a!=b`, comma-separated).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

/// Field labels the real apiserver supports per resource (others → 400).
fn supported_field(kind: Kind, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    match kind {
        Kind::Pod => matches!(
            field,
            "spec.nodeName"
                | "spec.restartPolicy"
                | "spec.schedulerName"
                | "spec.serviceAccountName"
                | "spec.hostNetwork"
                | "status.phase"
                | "status.podIP"
                | "status.nominatedNodeName"
        ),
        Kind::Node => field == "spec.unschedulable",
        Kind::CoreEvent => {
            field.starts_with("involvedObject.")
                || matches!(field, "reason" | "reportingComponent" | "source" | "type")
        }
        Kind::Event => {
            field.starts_with("regarding.")
                || matches!(field, "reason" | "reportingController" | "type")
        }
        Kind::PersistentVolumeClaim | Kind::PersistentVolume => false,
        // pkg/registry/certificates/certificates/strategy.go SelectableFields (and the API
        // reference: "You can select on this field using `spec.signerName`"); there is
        // none for the requester (`spec.username`), so an agent lists them all.
        Kind::CertificateSigningRequest => field == "spec.signerName",
        _ => false,
    }
}

impl FieldSelector {
    pub fn parse(kind: Kind, s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: '{part}': field selector must be of the form key=value"
                )));
            };
            let field = field.trim();
            if !supported_field(kind, field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let have = match field.as_str() {
                // Field selectors on the `source` of a core Event mean `source.component`.
                "source" => field_string(obj, "source.component"),
                "spec.unschedulable" | "spec.hostNetwork" => {
                    let s = field_string(obj, field);
                    if s.is_empty() { "false".to_string() } else { s }
                }
                f => field_string(obj, f),
            };
            (have == *value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let pod = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        let t = |s: &str| LabelSelector::parse(s).unwrap().matches(&pod);
        assert!(t("app=web"));
        assert!(t("app==web,tier=fe"));
        assert!(!t("app=web,tier=be"));
        assert!(t("app!=db"));
        assert!(t("app in (web, db)"));
        assert!(!t("app notin (web)"));
        assert!(t("tier"));
        assert!(t("!missing"));
        assert!(!t("missing"));
        assert!(t(""));
        assert!(LabelSelector::parse("app in web").is_err());
    }

    #[test]
    fn selector_objects() {
        let pod = json!({"metadata": {"labels": {"app": "web"}}});
        assert!(!selector_object_matches(None, &pod));
        assert!(selector_object_matches(Some(&json!({})), &pod));
        assert!(selector_object_matches(
            Some(&json!({"matchLabels": {"app": "web"}})),
            &pod
        ));
        assert!(!selector_object_matches(
            Some(&json!({"matchLabels": {"app": "db"}})),
            &pod
        ));
        let e = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]});
        assert!(selector_object_matches(Some(&e), &pod));
        let e = json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]});
        assert!(selector_object_matches(Some(&e), &pod));
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}});
        let t = |s: &str| FieldSelector::parse(Kind::Pod, s).unwrap().matches(&pod);
        assert!(t("spec.nodeName=n1"));
        assert!(t("spec.nodeName==n1,metadata.namespace=ns"));
        assert!(!t("spec.nodeName!=n1"));
        assert!(t("status.phase="));
        assert!(FieldSelector::parse(Kind::Pod, "spec.foo=x").is_err());
        assert!(FieldSelector::parse(Kind::Node, "spec.nodeName=x").is_err());
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        assert!(
            FieldSelector::parse(Kind::Node, "spec.unschedulable=false")
                .unwrap()
                .matches(&node)
        );
    }
}
