use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

fn strict() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Doc {
    name: Spanned<String>,
    #[serde(default)]
    count: Option<Spanned<u8>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    action: Option<Action>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum Action {
    Restart { unit: String },
    Reboot,
}

fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> Error {
    match from_str_with_options::<T>(text, strict()) {
        Ok(v) => panic!("expected an error for {text:?}, got {v:?}"),
        Err(e) => e,
    }
}

fn at(e: &Error) -> (u64, u64) {
    let l = e.location().unwrap_or_else(|| panic!("no location: {e}"));
    (l.line(), l.column())
}

#[test]
fn values_and_their_positions() {
    let d: Doc = from_str_with_options(
        "name: kubelet\ncount: 3\nenabled: true\ntags: [a, b]\nlabels:\n  x: y\naction:\n  restart: {unit: kubelet.service}\n",
        strict(),
    )
    .unwrap();
    assert_eq!(d.name.value, "kubelet");
    assert_eq!(
        (d.name.referenced.line(), d.name.referenced.column()),
        (1, 7)
    );
    let count = d.count.unwrap();
    assert_eq!(count.value, 3);
    assert_eq!((count.referenced.line(), count.referenced.column()), (2, 8));
    assert_eq!(d.enabled, Some(true));
    assert_eq!(d.tags, ["a", "b"]);
    assert_eq!(d.labels.get("x").map(String::as_str), Some("y"));
    assert_eq!(
        d.action,
        Some(Action::Restart {
            unit: "kubelet.service".into()
        })
    );
    let d: Doc = from_str_with_options("name: x\naction: reboot\n", strict()).unwrap();
    assert_eq!(d.action, Some(Action::Reboot));
}

/// A string field reads a plain scalar as written, even one the parser typed as a number
/// or a boolean (serde-saphyr's own typed read does the same).
#[test]
fn a_string_field_keeps_the_text_as_written() {
    let d: Doc = from_str_with_options(
        "name: 1.10\nlabels: {a: 010, b: True, c: 0x1F, d: -7, e: 1e3, f: \"quoted\", g: 12}\n",
        strict(),
    )
    .unwrap();
    assert_eq!(d.name.value, "1.10");
    let l = |k: &str| d.labels.get(k).cloned().unwrap_or_default();
    assert_eq!(l("a"), "010");
    assert_eq!(l("b"), "True");
    assert_eq!(l("c"), "0x1F");
    assert_eq!(l("d"), "-7");
    assert_eq!(l("e"), "1e3");
    assert_eq!(l("f"), "quoted");
    assert_eq!(l("g"), "12");
    // through an alias: the text where the anchor was written
    let d: Doc =
        from_str_with_options("labels: {a: &v 1.50, b: *v}\nname: *v\n", strict()).unwrap();
    assert_eq!(d.name.value, "1.50");
    assert_eq!(d.name.referenced.line(), 2);
    assert_eq!(d.name.defined.line(), 1);
    assert_eq!(d.labels.get("b").map(String::as_str), Some("1.50"));
}

#[test]
fn a_number_field_reads_a_quoted_number() {
    let d: Doc = from_str_with_options("name: x\ncount: \"7\"\n", strict()).unwrap();
    assert_eq!(d.count.map(|c| c.value), Some(7));
}

#[test]
fn errors_name_the_node_they_are_about() {
    // out of range: at the value
    let e = err::<Doc>("name: x\ncount: 300\n");
    assert_eq!(at(&e), (2, 8));
    assert!(e.message().contains("300"), "{e}");
    // a wrong type: at the value
    let e = err::<Doc>("name: x\ntags: {a: 1}\n");
    assert_eq!(at(&e), (2, 7));
    assert!(e.message().contains("invalid type: map"), "{e}");
    // an unknown field: at its key
    let e = err::<Doc>("name: x\n  \nbogus: 1\n");
    assert_eq!(at(&e), (3, 1));
    assert!(e.message().contains("unknown field `bogus`"), "{e}");
    // a missing field: at the mapping
    let e = err::<Doc>("\n\ncount: 1\n");
    assert_eq!(at(&e).0, 3);
    assert!(e.message().contains("missing field `name`"), "{e}");
    // an enum with two keys: at the mapping
    let e = err::<Doc>("name: x\naction: {reboot: ~, restart: {unit: u}}\n");
    assert_eq!(at(&e).0, 2);
    // an unknown variant: at its key
    let e = err::<Doc>("name: x\naction:\n  explode: {}\n");
    assert_eq!(at(&e), (3, 3));
    assert!(e.message().contains("unknown variant `explode`"), "{e}");
    // Display prints the position after the message
    assert!(e.to_string().ends_with("at line 3, column 3"), "{e}");
}

#[test]
fn the_parser_still_guards_the_input() {
    // syntax: the parser's message and position
    let e = err::<Doc>("name: [unclosed\n");
    assert!(e.location().is_some(), "{e}");
    // duplicate keys, as the options say
    let e = err::<Doc>("name: a\nname: b\n");
    assert!(e.message().contains("duplicate"), "{e}");
    assert_eq!(at(&e).0, 2);
    // an alias bomb is refused by the budget, not expanded into the tree
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12u8 {
        let (prev, next) = ((b'a' + i) as char, (b'a' + i + 1) as char);
        bomb.push_str(&format!(
            "{next}: &{next} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    let e = match from_str::<BTreeMap<String, Vec<serde::de::IgnoredAny>>>(&bomb) {
        Ok(_) => panic!("the alias bomb was expanded"),
        Err(e) => e,
    };
    assert!(!e.message().is_empty());
}

#[test]
fn booleans_as_the_options_say() {
    #[derive(Debug, Deserialize)]
    struct B {
        b: bool,
        s: String,
    }
    let e = err::<B>("b: yes\ns: on\n");
    assert!(e.message().contains("invalid type"), "{e}");
    let lenient: B = from_str("b: yes\ns: on\n").unwrap();
    assert!(lenient.b);
    // the tree keeps `on` as text: a string field reads it as written in both modes
    assert_eq!(lenient.s, "on");
    let strict_ok: B = from_str_with_options("b: false\ns: on\n", strict()).unwrap();
    assert!(!strict_ok.b);
    assert_eq!(strict_ok.s, "on");
}

#[test]
fn empty_documents_and_empty_values() {
    assert_eq!(from_str::<Option<Doc>>("").unwrap(), None);
    assert_eq!(from_str::<Option<Doc>>("# only a comment\n").unwrap(), None);
    let d: Doc = from_str("name: x\ntags:\nlabels:\n").unwrap();
    assert!(d.tags.is_empty() && d.labels.is_empty());
    let e = err::<Doc>("name:\n");
    assert_eq!(at(&e).0, 1);
}
