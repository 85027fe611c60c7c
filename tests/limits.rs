//! The limits every inbound listener (push, VGS, admin) is served with, tried as a hostile
//! client would: connections that say nothing, stop inside the HTTP/2 preface, finish a TLS
//! handshake and go quiet, dribble their headers, or send a body slowly are closed within
//! their deadline; a kept-alive connection is closed when idle; and while such clients fill
//! every slot, a legitimate request is still served. `server::serve` is what all three
//! listeners run; here it serves routes that read their body the way the handlers do
//! ([`BodyLimit`]), with limits short enough that the tests take seconds, not the
//! production 10 s and 30 s.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use cen_poller::server::{self, BodyLimit, Limits};
use common::pki::Ca;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const HEADER_TIMEOUT: Duration = Duration::from_millis(400);
/// Longer than the header timeout, so a test can tell which of the two closed a connection.
const IDLE_TIMEOUT: Duration = Duration::from_millis(1500);
const BODY_TIMEOUT: Duration = Duration::from_millis(400);
/// How late after its deadline a connection may be closed (a loaded CI machine).
const SLACK: Duration = Duration::from_secs(3);
/// Longer than any limit: a test that reaches it has failed.
const GUARD: Duration = Duration::from_secs(20);
/// The first 24 bytes every HTTP/2 connection starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn limits(max_connections: usize, header_timeout: Duration) -> Limits {
    Limits { max_connections, header_timeout, idle_timeout: IDLE_TIMEOUT, body_timeout: BODY_TIMEOUT }
}

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    /// `/busy` answers once it takes a permit from here; the test adds them.
    gate: Arc<Semaphore>,
    /// The server certificate's CA, when serving TLS.
    ca: Option<Ca>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves `POST /in` (reads its body, answers `200 N bytes`), `POST /busy` (reads its body,
/// then waits for the gate) and `GET /` within `limits`, over TLS when `tls`.
async fn start(limits: Limits, tls: bool) -> Server {
    let body = BodyLimit { max: 1024, timeout: limits.body_timeout, key: "test.max_body" };
    let gate = Arc::new(Semaphore::new(0));
    let read = move |b: Body| {
        let body = body.clone();
        async move { body.read(b).await.map(|bytes| format!("{} bytes", bytes.len())) }
    };
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/in",
            post({
                let read = read.clone();
                move |b: Body| async move { read(b).await }
            }),
        )
        .route(
            "/busy",
            post({
                let gate = gate.clone();
                move |b: Body| async move {
                    let answer = read(b).await;
                    gate.acquire().await.unwrap().forget();
                    answer
                }
            }),
        );
    let (tls_config, ca) = if tls {
        let ca = Ca::new("test CA");
        let leaf = ca.server();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &leaf.key_pem).unwrap();
        let config = server::tls_config(&dir.path().join("cert.pem"), &dir.path().join("key.pem"), None).unwrap();
        (Some(Arc::new(std::sync::RwLock::new(config))), Some(ca))
    } else {
        (None, None)
    };
    let listener = server::bind("127.0.0.1:0".parse().unwrap(), "test.listen").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server::serve(listener, tls_config, app, limits, shutdown.clone()));
    Server { addr, shutdown, gate, ca }
}

/// Reads until the server closes the connection (or the guard expires, which fails);
/// returns what was read and when the connection closed.
async fn read_to_close(stream: &mut (impl AsyncRead + Unpin)) -> (Vec<u8>, Instant) {
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
    (out, Instant::now())
}

/// Asserts that a connection idle since `since` was closed by a deadline of `limit`: not
/// before it, and not much after.
fn assert_closed_by(since: Instant, closed: Instant, limit: Duration, what: &str) {
    let after = closed - since;
    assert!(after >= limit, "{what}: closed after {after:?}, before its limit {limit:?}");
    assert!(after < limit + SLACK, "{what}: closed only after {after:?}; the limit is {limit:?}");
}

/// One complete request on a keep-alive connection; returns the answer's first line.
async fn request(stream: &mut (impl AsyncRead + AsyncWrite + Unpin), path: &str, body: &str) -> String {
    let req = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(GUARD, stream.read(&mut buf)).await.expect("an answer").unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()
}

