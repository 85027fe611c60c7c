//! RFC 8785 (JCS) canonical JSON for notification ids, written from a light parse that
//! borrows from the text.
//!
//! Every notification the poller reads is hashed once, so this is on the hot path: parsing
//! into a `serde_json::Value`, copying it without nulls and running a generic canonicalizer
//! cost more than everything else the poller does per notification put together. Here the
//! text is parsed once by serde_json's own parser into a [`Node`] tree whose strings borrow
//! from the text (unless they hold escapes), and the canonical form is written straight from
//! it into one buffer.
//!
//! The result is byte for byte what `serde_json_canonicalizer` writes for the same
//! `serde_json::Value` (the test oracle), so ids never change:
//! - numbers become IEEE 754 doubles exactly as `serde_json::Value` holds them (integers
//!   converted with `as f64`), written with `ryu-js` (ECMAScript `Number.prototype.toString`);
//! - strings are escaped as serde_json escapes them (`\"`, `\\`, the short escapes, `\u00xx`
//!   for other control characters, everything else as is);
//! - object members are sorted by the UTF-16 code units of their (unescaped) names;
//! - a name repeated within an object keeps its last value, as a `serde_json::Map` does.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::escape::push_json_str;

/// A parsed JSON value whose strings borrow from the text when they can.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    /// The number as the double `serde_json::Value::as_f64` gives.
    Number(f64),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    /// Members in document order, repeats included.
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    /// Parses `text` (the same syntax, limits and errors as `serde_json::from_str`).
    pub fn parse(text: &'a str) -> serde_json::Result<Node<'a>> {
        serde_json::from_str(text)
    }

    /// A view of `value` (borrows its strings).
    pub fn from_value(value: &'a Value) -> Node<'a> {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            // `as_f64` is `Some` for every number without `arbitrary_precision`.
            Value::Number(n) => Node::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Node::String(Cow::Borrowed(s)),
            Value::Array(items) => Node::Array(items.iter().map(Node::from_value).collect()),
            Value::Object(map) => {
                Node::Object(map.iter().map(|(k, v)| (Cow::Borrowed(k.as_str()), Node::from_value(v))).collect())
            }
        }
    }

    /// The value of member `key` of an object (the last one when repeated, as in a map).
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|m| &m.1),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }
}

/// A number that JSON cannot hold (NaN or infinite): only possible from a hand-built
/// [`Node`], never from parsed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFinite;

impl fmt::Display for NotFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NaN and +/-Infinity are not permitted in JSON")
    }
}

/// Appends the canonical form of `node` to `out`, leaving out — recursively — every object
/// member whose value is null, and at the top level the members named in `drop_top`.
pub fn write_canonical_without_nulls(node: &Node<'_>, drop_top: &[&str], out: &mut String) -> Result<(), NotFinite> {
    write_node(node, drop_top, out)
}

fn write_node(node: &Node<'_>, drop: &[&str], out: &mut String) -> Result<(), NotFinite> {
    match node {
        Node::Null => out.push_str("null"),
        Node::Bool(true) => out.push_str("true"),
        Node::Bool(false) => out.push_str("false"),
        Node::Number(x) => {
            if !x.is_finite() {
                return Err(NotFinite);
            }
            out.push_str(ryu_js::Buffer::new().format_finite(*x));
        }
        Node::String(s) => push_json_str(out, s),
        Node::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_node(item, &[], out)?;
            }
            out.push(']');
        }
        Node::Object(members) => {
            let mut sorted: Vec<&(Cow<'_, str>, Node<'_>)> = members.iter().collect();
            // Stable: among repeats of a name, the last in the document stays last.
            sorted.sort_by(|a, b| cmp_utf16(&a.0, &b.0));
            out.push('{');
            let mut first = true;
            for (i, (key, value)) in sorted.iter().map(|m| (&m.0, &m.1)).enumerate() {
                let repeated_later = sorted.get(i + 1).is_some_and(|next| next.0 == *key);
                if repeated_later || value.is_null() || drop.contains(&key.as_ref()) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                push_json_str(out, key);
                out.push(':');
                write_node(value, &[], out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Orders strings by their UTF-16 code units (RFC 8785 3.2.3). UTF-8 byte order is code
/// point order, which differs from UTF-16 order only between a character above U+FFFF
/// (lead byte F0-F4) and one in U+E000-U+FFFF (lead byte EE or EF); only then is it
/// recomputed in UTF-16.
pub(crate) fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some(i) if x[i] < 0xEE || y[i] < 0xEE => x[i].cmp(&y[i]),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

// --- Parsing with serde_json's parser ------------------------------------------------------

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }

    // As `serde_json::Number::as_f64` converts them.
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        // serde_json::Value turns a non-finite double into null; its parser never makes one.
        Ok(if v.is_finite() { Node::Number(v) } else { Node::Null })
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            members.push((key, map.next_value()?));
        }
        Ok(Node::Object(members))
    }
}

