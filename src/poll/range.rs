//! `RANGE` arguments of `--backfill` and `replay` (SPEC 4): `FROM..TO`, `FROM..` (up to
//! now minus `poll.settle`) or a duration meaning "the last …".

use chrono::{DateTime, TimeDelta, Utc};

use crate::cen::RETENTION;
use crate::cen::notification::{format_timestamp, parse_timestamp};
use crate::units::parse_duration;

/// A parsed `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", format_timestamp(self.from), format_timestamp(self.to))
    }
}

/// Why a `RANGE` argument cannot be used (exit status 2). The message shows the text and
/// how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{0:?} is not an RFC 3339 time like 2026-11-20T00:00:00Z")]
    Time(String),
    #[error("{0:?} is not a range: write FROM..TO, FROM.. (RFC 3339 UTC times) or a duration like 24h")]
    Syntax(String),
    #[error("{0:?} is too long")]
    TooLong(String),
    #[error("range {0} is empty: its end must be after its start")]
    Empty(Range),
    /// SPEC 4: the API keeps notifications for [`RETENTION`].
    #[error(
        "range {range} reaches back to {}, beyond the API's 7-day retention (nothing created before {} can be fetched); start at {} or later",
        format_timestamp(range.from),
        format_timestamp(*oldest),
        format_timestamp(*oldest + TimeDelta::minutes(1))
    )]
    BeyondRetention { range: Range, oldest: DateTime<Utc> },
}

/// Parses `text` at `now`; an open end is `now - settle`.
pub fn parse_range(text: &str, now: DateTime<Utc>, settle: TimeDelta) -> Result<Range, RangeError> {
    let text = text.trim();
    let open_end = now - settle;
    let range = if let Some((from, to)) = text.split_once("..") {
        let time = |s: &str| parse_timestamp(s.trim()).ok_or_else(|| RangeError::Time(s.to_owned()));
        let from = time(from)?;
        let to = if to.trim().is_empty() { open_end } else { time(to)? };
        Range { from, to }
    } else {
        let d = parse_duration(text).map_err(|_| RangeError::Syntax(text.to_owned()))?;
        let d = TimeDelta::from_std(d).map_err(|_| RangeError::TooLong(text.to_owned()))?;
        // "The last 7d" starts 7 days before now, so `7d` is the whole retention.
        Range { from: now - d, to: open_end }
    };
    if range.to <= range.from {
        return Err(RangeError::Empty(range));
    }
    Ok(range)
}

/// Refuses a range the API cannot serve any more (SPEC 4).
pub fn check_retention(range: &Range, now: DateTime<Utc>) -> Result<(), RangeError> {
    let oldest = now - RETENTION;
    if range.from < oldest {
        return Err(RangeError::BeyondRetention { range: *range, oldest });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn three_forms() {
        let settle = TimeDelta::seconds(60);
        let r = parse_range("2026-11-20T00:00:00Z..2026-11-21T00:00:00Z", now(), settle).unwrap();
        assert_eq!(r.to_string(), "2026-11-20T00:00:00.000Z..2026-11-21T00:00:00.000Z");
        let r = parse_range("2026-11-22T00:00:00Z..", now(), settle).unwrap();
        assert_eq!(r.to, now() - settle);
        let r = parse_range("24h", now(), settle).unwrap();
        assert_eq!((r.from, r.to), (now() - TimeDelta::hours(24), now() - settle));
        for bad in ["", "yesterday", "2026-11-21T00:00:00Z..2026-11-20T00:00:00Z", "x..y", "..2026-11-20T00:00:00Z"] {
            assert!(parse_range(bad, now(), settle).is_err(), "{bad}");
        }
    }

    #[test]
    fn retention_is_enforced() {
        let settle = TimeDelta::seconds(60);
        let old = parse_range("8d", now(), settle).unwrap();
        let e = check_retention(&old, now()).unwrap_err().to_string();
        assert!(e.contains("7-day retention"), "{e}");
        assert!(check_retention(&parse_range("6d", now(), settle).unwrap(), now()).is_ok());
        assert!(check_retention(&parse_range("7d", now(), settle).unwrap(), now()).is_ok(), "the whole retention");
    }
}
