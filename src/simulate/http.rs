//! What every answer of the simulated API shares: the `Date` header from the simulator's
//! clock, the error envelope, and query decoding. Used by the notification and the
//! subscription endpoints alike.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::Simulator;

/// The `Source` of errors raised by the simulated API itself (gateway errors say `Gateway`).
pub const API_SOURCE: &str = "cen-simulator";

/// A response with the simulator's `Date` and a JSON content type.
pub(crate) fn respond(sim: &Simulator, status: StatusCode, body: impl Into<Body>) -> Response {
    let date = sim.now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&date) {
        headers.insert(header::DATE, v);
    }
    response
}

/// The error envelope of SPEC 10.
pub fn error_body(source: &str, reason: &str, description: &str, recoverable: bool) -> Value {
    json!({"Errors": {"Error": [{
        "Source": source,
        "ReasonCode": reason,
        "Description": description,
        "Recoverable": recoverable,
        "Details": null,
    }]}})
}

/// A query component that does not decode (the component as sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("invalid percent-encoding in {0:?}")]
    Percent(String),
    #[error("{0:?} does not decode to UTF-8")]
    Utf8(String),
}

/// Decodes a query component: `%XX` and `+` (a space, as form decoding does). Invalid
/// escapes and invalid UTF-8 are errors, not guesses.
pub(crate) fn decode_component(s: &str) -> Result<String, DecodeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| DecodeError::Percent(s.to_owned()))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::Utf8(s.to_owned()))
}
