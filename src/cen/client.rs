//! The client for `GET /notifications`.
//!
//! Every answer becomes either a [`Page`] of checked notifications or an [`ApiError`] that
//! says whether retrying can help — never a panic, whatever the body. The request URL is
//! built once in the canonical encoding (RFC 3986, upper-case hex), parsed, and the parsed
//! URL's exact text is what gets signed and what gets sent (the gateway recomputes the
//! signature from what it receives).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::notification::{Notification, NotificationError, RawPage, Scratch, format_timestamp};
use super::oauth::{Signer, encode_query_value};
use crate::json::tape::{self, Tape, skip_ws};

/// One `GET /notifications` request.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Inclusive.
    pub start: DateTime<Utc>,
    /// Exclusive.
    pub end: DateTime<Utc>,
    pub offset: u64,
    pub limit: u32,
    /// One event type, or all.
    pub subject: Option<String>,
}

/// One page of notifications.
#[derive(Debug)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
    /// The number of notifications in the whole window at the time of the call; it may
    /// change between calls.
    pub total: u64,
    pub notifications: Vec<Notification>,
    /// The API's clock (`Date` header), when it sent one.
    pub date: Option<DateTime<Utc>>,
}

/// One entry of the gateway's or the API's error envelope.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ApiErrorEntry {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub reason_code: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub recoverable: bool,
    #[serde(default)]
    pub details: Option<Value>,
}

/// Why a call did not give a page.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error status.
    #[error("{}", describe_status(*status, errors))]
    Status { status: u16, errors: Vec<ApiErrorEntry>, retry_after: Option<Duration> },
    /// No answer: connection refused or reset, TLS failure, timeout.
    #[error("request failed: {0}")]
    Transport(String),
    /// A 200 whose body is not the expected JSON (truncated, not JSON, wrong shape).
    #[error("malformed response body: {0}")]
    Body(String),
    /// A 200 with an item that is not a valid notification; nothing of the page is used.
    #[error("notification {index} of the page is invalid: {error}")]
    Notification { index: usize, error: NotificationError },
    /// The request could not be built (a bad base URL): a configuration problem.
    #[error("cannot build the request: {0}")]
    Request(String),
}

fn describe_status(status: u16, errors: &[ApiErrorEntry]) -> String {
    match errors.first() {
        Some(e) => format!(
            "HTTP {status} {}: {}{}",
            e.reason_code.as_deref().unwrap_or("(no ReasonCode)"),
            e.description.as_deref().unwrap_or("(no Description)"),
            e.source.as_deref().map(|s| format!(" (Source {s})")).unwrap_or_default()
        ),
        None => format!("HTTP {status} (no error body)"),
    }
}

impl ApiError {
    /// Whether trying the same call again may succeed: 408, 429, 5xx, transport failures,
    /// broken bodies, and any error the API marks `"Recoverable": true`.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { status, errors, .. } => {
                matches!(status, 408 | 429 | 500..=599) || errors.iter().any(|e| e.recoverable)
            }
            ApiError::Transport(_) | ApiError::Body(_) | ApiError::Notification { .. } => true,
            ApiError::Request(_) => false,
        }
    }

    /// 401 or 403: bad key, bad signature, no entitlement. Retried at the poll interval,
    /// not in a tight loop, and the daemon is not ready meanwhile.
    pub fn is_auth(&self) -> bool {
        matches!(self, ApiError::Status { status: 401 | 403, .. })
    }

    /// The first `ReasonCode` of the error envelope.
    pub fn reason_code(&self) -> Option<&str> {
        match self {
            ApiError::Status { errors, .. } => errors.first().and_then(|e| e.reason_code.as_deref()),
            _ => None,
        }
    }

    /// The `Retry-After` the API asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Client settings besides the signer.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Up to and without `/notifications`.
    pub base_url: String,
    pub timeout: Duration,
    /// Extra CA certificate(s), PEM, trusted besides the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// `subscription_name` filter (comma-joined on the wire).
    pub subscriptions: Vec<String>,
    /// `push_status` filter (comma-joined on the wire).
    pub push_status: Vec<String>,
}

/// Calls the CEN API. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    signer: Arc<Signer>,
    options: Arc<ClientOptions>,
}

