use super::*;

fn d(s: &str) -> Dur {
    parse_go_duration(s).unwrap_or_else(|| panic!("{s}"))
}

#[test]
fn go_durations() {
    assert_eq!(d("3m5.123s").std().as_millis(), 185_123);
    assert_eq!(d("1h2m").std().as_secs(), 3720);
    assert_eq!(d("45.5s").std().as_millis(), 45_500);
    assert_eq!(d("3m0s").std().as_secs(), 180);
    assert_eq!(d("300ms").std().as_millis(), 300);
    assert_eq!(d("1.5µs").std().as_nanos(), 1500);
    assert_eq!(d("2h45m3.000000001s").std().as_nanos(), 9_903_000_000_001);
    assert_eq!(d("0s"), Dur::ZERO);
    assert_eq!(d("0"), Dur::ZERO);
    for bad in ["", "5", "-3s", "3x", "m", "1..2s", "3m5.1"] {
        assert!(parse_go_duration(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn both_kubelet_formats_parse() {
    let klog = r#"E0312 10:15:02.123456    1234 kubelet.go:2408] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active 3m5.123s ago; threshold is 3m0s""#;
    let r = parse_report(klog).unwrap();
    assert_eq!(r.last_seen, d("3m5.123s"));
    assert_eq!(r.threshold, Some(d("3m")));
    let cond = r#"I0312 10:15:03.1 1234 setters.go:552] "Node became not ready" node="n1" condition={"type":"Ready","status":"False","reason":"KubeletNotReady","message":"PLEG is not healthy: pleg was last seen active 3m5.1s ago; threshold is 3m0s"}"#;
    let r = parse_report(cond).unwrap();
    assert_eq!(r.last_seen, d("3m5.1s"));
    assert_eq!(r.threshold, Some(d("3m")));
    // the bare condition message, as the API shows it
    let r = parse_report(
            "container runtime is down, PLEG is not healthy: pleg was last seen active 1h2m ago; threshold is 3m0s",
        )
        .unwrap();
    assert_eq!(r.last_seen, d("1h2m"));
    assert!(parse_report("PLEG is not healthy: pleg has yet to be successful").is_none());
    assert!(parse_report("all good").is_none());
}

#[test]
fn journal_json_lines_collapse_duplicates() {
    let mut s = JournalScan::default();
    let line = |us: i64, ago: &str| {
        serde_json::json!({
                "__REALTIME_TIMESTAMP": us.to_string(),
                "MESSAGE": format!(r#"E0312 10:15:02.123456    1234 kubelet.go:2408] "Skipping pod synchronization" err="PLEG is not healthy: pleg was last seen active {ago} ago; threshold is 3m0s""#),
                "_SYSTEMD_UNIT": "kubelet.service",
            })
            .to_string()
    };
    s.feed_json(&line(1_800_000_000_000_000, "3m0.5s"));
    s.feed_json(&line(1_800_000_000_500_000, "3m0.5s"));
    s.feed_json(&line(1_800_000_001_000_000, "3m1.5s"));
    s.feed_json(r#"{"MESSAGE":"I0312 kubelet.go:1] ordinary line"}"#);
    s.feed_json("not json PLEG is not healthy");
    // a byte-array message (non-UTF-8 in journald)
    let bytes: Vec<u8> =
        b"PLEG is not healthy: pleg was last seen active 2m ago; threshold is 3m0s".to_vec();
    s.feed_json(&serde_json::json!({"MESSAGE": bytes}).to_string());
    assert_eq!(s.lines, 4);
    assert_eq!(s.distinct.len(), 3);
    let (worst, at) = s.worst.unwrap();
    assert_eq!(worst, d("3m1.5s"));
    assert_eq!(at.unwrap().as_second(), 1_800_000_001);
}
