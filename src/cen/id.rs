//! The stable id of a notification (SPEC 3).
//!
//! CEN notifications carry no id, and the push copy differs from the pulled copy in
//! `pushStatus`. The id is therefore a hash of the canonical JSON (RFC 8785) of the object
//! without `pushStatus` and without null-valued members, so both copies — and any
//! re-serialisation with other key order, whitespace or number spelling — hash the same.

use aws_lc_rs::digest;
use serde_json::Value;

use crate::json::canonical::{self as jcs, Node};

/// The member that differs between the push copy and the pulled copy.
pub(crate) const PUSH_STATUS: &str = "pushStatus";

/// Why a notification's id could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error("a notification must be a JSON object")]
    NotAnObject,
    #[error("cannot canonicalise the notification: {0}")]
    Canonical(String),
}

/// Lower-case hex SHA-256 of the JCS form of `notification` minus `pushStatus` and nulls.
pub fn notification_id(notification: &Value) -> Result<String, IdError> {
    notification_id_of(&Node::from_value(notification))
}

/// [`notification_id`] of a notification parsed with [`Node::parse`] (the hot path: no
/// `serde_json::Value` is built).
pub fn notification_id_of(notification: &Node<'_>) -> Result<String, IdError> {
    if !matches!(notification, Node::Object(_)) {
        return Err(IdError::NotAnObject);
    }
    let mut canonical = String::with_capacity(2048);
    jcs::write_canonical_without_nulls(notification, &[PUSH_STATUS], &mut canonical)
        .map_err(|e| IdError::Canonical(e.to_string()))?;
    Ok(id_of_canonical(&canonical))
}

/// The id whose canonical text is `canonical`: lower-case hex SHA-256 (written without a
/// per-digit iterator: this runs for every notification).
pub(crate) fn id_of_canonical(canonical: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = digest::digest(&digest::SHA256, canonical.as_bytes());
    let mut id = String::with_capacity(64);
    for &b in digest.as_ref() {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    id
}

/// The id of a VGS webhook event: its own `id`, namespaced so it can never collide with a
/// CEN hash.
pub fn vgs_id(event_id: &str) -> String {
    format!("vgs:{event_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(text: &str) -> String {
        notification_id(&serde_json::from_str(text).unwrap()).unwrap()
    }

    const BASE: &str = r#"{"subject":"CLEARING","subscriptionName":"ops","pushStatus":"DELIVERED",
        "createdTimestamp":"2026-11-22T10:00:00.640Z","content":{"amount":12.5,"count":100,"tags":["a",null]}}"#;

    #[test]
    fn is_lowercase_hex_sha256() {
        let id = id(BASE);
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let reordered = r#"{ "content" : { "tags":["a",null], "count":100, "amount":12.5 },
            "createdTimestamp":"2026-11-22T10:00:00.640Z", "subscriptionName":"ops",
            "subject":"CLEARING" , "pushStatus":"DELIVERED" }"#;
        assert_eq!(id(BASE), id(reordered));
    }

    #[test]
    fn number_spellings_do_not_matter() {
        let spelled = BASE.replace("12.5", "1.25e1").replace("100", "1e2");
        assert_eq!(id(BASE), id(&spelled));
        assert_eq!(id(r#"{"a":1.0}"#), id(r#"{"a":1}"#));
        assert_eq!(id(r#"{"a":1e0}"#), id(r#"{"a":1}"#));
    }

    #[test]
    fn push_status_and_null_members_do_not_matter() {
        let pulled = BASE.replace("DELIVERED", "FAILED");
        assert_eq!(id(BASE), id(&pulled));
        let without = BASE.replace(r#""pushStatus":"DELIVERED","#, "");
        assert_eq!(id(BASE), id(&without));
        let with_nulls = BASE.replace(r#""count":100"#, r#""count":100,"note":null,"deep":{"x":null}"#);
        // `deep` becomes an empty object, which is content: compare with that written out.
        let with_empty = BASE.replace(r#""count":100"#, r#""count":100,"deep":{}"#);
        assert_eq!(id(&with_nulls), id(&with_empty));
        assert_eq!(id(r#"{"a":1,"b":null}"#), id(r#"{"a":1}"#));
    }

    #[test]
    fn null_array_elements_stay() {
        let no_null = BASE.replace(r#"["a",null]"#, r#"["a"]"#);
        assert_ne!(id(BASE), id(&no_null));
    }

    #[test]
    fn any_content_change_changes_the_id() {
        for (from, to) in [
            ("12.5", "12.6"),
            ("CLEARING", "BPC_CLEARING"),
            ("\"ops\"", "\"ops2\""),
            ("640Z", "641Z"),
            ("\"a\"", "\"b\""),
            ("100", "\"100\""),
        ] {
            assert_ne!(id(BASE), id(&BASE.replacen(from, to, 1)), "{from} -> {to}");
        }
    }

    #[test]
    fn non_objects_are_refused() {
        assert!(matches!(notification_id(&json!([1])), Err(IdError::NotAnObject)));
        assert!(matches!(notification_id(&json!(null)), Err(IdError::NotAnObject)));
    }

    #[test]
    fn vgs_ids_are_namespaced() {
        assert_eq!(vgs_id("evt_1"), "vgs:evt_1");
    }
}
