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
    };
    n.ready("watching\nnode").unwrap();
    let mut buf = [0u8; 256];
    let len = server.recv(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"READY=1\nSTATUS=watching node");
    n.watchdog().unwrap();
    let len = server.recv(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"WATCHDOG=1");
}

#[test]
fn without_a_socket_notifying_is_a_no_op() {
    let n = Notifier { target: None };
    assert!(!n.enabled());
    n.ready("x").unwrap();
}