impl Client {
    pub fn new(signer: Arc<Signer>, options: ClientOptions) -> Result<Client, ApiError> {
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("cen-poller/", env!("CARGO_PKG_VERSION")))
            // The signature covers the URL; a redirect would be refused by the gateway anyway.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &options.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ApiError::Request(format!("api.ca_file is not a PEM certificate: {e}")))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| ApiError::Request(e.to_string()))?;
        Ok(Client { http, signer, options: Arc::new(options) })
    }

    /// The URL of `query`, in the one canonical encoding that is signed and sent.
    pub fn url(&self, q: &Query) -> String {
        let o = &self.options;
        let mut url = format!(
            "{}/notifications?start={}&end={}&offset={}&limit={}",
            o.base_url.trim_end_matches('/'),
            encode_query_value(&format_timestamp(q.start)),
            encode_query_value(&format_timestamp(q.end)),
            q.offset,
            q.limit
        );
        if !o.subscriptions.is_empty() {
            url.push_str("&subscription_name=");
            url.push_str(&encode_query_value(&o.subscriptions.join(",")));
        }
        if let Some(subject) = &q.subject {
            url.push_str("&subject=");
            url.push_str(&encode_query_value(subject));
        }
        if !o.push_status.is_empty() {
            url.push_str("&push_status=");
            url.push_str(&encode_query_value(&o.push_status.join(",")));
        }
        url
    }

    /// `GET /notifications` for `query`.
    pub async fn notifications(&self, query: &Query) -> Result<Page, ApiError> {
        let (_, date, body) =
            self.exchange(reqwest::Method::GET, &self.url(query), None, |status| status == 200).await?;
        parse_page(&body, date)
    }
}

impl Client {
    /// The base URL, without a trailing `/`.
    pub(crate) fn base_url(&self) -> &str {
        self.options.base_url.trim_end_matches('/')
    }

    /// One signed request to `url` (canonically encoded, see [`Client::url`]) with an
    /// optional JSON body, signed with the body's hash (SPEC 10, rule 1). Returns the
    /// status and body of a 2xx answer; any other answer is an [`ApiError::Status`] carrying
    /// the error envelope.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let (status, _, body) = self.exchange(method, url, body, |status| (200..300).contains(&status)).await?;
        Ok((status, body.to_vec()))
    }

    /// Every request to the API: parses `url`, signs the exact text reqwest sends (with the
    /// body's hash), sends it, and returns the status, the answer's `Date` and its body when
    /// `success(status)`; any other answer is an [`ApiError::Status`] with the error
    /// envelope and `Retry-After`.
    async fn exchange(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Vec<u8>>,
        success: impl Fn(u16) -> bool,
    ) -> Result<(u16, Option<DateTime<Utc>>, bytes::Bytes), ApiError> {
        let url = reqwest::Url::parse(url).map_err(|e| ApiError::Request(format!("{e}: check api.base_url")))?;
        let payload = body.as_deref().unwrap_or(b"");
        let signed =
            self.signer.sign(method.as_str(), url.as_str(), payload).map_err(|e| ApiError::Request(e.to_string()))?;
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, signed.authorization)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.map_err(|e| ApiError::Transport(transport_message(&e)))?;
        let status = response.status().as_u16();
        let date =
            response.headers().get(reqwest::header::DATE).and_then(|v| v.to_str().ok()).and_then(parse_http_date);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, date.unwrap_or_else(Utc::now)));
        let body = response.bytes().await.map_err(|e| ApiError::Transport(transport_message(&e)))?;
        if !success(status) {
            return Err(ApiError::Status { status, errors: parse_error_body(&body), retry_after });
        }
        Ok((status, date, body))
    }
}

/// reqwest's message plus its causes: "error sending request" alone tells an operator
/// nothing, the cause ("connection refused", "certificate expired") does.
fn transport_message(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        msg.push_str(" (timed out; see api.timeout)");
    }
    msg
}

/// Parses a 200 body into a page, checking every notification.
pub fn parse_page(body: &[u8], date: Option<DateTime<Utc>>) -> Result<Page, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::Body("not UTF-8".into()))?;
    match parse_page_fast(text, date) {
        Some(page) => Ok(page),
        None => parse_page_general(text, date),
    }
}

