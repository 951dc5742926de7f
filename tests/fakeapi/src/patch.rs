//! The three patch formats of the apiserver: JSON merge patch (RFC 7386),
//! strategic merge patch (with the merge keys of the built-in types nodewarden
//! touches) and JSON patch (RFC 6902).

use serde_json::{Map, Value};

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The `patchMergeKey` of a list at a (dotted, index-free) path, as declared
/// in the Kubernetes Go types. Lists without one (for example `spec.taints`
/// of a Node, `spec.tolerations`) are atomic: a strategic merge patch
/// replaces them whole, exactly like the real apiserver does.
fn merge_key(path: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("status.conditions", "type"),
        ("status.addresses", "type"),
        ("metadata.ownerReferences", "uid"),
        ("spec.containers", "name"),
        ("spec.initContainers", "name"),
        ("spec.ephemeralContainers", "name"),
        ("spec.volumes", "name"),
        ("containers.env", "name"),
        ("containers.ports", "containerPort"),
        ("containers.volumeMounts", "mountPath"),
        ("initContainers.env", "name"),
        ("initContainers.volumeMounts", "mountPath"),
        ("spec.imagePullSecrets", "name"),
    ];
    TABLE
        .iter()
        .find(|(suffix, _)| path == *suffix || path.ends_with(&format!(".{suffix}")))
        .map(|(_, k)| *k)
}

/// Lists of scalars with `patchStrategy:"merge"`: a patch adds to the set.
fn is_merged_primitive_list(path: &str) -> bool {
    matches!(path, "metadata.finalizers" | "spec.podCIDRs")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Strategic merge patch (the subset the apiserver applies to built-in
/// types: merge keys, `$patch: delete|replace`, `$retainKeys`,
/// `$deleteFromPrimitiveList/…`; `$setElementOrder/…` is accepted and
/// ignored).
pub(crate) fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    smp_value(target, patch, "");
}

fn smp_value(target: &mut Value, patch: &Value, path: &str) {
    match patch {
        Value::Object(p) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut clean = p.clone();
                clean.remove("$patch");
                *target = Value::Object(clean);
                return;
            }
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let Value::Object(t) = target else { return };
            for (k, v) in p {
                if k == "$patch" || k.starts_with("$setElementOrder/") || k == "$retainKeys" {
                    continue;
                }
                if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
                    if let (Some(Value::Array(list)), Value::Array(del)) = (t.get_mut(field), v) {
                        list.retain(|x| !del.contains(x));
                    }
                    continue;
                }
                let child_path = join(path, k);
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                if let Value::Object(vo) = v
                    && vo.get("$patch").and_then(Value::as_str) == Some("delete")
                {
                    t.remove(k);
                    continue;
                }
                match v {
                    Value::Array(items) => {
                        let slot = t.entry(k.clone()).or_insert(Value::Null);
                        smp_list(slot, items, &child_path);
                    }
                    _ => smp_value(t.entry(k.clone()).or_insert(Value::Null), v, &child_path),
                }
            }
            if let Some(Value::Array(keep)) = p.get("$retainKeys") {
                let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
                t.retain(|k, _| keep.contains(&k.as_str()));
            }
        }
        other => *target = other.clone(),
    }
}

fn smp_list(slot: &mut Value, items: &[Value], path: &str) {
    let replace_directive = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace_directive {
        *slot = Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        );
        return;
    }
    if is_merged_primitive_list(path) {
        let mut list = slot.as_array().cloned().unwrap_or_default();
        for i in items {
            if !list.contains(i) {
                list.push(i.clone());
            }
        }
        *slot = Value::Array(list);
        return;
    }
    let Some(key) = merge_key(path) else {
        *slot = Value::Array(items.iter().map(strip_directives).collect());
        return;
    };
    let mut list = slot.as_array().cloned().unwrap_or_default();
    for item in items {
        let id = item.get(key).cloned();
        let pos = id
            .as_ref()
            .and_then(|id| list.iter().position(|e| e.get(key) == Some(id)));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(id) = &id {
                list.retain(|e| e.get(key) != Some(id));
            }
            continue;
        }
        match pos {
            Some(i) => smp_value(&mut list[i], item, path),
            None => {
                let mut fresh = Value::Null;
                smp_value(&mut fresh, item, path);
                list.push(fresh);
            }
        }
    }
    *slot = Value::Array(list);
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Why a JSON patch could not be applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JsonPatchError {
    /// The document is not a list of operations.
    Malformed(String),
    /// An operation failed (missing path, failed `test`).
    Failed(String),
}

