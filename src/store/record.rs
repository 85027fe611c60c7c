//! The record every sink receives (SPEC 6), written straight from the stored columns.
//!
//! Invariants: the member order and names are fixed
//! (`id, source, received_via, first_seen_at, subject, subscription_name, created_timestamp,
//! notification`); strings are escaped exactly as `serde_json` escapes them; the stored
//! notification JSON is embedded byte for byte, never parsed or re-serialised, so every
//! field (known or not) reaches the sink as Mastercard sent it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// String members are escaped as the canonical JSON writer escapes them, which is how
/// `serde_json` does (tested below).
pub(crate) use crate::json::escape::push_json_str;

/// The stored columns a record is made of.
pub(crate) struct RecordFields<'a> {
    pub id: &'a str,
    pub source: &'a str,
    pub received_via: &'a str,
    pub first_seen_ms: i64,
    pub subject: &'a str,
    pub subscription_name: Option<&'a str>,
    pub created_raw: &'a str,
    pub json: &'a str,
}

/// Appends the record (one line, no trailing newline) to `out`.
pub(crate) fn write_record(out: &mut String, r: &RecordFields<'_>) {
    out.reserve(r.json.len() + r.id.len() + 256);
    out.push_str("{\"id\":");
    push_json_str(out, r.id);
    out.push_str(",\"source\":");
    push_json_str(out, r.source);
    out.push_str(",\"received_via\":");
    push_json_str(out, r.received_via);
    out.push_str(",\"first_seen_at\":\"");
    push_rfc3339_millis(out, r.first_seen_ms);
    out.push_str("\",\"subject\":");
    push_json_str(out, r.subject);
    out.push_str(",\"subscription_name\":");
    match r.subscription_name {
        Some(name) => push_json_str(out, name),
        None => out.push_str("null"),
    }
    out.push_str(",\"created_timestamp\":");
    push_json_str(out, r.created_raw);
    out.push_str(",\"notification\":");
    out.push_str(r.json);
    out.push('}');
}

/// Appends `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Times chrono cannot represent (only a
/// hand-edited database has them) are clamped to its range rather than failing a delivery.
fn push_rfc3339_millis(out: &mut String, ms: i64) {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    if crate::cen::notification::push_utc_fixed(out, t, false) {
        return;
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "{}", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_serde_json() {
        let mut all: String = (0u32..0x80).filter_map(char::from_u32).collect();
        all.push_str("é€😀\u{2028}\u{7f} plain");
        for s in [all.as_str(), "", "\"", "\\", "a\u{1}b", "ü\n"] {
            let mut ours = String::new();
            push_json_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn times_are_utc_millis() {
        let mut s = String::new();
        push_rfc3339_millis(&mut s, 1_795_600_801_123);
        assert_eq!(s, "2026-11-25T10:00:01.123Z");
        s.clear();
        push_rfc3339_millis(&mut s, 0);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        s.clear();
        push_rfc3339_millis(&mut s, i64::MIN);
        assert!(!s.is_empty());
        // The hand-written digits agree with chrono's format everywhere in years 0-9999.
        let mut ms = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
        while ms < 253_402_300_800_000 {
            s.clear();
            push_rfc3339_millis(&mut s, ms);
            let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
            assert_eq!(s, t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
            ms += 7_777_777_777_777 / 1000 + 1;
        }
    }
}
