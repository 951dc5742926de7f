use std::sync::atomic::{AtomicUsize, Ordering};

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

/// How a [`docker_like_server`] treats a connection.
#[derive(Clone, Copy)]
enum Keep {
    /// Answer every request on it, as dockerd (Go's net/http) does.
    Alive,
    /// Answer one request with `Connection: close`, then close.
    Close,
    /// Answer the first request, never the second.
    HangSecond,
    /// Answer one request as if the connection stayed open, then close it (an idle
    /// keep-alive connection closed by the server).
    CloseSilently,
}

/// A unix-socket HTTP/1.1 server; returns its socket and a count of accepted
/// connections. Each request is answered `200 OK` with the body `n` (its index on the
/// connection).
async fn docker_like_server(
    dir: &std::path::Path,
    keep: Keep,
) -> (
    std::path::PathBuf,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::AsyncWriteExt;
    let socket = dir.join("api.sock");
    let l = tokio::net::UnixListener::bind(&socket).unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for n in 0.. {
                    // read one request head (a GET has no body)
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 512];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    if matches!(keep, Keep::HangSecond) && n == 1 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    let close = matches!(keep, Keep::Close);
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n{}\r\n{n}",
                        if close { "Connection: close\r\n" } else { "" }
                    );
                    if s.write_all(reply.as_bytes()).await.is_err() || close {
                        return;
                    }
                    if matches!(keep, Keep::CloseSilently) {
                        // after the client has its reply, as an idle timeout would
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        return;
                    }
                }
            });
        }
    });
    (socket, accepted)
}

#[tokio::test]
async fn docker_requests_in_a_row_share_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, accepted) = docker_like_server(dir.path(), Keep::Alive).await;
    let mut api = UnixHttp::new(&socket);
    for n in 0..3 {
        let r = api.get("/_ping", Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.body.as_slice()),
            (200, format!("{n}").as_bytes())
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_peer_that_closes_after_a_reply_is_connected_to_again() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, accepted) = docker_like_server(dir.path(), Keep::Close).await;
    let mut api = UnixHttp::new(&socket);
    for _ in 0..3 {
        let r = api.get("/_ping", Duration::from_secs(5)).await.unwrap();
        assert_eq!((r.status.as_u16(), r.body.as_slice()), (200, &b"0"[..]));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_second_request_left_unanswered_is_a_timeout_and_the_next_connects_anew() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, accepted) = docker_like_server(dir.path(), Keep::HangSecond).await;
    let mut api = UnixHttp::new(&socket);
    let r = api.get("/_ping", Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.body, b"0");
    let r = api
        .get("/containers/json?limit=1", Duration::from_millis(300))
        .await;
    assert!(
        matches!(&r, Err(e) if e.is_timeout() && e.to_string().contains("waiting for the reply")),
        "{r:?}"
    );
    // the hung connection is dropped, not reused
    let r = api.get("/_ping", Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.body, b"0");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_kept_connection_closed_between_requests_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, accepted) = docker_like_server(dir.path(), Keep::CloseSilently).await;
    let mut api = UnixHttp::new(&socket);
    for i in 0..3 {
        let r = api.get("/_ping", Duration::from_secs(5)).await;
        let r = r.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.body, b"0");
        // the server closes the kept connection while the client is away
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