fn unescape(tok: &str) -> String {
    tok.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(p: &str) -> Result<(String, String), JsonPatchError> {
    if p.is_empty() {
        return Err(JsonPatchError::Failed("empty path".into()));
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(JsonPatchError::Malformed(format!(
            "invalid JSON pointer {p:?}"
        )));
    };
    match rest.rfind('/') {
        Some(i) => Ok((format!("/{}", &rest[..i]), unescape(&rest[i + 1..]))),
        None => Ok((String::new(), unescape(rest))),
    }
}

fn parent_mut<'a>(doc: &'a mut Value, parent: &str) -> Result<&'a mut Value, JsonPatchError> {
    doc.pointer_mut(parent)
        .ok_or_else(|| JsonPatchError::Failed(format!("path {parent:?} not found")))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), JsonPatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match parent_mut(doc, &parent)? {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| JsonPatchError::Failed(format!("bad array index {last:?}")))?;
            if i > a.len() {
                return Err(JsonPatchError::Failed(format!("index {i} out of bounds")));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(JsonPatchError::Failed(format!(
            "cannot add under {parent:?}"
        ))),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, JsonPatchError> {
    let (parent, last) = split_pointer(path)?;
    match parent_mut(doc, &parent)? {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| JsonPatchError::Failed(format!("path {path:?} not found"))),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| JsonPatchError::Failed(format!("bad array index {last:?}")))?;
            if i >= a.len() {
                return Err(JsonPatchError::Failed(format!("index {i} out of bounds")));
            }
            Ok(a.remove(i))
        }
        _ => Err(JsonPatchError::Failed(format!("path {path:?} not found"))),
    }
}

/// RFC 6902 JSON patch: add, remove, replace, move, copy, test.
pub(crate) fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| JsonPatchError::Malformed("a JSON patch must be a list".into()))?;
    let mut work = doc.clone();
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| JsonPatchError::Malformed("operation without a path".into()))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| JsonPatchError::Malformed(format!("{name} without a value")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| JsonPatchError::Malformed(format!("{name} without from")))
        };
        match name {
            "add" => add(&mut work, path, value()?)?,
            "remove" => {
                remove(&mut work, path)?;
            }
            "replace" => {
                if path.is_empty() {
                    work = value()?;
                } else {
                    remove(&mut work, path)?;
                    add(&mut work, path, value()?)?;
                }
            }
            "move" => {
                let v = remove(&mut work, from()?)?;
                add(&mut work, path, v)?;
            }
            "copy" => {
                let v = work
                    .pointer(from()?)
                    .cloned()
                    .ok_or_else(|| JsonPatchError::Failed("copy from a missing path".into()))?;
                add(&mut work, path, v)?;
            }
            "test" => {
                if work.pointer(path) != Some(&value()?) {
                    return Err(JsonPatchError::Failed(format!(
                        "testing value {path} failed"
                    )));
                }
            }
            other => {
                return Err(JsonPatchError::Malformed(format!(
                    "unexpected kind of operation {other:?}"
                )));
            }
        }
    }
    *doc = work;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn smp_conditions_by_type_and_atomic_taints() {
        let mut node = json!({
            "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "DiskPressure", "status": "False"}
            ]}
        });
        strategic_merge_patch(
            &mut node,
            &json!({
                "$setElementOrder/conditions": [{"type": "Ready"}],
                "spec": {"taints": [{"key": "b", "effect": "NoExecute"}]},
                "status": {"conditions": [
                    {"type": "Ready", "status": "False", "reason": "X"},
                    {"type": "PLEGStall", "status": "True"}
                ]}
            }),
        );
        assert_eq!(
            node["status"]["conditions"],
            json!([
                {"type": "Ready", "status": "False", "reason": "X"},
                {"type": "DiskPressure", "status": "False"},
                {"type": "PLEGStall", "status": "True"}
            ])
        );
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "b", "effect": "NoExecute"}])
        );
    }

    #[test]
    fn smp_directives() {
        let mut o = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1"}},
            "status": {"conditions": [{"type": "A"}, {"type": "B"}]}});
        strategic_merge_patch(
            &mut o,
            &json!({"metadata": {"finalizers": ["b"], "labels": {"$patch": "replace", "y": "2"}},
                "status": {"conditions": [{"type": "A", "$patch": "delete"}]}}),
        );
        assert_eq!(o["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(o["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(o["status"]["conditions"], json!([{"type": "B"}]));
        strategic_merge_patch(
            &mut o,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(o["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"spec": {"unschedulable": false, "taints": [{"key": "a"}]}});
        json_patch(
            &mut d,
            &json!([
                {"op": "test", "path": "/spec/unschedulable", "value": false},
                {"op": "replace", "path": "/spec/unschedulable", "value": true},
                {"op": "add", "path": "/spec/taints/-", "value": {"key": "b"}},
                {"op": "remove", "path": "/spec/taints/0"},
                {"op": "add", "path": "/metadata", "value": {"labels": {"a~b/c": "1"}}},
                {"op": "copy", "from": "/metadata/labels/a~0b~1c", "path": "/x"},
                {"op": "move", "from": "/x", "path": "/y"}
            ]),
        )
        .unwrap();
        assert_eq!(
            d["spec"],
            json!({"unschedulable": true, "taints": [{"key": "b"}]})
        );
        assert_eq!(d["y"], json!("1"));
        assert!(d.get("x").is_none());
        let before = d.clone();
        let err = json_patch(
            &mut d,
            &json!([{"op": "remove", "path": "/y"}, {"op": "test", "path": "/spec/unschedulable", "value": false}]),
        );
        assert!(matches!(err, Err(JsonPatchError::Failed(_))));
        assert_eq!(d, before, "a failed patch changes nothing");
        assert!(matches!(
            json_patch(&mut d, &json!({})),
            Err(JsonPatchError::Malformed(_))
        ));
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/nope/x"}])).is_err());
    }
}
