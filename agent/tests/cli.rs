//! The `nodewarden` binary as an operator uses it: output, exit codes, and
//! that read-only commands write nothing.

use std::path::Path;
use std::process::{Command, Output};

fn nw(args: &[&str], ledger: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nodewarden"))
        .args(args)
        .env("NODEWARDEN_LEDGER", ledger)
        .env_remove("NODEWARDEN_RUNBOOK")
        .output()
        .expect("run nodewarden")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn dry_run_walks_the_whole_ladder_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.json");
    let o = nw(&["dry-run", "--assume", "KubeletUnhealthy"], &ledger);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let order = [
        "restart-kubelet",
        "restart-container-runtime",
        "\"drain\"",
        "\"reboot\"",
        "exhausted",
    ];
    let mut at = 0;
    for s in order {
        let i = out[at..]
            .find(s)
            .unwrap_or_else(|| panic!("{s} missing after byte {at}:\n{out}"));
        at += i;
    }
    assert!(out.contains("cordon first"), "{out}");
    assert!(out.contains("storm gate open"), "{out}");
    assert!(out.contains("reboot cap: 0 of 1"), "{out}");
    assert!(out.contains("if it works"), "{out}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "dry-run wrote something"
    );
}

#[test]
fn dry_run_json_is_machine_readable() {
    let dir = tempfile::tempdir().unwrap();
    let o = nw(
        &["dry-run", "--assume", "ClockSkewed:10m", "--output", "json"],
        &dir.path().join("l.json"),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let entries = v["timeline"]["entries"].as_array().unwrap();
    assert_eq!(entries[0]["decision"], "act", "already past failFor: {v}");
    assert!(
        entries
            .iter()
            .all(|e| !e["text"].as_str().unwrap().contains("reboot")),
        "{v}"
    );
    assert_eq!(v["timeline"]["outcome"], "exhausted");
}

#[test]
fn dry_run_shows_the_gate_that_holds() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("l.json");
    let o = nw(
        &[
            "dry-run",
            "--assume",
            "ContainerRuntimeUnresponsive:5m",
            "--unhealthy-nodes",
            "5",
        ],
        &l,
    );
    let (out, _) = text(&o);
    assert!(out.contains("held by StormGate"), "{out}");
    assert!(out.contains("5 of 10 other nodes"), "{out}");
    let o = nw(
        &[
            "dry-run",
            "--assume",
            "ContainerRuntimeUnresponsive:5m",
            "--api-down",
        ],
        &l,
    );
    assert!(text(&o).0.contains("held by ApiUnreachable"));
}

/// Without `--assume`, dry-run plans from one live look at this host. The
/// host is not ours to control (a testbed's fake kubelet shares the host's
/// network namespace and may be failing on 127.0.0.1:10248), so the probes are
/// disabled here: nothing fails, nothing is planned, exit 0.
#[test]
fn healthy_dry_run_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("probes-off.yaml");
    std::fs::write(
        &rb,
        "apiVersion: nodewarden.io/v1alpha1\nkind: Runbook\nmetadata: {name: probes-off}\nspec:\n  probes:\n    KubeletUnhealthy: {enabled: false}\n    PLEGUnhealthy: {enabled: false}\n    ContainerRuntimeUnresponsive: {enabled: false}\n    ClockSkewed: {enabled: false}\n    SystemdOutdated: {enabled: false}\n    SwapOn: {enabled: false}\n    KernelPrerequisitesMissing: {enabled: false}\n    CgroupDriverMismatch: {enabled: false}\n    DiskNearlyFull: {enabled: false}\n  steps:\n    - name: note\n      when: [SystemdOutdated]\n      action: {report: {}}\n",
    )
    .unwrap();
    let o = nw(
        &["--runbook", rb.to_str().unwrap(), "dry-run"],
        &dir.path().join("l.json"),
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).0.contains("nothing to do"));
}

#[test]
fn bad_input_is_a_one_line_error_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("l.json");
    for args in [
        vec!["dry-run", "--assume", "KubeletUnhappy"],
        vec!["dry-run", "--assume", "KubeletUnhealthy:-5m"],
        vec!["dry-run", "--at", "yesterday"],
        vec!["--runbook", "/nonexistent.yaml", "dry-run"],
        vec!["no-such-command"],
    ] {
        let o = nw(&args, &l);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out}{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn runbook_validate_names_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("rb.yaml");
    let text_in = nodewarden::runbook::DEFAULT_YAML.replace("cooldown: 2m", "cooldown: 2 minutes");
    std::fs::write(&rb, text_in).unwrap();
    let o = nw(
        &["runbook", "validate", rb.to_str().unwrap()],
        &dir.path().join("l.json"),
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    let line = err.lines().next().unwrap();
    let prefix = format!("{}:", rb.display());
    assert!(line.starts_with(&prefix), "{line}");
    let pos: Vec<&str> = line[prefix.len()..].splitn(3, ':').collect();
    assert!(pos[0].parse::<u32>().unwrap() > 60, "{line}");
    assert!(pos[1].parse::<u32>().is_ok(), "{line}");

    std::fs::write(&rb, nodewarden::runbook::DEFAULT_YAML).unwrap();
    let o = nw(
        &["runbook", "validate", rb.to_str().unwrap()],
        &dir.path().join("l.json"),
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).0.contains("valid (12 steps)"));
}