/// A member name, borrowed from the text when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The reference: serde_json::Value without nulls, through serde_json_canonicalizer.
    fn oracle(text: &str, drop_top: &[&str]) -> String {
        fn strip(v: &Value) -> Value {
            match v {
                Value::Object(m) => {
                    Value::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip(v))).collect())
                }
                Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
                other => other.clone(),
            }
        }
        let mut value: Value = serde_json::from_str(text).unwrap();
        if let Value::Object(m) = &mut value {
            for k in drop_top {
                m.remove(*k);
            }
        }
        serde_json_canonicalizer::to_string(&strip(&value)).unwrap()
    }

    fn ours(text: &str, drop_top: &[&str]) -> String {
        let mut out = String::new();
        write_canonical_without_nulls(&Node::parse(text).unwrap(), drop_top, &mut out).unwrap();
        out
    }

    /// Also the fast path's test cases (`json::tape`).
    pub(crate) const CASES: &[&str] = &[
        r#"{"b":false,"c":12e1,"a":"Hello!"}"#,
        r#"{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001,-0,-0.0,0.0,1e21,1e20,123456789012345678901234567890,-9007199254740993,18446744073709551615,5e-324,1.7976931348623157e308]}"#,
        r#"{"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}"#,
        r#"{"\u20ac":1,"\r":2,"\ud83d\ude00":3,"\ufb33":4,"1":5,"\u0080":6,"\u00f6":7,"\ud800\udc00":8,"\uffff":9,"\ue000":10,"A":11,"a":12,"":13}"#,
        r#"{"a":1,"a":2,"b":{"x":1,"x":null},"c":[1,{"y":null,"z":[null]}],"d":null,"pushStatus":"FAILED"}"#,
        r#"{"deep":{"deeper":{"deepest":{"n":null,"m":{},"l":[]}}},"e":"\u0000\u001f\u007f\u2028 \t"}"#,
        r#"[{"b":1,"a":2},null,"x"]"#,
        r#""just a string""#,
        r#"3.0"#,
        r#"{"z":1,"y":2,"x":3,"w":4,"v":5,"u":6,"t":7,"s":8,"r":9,"q":10,"p":11,"o":12,"n":13,"m":14,"l":15,"k":16,"j":17,"i":18,"h":19,"g":20,"f":21,"e":22,"d":23,"c":24,"b":25,"a":26,"aa":27,"a\u0000":28}"#,
    ];

    #[test]
    fn matches_serde_json_canonicalizer() {
        for text in CASES {
            assert_eq!(ours(text, &[]), oracle(text, &[]), "{text}");
            assert_eq!(ours(text, &["pushStatus", "a"]), oracle(text, &["pushStatus", "a"]), "{text}");
        }
    }

    #[test]
    fn matches_serde_json_canonicalizer_on_generated_notifications() {
        let stream = crate::simulate::generate::Stream {
            seed: 7,
            start_ms: 1_795_000_000_000,
            rate: 3.0,
            count: Some(700),
            late_fraction: 0.0,
            late_by_ms: 0,
        };
        for i in 0..700 {
            let text = stream.item_json(i, Some("DELIVERED"));
            assert_eq!(ours(&text, &["pushStatus"]), oracle(&text, &["pushStatus"]), "item {i}");
        }
    }

    #[test]
    fn views_of_values_write_the_same() {
        for text in CASES {
            let value: Value = serde_json::from_str(text).unwrap();
            let mut from_value = String::new();
            write_canonical_without_nulls(&Node::from_value(&value), &[], &mut from_value).unwrap();
            assert_eq!(from_value, ours(text, &[]), "{text}");
        }
    }

    #[test]
    fn utf16_order() {
        let mut keys = vec!["\u{10000}", "\u{ffff}", "\u{e000}", "a", "\u{80}", "", "ab"];
        keys.sort_by(|a, b| cmp_utf16(a, b));
        assert_eq!(keys, vec!["", "a", "ab", "\u{80}", "\u{10000}", "\u{e000}", "\u{ffff}"]);
    }

    #[test]
    fn strings_borrow_unless_escaped_and_errors_are_serde_jsons() {
        let text = r#"{"plain":"abc","esc\u0041":"a\nb"}"#;
        let Node::Object(members) = Node::parse(text).unwrap() else { panic!("not an object") };
        assert!(matches!(members[0].0, Cow::Borrowed("plain")));
        assert!(matches!(members[0].1, Node::String(Cow::Borrowed("abc"))));
        assert!(matches!(&members[1].0, Cow::Owned(k) if k == "escA"));
        for bad in ["{", "[1,]", "{\"a\":1e400}", "nul", "\"\\ud800\""] {
            assert_eq!(
                Node::parse(bad).unwrap_err().to_string(),
                serde_json::from_str::<Value>(bad).unwrap_err().to_string(),
                "{bad}"
            );
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(Node::parse(&deep).is_err() && serde_json::from_str::<Value>(&deep).is_err());
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        let mut out = String::new();
        assert_eq!(write_canonical_without_nulls(&Node::Number(f64::NAN), &[], &mut out), Err(NotFinite));
    }
}
