use super::*;
use crate::domain::{Dur, Problem};

fn errors_of(text: &str) -> Vec<Diagnostic> {
    match parse("rb.yaml", text) {
        Ok(l) => panic!(
            "expected errors, got a valid runbook: {:?}",
            l.runbook.metadata
        ),
        Err(RunbookError::Invalid { diagnostics, .. }) => diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect(),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// The one error of `text`, asserting its line and a fragment of its message.
fn expect_error(text: &str, line: u64, fragment: &str) {
    let errs = errors_of(text);
    assert!(
        errs.iter()
            .any(|d| d.line == line && d.message.contains(fragment)),
        "expected an error at line {line} containing {fragment:?}, got:\n{}",
        errs.iter()
            .map(|d| d.render("rb.yaml"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

const MINIMAL: &str = "\
apiVersion: nodewarden.io/v1alpha1
kind: Runbook
spec:
  steps:
    - name: restart-kubelet
      when: [KubeletUnhealthy]
      action:
        restartUnit: {unit: kubelet.service}
";

#[test]
fn default_runbook_is_valid_and_has_the_documented_ladder() {
    let l = default_runbook();
    let names: Vec<_> = l
        .runbook
        .spec
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "restart-kubelet",
            "restart-container-runtime",
            "restart-time-sync",
            "drain",
            "reboot",
            "report-outdated-systemd",
            "report-swap-on",
            "report-kernel-prerequisites",
            "report-cgroup-driver-mismatch",
            "report-disk-nearly-full",
            "report-kubelet-certificate",
            "report-api-server-unreachable",
        ]
    );
    // Every problem has a step, and every report-only problem a report step.
    for p in Problem::ALL {
        let steps: Vec<_> = l
            .runbook
            .spec
            .steps
            .iter()
            .filter(|s| s.when.contains(&p))
            .collect();
        assert!(!steps.is_empty(), "{p} has no step");
        if p.report_only() {
            assert!(
                steps.iter().all(|s| s.action.kind() == ActionKind::Report),
                "{p}"
            );
        }
    }
    let s = &l.runbook.spec.safety;
    assert_eq!(s.max_concurrent_disruptions, 1);
    assert_eq!(s.storm_gate.max_unhealthy_percent, 20);
    assert_eq!(s.reboots.max, 1);
    assert_eq!(s.reboots.window, Dur::from_secs(6 * 3600));
    let kubelet = &l.runbook.spec.steps[0];
    assert!(!kubelet.disruptive && !kubelet.cordon);
    assert_eq!(kubelet.cooldown, Dur::from_secs(60));
    let runtime = &l.runbook.spec.steps[1];
    assert!(runtime.disruptive && runtime.cordon);
    assert_eq!(runtime.cooldown, Dur::from_secs(120));
    assert_eq!(l.runbook.spec.probes.pleg.threshold, Dur::from_secs(180));
    assert!(
        l.warnings.iter().all(|w| w.severity == Severity::Warning),
        "{:?}",
        l.warnings
    );
}

#[test]
fn effective_runbook_round_trips_through_show() {
    let l = default_runbook();
    let yaml = to_yaml(&l.runbook);
    let again = parse("shown.yaml", &yaml).unwrap_or_else(|e| panic!("{e}\n---\n{yaml}"));
    assert_eq!(again.runbook, l.runbook);
}

#[test]
fn minimal_runbook_gets_defaults() {
    let l = parse("rb.yaml", MINIMAL).unwrap();
    let rb = &l.runbook;
    assert_eq!(rb.metadata.name, "unnamed");
    assert_eq!(
        rb.spec.probes.kubelet.healthz_url,
        "http://127.0.0.1:10248/healthz"
    );
    assert_eq!(rb.spec.steps[0].verify, Dur::from_secs(220));
    // Problems without a step are reported as warnings, not errors.
    assert!(l.warnings.iter().any(|w| w.message.contains("ClockSkewed")));
}

#[test]
fn syntax_errors_name_line_and_column() {
    let text = "apiVersion: nodewarden.io/v1alpha1\nkind: Runbook\nspec:\n  steps: [\n";
    let errs = errors_of(text);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].line >= 4, "{:?}", errs[0]);
    let rendered = errs[0].render("rb.yaml");
    assert!(rendered.starts_with("rb.yaml:"), "{rendered}");
}

#[test]
fn unknown_fields_are_errors() {
    let text = MINIMAL.replace("      when:", "      whne: [X]\n      when:");
    expect_error(&text, 6, "whne");
    let text = MINIMAL.replace("kind: Runbook", "kind: Runbook\nextra: 1");
    expect_error(&text, 3, "extra");
}

#[test]
fn unknown_problem_and_action_are_errors() {
    let text = MINIMAL.replace("[KubeletUnhealthy]", "[KubeletUnhappy]");
    expect_error(&text, 6, "KubeletUnhappy");
    let text = MINIMAL.replace(
        "restartUnit: {unit: kubelet.service}",
        "restartEverything: {}",
    );
    expect_error(&text, 8, "restartEverything");
}

#[test]
fn bad_durations_are_errors() {
    let bad = [
        ("-5s", "negative"),
        ("5", "unit"),
        ("5 parsecs", "invalid"),
        ("9999d", "too long"),
    ];
    for (d, frag) in bad {
        let text = MINIMAL.replace(
            "      action:",
            &format!("      verify: {d}\n      action:"),
        );
        expect_error(&text, 7, frag);
    }
}

#[test]
fn duplicate_step_names_are_errors() {
    let text = format!(
        "{MINIMAL}    - name: restart-kubelet\n      when: [PLEGUnhealthy]\n      action:\n        restartUnit: {{unit: kubelet.service}}\n"
    );
    expect_error(&text, 9, "duplicate step name");
}

#[test]
fn invalid_unit_names_are_errors() {
    let text = MINIMAL.replace("unit: kubelet.service", "unit: kubelet");
    expect_error(&text, 8, "not a valid systemd unit name");
    let text = MINIMAL.replace("unit: kubelet.service", "unit: \"kube let.service\"");
    expect_error(&text, 8, "not a valid systemd unit name");
}

#[test]
fn reboot_before_drain_is_an_error() {
    let text = format!(
        "{MINIMAL}    - name: reboot\n      when: [KubeletUnhealthy]\n      action:\n        reboot: {{}}\n    - name: drain\n      when: [KubeletUnhealthy]\n      action:\n        drain: {{}}\n"
    );
    expect_error(&text, 9, "no earlier drain step");
}

#[test]
fn drain_and_reboot_cannot_be_non_disruptive_and_disruptive_steps_must_cordon() {
    let text = format!(
        "{MINIMAL}    - name: drain\n      when: [KubeletUnhealthy]\n      disruptive: false\n      action:\n        drain: {{}}\n"
    );
    expect_error(&text, 11, "always disruptive");
    let text = format!(
        "{MINIMAL}    - name: fix\n      when: [KubeletUnhealthy]\n      cordon: false\n      action:\n        exec: {{argv: [/usr/local/bin/fix]}}\n"
    );
    expect_error(&text, 11, "must cordon first");
}

#[test]
fn exec_needs_an_absolute_argv0() {
    let text = format!(
        "{MINIMAL}    - name: fix\n      when: [KubeletUnhealthy]\n      action:\n        exec: {{argv: [fix-it, --now]}}\n"
    );
    expect_error(&text, 12, "absolute path");
    let text = format!(
        "{MINIMAL}    - name: fix\n      when: [KubeletUnhealthy]\n      action:\n        exec: {{argv: []}}\n"
    );
    expect_error(&text, 12, "must not be empty");
}

#[test]
fn verify_shorter_than_ok_for_is_an_error() {
    let text = MINIMAL.replace("      action:", "      verify: 30s\n      action:");
    expect_error(&text, 7, "could never be seen to work");
}

#[test]
fn probe_settings_are_checked() {
    let base = MINIMAL.replace(
        "spec:\n",
        "spec:\n  probes:\n    KubeletUnhealthy:\n      interval: 10s\n      timeout: 30s\n",
    );
    expect_error(&base, 7, "exceeds interval");
    let foreign = MINIMAL.replace(
        "spec:\n",
        "spec:\n  probes:\n    ClockSkewed:\n      threshold: 3m\n",
    );
    // Each problem has its own schema type: another problem's field is an
    // unknown field, reported by the parser at its position.
    expect_error(&foreign, 6, "unknown field `threshold`");
    let foreign = MINIMAL.replace(
        "spec:\n",
        "spec:\n  probes:\n    SwapOn:\n      interval: 1m\n      marginPercent: 5\n",
    );
    expect_error(&foreign, 7, "unknown field `marginPercent`");
    let unknown = MINIMAL.replace(
        "spec:\n",
        "spec:\n  probes:\n    DiskPressure:\n      interval: 1m\n",
    );
    expect_error(&unknown, 5, "DiskPressure");
    let skew = MINIMAL.replace(
        "spec:\n",
        "spec:\n  probes:\n    ClockSkewed:\n      maxSkew: 1s\n",
    );
    expect_error(&skew, 6, "maxSkew must be at least 2s");
}

#[test]
fn safety_settings_are_checked() {
    let add = |s: &str| format!("{MINIMAL}  safety:\n{s}");
    expect_error(&add("    maxConcurrentDisruptions: 0\n"), 10, "1..=1000");
    expect_error(
        &add("    stormGate: {maxUnhealthyPercent: 120}\n"),
        10,
        "0..=100",
    );
    expect_error(
        &add("    requireApiForDisruptive: false\n"),
        10,
        "not supported",
    );
    expect_error(
        &add(
            "    blackouts:\n      - days: [Mon]\n        from: \"9:00\"\n        to: \"17:00\"\n",
        ),
        12,
        "HH:MM",
    );
    expect_error(
        &add(
            "    blackouts:\n      - days: [Funday]\n        from: \"09:00\"\n        to: \"17:00\"\n",
        ),
        11,
        "not a day",
    );
    expect_error(
        &add(
            "    blackouts:\n      - days: [Mon]\n        from: \"09:00\"\n        to: \"17:00\"\n        timeZone: Mars/Olympus\n",
        ),
        14,
        "unknown time zone",
    );
    expect_error(&add("    maxConcurrentDisruptions: -1\n"), 10, "");
}

#[test]
fn wrong_header_is_an_error() {
    expect_error(
        &MINIMAL.replace("nodewarden.io/v1alpha1", "v1"),
        1,
        "apiVersion",
    );
    expect_error(&MINIMAL.replace("kind: Runbook", "kind: Pod"), 2, "kind");
}

#[test]
fn alias_bombs_and_huge_input_are_refused_without_panicking() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..20 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("b{}", i - 1)
        };
        bomb.push_str(&format!(
            "b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    assert!(parse("bomb.yaml", &bomb).is_err());
    let huge = "#".repeat(MAX_RUNBOOK_BYTES as usize + 1);
    assert!(matches!(
        parse("huge.yaml", &huge),
        Err(RunbookError::TooLarge { .. })
    ));
    for junk in [
        "",
        "---",
        "[]",
        "42",
        "null",
        "\u{0}\u{1}",
        ": : :",
        "&a *a",
    ] {
        assert!(parse("junk.yaml", junk).is_err(), "{junk:?}");
    }
}

#[test]
fn unreadable_files_are_clear_errors() {
    let e = load_file(std::path::Path::new("/nonexistent/runbook.yaml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/runbook.yaml: cannot read runbook"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let e = load_file(dir.path()).unwrap_err();
    assert!(e.to_string().contains("is a directory"), "{e}");
    let p = dir.path().join("bin.yaml");
    std::fs::write(&p, [0xff, 0xfe, 0x00]).unwrap();
    let e = load_file(&p).unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
}

#[test]
fn blackout_windows_follow_time_zone_and_midnight() {
    let text = format!(
        "{MINIMAL}  safety:\n    blackouts:\n      - days: [Fri]\n        from: \"22:00\"\n        to: \"06:00\"\n        timeZone: Europe/Berlin\n"
    );
    let rb = parse("rb.yaml", &text).unwrap().runbook;
    let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    // 2026-11-27 is a Friday; Berlin is UTC+1 in November.
    assert!(rb.blackout_at(at("2026-11-27T21:30:00Z")).is_some()); // Fri 22:30 Berlin
    assert!(rb.blackout_at(at("2026-11-28T04:59:00Z")).is_some()); // Sat 05:59 Berlin
    assert!(rb.blackout_at(at("2026-11-28T05:00:00Z")).is_none()); // Sat 06:00 Berlin
    assert!(rb.blackout_at(at("2026-11-27T20:59:00Z")).is_none()); // Fri 21:59 Berlin
    assert!(rb.blackout_at(at("2026-11-26T21:30:00Z")).is_none()); // Thu 22:30 Berlin
}

#[test]
fn problems_parse_case_insensitively_for_the_cli_but_strictly_in_yaml() {
    assert_eq!(
        "plegunhealthy".parse::<Problem>().unwrap(),
        Problem::PlegUnhealthy
    );
    let text = MINIMAL.replace("[KubeletUnhealthy]", "[kubeletunhealthy]");
    expect_error(&text, 6, "kubeletunhealthy");
}

fn step(name: &str, body: &str) -> String {
    format!("{MINIMAL}    - name: {name}\n      when: [KubeletUnhealthy]\n{body}")
}

#[test]
fn a_probe_that_could_never_run_is_refused_at_validation() {
    let k = |field: &str| {
        MINIMAL.replace(
            "spec:\n",
            &format!("spec:\n  probes:\n    KubeletUnhealthy:\n      {field}\n"),
        )
    };
    expect_error(
        &k("healthzUrl: https://127.0.0.1:10250/healthz"),
        6,
        "only plain http://",
    );
    expect_error(&k("healthzUrl: \"http://\""), 6, "healthzUrl");
    expect_error(&k("healthzUrl: 127.0.0.1:10248"), 6, "healthzUrl");
    expect_error(&k("timeout: 1ms"), 6, "too short");
    expect_error(&k("timeout: 999ms"), 6, "too short");
    assert!(parse("rb.yaml", &k("timeout: 1s")).is_ok());
    let rt = MINIMAL.replace(
        "spec:\n",
        "spec:\n  probes:\n    ContainerRuntimeUnresponsive:\n      dockerSocket: run/docker.sock\n",
    );
    expect_error(&rt, 6, "must be absolute");
}

#[test]
fn dangerous_unit_restarts_are_refused() {
    let ru = |u: &str| {
        step(
            "x",
            &format!("      action:\n        restartUnit: {{unit: {u}}}\n"),
        )
    };
    expect_error(&ru("poweroff.target"), 12, "not a .service unit");
    expect_error(&ru("reboot.target"), 12, "not a .service unit");
    expect_error(&ru("containerd.service"), 12, "restartContainerRuntime");
    expect_error(&ru("docker.service"), 12, "restartContainerRuntime");
    expect_error(&ru("chronyd.service"), 12, "restartTimeSync");
    assert!(parse("rb.yaml", &ru("my-agent.service")).is_ok());
    let ts = step(
        "x",
        "      action:\n        restartTimeSync: {units: [containerd.service]}\n",
    );
    expect_error(&ts, 12, "not a time-sync daemon");
    let rt = step(
        "x",
        "      action:\n        restartContainerRuntime: {units: [reboot.target]}\n",
    );
    expect_error(&rt, 12, "not a .service unit");
    let rt = step(
        "x",
        "      action:\n        restartContainerRuntime: {units: [kubelet.service]}\n",
    );
    expect_error(&rt, 12, "not a container runtime");
}

#[test]
fn a_non_disruptive_exec_must_say_why_and_is_warned_about() {
    let no_reason = step(
        "x",
        "      disruptive: false\n      action:\n        exec: {argv: [/sbin/reboot]}\n",
    );
    expect_error(&no_reason, 11, "nonDisruptiveBecause");
    let with_reason = step(
        "x",
        "      disruptive: false\n      action:\n        exec: {argv: [/usr/local/bin/flush-cache], nonDisruptiveBecause: only drops a page cache}\n",
    );
    let l = parse("rb.yaml", &with_reason).unwrap();
    assert!(
        l.warnings
            .iter()
            .any(|w| w.message.contains("cannot judge") && w.message.contains("page cache")),
        "{:?}",
        l.warnings
    );
    let s = l.runbook.step("x").unwrap().1;
    assert!(!s.disruptive);
    // Shown and read back, the reason stays.
    let again = parse("shown.yaml", &to_yaml(&l.runbook)).unwrap();
    assert_eq!(again.runbook, l.runbook);
    // Without disruptive: false, exec is disruptive.
    let plain = step("x", "      action:\n        exec: {argv: [/bin/true]}\n");
    assert!(
        parse("rb.yaml", &plain)
            .unwrap()
            .runbook
            .step("x")
            .unwrap()
            .1
            .disruptive
    );
}

#[test]
fn nul_bytes_odd_times_and_tags_are_refused() {
    let nul = step(
        "x",
        "      action:\n        exec: {argv: [/bin/echo, \"a\\0b\"]}\n",
    );
    expect_error(&nul, 12, "NUL byte");
    for bad in ["+9:00", " 9:00", "9:00", "09:0", "+09:00"] {
        let b = format!(
            "{MINIMAL}  safety:\n    blackouts:\n      - days: [Mon]\n        from: \"{bad}\"\n        to: \"10:00\"\n"
        );
        expect_error(&b, 12, "not a time of day");
    }
    let tagged = MINIMAL.replace("unit: kubelet.service", "unit: !!str kubelet.service");
    expect_error(&tagged, 8, "YAML tag");
    let tagged = MINIMAL.replace("[KubeletUnhealthy]", "!custom [KubeletUnhealthy]");
    expect_error(&tagged, 6, "YAML tag");
}

#[test]
fn parser_errors_are_in_our_words() {
    let dup = MINIMAL.replace("kind: Runbook", "kind: Runbook\nkind: Runbook");
    expect_error(&dup, 3, "appears twice");
    let multi = format!("{MINIMAL}---\n{MINIMAL}");
    expect_error(&multi, 10, "more than one YAML document");
    let neg = format!("{MINIMAL}  safety:\n    maxConcurrentDisruptions: -1\n");
    expect_error(&neg, 10, "whole number from 0 to 4294967295");
    for text in [dup, multi, neg] {
        let e = parse("rb.yaml", &text).unwrap_err().to_string();
        for leak in [
            "DuplicateKeyPolicy",
            "from_str_multiple",
            "invalid u32",
            "budget breached",
        ] {
            assert!(!e.contains(leak), "{e}");
        }
    }
}

#[test]
fn a_huge_report_message_is_refused() {
    let big = "m".repeat(2000);
    let t = step(
        "x",
        &format!("      action:\n        report: {{message: {big}}}\n"),
    );
    expect_error(&t, 12, "report message");
}

#[test]
fn fifos_devices_and_endless_files_do_not_hang_or_eat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("runbook.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = load_file(&fifo).unwrap_err().to_string();
    assert!(e.contains("FIFO"), "{e}");
    let zero = dir.path().join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let e = load_file(&zero).unwrap_err().to_string();
    assert!(e.contains("character device"), "{e}");
}

#[test]
fn drift_probe_settings_are_checked() {
    let with = |probe: &str| MINIMAL.replace("spec:\n", &format!("spec:\n  probes:\n{probe}"));
    expect_error(
        &with(
            "    KernelPrerequisitesMissing:\n      sysctls:\n        - {name: ../../etc/shadow, value: \"1\"}\n",
        ),
        7,
        "not a sysctl name",
    );
    expect_error(
        &with(
            "    KernelPrerequisitesMissing:\n      sysctls:\n        - {name: net.ipv4.ip_forward, value: \"\"}\n",
        ),
        7,
        "one non-empty line",
    );
    expect_error(
        &with("    DiskNearlyFull:\n      marginPercent: 60\n"),
        6,
        "0..=50",
    );
    expect_error(
        &with("    DiskNearlyFull:\n      nodefsPaths: [var/lib/kubelet]\n"),
        6,
        "absolute path",
    );
    expect_error(
        &with("    CgroupDriverMismatch:\n      containerdConfig: config.toml\n"),
        6,
        "absolute path",
    );
    expect_error(
        &with("    KubeletCertificateInvalid:\n      warnDays: 5\n      failDays: 7\n"),
        7,
        "never come first",
    );
    expect_error(
        &with("    SwapOn:\n      interval: 10s\n      timeout: 20s\n"),
        7,
        "exceeds interval",
    );
}

#[test]
fn drift_probes_default_and_unbuilt_ones_stay_off() {
    let l = default_runbook();
    let p = &l.runbook.spec.probes;
    assert_eq!(p.kernel.sysctls.len(), 3);
    assert_eq!(p.disk.margin_percent, 5);
    assert!(
        p.disk
            .nodefs_paths
            .contains(&"/var/lib/kubelet".to_string())
    );
    // Every problem has its probe, on by default.
    for x in Problem::ALL {
        assert!(p.timing(x).enabled, "{x}");
    }
}
