use super::*;

#[test]
fn library_wording_is_rewritten() {
    for (raw, want) in [
        (
            "duplicate mapping key: kind, set DuplicateKeyPolicy in Options if acceptable",
            "key \"kind\" appears twice",
        ),
        (
            "multiple YAML documents detected; use from_str_multiple or from_str_multiple_with_options",
            "more than one YAML document",
        ),
        (
            "budget breached: ScalarBytes { total_scalar_bytes: 1048577 } at line 3 column 1",
            "text values add up",
        ),
        ("invalid u32", "whole number from 0 to 4294967295"),
    ] {
        let m = message(raw);
        assert!(m.contains(want), "{raw} -> {m}");
        for leak in [
            "DuplicateKeyPolicy",
            "from_str_multiple",
            "ScalarBytes {",
            "invalid u32",
        ] {
            assert!(!m.contains(leak), "{m}");
        }
    }
}

#[test]
fn tags_are_found_at_their_position() {
    let d = find_tag("a: 1\nb: !!str x\n").unwrap();
    assert_eq!(d.line, 2);
    assert!(
        d.message.contains("!!str") || d.message.contains("tag:yaml.org"),
        "{}",
        d.message
    );
    assert!(find_tag("a: !custom [1]\n").is_some());
    assert!(find_tag("a: '!!str x'\nb: [1, 2]\n").is_none());
}
