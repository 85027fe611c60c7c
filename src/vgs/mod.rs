//! The VGS webhook endpoint (SPEC 7, issue 7): `POST {vgs.path}` on `vgs.listen`, over TLS
//! when `vgs.cert`/`vgs.key` are set and plain HTTP otherwise (behind a TLS-terminating
//! proxy); no client certificates — the `vgs-signature` HMAC authenticates the sender.
//!
//! A request goes: body read (at most `vgs.max_body`, within 30 s, [`crate::server::BodyLimit`]) → signature
//! over the raw bytes ([`signature`]) → parse ([`event`]) → one committed transaction →
//! `200 {"status":"ok"}`. Answers: `401` bad or missing signature (`verify = "enforce"`),
//! `400` malformed, `413` too large, `404`/`405` other paths and methods, `503` when the store
//! cannot commit (VGS retries). Every answer is counted in `cen_vgs_requests_total{code}`.
//!
//! Invariants:
//! - `200` only after the event is committed (G1); a duplicate `id` is answered `200` and
//!   not queued again (G2).
//! - Nothing of a body that failed the signature check is parsed or stored, in enforce mode.
//! - Nothing of a body, and no secret or expected signature, is logged (G6). In log-only
//!   mode the received header value is logged (it is what the operator compares with their
//!   own HMAC), unless it is a configured secret itself.

pub mod event;
pub mod signature;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, VgsConfig, VgsVerify};
use crate::metrics::{CodeLabels, ReceivedLabels, ViaLabels};
use crate::server::{self, BodyLimit, Limits, ListenerError, SharedTls, error_response as error};
use crate::store::{SOURCE_VGS, StoreHandle, Via};

pub use event::{CardDetails, Event, EventError, Producer, Received, is_known_event};
pub use signature::{Failure, Verifier};

/// The longest stretch of a received signature header that log-only mode logs.
const MAX_LOGGED_SIGNATURE: usize = 256;

/// A running VGS endpoint.
pub struct VgsEndpoint {
    /// The bound address (`vgs.listen` with a port of 0 resolved).
    pub addr: SocketAddr,
    /// `None` when serving plain HTTP.
    tls: Option<SharedTls>,
    checks: Arc<RwLock<Arc<Checks>>>,
}

/// What a SIGHUP may change: the secrets and the verify mode.
struct Checks {
    verifier: Verifier,
    mode: VgsVerify,
}

#[derive(Clone)]
struct VgsState {
    checks: Arc<RwLock<Arc<Checks>>>,
    body: BodyLimit,
    store: StoreHandle,
}

fn tls(config: &Config, vgs: &VgsConfig) -> Result<Option<Arc<rustls::ServerConfig>>, ListenerError> {
    match (&vgs.cert, &vgs.key) {
        (Some(cert), Some(key)) => server::tls_config(&config.resolve(cert), &config.resolve(key), None)
            .map(Some)
            .map_err(|source| ListenerError::Tls { section: "vgs", source: Box::new(source) }),
        _ => Ok(None),
    }
}

fn checks(config: &Config, vgs: &VgsConfig) -> Result<Checks, ListenerError> {
    let verifier = Verifier::load(config, vgs).map_err(|e| ListenerError::Secret(e.into()))?;
    Ok(Checks { verifier, mode: vgs.verify })
}

impl VgsEndpoint {
    /// Binds `vgs.listen` and serves until `shutdown`.
    pub async fn start(
        config: &Config,
        store: StoreHandle,
        shutdown: CancellationToken,
    ) -> Result<(VgsEndpoint, tokio::task::JoinHandle<()>), ListenerError> {
        let vgs = config.vgs.as_ref().ok_or(ListenerError::NoSection("vgs"))?;
        let tls: Option<SharedTls> = tls(config, vgs)?.map(|t| Arc::new(RwLock::new(t)));
        let checks = Arc::new(RwLock::new(Arc::new(checks(config, vgs)?)));
        let metrics = store.metrics().clone();
        // Series that exist from the first scrape, so alerts on them work before any request.
        for code in ["200", "400", "401", "413", "503"] {
            let _ = metrics.vgs_requests.get_or_create(&CodeLabels { code: code.into() });
        }
        let _ =
            metrics.duplicates.get_or_create(&ViaLabels { source: SOURCE_VGS.into(), via: Via::Push.as_str().into() });
        let limits = Limits::from(&vgs.limits);
        let body = BodyLimit { max: vgs.max_body.0 as usize, timeout: limits.body_timeout, key: "vgs.max_body" };
        let state = VgsState { checks: checks.clone(), body, store };
        let app = Router::new()
            .route(&vgs.path, post(receive))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "no such path") })
            .layer(axum::middleware::from_fn_with_state(metrics.vgs_requests.clone(), server::count_status))
            .with_state(state);
        let listener = server::bind(vgs.listen, "vgs.listen").await?;
        let addr = listener.local_addr().map_err(|source| ListenerError::LocalAddr { key: "vgs.listen", source })?;
        let serving = tokio::spawn({
            let tls = tls.clone();
            async move { server::serve(listener, tls, app, limits, shutdown).await }
        });
        let secrets = checks.read().unwrap_or_else(|p| p.into_inner()).verifier.len();
        tracing::info!(%addr, path = %vgs.path, tls = tls.is_some(), secrets, "vgs endpoint listening");
        if vgs.verify == VgsVerify::LogOnly {
            tracing::warn!(
                "vgs.verify = \"log-only\": events with a missing or bad signature are accepted; set \"enforce\" once a delivery's signature verified"
            );
        }
        Ok((VgsEndpoint { addr, tls, checks }, serving))
    }

    /// SIGHUP: new secrets (rotation), verify mode, and certificate and key for new
    /// connections. On error the old ones stay. Switching between TLS and plain HTTP, or
    /// changing the address or path, needs a restart.
    pub fn reload(&self, config: &Config) -> Result<(), ListenerError> {
        let vgs = config.vgs.as_ref().ok_or(ListenerError::Removed("vgs"))?;
        let new_tls = tls(config, vgs)?;
        let new_checks = checks(config, vgs)?;
        match (&self.tls, new_tls) {
            (Some(shared), Some(new)) => *shared.write().unwrap_or_else(|p| p.into_inner()) = new,
            (None, None) => {}
            _ => return Err(ListenerError::TlsSwitch("vgs")),
        }
        *self.checks.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new_checks);
        Ok(())
    }
}

