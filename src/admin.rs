//! The admin endpoint (SPEC 7): `/metrics`, `/healthz`, `/readyz`, on `admin.listen`
//! (loopback by default).
//!
//! `/readyz` answers 200 only when the store takes writes and the poller is making progress:
//! a cycle succeeded, or a page was committed during a long catch-up, within the last three
//! poll intervals. Otherwise 503 with a JSON reason an operator can act on — after a 401 it
//! carries the gateway's ReasonCode and Description.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::AdminConfig;
use crate::metrics::SinkLabels;
use crate::poll::PollHealth;
use crate::store::StoreHandle;

#[derive(Clone)]
struct AdminState {
    store: StoreHandle,
    health: Arc<Mutex<PollHealth>>,
    interval: Duration,
}

/// Binds `admin.listen` and serves until `shutdown`, within `admin.limits` like the other
/// listeners; returns the bound address.
pub async fn start(
    admin: &AdminConfig,
    store: StoreHandle,
    health: Arc<Mutex<PollHealth>>,
    interval: Duration,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), crate::server::ListenerError> {
    let listener = crate::server::bind(admin.listen, "admin.listen").await?;
    let addr = listener
        .local_addr()
        .map_err(|source| crate::server::ListenerError::LocalAddr { key: "admin.listen", source })?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AdminState { store, health, interval });
    let task = tokio::spawn(crate::server::serve(listener, None, app, (&admin.limits).into(), shutdown));
    Ok((addr, task))
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let m = state.store.metrics().clone();
    // Gauges describing the database are read from it at scrape time; every configured
    // sink has a sample, 0 when nothing is waiting.
    for route in state.store.routes().iter() {
        let l = SinkLabels { sink: route.sink.clone() };
        m.sink_backlog.get_or_create(&l).set(0);
        m.sink_dead_letters.get_or_create(&l).set(0);
    }
    if let Ok(backlog) = state.store.backlog().await {
        for (sink, n) in backlog {
            m.sink_backlog.get_or_create(&SinkLabels { sink }).set(n as i64);
        }
    }
    if let Ok(dead) = state.store.dead_letter_counts().await {
        for (sink, n) in dead {
            m.sink_dead_letters.get_or_create(&SinkLabels { sink }).set(n as i64);
        }
    }
    m.ready.set(i64::from(readiness(&state).await.is_ok()));
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode()).into_response()
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match readiness(&state).await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"status": "ready"}))).into_response(),
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "not ready", "reason": reason.to_string()})))
                .into_response()
        }
    }
}

/// Why the daemon is not ready (`/readyz`'s `reason`; `cen_ready` is 0).
#[derive(Debug, thiserror::Error)]
enum NotReady {
    #[error("the state database does not take writes: {0}")]
    Store(#[source] crate::store::StoreError),
    #[error("the API refuses our credentials: {0}")]
    Auth(String),
    #[error("polling is failing: {0}")]
    Polling(String),
    #[error("no poll progress since {0}")]
    Stalled(chrono::DateTime<Utc>),
    #[error("no poll cycle has completed yet")]
    NotYet,
}

/// Ready, or the reason why not (`/readyz` and the `cen_ready` gauge).
async fn readiness(state: &AdminState) -> Result<(), NotReady> {
    let now = Utc::now();
    state.store.check_writable(now.timestamp_millis()).await.map_err(NotReady::Store)?;
    let health = state.health.lock().expect("health lock").clone();
    if let Some(auth) = health.auth_problem {
        return Err(NotReady::Auth(auth));
    }
    let window = chrono::TimeDelta::from_std(state.interval * 3).unwrap_or(chrono::TimeDelta::MAX);
    if health.last_progress.is_some_and(|t| now - t <= window) {
        return Ok(());
    }
    Err(match (health.problem, health.last_progress) {
        (Some(problem), _) => NotReady::Polling(problem),
        (None, Some(t)) => NotReady::Stalled(t),
        (None, None) => NotReady::NotYet,
    })
}
