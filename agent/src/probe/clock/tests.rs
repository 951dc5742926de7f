use super::*;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

#[test]
fn skew_is_corrected_by_half_the_round_trip() {
    // server stamped 100; the reply arrived at local 102 after a 2 s round trip:
    // the server's 100 was local 101, so the local clock is 1 s ahead
    let s = Skew::measure(t(100), Dur::from_secs(2), t(102));
    assert!((s.skew_secs - -1.0).abs() < 1e-6, "{s:?}");
    assert!((s.bound_secs - 2.0).abs() < 1e-6);
    assert!(s.excess(Dur::from_secs(5)) < 0.0);
    // 30 s behind with a small rtt: past a 5 s maxSkew even at the bound's edge
    let s = Skew::measure(t(130), Dur::from_millis(10), t(100));
    assert!(s.excess(Dur::from_secs(5)) > 20.0);
    // 5.5 s off with a 1.005 s bound: not certainly past 5 s; 7 s off is
    let s = Skew::measure(t(105), Dur::from_millis(1010), t(100));
    assert!(s.excess(Dur::from_secs(5)) < 0.0, "{s:?}");
    let s = Skew::measure(t(107), Dur::from_millis(10), t(100));
    assert!(s.excess(Dur::from_secs(5)) > 0.0, "{s:?}");
}
