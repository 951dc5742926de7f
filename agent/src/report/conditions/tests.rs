use super::*;

#[test]
fn reasons_are_camel_case() {
    assert_eq!(reason_word("act"), "Act");
    assert_eq!(reason_word(""), "");
}