/// A TLS client trusting the server's CA.
async fn tls_connect(server: &Server) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    let ca = server.ca.as_ref().expect("a TLS server");
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let server = start(limits(16, HEADER_TIMEOUT), false).await;
    let since = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let (answer, closed) = read_to_close(&mut stream).await;
    assert!(answer.is_empty(), "{answer:?}");
    assert_closed_by(since, closed, HEADER_TIMEOUT, "a silent connection");
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed_at_the_header_timeout() {
    let server = start(limits(16, HEADER_TIMEOUT), false).await;
    let since = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(&H2_PREFACE[..23]).await.unwrap();
    let (_, closed) = read_to_close(&mut stream).await;
    assert_closed_by(since, closed, HEADER_TIMEOUT, "23 of the preface's 24 bytes");
}

#[tokio::test]
async fn an_http2_preface_and_settings_without_a_request_are_closed_at_the_header_timeout() {
    let server = start(limits(16, HEADER_TIMEOUT), false).await;
    let since = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(H2_PREFACE).await.unwrap();
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let (answer, closed) = read_to_close(&mut stream).await;
    assert!(answer.len() >= 9 && answer[3] == 4, "the server answers with its SETTINGS: {answer:?}");
    assert_closed_by(since, closed, HEADER_TIMEOUT, "a preface and SETTINGS, no request");
}

#[tokio::test]
async fn a_client_that_never_starts_tls_is_closed_at_the_header_timeout() {
    let server = start(limits(16, HEADER_TIMEOUT), true).await;
    let since = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let (_, closed) = read_to_close(&mut stream).await;
    assert_closed_by(since, closed, HEADER_TIMEOUT, "no TLS ClientHello");
}

