//! Fault injection: what can go wrong with a `GET /notifications` answer.
//!
//! Two sources, checked in this order on every notifications request:
//! 1. queued faults set by tests (`fail_next`, `rate_limit_next`, `slow_next`,
//!    `truncate_next`), each consumed by exactly one request, so a test knows which
//!    request gets which fault;
//! 2. probabilities from the configuration (the `demo` flags), drawn from a generator seeded
//!    from the simulator's seed.
//!
//! A 5xx or 429 ends the request; a delay and a truncation combine with a normal answer.
//! Auth failures (`set_auth_failure`) are not here: they come from the gateway, before any
//! of this.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// Probabilities of faults (each in `[0, 1]`, per notifications request).
#[derive(Debug, Clone)]
pub struct FaultRates {
    /// Answer with `error_status` (a 5xx, `"Recoverable": true`).
    pub error_rate: f64,
    pub error_status: u16,
    /// Answer 429 with `Retry-After: retry_after` (whole seconds).
    pub rate_limit_rate: f64,
    pub retry_after: Duration,
    /// Delay the answer by `slow_by`.
    pub slow_rate: f64,
    pub slow_by: Duration,
    /// Answer 200 with the JSON body cut in the middle.
    pub truncate_rate: f64,
    /// On a page request with `offset > 0`: one item of the window expires and one new one
    /// appears in it, leaving `total` unchanged (the scan hazard SPEC 8 describes).
    pub churn: f64,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            error_rate: 0.0,
            error_status: 503,
            rate_limit_rate: 0.0,
            retry_after: Duration::from_secs(1),
            slow_rate: 0.0,
            slow_by: Duration::from_secs(2),
            truncate_rate: 0.0,
            churn: 0.0,
        }
    }
}

impl FaultRates {
    /// Checks that every probability is in `[0, 1]` and the error status is a 5xx.
    pub fn validate(&self) -> Result<(), FaultError> {
        for (name, p) in [
            ("error rate", self.error_rate),
            ("rate-limit rate", self.rate_limit_rate),
            ("slow rate", self.slow_rate),
            ("truncate rate", self.truncate_rate),
            ("churn", self.churn),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(FaultError::Rate { name, value: p });
            }
        }
        if !(500..=599).contains(&self.error_status) {
            return Err(FaultError::Status(self.error_status));
        }
        Ok(())
    }
}

/// A fault setting out of range (`simulate`'s options).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("{name} must be between 0 and 1, got {value}")]
    Rate { name: &'static str, value: f64 },
    #[error("error status must be a 5xx, got {0}")]
    Status(u16),
}

/// The fault decided for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Decision {
    /// End the request with this status (5xx or 429) …
    pub fail: Option<u16>,
    /// … and this `Retry-After` for a 429.
    pub retry_after: Option<Duration>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Cut the body.
    pub truncate: bool,
}

/// Queued faults (from tests) and the generator for the configured probabilities.
#[derive(Debug)]
pub(crate) struct Faults {
    fail: Vec<(u32, u16)>,
    rate_limit: Vec<(u32, Duration)>,
    slow: Vec<(u32, Duration)>,
    truncate: u32,
    rng: StdRng,
}

/// Takes one from the first queued burst, dropping it when used up.
fn take<T: Clone>(queue: &mut Vec<(u32, T)>) -> Option<T> {
    let first = queue.first_mut()?;
    first.0 -= 1;
    let value = first.1.clone();
    if first.0 == 0 {
        queue.remove(0);
    }
    Some(value)
}

impl Faults {
    pub fn new(seed: u64) -> Self {
        Faults {
            fail: Vec::new(),
            rate_limit: Vec::new(),
            slow: Vec::new(),
            truncate: 0,
            rng: StdRng::seed_from_u64(seed ^ 0x6661_756c_7473),
        }
    }

    pub fn fail_next(&mut self, n: u32, status: u16) {
        if n > 0 {
            self.fail.push((n, status));
        }
    }

    pub fn rate_limit_next(&mut self, n: u32, retry_after: Duration) {
        if n > 0 {
            self.rate_limit.push((n, retry_after));
        }
    }

    pub fn slow_next(&mut self, n: u32, delay: Duration) {
        if n > 0 {
            self.slow.push((n, delay));
        }
    }

    pub fn truncate_next(&mut self, n: u32) {
        self.truncate += n;
    }

    /// Forgets every queued fault.
    pub fn clear(&mut self) {
        self.fail.clear();
        self.rate_limit.clear();
        self.slow.clear();
        self.truncate = 0;
    }

    /// A draw with probability `p`.
    pub fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random::<f64>() < p
    }

    /// A number in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.rng.random_range(0..n) }
    }

    /// Decides the faults of the next notifications request.
    pub fn decide(&mut self, rates: &FaultRates) -> Decision {
        let mut d = Decision::default();
        if let Some(status) = take(&mut self.fail) {
            d.fail = Some(status);
            return d;
        }
        if let Some(retry_after) = take(&mut self.rate_limit) {
            d.fail = Some(429);
            d.retry_after = Some(retry_after);
            return d;
        }
        d.delay = take(&mut self.slow);
        if self.truncate > 0 {
            self.truncate -= 1;
            d.truncate = true;
        }
        if d.delay.is_none() && !d.truncate {
            // Probabilistic faults only when no queued one applies, so tests stay exact.
            if self.roll(rates.error_rate) {
                d.fail = Some(rates.error_status);
            } else if self.roll(rates.rate_limit_rate) {
                d.fail = Some(429);
                d.retry_after = Some(rates.retry_after);
            } else {
                if self.roll(rates.slow_rate) {
                    d.delay = Some(rates.slow_by);
                }
                d.truncate = self.roll(rates.truncate_rate);
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_are_consumed_in_order_one_request_each() {
        let mut f = Faults::new(1);
        let rates = FaultRates::default();
        f.fail_next(2, 503);
        f.rate_limit_next(1, Duration::from_secs(3));
        f.slow_next(1, Duration::from_millis(5));
        f.truncate_next(1);
        assert_eq!(f.decide(&rates).fail, Some(503));
        assert_eq!(f.decide(&rates).fail, Some(503));
        let d = f.decide(&rates);
        assert_eq!((d.fail, d.retry_after), (Some(429), Some(Duration::from_secs(3))));
        let d = f.decide(&rates);
        assert_eq!((d.delay, d.truncate), (Some(Duration::from_millis(5)), true));
        assert_eq!(f.decide(&rates), Decision::default());
    }

    #[test]
    fn probabilities_are_roughly_honoured() {
        let mut f = Faults::new(9);
        let rates = FaultRates { error_rate: 0.25, ..FaultRates::default() };
        let n = (0..4000).filter(|_| f.decide(&rates).fail.is_some()).count();
        assert!((800..1200).contains(&n), "{n}");
        assert!(FaultRates { churn: 1.5, ..FaultRates::default() }.validate().is_err());
        assert!(FaultRates { error_status: 404, ..FaultRates::default() }.validate().is_err());
    }
}
