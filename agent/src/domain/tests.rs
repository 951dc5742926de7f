use super::*;

#[test]
fn gate_all_lists_every_gate_once() {
    // A new Gate variant fails to compile here until it is placed in ALL.
    let index = |g: Gate| match g {
        Gate::Maintenance => 0,
        Gate::Blackout => 1,
        Gate::ApiUnreachable => 2,
        Gate::NodeUnknown => 3,
        Gate::StormGate => 4,
        Gate::DisruptionSlot => 5,
    };
    for (i, g) in Gate::ALL.into_iter().enumerate() {
        assert_eq!(index(g), i, "{g}");
    }
}

#[test]
fn node_names_are_dns_subdomains() {
    for ok in ["worker-1", "ip-10-0-0-1.ec2.internal", "a", &"a".repeat(63)] {
        assert!(check_node_name(ok).is_ok(), "{ok}");
    }
    let long = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(63)
    );
    for bad in [
        "",
        "../namespaces/kube-system/secrets/x",
        "x?dryRun=All#frag",
        "Worker",
        "-a",
        "a-",
        "a..b",
        "a/b",
        "a%2Fb",
        &"a".repeat(64),
        &long,
    ] {
        assert!(check_node_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn durations_parse_like_kubernetes() {
    let ok = [
        ("0", 0),
        ("30s", 30_000),
        ("1m30s", 90_000),
        ("2h", 7_200_000),
        ("500ms", 500),
        ("1.5s", 1_500),
        ("1d", 86_400_000),
        ("1h0m5s", 3_605_000),
    ];
    for (s, ms) in ok {
        let d: Dur = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(d.std().as_millis(), ms, "{s}");
    }
    let bad = [
        "",
        "-5s",
        "5",
        "s",
        "5x",
        "1..5s",
        "401d",
        "99999999999999999999999h",
    ];
    for s in bad {
        assert!(s.parse::<Dur>().is_err(), "{s:?} should be rejected");
    }
}

#[test]
fn durations_print_back_the_same() {
    for s in ["30s", "1m30s", "2h", "500ms", "1d2h", "6h"] {
        let d: Dur = s.parse().unwrap();
        assert_eq!(d.to_string(), s);
    }
}

#[test]
fn problem_names_round_trip() {
    for p in Problem::ALL {
        assert_eq!(p.as_str().parse::<Problem>().unwrap(), p);
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(j, format!("\"{}\"", p.as_str()));
    }
    assert!("Nope".parse::<Problem>().is_err());
}
