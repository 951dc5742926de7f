use super::*;

#[test]
fn grpc_frames_are_summed() {
    assert_eq!(grpc_payload_len(&[]), 0);
    assert_eq!(grpc_payload_len(&[0, 0, 0, 0, 0]), 0);
    assert_eq!(
        grpc_payload_len(&[0, 0, 0, 0, 2, 9, 9, 0, 0, 0, 0, 1, 7]),
        3
    );
    // truncated frame: count what is there
    assert_eq!(grpc_payload_len(&[0, 0, 0, 0, 9, 1]), 1);
}

#[test]
fn the_first_whole_uncompressed_message_is_kept() {
    assert_eq!(
        grpc_first_message(&[0, 0, 0, 0, 2, 9, 9, 0, 0, 0, 0, 1, 7]),
        vec![9, 9]
    );
    assert!(grpc_first_message(&[0, 0, 0, 0, 0]).is_empty());
    assert!(grpc_first_message(&[]).is_empty());
    // truncated, or compressed (flag 1): nothing to decode
    assert!(grpc_first_message(&[0, 0, 0, 0, 9, 1]).is_empty());
    assert!(grpc_first_message(&[1, 0, 0, 0, 1, 7]).is_empty());
}

#[test]
fn seconds_print_short() {
    assert_eq!(fmt_secs(Duration::from_millis(250)), "250ms");
    assert_eq!(fmt_secs(Duration::from_secs(10)), "10s");
    assert_eq!(fmt_secs(Duration::from_millis(1500)), "1.5s");
}

/// A server that answers once, without a length, and closes: the reply is
/// delimited by the close (HTTP/1.0; RFC 9112 section 6.3, rule 8).
async fn close_delimited_server(reply: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply).await;
            let _ = s.shutdown().await;
        }
    });
    addr
}

#[tokio::test]
async fn a_close_delimited_http_1_0_reply_is_a_reply() {
    let addr =
        close_delimited_server(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nok").await;
    for _ in 0..5 {
        let r = http_get(&format!("http://{addr}/healthz"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), 200);
        assert_eq!(r.body, b"ok");
    }
    let addr = close_delimited_server(b"HTTP/1.0 200 OK\r\n\r\n").await;
    let r = http_get(&format!("http://{addr}/"), Duration::from_secs(5)).await;
    assert_eq!(r.unwrap().status.as_u16(), 200);
    // Closing with no reply at all is still an error.
    let addr = close_delimited_server(b"").await;
    let r = http_get(&format!("http://{addr}/"), Duration::from_secs(5)).await;
    assert!(matches!(r, Err(CallError::Protocol(_))), "{r:?}");
}

#[test]
fn only_urls_the_probe_can_call_pass() {
    assert!(check_http_url("http://127.0.0.1:10248/healthz").is_ok());
    assert!(check_http_url("http://localhost/").is_ok());
    for bad in [
        "https://127.0.0.1:10250/healthz",
        "http://",
        "127.0.0.1:10248",
        "notaurl",
        "",
        "http://u@h/",
    ] {
        assert!(check_http_url(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_hung_child_is_killed_at_the_deadline() {
    let r = run_lines(
        Path::new("sleep"),
        &["30"],
        Duration::from_millis(200),
        |_| {},
    )
    .await;
    assert!(matches!(r, Err(CallError::Timeout { .. })), "{r:?}");
}

#[tokio::test]
async fn child_output_is_read_line_by_line() {
    let (f, out) = run_output(Path::new("printf"), &["a\\nb\\n"], Duration::from_secs(5))
        .await
        .unwrap();
    assert!(f.success);
    assert_eq!(out, "a\nb\n");
    let r = run_output(Path::new("/nonexistent/prog"), &[], Duration::from_secs(5)).await;
    assert!(matches!(r, Err(CallError::Spawn { .. })));
}
