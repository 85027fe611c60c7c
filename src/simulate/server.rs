//! The simulator's HTTP side: routes, query parsing, the gateway's OAuth check, faults, and
//! the wrapper and error formats of SPEC 10.
//!
//! Any path ending in `/notifications`, `/subscriptions`, `/subscriptions/{id}` or
//! `/fieldmappings` is served (the last three by [`super::subscriptions`]), so a base URL such as
//! `http://127.0.0.1:PORT/commercial-event-notifications` works like the real one. Every
//! answer — errors included — carries `Date` (the simulator's clock) and
//! `Content-Type: application/json`. Nothing in a request can make the handler panic: every
//! problem with the input is a 4xx with the error envelope.
//!
//! Order of checks, as at the real gateway then API: forced auth failure, method, OAuth
//! signature, path, query parameters (400), faults (5xx/429, delay), the request hook,
//! churn, then the answer (possibly truncated).

use std::fmt::Write as _;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::data::{Filter, ItemKey, PUSH_STATUSES};
use super::generate::{subject_index, write_notification};
use super::http::{API_SOURCE, decode_component, error_body, respond};
use super::{RequestInfo, Simulator, ceil_ms, lock};
use crate::cen::notification::parse_timestamp;
use crate::cen::oauth::{VerifyError, parse_authorization, verify};

/// The router: everything goes through one handler, which dispatches on the path suffix.
pub fn router(sim: Simulator) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

async fn handle(State(sim): State<Simulator>, req: Request) -> Response {
    let response = answer(&sim, req).await;
    sim.record_status(response.status().as_u16());
    response
}

fn error(
    sim: &Simulator,
    status: StatusCode,
    source: &str,
    reason: &str,
    description: &str,
    recoverable: bool,
) -> Response {
    let body = error_body(source, reason, description, recoverable).to_string();
    respond(sim, status, body)
}

fn gateway_error(sim: &Simulator, status: StatusCode, reason: &str, description: &str) -> Response {
    error(sim, status, "Gateway", reason, description, false)
}

async fn answer(sim: &Simulator, req: Request) -> Response {
    if let Some((status, reason)) = lock(&sim.inner.auth_failure).clone() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
        let description = format!("Simulated gateway refusal ({reason})");
        return gateway_error(sim, status, &reason, &description);
    }
    if let Some(route) = super::subscriptions::route(req.uri().path()) {
        // These calls have bodies: the body hash in the signature is checked against it.
        let (parts, body) = req.into_parts();
        let body = match super::subscriptions::read_body(body).await {
            Ok(b) => b,
            Err(e) => {
                return error(sim, StatusCode::BAD_REQUEST, API_SOURCE, "INVALID_REQUEST_BODY", &e.to_string(), false);
            }
        };
        let req = Request::from_parts(parts, Body::empty());
        if let Err(response) = check_oauth(sim, &req, &body) {
            return *response;
        }
        return super::subscriptions::answer(sim, req.method(), route, req.uri().query(), &body);
    }
    if req.method() != Method::GET {
        return error(
            sim,
            StatusCode::METHOD_NOT_ALLOWED,
            API_SOURCE,
            "METHOD_NOT_ALLOWED",
            "Only GET is supported here",
            false,
        );
    }
    if let Err(response) = check_oauth(sim, &req, b"") {
        return *response;
    }
    let path = req.uri().path();
    if path.ends_with("/notifications") {
        notifications(sim, req.uri().query()).await
    } else {
        error(sim, StatusCode::NOT_FOUND, API_SOURCE, "RESOURCE_NOT_FOUND", "No such resource", false)
    }
}

