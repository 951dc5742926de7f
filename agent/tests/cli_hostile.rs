//! The binary against hostile input (#17): bad names and URLs are one-line
//! errors with exit 2 (never a panic, never a request), special files never
//! hang a command, ledger text cannot drive the terminal.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn nw(args: &[&str], ledger: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nodewarden"));
    c.args(args)
        .env("NODEWARDEN_LEDGER", ledger)
        .env_remove("NODEWARDEN_RUNBOOK")
        .env_remove("NODE_NAME")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("run nodewarden");
    // A hang is the failure being tested for: kill it rather than wait forever.
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("nodewarden {args:?} hung for 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn err_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn one_line_exit_2(o: &Output, fragment: &str) {
    let e = err_of(o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    // Start-up logs may come first; the error itself is one line.
    let errors: Vec<&str> = e.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "not one error line:\n{e}");
    assert!(errors[0].contains(fragment), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn urls_without_a_scheme_are_a_one_line_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("ledger.json");
    for url in ["127.0.0.1:18600", "notaurl"] {
        let o = nw(
            &[
                "run",
                "--node-name",
                "n1",
                "--api-url",
                url,
                "--metrics-addr",
                "off",
            ],
            &l,
            &[],
        );
        one_line_exit_2(&o, "--api-url");
    }
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: 127.0.0.1:18600\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let o = nw(
        &[
            "run",
            "--node-name",
            "n1",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--metrics-addr",
            "off",
        ],
        &l,
        &[("NOTIFY_SOCKET", "")],
    );
    one_line_exit_2(&o, "has no scheme");
}

#[test]
fn node_names_that_could_change_an_api_path_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("ledger.json");
    let o = nw(
        &[
            "run",
            "--no-api",
            "--node-name",
            "../namespaces/kube-system/secrets/x",
        ],
        &l,
        &[],
    );
    one_line_exit_2(&o, "not a valid node name");
    let o = nw(
        &["run", "--no-api"],
        &l,
        &[("NODE_NAME", "x?dryRun=All#frag")],
    );
    one_line_exit_2(&o, "not a valid node name");
    let o = nw(
        &["run", "--no-api", "--node-name", &"a".repeat(254)],
        &l,
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", err_of(&o));
    assert!(err_of(&o).contains("too long"), "{}", err_of(&o));
}

#[test]
fn fifos_and_devices_never_hang_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let mk = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(mk.success());
    let l = dir.path().join("ledger.json");
    let f = fifo.to_str().unwrap();
    let o = nw(&["runbook", "validate", f], &l, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err_of(&o).contains("FIFO"), "{}", err_of(&o));
    let o = nw(&["--runbook", "/dev/zero", "runbook", "show"], &l, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err_of(&o).contains("not a regular file"), "{}", err_of(&o));
    // A FIFO ledger: status says so and returns.
    let o = nw(&["status"], &fifo, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err_of(&o).contains("FIFO"), "{}", err_of(&o));
    // A FIFO maintenance.json (read by the daemon every tick) is refused at once.
    let mdir = tempfile::tempdir().unwrap();
    let m = mdir.path().join("maintenance.json");
    assert!(Command::new("mkfifo").arg(&m).status().unwrap().success());
    let o = nw(
        &["maintenance", "status"],
        &mdir.path().join("ledger.json"),
        &[],
    );
    assert!(
        err_of(&o).contains("FIFO") || String::from_utf8_lossy(&o.stdout).contains("FIFO"),
        "{}",
        err_of(&o)
    );
    // dry-run plans as the daemon would: the cap is spent, no reboot.
    let o = nw(&["dry-run", "--assume", "KubeletUnhealthy"], &fifo, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("reboot history"), "{out}");
}

#[test]
fn status_escapes_terminal_sequences_from_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("ledger.json");
    let evil = "\u{1b}]0;owned\u{7}\u{1b}[2J";
    let ledger = serde_json::json!({
        "schema": 1,
        "episode": {
            "id": "ep-1",
            "startedAt": "2026-11-23T08:00:00Z",
            "problems": ["KubeletUnhealthy"],
            "attempts": [{
                "step": "restart-kubelet",
                "action": "restartUnit",
                "startedAt": "2026-11-23T08:00:00Z",
                "outcome": {"result": "failed", "reason": evil},
                "detail": evil
            }],
            "hold": {"step": "x", "gate": "Gate", "reason": evil, "since": "2026-11-23T08:00:00Z"}
        },
        "cordon": {"byUs": true, "wasCordonedBefore": false, "at": "2026-11-23T08:00:00Z", "reason": evil},
        "reboots": [],
        "history": [],
        "closed": []
    });
    std::fs::write(&l, serde_json::to_vec(&ledger).unwrap()).unwrap();
    let o = nw(&["status"], &l, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("restart-kubelet"), "{out}{}", err_of(&o));
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(out.contains("\\u{1b}]0;owned"), "{out}");
}

#[test]
fn a_ledger_with_a_newer_field_keeps_its_reboot_count() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("ledger.json");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60;
    let at = jiff::Timestamp::from_second(now as i64)
        .unwrap()
        .to_string();
    let ledger = serde_json::json!({
        "schema": 1,
        "reboots": [{"at": at, "episode": "ep-1", "bootIdBefore": "a"}],
        "history": [],
        "closed": [],
        "somethingNewer": {"x": 1}
    });
    std::fs::write(&l, serde_json::to_vec(&ledger).unwrap()).unwrap();
    let o = nw(&["status"], &l, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("reboots: 1 of 1"), "{out}{}", err_of(&o));
}

#[test]
fn check_output_yaml_is_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let o = nw(
        &["check", "--output", "yaml"],
        &dir.path().join("l.json"),
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.trim_start().starts_with('{'), "JSON, not YAML:\n{out}");
    assert!(
        out.contains("\nobservations:\n") || out.starts_with("observations:"),
        "{out}"
    );
    assert!(out.contains("healthy: "), "{out}");
}
