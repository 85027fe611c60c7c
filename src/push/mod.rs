//! The push endpoint Mastercard delivers to (SPEC 7): `POST {push.path}` over mutual TLS.
//!
//! Invariants:
//! - `200` is answered only after every notification of the request is committed (G1);
//!   anything else — a malformed batch, a refused certificate, a store that cannot commit —
//!   stores nothing of the request, and Mastercard retries.
//! - A batch is all or nothing: one bad item refuses the whole request with `400`.
//! - Concurrent requests share one SQLite transaction (group commit, `committer`): while
//!   one commit waits for its fsync the next requests queue, and the next transaction takes
//!   them all, so throughput is not one fsync per request.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::cen::notification::{Notification, parse_push_body};
use crate::config::{Config, PushConfig};
use crate::server::{self, BodyLimit, ClientIdentity, Limits, ListenerError, SharedTls, error_response as error};
use crate::store::{StoreHandle, Via};

/// The most notifications one group commit takes.
const MAX_GROUP: usize = 5000;

/// A running push endpoint.
pub struct PushEndpoint {
    pub addr: SocketAddr,
    tls: SharedTls,
    allowed: Arc<RwLock<Vec<String>>>,
}

#[derive(Clone)]
struct PushState {
    allowed: Arc<RwLock<Vec<String>>>,
    body: BodyLimit,
    commits: mpsc::Sender<Job>,
}

/// One request's notifications waiting to be committed.
struct Job {
    items: Vec<Notification>,
    /// New and duplicate counts, or the store's error, shared by every request of the
    /// group that failed to commit.
    reply: oneshot::Sender<Result<(usize, usize), Arc<crate::store::StoreError>>>,
}

/// Loads the TLS configuration of `[push]`: server certificate and key, client CA.
fn tls(config: &Config, push: &PushConfig) -> Result<Arc<rustls::ServerConfig>, ListenerError> {
    server::tls_config(&config.resolve(&push.cert), &config.resolve(&push.key), Some(&config.resolve(&push.client_ca)))
        .map_err(|source| ListenerError::Tls { section: "push", source: Box::new(source) })
}

impl PushEndpoint {
    /// Binds `push.listen` and serves until `shutdown`.
    pub async fn start(
        config: &Config,
        store: StoreHandle,
        shutdown: CancellationToken,
    ) -> Result<(PushEndpoint, tokio::task::JoinHandle<()>), ListenerError> {
        let push = config.push.as_ref().ok_or(ListenerError::NoSection("push"))?;
        let tls: SharedTls = Arc::new(RwLock::new(tls(config, push)?));
        let allowed = Arc::new(RwLock::new(push.allowed_client_names.clone()));
        if push.allowed_client_names.is_empty() {
            tracing::warn!(
                "push.allowed_client_names is empty: any client certificate that chains to push.client_ca is accepted; set it to Mastercard's certificate name"
            );
        }
        let (commits, queue) = mpsc::channel(1024);
        let answers = store.metrics().push_requests.clone();
        let committer = tokio::spawn(committer(store, queue));
        let limits = Limits::from(&push.limits);
        let body = BodyLimit { max: push.max_body.0 as usize, timeout: limits.body_timeout, key: "push.max_body" };
        let state = PushState { allowed: allowed.clone(), body, commits };
        let app = Router::new()
            .route(&push.path, post(receive))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "no such path") })
            // Every answer is counted by status, wrong paths and methods included.
            .layer(axum::middleware::from_fn_with_state(answers, server::count_status))
            .with_state(state);
        let listener = server::bind(push.listen, "push.listen").await?;
        let addr = listener.local_addr().map_err(|source| ListenerError::LocalAddr { key: "push.listen", source })?;
        let serving = tokio::spawn({
            let tls = tls.clone();
            async move {
                server::serve(listener, Some(tls), app, limits, shutdown).await;
                // The router (and with it the last sender) is gone: the committer finishes
                // what is queued and stops.
                let _ = committer.await;
            }
        });
        tracing::info!(%addr, path = %push.path, "push endpoint listening");
        Ok((PushEndpoint { addr, tls, allowed }, serving))
    }

    /// SIGHUP: new certificate, key, client CA and allowed names for new connections. On
    /// error the old ones stay.
    pub fn reload(&self, config: &Config) -> Result<(), ListenerError> {
        let push = config.push.as_ref().ok_or(ListenerError::Removed("push"))?;
        let new = tls(config, push)?;
        *self.tls.write().expect("tls lock") = new;
        *self.allowed.write().expect("allowed lock") = push.allowed_client_names.clone();
        Ok(())
    }
}

async fn receive(
    State(state): State<PushState>,
    axum::Extension(identity): axum::Extension<ClientIdentity>,
    body: Body,
) -> Response {
    let state = &state;
    let allowed = state.allowed.read().expect("allowed lock").clone();
    if !allowed.is_empty() && !server::name_allowed(&identity.names, &allowed) {
        tracing::warn!(names = ?identity.names, "push refused: client certificate name not in push.allowed_client_names");
        return error(StatusCode::FORBIDDEN, "client certificate name is not allowed");
    }
    let bytes = match state.body.read(body).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused,
    };
    let items = match parse_push_body(&bytes) {
        Ok(items) => items,
        Err((index, e)) => {
            let at = index.map(|i| format!("notification {i}: ")).unwrap_or_default();
            tracing::info!(error = %format!("{at}{e}"), "push refused: malformed batch, nothing stored");
            return error(StatusCode::BAD_REQUEST, format!("{at}{e}"));
        }
    };
    if items.is_empty() {
        return (StatusCode::OK, axum::Json(json!({"status": "ok", "accepted": 0, "duplicates": 0}))).into_response();
    }
    let (reply, answer) = oneshot::channel();
    if state.commits.send(Job { items, reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down; retry");
    }
    match answer.await {
        Ok(Ok((accepted, duplicates))) => {
            (StatusCode::OK, axum::Json(json!({"status": "ok", "accepted": accepted, "duplicates": duplicates})))
                .into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "push: cannot commit; answered 503 so the sender retries");
            error(StatusCode::SERVICE_UNAVAILABLE, "cannot store the notifications now; retry")
        }
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down; retry"),
    }
}

/// Commits queued requests, as many as are waiting (up to [`MAX_GROUP`] notifications) in
/// one transaction, and answers each with its own counts.
async fn committer(store: StoreHandle, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut n = first.items.len();
        let mut jobs = vec![first];
        while n < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => {
                    n += job.items.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut ids: Vec<Vec<String>> = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        let mut all = Vec::with_capacity(n);
        for job in jobs {
            ids.push(job.items.iter().map(|i| i.id.clone()).collect());
            all.extend(job.items);
            replies.push(job.reply);
        }
        match store.accept(all, Via::Push, true).await {
            Ok(accepted) => {
                // `new_ids` lists the new ones in batch order, each at its first
                // occurrence: walking the batch in the same order tells each request's
                // new ones from its duplicates.
                let mut next = accepted.new_ids.iter().peekable();
                for (job_ids, reply) in ids.iter().zip(replies) {
                    let mut new = 0;
                    for id in job_ids {
                        if next.peek().is_some_and(|n| *n == id) {
                            next.next();
                            new += 1;
                        }
                    }
                    let _ = reply.send(Ok((new, job_ids.len() - new)));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
