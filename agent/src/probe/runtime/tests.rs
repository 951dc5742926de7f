use super::*;

#[test]
fn runtime_processes_in_d_through_procfs_with_odd_comms() {
    // A full stat line as Linux 6.1 writes it (52 fields); the comm may hold spaces and `)`.
    let line = |pid: u32, comm: &str, state: char| {
        format!(
            "{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 1197 0 3 0 10 4 0 0 20 0 12 0 98765 1402695680 9812 18446744073709551615 1 1 0 0 0 0 1002055680 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    for (pid, comm, state) in [
        (1234, "containerd-shim", 'D'),
        (77, "a (b) c", 'D'),
        (80, "dockerd", 'S'),
        (81, "dockerd", 'D'),
    ] {
        std::fs::create_dir_all(dir.path().join(pid.to_string())).unwrap();
        std::fs::write(
            dir.path().join(format!("{pid}/stat")),
            line(pid, comm, state),
        )
        .unwrap();
    }
    std::fs::create_dir_all(dir.path().join("90")).unwrap();
    std::fs::write(dir.path().join("90/stat"), "garbage").unwrap();
    let d = runtime_processes_in_d(dir.path()).unwrap();
    let got: Vec<(u32, &str, char, u64)> = d
        .iter()
        .map(|p| (p.pid, p.comm.as_str(), p.state, p.start))
        .collect();
    assert_eq!(
        got,
        [
            (81, "dockerd", 'D', 98765),
            (1234, "containerd-shim", 'D', 98765)
        ]
    );
    assert!(is_runtime_comm("dockerd"));
    assert!(is_runtime_comm("containerd-shim"));
    assert!(!is_runtime_comm("kubelet"));
}

#[test]
fn kmsg_hung_task_reports() {
    let text = "\
3,100,5000000,-;INFO: task dockerd:1234 blocked for more than 120 seconds.
 SUBSYSTEM=foo
6,101,5000001,-;      Not tainted 6.1.0 #1
3,102,900000000,-;INFO: task containerd:99 blocked for more than 122 seconds.
3,103,900000001,-;INFO: task nfsd:7 blocked for more than 120 seconds.
6,104,900000002,-;eth0: link up
";
    // now = 905 s since boot; window 10 min: the 5 s report is too old
    let h = hung_tasks(text, Duration::from_secs(905), KMSG_WINDOW);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].comm, "containerd");
    assert_eq!(h[0].pid, 99);
    assert_eq!(h[0].blocked_secs, 122);
    let h = hung_tasks(text, Duration::from_secs(300), KMSG_WINDOW);
    assert_eq!(h.len(), 2);
}

/// The device stays open between rounds: each round reads only what was logged since, and
/// a report is remembered for the window, then dropped. A FIFO stands in for /dev/kmsg
/// (not a regular file, so it is kept open; records arrive between reads).
#[test]
fn kmsg_is_read_incrementally_and_reports_are_kept_for_the_window() {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("kmsg");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // read-write, so opening does not wait for a reader
    let mut w = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut tail = KmsgTail::new(fifo.clone());
    w.write_all(b"3,1,100000000,-;INFO: task dockerd:1234 blocked for more than 120 seconds.\n6,2,100000001,-;eth0: link up\n")
        .unwrap();
    let h = tail
        .hung_tasks(Duration::from_secs(200), KMSG_WINDOW)
        .unwrap();
    assert_eq!(h.len(), 1, "{h:?}");
    // what was read is not read again: the writer's next record is all the FIFO holds
    w.write_all(b"3,3,300000000,-;INFO: task containerd:99 blocked for more than 122 seconds.\n")
        .unwrap();
    let h = tail
        .hung_tasks(Duration::from_secs(400), KMSG_WINDOW)
        .unwrap();
    let who: Vec<_> = h.iter().map(|t| (t.comm.as_str(), t.pid)).collect();
    assert_eq!(who, [("dockerd", 1234), ("containerd", 99)]);
    // 10 minutes after the first report, only the second is left
    let h = tail
        .hung_tasks(Duration::from_secs(701), KMSG_WINDOW)
        .unwrap();
    let who: Vec<_> = h.iter().map(|t| (t.comm.as_str(), t.pid)).collect();
    assert_eq!(who, [("containerd", 99)]);
    assert_eq!(tail.kept_len(), 1, "a report out of the window is dropped");
    // opened again after an error, the device replays what it still holds: a record
    // read twice is one report
    tail.close();
    w.write_all(b"3,3,300000000,-;INFO: task containerd:99 blocked for more than 122 seconds.\n3,4,700000000,-;INFO: task dockerd:5 blocked for more than 120 seconds.\n")
        .unwrap();
    let h = tail
        .hung_tasks(Duration::from_secs(701), KMSG_WINDOW)
        .unwrap();
    let who: Vec<_> = h.iter().map(|t| (t.comm.as_str(), t.pid)).collect();
    assert_eq!(who, [("containerd", 99), ("dockerd", 5)]);
}

/// A regular file is read whole every round (fixtures are rewritten between rounds).
#[test]
fn a_kmsg_file_is_read_whole_each_round() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("kmsg");
    std::fs::write(
        &f,
        "3,1,100000000,-;INFO: task dockerd:1 blocked for more than 120 seconds.\n",
    )
    .unwrap();
    let mut tail = KmsgTail::new(f.clone());
    assert_eq!(
        tail.hung_tasks(Duration::from_secs(200), KMSG_WINDOW)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        tail.hung_tasks(Duration::from_secs(200), KMSG_WINDOW)
            .unwrap()
            .len(),
        1
    );
    std::fs::write(&f, "6,2,100000001,-;eth0: link up\n").unwrap();
    assert!(
        tail.hung_tasks(Duration::from_secs(200), KMSG_WINDOW)
            .unwrap()
            .is_empty()
    );
}
