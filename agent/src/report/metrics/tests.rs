use super::*;

#[test]
fn every_gate_is_exported() {
    let m = Metrics::new();
    m.set_hold_gate(Some(Gate::StormGate));
    let text = m.render();
    for g in Gate::ALL {
        let v = u8::from(g == Gate::StormGate);
        assert!(
            text.contains(&format!("nodewarden_hold_gate{{gate=\"{g}\"}} {v}")),
            "{g} missing:\n{text}"
        );
    }
}

#[test]
fn renders_the_text_format() {
    let m = Metrics::new();
    m.set_problem_active("KubeletUnhealthy", true);
    m.set_problem_active("ClockSkewed", false);
    m.step("restartUnit", "succeeded");
    m.step("restartUnit", "succeeded");
    m.step("drain", "failed");
    m.observe_probe("KubeletUnhealthy", Duration::from_millis(30));
    m.observe_probe("KubeletUnhealthy", Duration::from_secs(20));
    m.set_phase("verify");
    m.set_hold_gate(Some(Gate::StormGate));
    m.set_slot_held(true);
    m.set_last_decision(
        "act",
        Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(1_700_000_000),
    );
    let t = m.render();
    for line in [
        "nodewarden_problem_active{problem=\"KubeletUnhealthy\"} 1",
        "nodewarden_problem_active{problem=\"ClockSkewed\"} 0",
        "nodewarden_steps_total{action=\"restartUnit\",result=\"succeeded\"} 2",
        "nodewarden_steps_total{action=\"drain\",result=\"failed\"} 1",
        "nodewarden_probe_duration_seconds_bucket{problem=\"KubeletUnhealthy\",le=\"0.05\"} 1",
        "nodewarden_probe_duration_seconds_bucket{problem=\"KubeletUnhealthy\",le=\"10\"} 1",
        "nodewarden_probe_duration_seconds_bucket{problem=\"KubeletUnhealthy\",le=\"+Inf\"} 2",
        "nodewarden_probe_duration_seconds_count{problem=\"KubeletUnhealthy\"} 2",
        "nodewarden_episode_phase{phase=\"verify\"} 1",
        "nodewarden_episode_phase{phase=\"idle\"} 0",
        "nodewarden_hold_gate{gate=\"StormGate\"} 1",
        "nodewarden_hold_gate{gate=\"DisruptionSlot\"} 0",
        "nodewarden_slot_held 1",
        "nodewarden_last_decision{decision=\"act\"} 1",
        "nodewarden_last_decision_timestamp_seconds 1700000000",
    ] {
        assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
    }
    // Every sample line is `name{labels} value` or `name value`.
    for l in t.lines().filter(|l| !l.starts_with('#')) {
        assert_eq!(
            l.rsplit_once(' ').map(|(_, v)| v.parse::<f64>().is_ok()),
            Some(true),
            "{l}"
        );
    }
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[tokio::test]
async fn refuses_non_loopback_and_serves_on_loopback() {
    let any: SocketAddr = "0.0.0.0:0"
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    assert!(matches!(
        bind_loopback(any).await,
        Err(BindError::NotLoopback(_))
    ));
    let l = bind_loopback(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let Ok(l) = l else { panic!("bind: {l:?}") };
    let Ok(addr) = l.local_addr() else {
        panic!("addr")
    };
    let m = Arc::new(Metrics::new());
    m.set_slot_held(true);
    let task = serve(l, m);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        panic!("connect")
    };
    let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert!(s.write_all(req).await.is_ok());
    let mut out = String::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    assert!(matches!(r, Ok(Ok(_))), "{r:?}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("text/plain; version=0.0.4"), "{out}");
    assert!(out.contains("\nnodewarden_slot_held 1\n"), "{out}");
    task.abort();
}
