//! The limits every inbound endpoint (push, VGS) is served with: a client that sends its
//! headers or its body too slowly is cut off, and connections beyond the cap wait in the
//! kernel's queue until one closes. `server::serve` is what both endpoints run; here it
//! serves a route that reads its body the way both handlers do ([`BodyLimit`]), with
//! short limits so the tests take a second, not the production 10 s and 30 s.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use cen_poller::server::{self, BodyLimit, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const HEADER_TIMEOUT: Duration = Duration::from_millis(400);
const BODY_TIMEOUT: Duration = Duration::from_millis(400);
/// Longer than any limit: a test that reaches it has failed.
const GUARD: Duration = Duration::from_secs(20);

struct Server {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(max_connections: usize, header_timeout: Duration) -> Server {
    let limits = Limits {
        max_connections,
        handshake_timeout: Duration::from_secs(10),
        header_timeout,
        body_timeout: BODY_TIMEOUT,
    };
    let body = BodyLimit { max: 1024, timeout: limits.body_timeout, key: "test.max_body" };
    let app = Router::new().route(
        "/in",
        post(move |b: Body| {
            let body = body.clone();
            async move {
                match body.read(b).await {
                    Ok(bytes) => server::error_response(axum::http::StatusCode::OK, format!("{} bytes", bytes.len())),
                    Err(refused) => refused,
                }
            }
        }),
    );
    let listener = server::bind("127.0.0.1:0".parse().unwrap(), "test.listen").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server::serve(listener, None, app, limits, shutdown.clone()));
    Server { addr, shutdown }
}

/// Reads until the server closes the connection (or the guard expires, which fails).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(GUARD, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open for {GUARD:?}");
    String::from_utf8_lossy(&out).into_owned()
}

/// One complete request on a keep-alive connection; returns the status line.
async fn request(stream: &mut TcpStream, body: &str) -> String {
    let req = format!("POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(GUARD, stream.read(&mut buf)).await.expect("an answer").unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_client_that_does_not_finish_its_headers_is_disconnected() {
    let server = start(16, HEADER_TIMEOUT).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"POST /in HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(started.elapsed() >= HEADER_TIMEOUT, "closed after {:?}, before the header timeout", started.elapsed());
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "unexpected answer {answer:?}");
}

#[tokio::test]
async fn a_client_that_does_not_finish_its_body_gets_408_and_is_disconnected() {
    let server = start(16, HEADER_TIMEOUT).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789").await.unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(started.elapsed() >= BODY_TIMEOUT, "answered after {:?}, before the body timeout", started.elapsed());
    assert!(answer.starts_with("HTTP/1.1 408"), "expected 408, got {answer:?}");
    assert!(answer.contains("the body was not sent in time"), "{answer}");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_naming_the_key() {
    let server = start(16, HEADER_TIMEOUT).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let status = request(&mut stream, &"x".repeat(2048)).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert!(request(&mut stream, "small").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    // The header timeout also closes a keep-alive connection idle that long (which frees
    // its permit), so here it is longer than the test.
    let server = start(2, GUARD).await;
    // Two connections hold the two permits (each served once, so each is surely accepted).
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    assert!(request(&mut first, "1").await.starts_with("HTTP/1.1 200"));
    assert!(request(&mut second, "2").await.starts_with("HTTP/1.1 200"));
    // The third is queued by the kernel: its request gets no answer while both stay open...
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n3").await.unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served while the cap of 2 was in use");
    // ...and is served as soon as one of them closes.
    drop(first);
    let n = tokio::time::timeout(GUARD, third.read(&mut buf)).await.expect("served after a close").unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The second connection was never disturbed.
    assert!(request(&mut second, "again").await.starts_with("HTTP/1.1 200"));
}
