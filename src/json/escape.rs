//! The one JSON string escaper: every JSON string cen-poller writes by hand — the canonical
//! form behind a notification's id, the SPEC 6 record, the simulator's notifications — goes
//! through [`push_json_str`], so two writers can never disagree on an escape (and so on an
//! id).

/// Appends `s` as a JSON string literal, escaped the way serde_json does: `"` and `\`, the
/// short escapes `\b \t \n \f \r`, and `\u00xx` (lower-case hex) for the other control
/// characters; everything else, non-ASCII included, as is. RFC 8785 escapes the same way,
/// and the SPEC 6 record, the canonical writer and the simulator all use this one.
pub fn push_json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    // Almost every string needs no escape, and is copied whole.
    let clean = !needs_escape(bytes);
    if clean {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices end on character boundaries.
        out.push_str(s.get(start..i).unwrap_or_default());
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Whether `bytes` holds a byte JSON must escape. Tested 16 bytes at a time as fixed-size
/// blocks (the tail padded with spaces), which the compiler turns into vector compares:
/// this runs for every string of every notification the simulator writes and every record.
fn needs_escape(bytes: &[u8]) -> bool {
    fn block(b: &[u8; 16]) -> bool {
        b.iter().fold(false, |hit, &c| hit | (c < 0x20) | (c == b'"') | (c == b'\\'))
    }
    let mut blocks = bytes.chunks_exact(16);
    for b in &mut blocks {
        if block(b.try_into().expect("16 bytes")) {
            return true;
        }
    }
    let tail = blocks.remainder();
    let mut padded = [b' '; 16];
    padded[..tail.len()].copy_from_slice(tail);
    block(&padded)
}

#[cfg(test)]
mod tests {
    use super::push_json_str;

    /// Every control character, the two that must be escaped, and text around them: as
    /// serde_json writes them (which is RFC 8785's escaping too).
    #[test]
    fn escapes_as_serde_json_does() {
        let mut all: String = (0u8..0x20).map(char::from).collect();
        all.push_str("\"\\ plain é 😀 \u{7f}");
        for s in [all.as_str(), "", "no escapes at all, longer than sixteen bytes", "a\u{8}b\u{c}c"] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }
}
