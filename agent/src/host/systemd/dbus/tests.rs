use super::*;

#[test]
fn timestamps() {
    assert_eq!(usec_to_timestamp(0), None);
    let t = usec_to_timestamp(1_700_000_000_123_456).unwrap();
    assert_eq!(t.as_microsecond(), 1_700_000_000_123_456);
    assert_eq!(t.to_string(), "2023-11-14T22:13:20.123456Z");
    assert_eq!(usec_to_timestamp(u64::MAX), None);
}

#[test]
fn trait_is_dyn_compatible() {
    fn takes(_: &dyn Systemd) {}
    let s = DbusSystemd::new(DbusOptions::default());
    takes(&s);
}