#[tokio::test]
async fn a_tls_client_that_completes_the_handshake_and_says_nothing_is_closed() {
    let server = start(limits(16, HEADER_TIMEOUT), true).await;
    let since = Instant::now();
    let mut stream = tls_connect(&server).await;
    let (_, closed) = read_to_close(&mut stream).await;
    assert_closed_by(since, closed, HEADER_TIMEOUT, "TLS up, no request");
    // The same listener serves a client that speaks.
    let mut stream = tls_connect(&server).await;
    assert!(request(&mut stream, "/in", "hello").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_client_that_dribbles_its_headers_is_closed_at_the_header_timeout() {
    let server = start(limits(16, HEADER_TIMEOUT), false).await;
    let since = Instant::now();
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // A byte every 50 ms: progress, but never a complete head.
    let dribble = tokio::spawn(async move {
        for b in b"POST /in HTTP/1.1\r\nHost: x\r\nX-Pad: ".iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (answer, closed) = read_to_close(&mut reader).await;
    dribble.abort();
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&answer));
    assert_closed_by(since, closed, HEADER_TIMEOUT, "dribbled headers");
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_at_the_idle_timeout() {
    let server = start(limits(16, HEADER_TIMEOUT), false).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert!(request(&mut stream, "/in", "1").await.starts_with("HTTP/1.1 200"));
    let since = Instant::now();
    let (_, closed) = read_to_close(&mut stream).await;
    // Idle, not a started head: the longer idle timeout applies.
    assert_closed_by(since, closed, IDLE_TIMEOUT, "an idle keep-alive connection");
}

#[tokio::test]
async fn a_second_request_head_left_unfinished_is_closed_at_the_header_timeout() {
    let server = start(limits(16, HEADER_TIMEOUT), false).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert!(request(&mut stream, "/in", "1").await.starts_with("HTTP/1.1 200"));
    let since = Instant::now();
    stream.write_all(b"POST /in HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let (_, closed) = read_to_close(&mut stream).await;
    assert_closed_by(since, closed, HEADER_TIMEOUT, "a started second head");
}

#[tokio::test]
async fn a_client_that_does_not_finish_its_body_gets_408_and_is_disconnected() {
    let server = start(limits(16, HEADER_TIMEOUT), false).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789").await.unwrap();
    let (answer, _) = read_to_close(&mut stream).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(started.elapsed() >= BODY_TIMEOUT, "answered after {:?}, before the body timeout", started.elapsed());
    assert!(answer.starts_with("HTTP/1.1 408"), "expected 408, got {answer:?}");
    assert!(answer.contains("the body was not sent in time"), "{answer}");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_naming_the_key() {
    let server = start(limits(16, HEADER_TIMEOUT), false).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let status = request(&mut stream, "/in", &"x".repeat(2048)).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert!(request(&mut stream, "/in", "small").await.starts_with("HTTP/1.1 200"));
}

/// An HTTP/2 connection (prior knowledge, plain TCP) and its driver task.
async fn h2_connect(server: &Server) -> (h2::client::SendRequest<bytes::Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (send, driver)
}

#[tokio::test]
async fn http2_requests_are_served_and_an_idle_http2_connection_is_closed() {
    let server = start(limits(16, HEADER_TIMEOUT), false).await;
    let (mut send, driver) = h2_connect(&server).await;
    let request = axum::http::Request::get(format!("http://{}/", server.addr)).body(()).unwrap();
    let (answer, _) = send.send_request(request, true).unwrap();
    assert_eq!(answer.await.unwrap().status(), 200);
    let since = Instant::now();
    // The client answers the server's pings; the connection is closed for having no
    // request all the same (GOAWAY, then the end of the connection).
    tokio::time::timeout(GUARD, driver).await.expect("the idle HTTP/2 connection was closed").unwrap();
    assert_closed_by(since, Instant::now(), IDLE_TIMEOUT, "an idle HTTP/2 connection");
}

#[tokio::test]
async fn an_http2_stream_whose_body_never_comes_gets_408() {
    let server = start(limits(16, HEADER_TIMEOUT), false).await;
    let (mut send, _driver) = h2_connect(&server).await;
    let request = axum::http::Request::post(format!("http://{}/in", server.addr)).body(()).unwrap();
    let started = Instant::now();
    // Headers without END_STREAM, and no DATA frame ever.
    let (answer, _body) = send.send_request(request, false).unwrap();
    let answer = tokio::time::timeout(GUARD, answer).await.expect("an answer").unwrap();
    assert_eq!(answer.status(), 408);
    assert!(started.elapsed() >= BODY_TIMEOUT);
}

/// Clients that hold a slot without progress: silent, dribbling a head, or sending a body
/// slowly. Returns their streams (kept open by the caller).
async fn hostile_clients(addr: SocketAddr, silent: usize, dribbling: usize, slow_body: usize) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..silent {
        streams.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..dribbling {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /in HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        streams.push(s);
    }
    for _ in 0..slow_body {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n01234").await.unwrap();
        streams.push(s);
    }
    streams
}

#[tokio::test]
async fn a_legitimate_request_is_served_while_idle_and_slow_clients_fill_every_slot() {
    // Deadlines far longer than the test: only giving way at the cap can let the request in.
    let limits = Limits {
        max_connections: 16,
        header_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
    };
    let server = start(limits, false).await;
    // Ten times the cap: the cap is full and the kernel's accept queue holds the rest.
    let mut hostile = hostile_clients(server.addr, 120, 20, 20).await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let status = request(&mut stream, "/in", "legitimate").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(started.elapsed() < Duration::from_secs(10), "served only after {:?}", started.elapsed());
    // The hostile clients that gave way were closed, not left half-open.
    let mut closed = 0;
    for s in &mut hostile {
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            closed += 1;
        }
    }
    assert!(closed >= 100, "only {closed} of the 160 hostile connections were closed");
    // A second legitimate client on the same saturated listener.
    let mut again = TcpStream::connect(server.addr).await.unwrap();
    assert!(request(&mut again, "/in", "again").await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_whose_request_is_being_answered_keep_their_slots() {
    let server = start(limits(2, GUARD), false).await;
    // Two requests that have fully arrived and wait for the gate hold both slots...
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    first.write_all(b"POST /busy HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1").await.unwrap();
    second.write_all(b"POST /busy HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n2").await.unwrap();
    // ...so a third waits in the accept queue instead of taking one of theirs.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n3").await.unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served while both slots were busy");
    // Both busy requests are answered, and then the third is served.
    server.gate.add_permits(2);
    for s in [&mut first, &mut second] {
        let n = tokio::time::timeout(GUARD, s.read(&mut buf)).await.expect("answered").unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "a busy request was cut off");
    }
    let n = tokio::time::timeout(GUARD, third.read(&mut buf)).await.expect("served after a slot freed").unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
