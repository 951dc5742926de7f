use super::*;

fn stat_line(pid: u32, comm: &str, state: char, start: u64) -> String {
    // A full stat line as Linux 6.1 writes it (52 fields).
    format!(
        "{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 1197 0 3 0 10 4 0 0 20 0 12 0 {start} 1402695680 9812 18446744073709551615 1 1 0 0 0 0 1002055680 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
}

fn put(root: &Path, pid: u32, comm: &str, state: char, start: u64) {
    std::fs::create_dir_all(root.join(pid.to_string())).unwrap();
    std::fs::write(
        root.join(format!("{pid}/stat")),
        stat_line(pid, comm, state, start),
    )
    .unwrap();
}

fn seen(v: &[ProcStat]) -> Vec<(u32, char)> {
    v.iter().map(|p| (p.pid, p.state)).collect()
}

#[test]
fn known_processes_are_reread_and_new_ones_found_at_the_rescan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, 80, "dockerd", 'S', 100);
    put(root, 90, "containerd-shim", 'S', 200);
    put(root, 5, "sshd", 'D', 50);
    let procs = RuntimeProcs::default();
    let t0 = Instant::now();
    assert_eq!(
        seen(&procs.current(root, t0, false).unwrap()),
        [(80, 'S'), (90, 'S')]
    );

    // A known process changes state: seen at the next round without a scan.
    put(root, 80, "dockerd", 'D', 100);
    // A new shim: not seen until a rescan.
    put(root, 91, "containerd-shim", 'D', 300);
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(
        seen(&procs.current(root, t1, false).unwrap()),
        [(80, 'D'), (90, 'S')]
    );
    // The runtime's API failing forces the scan at once.
    assert_eq!(
        seen(&procs.current(root, t1, true).unwrap()),
        [(80, 'D'), (90, 'S'), (91, 'D')]
    );
    // A known process ending forces it too: 91 gone, 92 new.
    std::fs::remove_dir_all(root.join("91")).unwrap();
    put(root, 92, "dockerd", 'D', 400);
    let t2 = t1 + Duration::from_secs(10);
    assert_eq!(
        seen(&procs.current(root, t2, false).unwrap()),
        [(80, 'D'), (90, 'S'), (92, 'D')]
    );
    // So does a reused pid (another start time): a new process.
    put(root, 90, "containerd-shim", 'D', 999);
    let got = procs.current(root, t2, false).unwrap();
    assert_eq!(got.iter().find(|p| p.pid == 90).map(|p| p.start), Some(999));
    // The periodic rescan finds what appeared quietly.
    put(root, 93, "containerd", 'S', 500);
    assert_eq!(procs.current(root, t2, false).unwrap().len(), 3);
    assert_eq!(
        procs.current(root, t2 + RESCAN_EVERY, false).unwrap().len(),
        4
    );
}

#[test]
fn rescan_timing() {
    let t = Instant::now();
    assert!(rescan_due(None, t, false));
    assert!(!rescan_due(Some(t), t + Duration::from_secs(59), false));
    assert!(rescan_due(Some(t), t + RESCAN_EVERY, false));
    assert!(rescan_due(Some(t), t, true));
}
