//! Reading values in the form Mastercard's examples use as well as the form the schema
//! declares (the published examples disagree with the published types: numbers arrive as
//! strings and back). The pipeline never parses a notification's `content` — it carries the
//! original JSON — so leniency is needed only for the page wrapper's counts and the VGS
//! event's numeric members.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Number, Value};

/// An optional unsigned integer, given as a number or a numeric string.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_u64().map(Some).ok_or_else(|| serde::de::Error::custom(format!("{n} is not a non-negative integer")))
        }
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a non-negative integer"))),
        Some(other) => Err(serde::de::Error::custom(format!("expected an integer, got {other}"))),
    }
}

/// A scalar that is a JSON number or a JSON string, kept in the form it arrived in.
///
/// Used for amounts, ids and codes: the schema says `'0110'` and the example says
/// `110`, or the schema says `integer` and the example says `'64456'`. A string keeps
/// its leading zeros and spaces; a number keeps its JSON value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumOrString {
    Num(Number),
    Str(String),
}

impl NumOrString {
    /// The string, when it arrived as one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            NumOrString::Str(s) => Some(s),
            NumOrString::Num(_) => None,
        }
    }

    /// The number, when it arrived as one.
    pub fn as_number(&self) -> Option<&Number> {
        match self {
            NumOrString::Num(n) => Some(n),
            NumOrString::Str(_) => None,
        }
    }

    /// As an unsigned integer: a number that is one, or a string of one (surrounding
    /// spaces ignored, because fixed-width fields arrive padded).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            NumOrString::Num(n) => n.as_u64(),
            NumOrString::Str(s) => s.trim().parse().ok(),
        }
    }

    /// As a signed integer, read the same way as [`NumOrString::as_u64`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            NumOrString::Num(n) => n.as_i64(),
            NumOrString::Str(s) => s.trim().parse().ok(),
        }
    }

    /// As a double: amounts may carry decimals (`12.3`) although the schema says minor
    /// units.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            NumOrString::Num(n) => n.as_f64(),
            NumOrString::Str(s) => s.trim().parse().ok(),
        }
    }
}

/// The value as it appears on the wire, without the quotes of a string.
impl fmt::Display for NumOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumOrString::Num(n) => write!(f, "{n}"),
            NumOrString::Str(s) => f.write_str(s),
        }
    }
}

impl From<&str> for NumOrString {
    fn from(s: &str) -> Self {
        NumOrString::Str(s.to_owned())
    }
}

impl From<String> for NumOrString {
    fn from(s: String) -> Self {
        NumOrString::Str(s)
    }
}

impl From<u64> for NumOrString {
    fn from(n: u64) -> Self {
        NumOrString::Num(n.into())
    }
}

impl From<i64> for NumOrString {
    fn from(n: i64) -> Self {
        NumOrString::Num(n.into())
    }
}

impl From<Number> for NumOrString {
    fn from(n: Number) -> Self {
        NumOrString::Num(n)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars_write_back_the_form_they_read() {
        for (value, text, as_u64, as_str) in [
            (json!("0007550"), "0007550", Some(7550), Some("0007550")),
            (json!(75.5), "75.5", None, None),
            (json!(11174), "11174", Some(11174), None),
            (json!("00"), "00", Some(0), Some("00")),
        ] {
            let n: NumOrString = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(n.to_string(), text);
            assert_eq!(n.as_u64(), as_u64, "{value}");
            assert_eq!(n.as_str(), as_str, "{value}");
            assert_eq!(serde_json::to_value(&n).unwrap(), value, "written back as read");
        }
    }

    #[test]
    fn counts_are_numbers_or_numeric_strings() {
        #[derive(serde::Deserialize)]
        struct W {
            #[serde(default, deserialize_with = "opt_u64")]
            n: Option<u64>,
        }
        let read = |v: serde_json::Value| serde_json::from_value::<W>(v).map(|w| w.n);
        assert_eq!(read(json!({"n": 12})).unwrap(), Some(12));
        assert_eq!(read(json!({"n": " 12 "})).unwrap(), Some(12));
        assert_eq!(read(json!({"n": null})).unwrap(), None);
        assert_eq!(read(json!({})).unwrap(), None);
        assert!(read(json!({"n": -1})).is_err());
        assert!(read(json!({"n": "x"})).is_err());
        assert!(read(json!({"n": [1]})).is_err());
    }
}
