use super::*;

#[test]
fn escape_sequences_are_shown_not_run() {
    assert_eq!(printable("plain – ok"), "plain – ok");
    let s = printable("\u{1b}]0;pwned\u{7}\u{1b}[2J\r\nx\u{9b}31m");
    assert!(!s.chars().any(char::is_control), "{s}");
    assert_eq!(s, "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\r\\nx\\u{9b}31m");
}