/// The general path: serde_json into [`RawPage`], then each item on its own. It takes every
/// input and gives serde_json's own error messages; the fast path defers to it.
fn parse_page_general(text: &str, date: Option<DateTime<Utc>>) -> Result<Page, ApiError> {
    let mut scratch = Scratch::default();
    parse_page_with(text, date, |item| Notification::from_json_with(item, &mut scratch))
}

/// [`parse_page_general`] reading each item with `item` (the tests pass the general path).
fn parse_page_with(
    text: &str,
    date: Option<DateTime<Utc>>,
    mut item: impl FnMut(&str) -> Result<Notification, NotificationError>,
) -> Result<Page, ApiError> {
    let raw: RawPage = serde_json::from_str(text).map_err(|e| ApiError::Body(e.to_string()))?;
    let items = raw.notifications.unwrap_or_default();
    let total = raw.total.ok_or_else(|| ApiError::Body("no `total` in the response".into()))?;
    if let Some(count) = raw.count
        && count != items.len() as u64
    {
        return Err(ApiError::Body(format!("`count` is {count} but {} notifications came", items.len())));
    }
    let notifications = items
        .iter()
        .enumerate()
        .map(|(index, raw)| item(raw.get()).map_err(|error| ApiError::Notification { index, error }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { offset: raw.offset.unwrap_or(0), limit: raw.limit.unwrap_or(0), total, notifications, date })
}

/// The fast path ([`super::tape`]): one pass over the page, the same [`Page`] as
/// [`parse_page_general`], or `None` when that is not certain — any error included, so that
/// errors always come from the general path.
///
/// Only the plain wrapper is taken: an object with the members of [`RawPage`], each at most
/// once, `notifications` an array or null, other members ignored as serde ignores them. The
/// numbers may be numbers, numeric strings or null, as `lenient::opt_u64` reads them. An item
/// the fast path cannot take is read by the general path for one notification; should that
/// fail, so does this (and the general path reports it, after anything wrong with the rest
/// of the page).
fn parse_page_fast(text: &str, date: Option<DateTime<Utc>>) -> Option<Page> {
    /// Items start two levels down (wrapper, array). The general path reads an item on its
    /// own (127 levels allowed), but keep the page as a whole within serde_json's limit too.
    const ITEM_DEPTH: usize = tape::MAX_DEPTH - 2;
    let b = text.as_bytes();
    let mut scratch = Scratch::default();
    // The outer `Option` says whether the member was there: serde refuses a repeated one.
    let mut numbers: [Option<Option<u64>>; 4] = [None; 4];
    let mut notifications: Option<Vec<Notification>> = None;
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    // An empty wrapper has no `total`: the general path reports it.
    loop {
        // A member name: a string (the tape reads it, escapes and all), then `:`.
        if b.get(i) != Some(&b'"') {
            return None;
        }
        i = scratch.tape.parse(text, i, 0)?;
        let name = scratch.tape.str(text, *scratch.tape.tokens().first()?)?;
        let field = ["count", "offset", "limit", "total", "notifications"].iter().position(|f| *f == name);
        i = skip_ws(b, i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        match field {
            Some(4) => {
                if notifications.is_some() {
                    return None;
                }
                // `count` comes first in the API's pages; trust it only so far.
                let expected = numbers[0].flatten().unwrap_or(0).min(4096) as usize;
                let items = notifications.insert(Vec::with_capacity(expected));
                i = page_items(text, i, ITEM_DEPTH, &mut scratch, items)?;
            }
            Some(n) => {
                let slot = numbers.get_mut(n)?;
                if slot.is_some() {
                    return None;
                }
                i = scratch.tape.parse(text, i, 0)?;
                *slot = Some(lenient_u64(text, &scratch.tape)?);
            }
            // serde ignores any other member (still checking its syntax, more leniently
            // than the tape does).
            None => i = scratch.tape.parse(text, i, ITEM_DEPTH)?,
        }
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    // Nothing but whitespace may follow the wrapper.
    if skip_ws(b, i + 1) != b.len() {
        return None;
    }
    let [count, offset, limit, total] = numbers.map(Option::flatten);
    let notifications = notifications.unwrap_or_default();
    if count.is_some_and(|c| c != notifications.len() as u64) {
        return None;
    }
    Some(Page { offset: offset.unwrap_or(0), limit: limit.unwrap_or(0), total: total?, notifications, date })
}

/// The items of the `notifications` array (or null) that starts at `i`, appended to `out`;
/// the index after the array.
fn page_items(
    text: &str,
    mut i: usize,
    depth: usize,
    scratch: &mut Scratch,
    out: &mut Vec<Notification>,
) -> Option<usize> {
    let b = text.as_bytes();
    match b.get(i) {
        Some(b'[') => {}
        // `null` is no items (the member is an `Option`).
        Some(b'n') => {
            let end = scratch.tape.parse(text, i, 0)?;
            return (scratch.tape.tokens().first()?.kind == tape::Kind::Null).then_some(end);
        }
        _ => return None,
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Some(i + 1);
    }
    loop {
        let start = i;
        i = scratch.tape.parse(text, i, depth)?;
        let notification = match Notification::from_tape(text, scratch) {
            Some(n) => n,
            // Exactly what the general path does with this item (its `RawValue` is the
            // item's text without the whitespace around it).
            None => Notification::from_json_general(text.get(start..i)?).ok()?,
        };
        out.push(notification);
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => return Some(i + 1),
            _ => return None,
        }
    }
}

/// A wrapper number just parsed into `tape`, read as `lenient::opt_u64` reads it: a
/// non-negative integer, or a string that is one once trimmed, or null. `None` for anything
/// that function refuses (its error messages come from the general path).
fn lenient_u64(text: &str, tape: &Tape) -> Option<Option<u64>> {
    let t = *tape.tokens().first()?;
    match t.kind {
        tape::Kind::Null => Some(None),
        // serde_json reads a number without fraction or exponent as a u64 when it fits.
        tape::Kind::Int | tape::Kind::Num => {
            let digits = tape.span(text, t)?;
            if !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok().map(Some)
        }
        tape::Kind::Str | tape::Kind::EscStr => tape.str(text, t)?.trim().parse().ok().map(Some),
        _ => None,
    }
}

/// Parses the error envelope `{"Errors":{"Error":[…]}}`; also accepts `Error` as a single
/// object. Anything else gives no entries (the status still tells what happened).
pub fn parse_error_body(body: &[u8]) -> Vec<ApiErrorEntry> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let error = value.get("Errors").and_then(|e| e.get("Error"));
    match error {
        Some(Value::Array(items)) => items.iter().filter_map(|i| serde_json::from_value(i.clone()).ok()).collect(),
        Some(item @ Value::Object(_)) => serde_json::from_value(item.clone()).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

/// Parses an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// Formats an HTTP-date.
pub fn format_http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// `Retry-After`: seconds, or an HTTP-date (relative to the API's clock `now`).
pub fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    parse_http_date(v).map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cen::keys::SigningKey;

    fn client(base: &str, subs: &[&str], push: &[&str]) -> Client {
        Client::new(
            Arc::new(Signer::new("ck", SigningKey::generate().unwrap())),
            ClientOptions {
                base_url: base.into(),
                timeout: Duration::from_secs(5),
                extra_ca_pem: None,
                subscriptions: subs.iter().map(|s| s.to_string()).collect(),
                push_status: push.iter().map(|s| s.to_string()).collect(),
            },
        )
        .unwrap()
    }

    fn query() -> Query {
        Query {
            start: "2026-11-20T00:00:00Z".parse().unwrap(),
            end: "2026-11-20T01:00:00.5Z".parse().unwrap(),
            offset: 400,
            limit: 200,
            subject: Some("BPC_CLEARING".into()),
        }
    }

    #[test]
    fn urls_are_canonical_and_survive_parsing_unchanged() {
        let c = client(
            "https://sandbox.api.mastercard.com/commercial-event-notifications/",
            &["ops a", "ops,b"],
            &["FAILED", "PENDING"],
        );
        let url = c.url(&query());
        assert_eq!(
            url,
            "https://sandbox.api.mastercard.com/commercial-event-notifications/notifications?start=2026-11-20T00%3A00%3A00.000Z\
             &end=2026-11-20T01%3A00%3A00.500Z&offset=400&limit=200&subscription_name=ops%20a%2Cops%2Cb\
             &subject=BPC_CLEARING&push_status=FAILED%2CPENDING"
        );
        // What is signed is what is sent: the URL parser must not re-encode anything.
        assert_eq!(reqwest::Url::parse(&url).unwrap().as_str(), url);
    }

    #[test]
    fn pages_parse_leniently_and_check_every_item() {
        let body = br#"{"count":"1","offset":0,"limit":200,"total":"7","notifications":[
            {"subject":"CLEARING","createdTimestamp":"2026-11-20T00:00:00.640Z","content":{"a":1}}]}"#;
        let page = parse_page(body, None).unwrap();
        assert_eq!((page.total, page.notifications.len()), (7, 1));
        let empty = parse_page(br#"{"count":0,"offset":0,"limit":200,"total":0}"#, None).unwrap();
        assert!(empty.notifications.is_empty());
        for (body, what) in [
            (&b"{\"count\":1,\"total\":1,\"notifications\":[{\"subject\":"[..], "truncated"),
            (b"<html>busy</html>", "not JSON"),
            (b"[]", "wrong shape"),
            (b"{\"count\":2,\"total\":2,\"notifications\":[]}", "count mismatch"),
            (b"{\"notifications\":[]}", "no total"),
            (b"\xff", "not UTF-8"),
        ] {
            assert!(matches!(parse_page(body, None), Err(ApiError::Body(_))), "{what}");
        }
        let bad_item = br#"{"count":1,"total":1,"notifications":[{"subject":"CLEARING","content":{}}]}"#;
        assert!(matches!(parse_page(bad_item, None), Err(ApiError::Notification { index: 0, .. })));
    }

    #[test]
    fn error_envelopes_are_typed_and_classified() {
        let body = br#"{"Errors":{"Error":[{"Source":"Gateway","ReasonCode":"INVALID_SIGNATURE",
            "Description":"Signature verification failed. Expected signature base string: GET&x","Recoverable":false,"Details":null}]}}"#;
        let e = ApiError::Status { status: 401, errors: parse_error_body(body), retry_after: None };
        assert_eq!(e.reason_code(), Some("INVALID_SIGNATURE"));
        assert!(e.is_auth() && !e.is_retryable());
        assert!(e.to_string().contains("HTTP 401 INVALID_SIGNATURE: Signature verification failed"), "{e}");
        let single = br#"{"Errors":{"Error":{"ReasonCode":"SYSTEM_ERROR","Recoverable":"true"}}}"#;
        let e = ApiError::Status { status: 400, errors: parse_error_body(single), retry_after: None };
        assert!(e.is_retryable(), "Recoverable: true is retried whatever the status");
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(ApiError::Status { status, errors: vec![], retry_after: None }.is_retryable());
        }
        for status in [400, 401, 403, 404] {
            assert!(!ApiError::Status { status, errors: vec![], retry_after: None }.is_retryable());
        }
        assert!(parse_error_body(b"garbage").is_empty());
        assert!(ApiError::Transport("reset".into()).is_retryable());
    }

    #[test]
    fn dates_and_retry_after() {
        let t = parse_http_date("Sun, 22 Nov 2026 10:00:00 GMT").unwrap();
        assert_eq!(format_timestamp(t), "2026-11-22T10:00:00.000Z");
        assert_eq!(format_http_date(t), "Sun, 22 Nov 2026 10:00:00 GMT");
        assert_eq!(parse_retry_after("7", t), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sun, 22 Nov 2026 10:00:30 GMT", t), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", t), None);
    }

    /// A page of `n` generated notifications as the simulator renders it
    /// (`simulate::server`): compact, wrapper members in this order.
    fn sim_page(seed: u64, offset: u64, n: u64, total: u64) -> String {
        let stream = crate::simulate::generate::Stream {
            seed,
            start_ms: 1_795_000_000_000,
            rate: 3.0,
            count: Some(offset + n),
            late_fraction: 0.0,
            late_by_ms: 0,
        };
        let mut body = format!(r#"{{"count":{n},"offset":{offset},"limit":{n},"total":{total},"notifications":["#);
        for i in offset..offset + n {
            if i > offset {
                body.push(',');
            }
            stream.write_item(i, Some(["DELIVERED", "FAILED", "PENDING"][i as usize % 3]), &mut body);
        }
        body.push_str("]}");
        body
    }

    /// Checks the fast page path against the general one (each item by the general path
    /// too) and returns whether the fast path took the page: when it does, the general path
    /// gives the same page; it never takes a page the general path refuses.
    fn check_page(text: &str) -> bool {
        let date = Some("2026-11-22T10:00:00Z".parse().unwrap());
        let general = parse_page_with(text, date, Notification::from_json_general);
        let Some(fast) = parse_page_fast(text, date) else {
            return false;
        };
        let general =
            general.unwrap_or_else(|e| panic!("the fast path took a page the general path refuses ({e}): {text}"));
        assert_eq!(
            (fast.offset, fast.limit, fast.total, fast.date),
            (general.offset, general.limit, general.total, general.date),
            "{text}"
        );
        assert_eq!(fast.notifications, general.notifications, "{text}");
        true
    }

    const ITEM: &str = r#"{"subject":"CLEARING","createdTimestamp":"2026-11-20T00:00:00.640Z","content":{"a":1.50}}"#;

    #[test]
    fn fast_pages_match_the_general_path() {
        let page = sim_page(3, 40, 200, 1000);
        assert!(check_page(&page));
        assert_eq!(parse_page(page.as_bytes(), None).unwrap().notifications.len(), 200);
        let item2 = ITEM.replace("640Z", "641Z");
        let taken = [
            format!(
                " {{ \"count\" : 2 ,\n\"offset\":0, \"limit\":2,\"total\":2,\"notifications\":[ {ITEM} ,\n{item2} ] }}\n"
            ),
            format!(r#"{{"count":"2","offset":" 5 ","limit":"+200","total":"7","notifications":[{ITEM},{item2}]}}"#),
            format!(r#"{{"notifications":[{ITEM}],"total":1,"count":null,"offset":null}}"#),
            format!(r#"{{"co\u0075nt":1,"total":1,"notifications":[{ITEM}]}}"#),
            format!(r#"{{"_links":{{"next":[1,{{"a":"b"}}]}},"extra":1e5,"total":1,"notifications":[{ITEM}]}}"#),
            r#"{"count":0,"offset":0,"limit":200,"total":0}"#.to_owned(),
            r#"{"total":5}"#.to_owned(),
            r#"{"total":5,"notifications":[]}"#.to_owned(),
            r#"{"total":5,"notifications":null}"#.to_owned(),
            r#"{"limit":18446744073709551615,"total":0}"#.to_owned(),
            // Items the fast path leaves to the general one, which takes them.
            format!(r#"{{"total":2,"notifications":[{ITEM},{}]}}"#, ITEM.replace(r#""a":1.50"#, r#""a":1,"a":2"#)),
            format!(r#"{{"total":2,"notifications":[{ITEM},{}]}}"#, ITEM.replace("{\"a\"", "{ \"a\"")),
            format!(r#"{{"total":1,"notifications":[{}]}}"#, ITEM.replace("1.50", r#""a\"b\u00e9\ud83d\ude00""#)),
        ];
        for text in &taken {
            assert!(check_page(text), "deferred: {text}");
        }
        let deferred = [
            format!(r#"{{"count":2,"total":2,"notifications":[{ITEM}]}}"#),
            format!(r#"{{"count":1,"notifications":[{ITEM}]}}"#),
            r#"{}"#.to_owned(),
            r#"{"total":-1}"#.to_owned(),
            r#"{"total":1.0}"#.to_owned(),
            r#"{"total":"x"}"#.to_owned(),
            r#"{"total":"18446744073709551616"}"#.to_owned(),
            r#"{"total":18446744073709551616}"#.to_owned(),
            r#"{"total":{}}"#.to_owned(),
            r#"{"total":1,"total":1}"#.to_owned(),
            r#"{"total":1,"notifications":[],"notifications":[]}"#.to_owned(),
            r#"{"total":1,"notifications":{}}"#.to_owned(),
            r#"{"total":1,"notifications":[1]}"#.to_owned(),
            r#"{"total":1,"extra":1e400}"#.to_owned(),
            r#"{"total":1,}"#.to_owned(),
            r#"{"total":1}x"#.to_owned(),
            r#"[]"#.to_owned(),
            "".to_owned(),
            format!(r#"{{"total":1,"notifications":[{}]}}"#, ITEM.replace("subject", "subjekt")),
            format!(r#"{{"total":1,"notifications":[{}]}}"#, ITEM.replace("1.50", "1e400")),
            format!(
                r#"{{"total":1,"notifications":[{}]}}"#,
                ITEM.replace("1.50", &("[".repeat(130) + &"]".repeat(130)))
            ),
        ];
        for text in &deferred {
            assert!(!check_page(text), "taken: {text}");
        }
        // Deep items: the page stays within serde_json's limit as a whole.
        for depth in [120, 123, 124, 125, 126, 127, 128] {
            let deep = ITEM.replace("1.50", &("[".repeat(depth) + &"]".repeat(depth)));
            check_page(&format!(r#"{{"total":1,"notifications":[{deep}]}}"#));
        }
    }

    #[test]
    fn mutated_pages_are_deferred_or_identical() {
        let page = sim_page(8, 0, 2, 2);
        let small = format!(r#"{{"count":2,"offset":"0","total":2,"notifications":[{ITEM},{ITEM}],"x":[null]}}"#);
        for base in [&page, &small] {
            for end in (0..base.len()).filter(|&e| base.is_char_boundary(e)) {
                assert!(!check_page(&base[..end]), "prefix {end} of {base}");
            }
        }
        for (base, step) in [(&page, 5), (&small, 1)] {
            for at in (0..base.len()).step_by(step) {
                for &c in b"\"\\,:{}[]0-.e +\x01\nn" {
                    let mut changed = base.clone().into_bytes();
                    changed[at] = c;
                    if let Ok(text) = String::from_utf8(changed) {
                        check_page(&text);
                    }
                    let mut inserted = base.clone().into_bytes();
                    inserted.insert(at, c);
                    if let Ok(text) = String::from_utf8(inserted) {
                        check_page(&text);
                    }
                }
            }
        }
    }

    #[test]
    fn random_pages_never_panic_or_differ() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(12);
        let pieces = [
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\"count\"",
            "\"total\"",
            "\"notifications\"",
            "\"x\"",
            "1",
            "\"2\"",
            "null",
            "-",
            "1e400",
            ITEM,
        ];
        for _ in 0..5000 {
            let text: String =
                (0..rng.random_range(0..16)).map(|_| pieces[rng.random_range(0..pieces.len())]).collect();
            check_page(&text);
            let _ = parse_page(text.as_bytes(), None);
        }
    }

    /// Time per notification of the general path (the code before the fast path existed)
    /// and of `parse_page`, on simulator pages of 1000. In release mode:
    /// `cargo test --release --lib parse_page_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a timing harness, meaningful in release mode only"]
    fn parse_page_speed() {
        use std::time::Instant;
        let pages: Vec<String> = (0..5).map(|p| sim_page(21, p * 1000, 1000, 5000)).collect();
        let general = |body: &[u8]| {
            let text = std::str::from_utf8(body).unwrap();
            parse_page_with(text, None, Notification::from_json_general).unwrap().notifications.len()
        };
        let fast = |body: &[u8]| parse_page(body, None).unwrap().notifications.len();
        let per_item = |run: &dyn Fn(&[u8]) -> usize| {
            let (start, mut n) = (Instant::now(), 0);
            for page in &pages {
                n += run(page.as_bytes());
            }
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        };
        // Alternate the two, keeping each one's best round: the least disturbed by whatever
        // else runs on the machine.
        let (mut general_best, mut fast_best) = (f64::MAX, f64::MAX);
        for _ in 0..20 {
            general_best = general_best.min(per_item(&general));
            fast_best = fast_best.min(per_item(&fast));
        }
        let (general, fast) = (general_best, fast_best);
        assert!(pages.iter().all(|p| parse_page_fast(p, None).is_some()), "the fast path deferred");
        let bytes = pages.iter().map(String::len).sum::<usize>() / 5000;
        println!(
            "1000-notification pages, {bytes} bytes per notification: general path {general:.2} us/notification, \
             parse_page {fast:.2} us/notification ({:.2}x)",
            general / fast
        );
    }

    #[tokio::test]
    async fn connection_failures_are_retryable_transport_errors() {
        // A port nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = client(&format!("http://127.0.0.1:{port}"), &[], &[]);
        let e = c.notifications(&query()).await.unwrap_err();
        assert!(matches!(e, ApiError::Transport(_)) && e.is_retryable(), "{e}");
    }
}
