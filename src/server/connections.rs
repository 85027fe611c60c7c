//! What each open connection of an inbound listener is doing, when it must be closed, and
//! which one gives way when the listener is at its connection cap.
//!
//! A connection is in one of three states:
//! - **waiting**: no request in flight. It must finish a request head by a deadline or be
//!   closed: `header_timeout` from the accept for its first request (the TLS handshake,
//!   HTTP/1-or-HTTP/2 detection, the HTTP/2 preface and SETTINGS all count against it),
//!   `header_timeout` from the first byte of a later HTTP/1 request head, and otherwise
//!   `idle_timeout` from its last answer (an HTTP/2 connection's pings and window updates
//!   do not keep it open).
//! - **receiving**: a request whose body has not fully arrived; the handler's body
//!   deadline ([`super::BodyLimit`]) bounds it.
//! - **busy**: a request has fully arrived and is being answered.
//!
//! Invariants:
//! - At the cap, a new connection closes the waiting or receiving connection that has gone
//!   longest without progress (accept, request start, answer); only busy connections keep
//!   their slot. So clients that connect and say nothing, dribble bytes or send a body
//!   slowly cannot keep a legitimate request out: the newcomer takes a slot from them at
//!   once instead of waiting for their deadline.
//! - A connection is never closed while a request on it is busy: the deadline and the
//!   eviction are checked in the connection's own task, where a request starts, so a
//!   request that has fully arrived is answered.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::http::Version;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::Limits;

/// The open connections of one listener.
#[derive(Default)]
pub(super) struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    /// Raised when a connection stops being busy: it may be evicted now.
    evictable: Notify,
}

/// One open connection.
pub(super) struct Conn {
    state: Mutex<State>,
    /// Raised on every change that may move this connection's deadline or evict it.
    changed: Notify,
}

#[derive(Debug)]
struct State {
    accepted: Instant,
    /// Requests started and not yet answered.
    in_flight: u32,
    /// Of those, the ones whose body has not fully arrived.
    receiving: u32,
    /// Requests started on this connection so far.
    requests: u64,
    http2: bool,
    /// When the last answer was ready.
    last_answer: Option<Instant>,
    /// The first byte of a later HTTP/1 request head, read while waiting.
    head_started: Option<Instant>,
    /// The last accept, request start or answer: the oldest gives way at the cap.
    progress: Instant,
    /// Asked to give way for a new connection.
    evict: bool,
}

impl State {
    fn new(accepted: Instant) -> State {
        State {
            accepted,
            in_flight: 0,
            receiving: 0,
            requests: 0,
            http2: false,
            last_answer: None,
            head_started: None,
            progress: accepted,
            evict: false,
        }
    }

    fn busy(&self) -> bool {
        self.in_flight > self.receiving
    }

    /// When a waiting connection must be closed; `None` while a request is in flight.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match (self.last_answer, self.head_started) {
            (None, _) => self.accepted + limits.header_timeout,
            (Some(_), Some(started)) => started + limits.header_timeout,
            (Some(answered), None) => answered + limits.idle_timeout,
        })
    }
}

/// Why a connection is to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Close {
    /// It gives way to a new connection at the cap: close now.
    Evicted,
    /// Its deadline passed with no request in flight: close politely (HTTP/2 GOAWAY).
    Deadline,
}

impl Registry {
    /// Registers a connection accepted now; it holds `permit` (its slot) until dropped.
    pub(super) fn register(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Registered {
        let conn = Arc::new(Conn { state: Mutex::new(State::new(Instant::now())), changed: Notify::new() });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns.lock().expect("registry lock").insert(id, conn.clone());
        Registered { id, conn, registry: self.clone(), _permit: permit }
    }

    /// Asks the waiting or receiving connection with the oldest progress to close; `false`
    /// when every connection is busy (or already asked).
    pub(super) fn evict_one(&self) -> bool {
        let conns = self.conns.lock().expect("registry lock");
        let oldest = conns
            .values()
            .filter_map(|c| {
                let s = c.state.lock().expect("connection lock");
                (!s.busy() && !s.evict).then_some((s.progress, c))
            })
            .min_by_key(|(progress, _)| *progress);
        let Some((_, conn)) = oldest else { return false };
        conn.state.lock().expect("connection lock").evict = true;
        conn.changed.notify_one();
        true
    }

    /// Completes when some connection may have stopped being busy.
    pub(super) async fn evictable(&self) {
        self.evictable.notified().await
    }
}

/// A registered connection: dropping it unregisters it and frees its slot.
pub(super) struct Registered {
    id: u64,
    pub(super) conn: Arc<Conn>,
    registry: Arc<Registry>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.conns.lock().expect("registry lock").remove(&self.id);
    }
}