/// The gateway's OAuth 1.0a check (SPEC 10), when a public key is configured. The URL is
/// rebuilt exactly as received: `http://` + Host + path + `?` + raw query; `body` is the
/// request body the `oauth_body_hash` must match.
fn check_oauth(sim: &Simulator, req: &Request, body: &[u8]) -> Result<(), Box<Response>> {
    let Some(public_key) = &sim.inner.public_key else {
        return Ok(());
    };
    let unauthorized =
        |reason: &str, description: &str| Box::new(gateway_error(sim, StatusCode::UNAUTHORIZED, reason, description));
    let header = match req.headers().get(header::AUTHORIZATION) {
        None => {
            return Err(unauthorized("INVALID_AUTH_HEADER", "The Authorization header is missing"));
        }
        Some(h) => h
            .to_str()
            .map_err(|_| unauthorized("INVALID_AUTH_HEADER", "The Authorization header is not printable ASCII"))?,
    };
    if let Some(expected) = &sim.inner.consumer_key {
        let pairs = parse_authorization(header).map_err(|e| unauthorized("INVALID_AUTH_HEADER", &e.to_string()))?;
        let given = pairs.iter().find(|(k, _)| k == "oauth_consumer_key");
        if let Some((_, key)) = given
            && key != expected
        {
            return Err(unauthorized(
                "INVALID_CLIENT_ID",
                "The consumer key is not known; check the consumer key of your project",
            ));
        }
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .ok_or_else(|| unauthorized("INVALID_AUTH_HEADER", "The request has no Host"))?;
    let path_and_query = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let url = format!("http://{host}{path_and_query}");
    match verify(req.method().as_str(), &url, body, header, public_key) {
        Ok(_) => Ok(()),
        Err(e @ VerifyError::BadHeader(_)) => Err(unauthorized("INVALID_AUTH_HEADER", &e.to_string())),
        Err(e @ VerifyError::BodyHash) => Err(unauthorized("INVALID_BODY_HASH", &e.to_string())),
        Err(e @ VerifyError::Signature { .. }) => Err(unauthorized("INVALID_SIGNATURE", &e.to_string())),
    }
}

/// A parsed `GET /notifications` query.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub subject: Option<String>,
    pub subscriptions: Vec<String>,
    pub push_statuses: Vec<String>,
    pub offset: u64,
    /// After capping at the maximum.
    pub limit: u64,
}

impl Query {
    pub fn filter(&self) -> Filter {
        Filter {
            lo_ms: ceil_ms(self.start),
            hi_ms: ceil_ms(self.end),
            subject: self.subject.clone(),
            subscriptions: (!self.subscriptions.is_empty()).then(|| self.subscriptions.clone()),
            push_statuses: (!self.push_statuses.is_empty()).then(|| self.push_statuses.clone()),
        }
    }
}

/// Why a `GET /notifications` query is refused (the 400's Description).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryError {
    #[error(transparent)]
    Decode(#[from] super::http::DecodeError),
    #[error("parameter {0} is given more than once")]
    Repeated(String),
    #[error("parameter {0} is required")]
    Required(&'static str),
    #[error("parameter {name} must be a UTC date-time such as 2026-01-30T09:00:00.000Z, got {value:?}")]
    Time { name: &'static str, value: String },
    #[error("parameter end must not be before start")]
    EndBeforeStart,
    #[error("parameter {name} must be a non-negative integer, got {value:?}")]
    Number { name: &'static str, value: String },
    #[error("parameter limit must be at least 1")]
    ZeroLimit,
    #[error("parameter push_status: {0:?} is not one of {list}", list = PUSH_STATUSES.join(", "))]
    PushStatus(String),
}

/// Parses the query string of `GET /notifications` (snake_case names, percent-encoded).
pub(crate) fn parse_query(raw: Option<&str>, default_limit: u64, max_limit: u64) -> Result<Query, QueryError> {
    const KNOWN: [&str; 7] = ["start", "end", "subscription_name", "subject", "push_status", "offset", "limit"];
    let mut values: [Option<String>; 7] = Default::default();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode_component(k)?;
        let Some(slot) = KNOWN.iter().position(|n| *n == k) else {
            continue; // unknown parameters are ignored
        };
        if values[slot].is_some() {
            return Err(QueryError::Repeated(k));
        }
        values[slot] = Some(decode_component(v)?);
    }
    let [start, end, subscription, subject, push, offset, limit] = values;
    let time = |name: &'static str, v: Option<String>| -> Result<DateTime<Utc>, QueryError> {
        let v = v.ok_or(QueryError::Required(name))?;
        parse_timestamp(&v).ok_or(QueryError::Time { name, value: v })
    };
    let start = time("start", start)?;
    let end = time("end", end)?;
    if end < start {
        return Err(QueryError::EndBeforeStart);
    }
    let number = |name: &'static str, v: Option<String>, default: u64| -> Result<u64, QueryError> {
        match v {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| QueryError::Number { name, value: v }),
        }
    };
    let offset = number("offset", offset, 0)?;
    let limit = number("limit", limit, default_limit)?;
    if limit == 0 {
        return Err(QueryError::ZeroLimit);
    }
    let list = |v: Option<String>| -> Vec<String> {
        v.map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let push_statuses = list(push);
    if let Some(bad) = push_statuses.iter().find(|s| !PUSH_STATUSES.contains(&s.as_str())) {
        return Err(QueryError::PushStatus(bad.clone()));
    }
    Ok(Query {
        start,
        end,
        subject: subject.filter(|s| !s.is_empty()),
        subscriptions: list(subscription),
        push_statuses,
        offset,
        limit: limit.min(max_limit),
    })
}

