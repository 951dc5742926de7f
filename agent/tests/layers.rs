//! The layer order of docs/architecture.md, enforced: a module may use
//! modules of its own layer or below, never above. The test reads every
//! product file under agent/src, leaves out comments and test code, and
//! checks each `crate::…` path it names (in `use` trees and inline).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Lowest first. Keep in step with the table in docs/architecture.md.
const LAYERS: &[(&str, &[&str])] = &[
    ("foundation", &["safe_fs", "text", "yaml"]),
    ("domain", &["domain", "view"]),
    ("runbook", &["runbook"]),
    ("state", &["health", "ledger"]),
    ("planner", &["plan"]),
    ("host adapters", &["host"]),
    ("probes, actuators, reporting", &["probe", "act", "report"]),
    ("executor", &["enact"]),
    ("dry-run, maintenance", &["dryrun", "maintenance"]),
    ("daemon", &["daemon"]),
    ("binary", &["main", "cli", "logging"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`act/slots.rs` → `act`).
fn owner(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The product part of a file: no comments, nothing from the first `#[cfg(test)]`.
fn product_text(text: &str) -> String {
    let cut = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every path that follows `crate::`, including each
/// branch of a `crate::{a::x, b}` tree.
fn crate_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(tree) = rest.strip_prefix('{') {
            // split the tree's top level by commas
            let mut depth = 0;
            let mut item = String::new();
            for c in tree.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.push(first_segment(&item));
        } else {
            out.push(first_segment(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

fn first_segment(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut unknown = BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        if matches!(&*name, "tests.rs" | "props.rs" | "testing.rs" | "lib.rs") {
            continue;
        }
        let own = owner(&src, file);
        let Some(own_layer) = layer_of(&own) else {
            unknown.insert(own.clone(), file.display().to_string());
            continue;
        };
        let text = product_text(&std::fs::read_to_string(file).unwrap());
        for m in crate_modules(&text) {
            match layer_of(&m) {
                Some(l) if l > own_layer => violations.push(format!(
                    "{}: `{own}` ({}) uses `{m}` ({})",
                    file.strip_prefix(&src).unwrap().display(),
                    LAYERS[own_layer].0,
                    LAYERS[l].0
                )),
                Some(_) => {}
                None => {
                    unknown.insert(m, file.display().to_string());
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from the LAYERS table (add them where they belong): {unknown:?}"
    );
    assert!(
        violations.is_empty(),
        "upward imports:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_parser_sees_trees_and_inline_paths() {
    let text = "use crate::{act::kube, plan::{Gate, Decision}};\nlet x = crate::dryrun::f();";
    assert_eq!(crate_modules(text), ["act", "plan", "dryrun"]);
    assert_eq!(product_text("a // crate::x\n#[cfg(test)]\ncrate::y"), "a ");
}