impl Registered {
    /// Starts tracking a request whose head has fully arrived: the returned body reports
    /// when the body has arrived too, and the guard, dropped when the answer is ready, when
    /// the request is done.
    pub(super) fn start_request(&self, version: Version, body: Incoming) -> (RequestGuard, TrackedBody) {
        let body_done = body.is_end_stream();
        {
            let mut s = self.conn.state.lock().expect("connection lock");
            s.in_flight += 1;
            s.requests += 1;
            s.http2 = version == Version::HTTP_2;
            s.head_started = None;
            s.progress = Instant::now();
            if !body_done {
                s.receiving += 1;
            }
        }
        self.conn.changed.notify_one();
        let request = Arc::new(Request {
            conn: self.conn.clone(),
            registry: self.registry.clone(),
            body_done: AtomicBool::new(body_done),
        });
        (RequestGuard(request.clone()), TrackedBody { inner: body, request })
    }

    /// Completes when the connection must be closed, and says why.
    pub(super) async fn closing(&self, limits: &Limits) -> Close {
        loop {
            // Registered before the state is read, so no change between the two is missed.
            let changed = self.conn.changed.notified();
            let deadline = {
                let mut s = self.conn.state.lock().expect("connection lock");
                if s.evict {
                    if !s.busy() {
                        return Close::Evicted;
                    }
                    // A request fully arrived since the eviction was asked: it is answered,
                    // and the listener asks again when this or another connection can go.
                    s.evict = false;
                    self.registry.evictable.notify_one();
                }
                s.deadline(limits)
            };
            match deadline {
                Some(at) if at <= Instant::now() => return Close::Deadline,
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// One request in flight.
struct Request {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    body_done: AtomicBool,
}

impl Request {
    fn body_arrived(&self) {
        if !self.body_done.swap(true, Ordering::AcqRel) {
            self.conn.state.lock().expect("connection lock").receiving -= 1;
            self.conn.changed.notify_one();
        }
    }
}

/// Marks its request answered when dropped.
pub(super) struct RequestGuard(Arc<Request>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let request = &self.0;
        request.body_arrived();
        {
            let mut s = request.conn.state.lock().expect("connection lock");
            s.in_flight -= 1;
            let now = Instant::now();
            s.last_answer = Some(now);
            s.progress = now;
        }
        request.conn.changed.notify_one();
        request.registry.evictable.notify_one();
    }
}

/// A request body that tells its connection when it has fully arrived.
pub(super) struct TrackedBody {
    inner: Incoming,
    request: Arc<Request>,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if ended {
            self.request.body_arrived();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's byte stream, noting when a waiting HTTP/1 connection starts a new head.
pub(super) struct Watched<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> Watched<S> {
    pub(super) fn new(inner: S, registered: &Registered) -> Self {
        Watched { inner, conn: registered.conn.clone() }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let mut s = self.conn.state.lock().expect("connection lock");
            if s.in_flight == 0 && s.last_answer.is_some() && !s.http2 && s.head_started.is_none() {
                s.head_started = Some(Instant::now());
                drop(s);
                self.conn.changed.notify_one();
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections: 4,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn deadlines_follow_the_connection_state() {
        let t = Instant::now();
        let l = limits();
        let mut s = State::new(t);
        assert_eq!(s.deadline(&l), Some(t + l.header_timeout), "the first head is due header_timeout after accept");
        s.in_flight = 1;
        s.receiving = 1;
        assert_eq!(s.deadline(&l), None, "a request in flight is bounded by its handler");
        assert!(!s.busy(), "a request still receiving its body does not protect the connection");
        s.receiving = 0;
        assert!(s.busy());
        s.in_flight = 0;
        let answered = t + Duration::from_secs(3);
        s.last_answer = Some(answered);
        assert_eq!(s.deadline(&l), Some(answered + l.idle_timeout), "between requests: idle_timeout");
        let started = t + Duration::from_secs(5);
        s.head_started = Some(started);
        assert_eq!(s.deadline(&l), Some(started + l.header_timeout), "a started head: header_timeout");
    }
}