async fn receive(State(state): State<VgsState>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match state.body.read(body).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused,
    };
    let checks = state.checks.read().unwrap_or_else(|p| p.into_inner()).clone();
    let signatures = headers.get_all(signature::HEADER);
    match checks.verifier.check(signatures.iter().map(|v| v.as_bytes()), &bytes) {
        Ok(verified) if checks.mode == VgsVerify::LogOnly => {
            tracing::info!(
                form = %verified.form,
                secret = verified.secret,
                "vgs: signature verified (vgs.verify = log-only; \"enforce\" would accept this delivery too)"
            );
        }
        Ok(verified) => tracing::debug!(form = %verified.form, secret = verified.secret, "vgs: signature verified"),
        Err(failure) if checks.mode == VgsVerify::Enforce => {
            tracing::warn!(reason = failure.as_str(), "vgs: refused, {failure}");
            return error(StatusCode::UNAUTHORIZED, failure.to_string());
        }
        Err(failure) => log_unverified(failure, &headers, &bytes),
    }
    let received = match Received::from_body(&bytes, Utc::now()) {
        Ok(r) => r,
        Err(e) => {
            // The message never quotes the body (event.rs).
            tracing::info!(error = %e, "vgs: refused a malformed event, nothing stored");
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let (id, name, known, readable) =
        (received.id.clone(), received.event.event.clone(), received.event.is_known(), received.timestamp_readable);
    match state.store.accept_from(SOURCE_VGS, Via::Push, vec![received]).await {
        Ok(accepted) => {
            if accepted.new == 0 {
                tracing::debug!(%id, event = %name, "vgs: duplicate event, not delivered again");
            } else {
                if !known {
                    // Stored and delivered like any other; the metric tells the operator a
                    // name changed.
                    let labels = ReceivedLabels {
                        source: SOURCE_VGS.into(),
                        via: Via::Push.as_str().into(),
                        subject: name.clone(),
                    };
                    state.store.metrics().unknown_events.get_or_create(&labels).inc();
                    tracing::warn!(%id, event = %name, "vgs: event name not known to this version; stored and delivered");
                }
                if !readable {
                    tracing::warn!(%id, event = %name, "vgs: unreadable timestamp; created_ms is the receive time");
                }
                tracing::debug!(%id, event = %name, "vgs: event stored");
            }
            (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "vgs: cannot commit; answered 503 so VGS retries");
            error(StatusCode::SERVICE_UNAVAILABLE, "cannot store the event now; retry")
        }
    }
}

/// Log-only mode: says what arrived, so the operator can confirm the scheme (README): the
/// header as received, the body's length and SHA-256, and whether the body was already
/// compact (then the `notification` the sinks get is byte for byte the signed body).
fn log_unverified(failure: Failure, headers: &HeaderMap, body: &[u8]) {
    let signature = if failure == Failure::SecretItself {
        "(a configured secret; not logged)".to_owned()
    } else {
        let values: Vec<String> = headers
            .get_all(signature::HEADER)
            .iter()
            .map(|v| {
                v.as_bytes()
                    .iter()
                    .take(MAX_LOGGED_SIGNATURE)
                    .map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '?' })
                    .collect()
            })
            .collect();
        values.join(" | ")
    };
    let body_sha256 = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body));
    let body_compact = std::str::from_utf8(body).is_ok_and(|text| crate::cen::notification::compact_json(text) == text);
    tracing::warn!(
        reason = failure.as_str(),
        %signature,
        body_len = body.len(),
        %body_sha256,
        body_compact,
        "vgs: signature not verified, accepted anyway (vgs.verify = log-only): {failure}"
    );
}