#[test]
fn runbook_show_prints_a_runbook_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let o = nw(&["runbook", "show"], &dir.path().join("l.json"));
    assert_eq!(o.status.code(), Some(0));
    let shown = dir.path().join("shown.yaml");
    std::fs::write(&shown, &o.stdout).unwrap();
    let o = nw(
        &["runbook", "validate", shown.to_str().unwrap()],
        &dir.path().join("l.json"),
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
}

#[test]
fn status_reads_the_ledger_and_never_moves_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("ledger.json");
    let o = nw(&["status"], &l);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).0.contains("episode: none"));
    std::fs::write(&l, "{garbage").unwrap();
    let o = nw(&["status"], &l);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("corrupt ledger"));
    assert_eq!(std::fs::read_to_string(&l).unwrap(), "{garbage");
    // dry-run reports it and plans as the daemon would: nothing salvaged, so
    // the reboot cap counts as spent.
    let o = nw(&["dry-run", "--assume", "KubeletUnhealthy"], &l);
    assert!(text(&o).0.contains("will move it aside"), "{:?}", text(&o));
    assert!(
        text(&o).0.contains("the reboot cap counts as spent"),
        "{:?}",
        text(&o)
    );
    assert_eq!(std::fs::read_to_string(&l).unwrap(), "{garbage");
}

#[test]
fn maintenance_status_and_refusals_without_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.json");
    let o = nw(&["maintenance", "status"], &ledger);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("no maintenance in force"), "{out}");

    let o = nw(&["maintenance", "status", "-o", "json"], &ledger);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["inForce"], false);

    // A corrupt state file is named, exit 2, and left where it is.
    let state = dir.path().join("maintenance.json");
    std::fs::write(&state, "{not json").unwrap();
    let o = nw(&["maintenance", "status"], &ledger);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("maintenance.json"), "{err}");
    assert!(state.exists());
    std::fs::remove_file(&state).unwrap();

    // The API unreachable at start: exit 1, nothing written.
    let o = nw(
        &[
            "maintenance",
            "start",
            "--api-url",
            "http://127.0.0.1:9",
            "--node-name",
            "n1",
            "--api-timeout",
            "2s",
        ],
        &ledger,
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("nothing changed"), "{err}");
    assert!(!state.exists());

    // A drain without a deadline is refused as input.
    let o = nw(
        &[
            "maintenance",
            "start",
            "--api-url",
            "http://127.0.0.1:9",
            "--node-name",
            "n1",
            "--timeout",
            "0s",
        ],
        &ledger,
    );
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
}

/// With no --kubeconfig and no in-cluster account, `$KUBECONFIG`'s files are read and
/// merged as kubectl merges them (act/kubeconfig.rs reads them, not kube's loader): the
/// context named by the first file is found in the second, whose server is then dialled.
#[test]
fn kubeconfig_files_of_the_environment_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::fs::write(&a, "current-context: x\n").unwrap();
    std::fs::write(
        &b,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:9\"}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .unwrap();
    let ledger = dir.path().join("ledger.json");
    let start = |kubeconfig: String| {
        let o = Command::new(env!("CARGO_BIN_EXE_nodewarden"))
            .args(["maintenance", "start", "--node-name", "n1"])
            .args(["--api-timeout", "2s"])
            .env("NODEWARDEN_LEDGER", &ledger)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("NODEWARDEN_RUNBOOK")
            .output()
            .expect("run nodewarden");
        (o.status.code(), text(&o).1)
    };
    // both files: the merged context's server refuses the connection
    let (code, err) = start(format!("{}:{}", a.display(), b.display()));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unreachable"), "{err}");
    // the first alone names a context it does not have
    let (code, err) = start(a.display().to_string());
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("context"), "{err}");
    // a missing file is named
    let missing = dir.path().join("missing");
    let (code, err) = start(missing.display().to_string());
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(!dir.path().join("maintenance.json").exists());
}
