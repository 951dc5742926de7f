use super::*;

#[test]
fn notifications_reach_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let server = UnixDatagram::bind(&path).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = Notifier {
        target: Some(SocketAddr::from_pathname(&path).unwrap()),
        last_status: std::sync::Mutex::new(None),
    };
    n.ready("watching\nnode").unwrap();
    let mut buf = [0u8; 256];
    let len = server.recv(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"READY=1\nSTATUS=watching node");
    n.watchdog().unwrap();
    let len = server.recv(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"WATCHDOG=1");
    // the same status again is not sent; a new one is, and the old one after it again
    n.status("watching node").unwrap();
    n.status("holding").unwrap();
    n.status("holding").unwrap();
    n.status("watching node").unwrap();
    n.stopping().unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let len = server.recv(&mut buf).unwrap();
        got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
    }
    assert_eq!(
        got,
        ["STATUS=holding", "STATUS=watching node", "STOPPING=1"],
        "only changes of STATUS are sent"
    );
}

#[test]
fn without_a_socket_notifying_is_a_no_op() {
    let n = Notifier::disabled();
    assert!(!n.enabled());
    n.ready("x").unwrap();
}
