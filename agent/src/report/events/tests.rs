use super::*;

#[test]
fn truncation_respects_char_boundaries() {
    let s = "é".repeat(600);
    let t = truncate(&s, MAX_NOTE);
    assert!(t.len() <= MAX_NOTE && t.ends_with("..."));
    assert_eq!(truncate("short", 10), "short");
}