/// What is rendered for one item of a page, gathered under the lock and rendered after it.
enum Render {
    Generated(u64, &'static str),
    Inserted(Value),
}

async fn notifications(sim: &Simulator, raw_query: Option<&str>) -> Response {
    let inner = &sim.inner;
    let query = match parse_query(raw_query, inner.default_limit, inner.max_limit) {
        Ok(q) => q,
        Err(e) => {
            let message = e.to_string();
            return error(sim, StatusCode::BAD_REQUEST, API_SOURCE, "INVALID_REQUEST_PARAMETER", &message, false);
        }
    };
    let decision = lock(&inner.faults).decide(&inner.rates);
    let injected = decision.fail.is_some() || decision.delay.is_some() || decision.truncate;
    if injected {
        lock(&inner.stats).faults_injected += 1;
    }
    if let Some(status) = decision.fail {
        if status == 429 {
            let secs = decision.retry_after.map_or(1, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
            let mut response = error(
                sim,
                StatusCode::TOO_MANY_REQUESTS,
                "Gateway",
                "TOO_MANY_REQUESTS",
                "Rate limit exceeded; retry after the time in Retry-After",
                true,
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return response;
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return error(
            sim,
            status,
            API_SOURCE,
            "SERVICE_UNAVAILABLE",
            "The service is temporarily unavailable; retry later",
            true,
        );
    }
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }

    let number = inner.notification_requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    let hook = lock(&inner.hook).clone();
    if let Some(hook) = hook {
        let info = RequestInfo {
            number,
            start: query.start,
            end: query.end,
            offset: query.offset,
            limit: query.limit,
            subject: query.subject.clone(),
            subscription_names: query.subscriptions.clone(),
            push_statuses: query.push_statuses.clone(),
        };
        // Called without any lock held: the hook changes the data through the handle.
        hook(&info, sim);
    }
    if query.offset > 0 && query.limit > 1 {
        let churn = lock(&inner.faults).roll(inner.rates.churn);
        if churn {
            churn_one(sim, &query);
        }
    }

    let filter = query.filter();
    let (total, items) = sim.with_view(|v| {
        let page = v.page(&filter, query.offset, query.limit);
        let items: Vec<Render> = page
            .items
            .iter()
            .filter_map(|(key, status)| match key {
                ItemKey::Generated(i) => Some(Render::Generated(*i, status)),
                ItemKey::Inserted(seq) => {
                    let ms = v.state.inserted_at.get(seq)?;
                    let item = v.state.inserted.get(&(*ms, *seq))?;
                    let mut value = item.value.clone();
                    if let Value::Object(map) = &mut value {
                        map.insert("pushStatus".into(), Value::from(*status));
                    }
                    Some(Render::Inserted(value))
                }
            })
            .collect();
        (page.total, items)
    });

    let mut body = String::with_capacity(96 + items.len() * 2304);
    let _ = write!(
        body,
        r#"{{"count":{},"offset":{},"limit":{},"total":{},"notifications":["#,
        items.len(),
        query.offset,
        query.limit,
        total
    );
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        match item {
            Render::Generated(i, status) => inner.stream.write_item(*i, Some(status), &mut body),
            Render::Inserted(value) => body.push_str(&value.to_string()),
        }
    }
    body.push_str("]}");
    {
        let mut stats = lock(&inner.stats);
        stats.notification_requests += 1;
        if query.limit <= 1 {
            stats.count_queries += 1;
        } else {
            stats.page_requests += 1;
        }
        stats.notifications_served += items.len() as u64;
        stats.items_rendered += items.len() as u64;
    }
    let mut bytes = body.into_bytes();
    if decision.truncate {
        // A 200 whose JSON stops in the middle, as a connection cut by a proxy would leave it.
        bytes.truncate(bytes.len() / 2);
    }
    respond(sim, StatusCode::OK, bytes)
}

/// Churn: one notification of the window expires and a new one of the same subject appears
/// in it, so `total` stays the same while offsets shift (the hazard of SPEC 8).
fn churn_one(sim: &Simulator, query: &Query) {
    let inner = &sim.inner;
    let filter = query.filter();
    let total = sim.with_view(|v| v.page(&filter, 0, 0).total);
    if total == 0 {
        return;
    }
    let pick = lock(&inner.faults).below(total);
    let victim = sim.with_view(|v| v.page(&filter, pick, 1).items.first().map(|x| x.0));
    let Some(victim) = victim else { return };
    let subject = match victim {
        ItemKey::Generated(i) => inner.stream.subject(i),
        ItemKey::Inserted(seq) => {
            let state = lock(&inner.state);
            let Some(s) = state
                .inserted_at
                .get(&seq)
                .and_then(|ms| state.inserted.get(&(*ms, seq)))
                .and_then(|item| subject_index(&item.subject))
            else {
                return;
            };
            s
        }
    };
    // A creation time inside the window that exists now.
    let now = sim.now_ms();
    let lo = filter.lo_ms.max(now - inner.retention_ms + 1);
    let hi = filter.hi_ms.min(now + 1);
    if lo >= hi {
        return;
    }
    let created = lo + lock(&inner.faults).below((hi - lo) as u64) as i64;
    // Content keys far beyond any stream index (2^40), so churned items never equal stream
    // items, and small enough that every number in them stays exact as a double.
    let n = inner.churn_seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let key = (1u64 << 40) + n;
    let mut text = String::new();
    write_notification(inner.stream.seed, key, subject, created, None, &mut text);
    let Ok(value) = serde_json::from_str::<Value>(&text) else {
        return;
    };
    if sim.insert(value, sim.now()).is_ok() && sim.expire(victim) {
        lock(&inner.stats).churned += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded_and_checked() {
        let q = parse_query(
            Some("start=2026-11-20T00%3A00%3A00.000Z&end=2026-11-20T01%3A00%3A00Z&subscription_name=a%2Cb,c&subject=CLEARING&push_status=FAILED%2CPENDING&offset=5&limit=5000&other=x"),
            200,
            1000,
        )
        .unwrap();
        assert_eq!(q.start.to_rfc3339(), "2026-11-20T00:00:00+00:00");
        assert_eq!(q.subscriptions, ["a", "b", "c"]);
        assert_eq!(q.push_statuses, ["FAILED", "PENDING"]);
        assert_eq!((q.offset, q.limit), (5, 1000));
        let q = parse_query(Some("start=2026-11-20T00:00:00Z&end=2026-11-20T00:00:00Z"), 200, 1000).unwrap();
        assert_eq!((q.offset, q.limit, q.subject), (0, 200, None));
        // An unencoded `+` in an offset decodes to a space and is refused, as a form
        // decoding server would.
        for bad in [
            None,
            Some(""),
            Some("start=2026-11-20T00:00:00Z"),
            Some("end=2026-11-20T00:00:00Z"),
            Some("start=yesterday&end=2026-11-20T00:00:00Z"),
            Some("start=2026-11-20T00:00:00+01:00&end=2026-11-21T00:00:00Z"),
            Some("start=2026-11-21T00:00:00Z&end=2026-11-20T00:00:00Z"),
            Some("start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&limit=0"),
            Some("start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&limit=-1"),
            Some("start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&offset=x"),
            Some("start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&push_status=LOST"),
            Some("start=2026-11-20T00:00:00Z&start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z"),
            Some("start=%ZZ&end=2026-11-21T00:00:00Z"),
            Some("start=%FF&end=2026-11-21T00:00:00Z"),
            Some("start=%&end=2026-11-21T00:00:00Z"),
        ] {
            assert!(parse_query(bad, 200, 1000).is_err(), "{bad:?}");
        }
        assert!(parse_query(Some("start=2026-11-20T00:00:00%2B01:00&end=2026-11-21T00:00:00Z"), 200, 1000).is_ok());
    }
}
