//! Typed views of the seven subjects' `content` (SPEC 10).
//!
//! The pipeline never needs these to move a notification — it carries the original JSON —
//! but they document the wire format, let the simulator generate realistic content, and
//! let a sink or a test read fields by name. They are lenient: numbers may arrive as strings
//! and back, and every member not declared here is kept in `extra`.

pub mod lenient {
    //! Deserialisers that accept a number written as a number or as a string.

    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// An optional unsigned integer, given as a number or a numeric string.
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!("{n} is not a non-negative integer"))
            }),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                serde::de::Error::custom(format!("{s:?} is not a non-negative integer"))
            }),
            Some(other) => Err(serde::de::Error::custom(format!(
                "expected an integer, got {other}"
            ))),
        }
    }
}
