//! Retrying API calls: exponential backoff with full jitter, honouring `Retry-After`.
//!
//! Only errors that may go away are retried ([`ApiError::is_retryable`]); a `401`/`403` is
//! returned at once — retrying a bad signature in a loop would only hammer the gateway —
//! and the poller tries again at its next interval.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::error::ScanError;
use crate::cen::client::ApiError;

/// Backoff settings for one request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Attempts in all, the first included; then the error ends the cycle (the watermark
    /// stays, so nothing is lost) and the next cycle starts over.
    pub attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { initial: Duration::from_millis(500), max: Duration::from_secs(60), attempts: 8 }
    }
}

impl RetryPolicy {
    /// The delay before retry number `n` (1-based): a random time up to
    /// `min(max, initial * 2^(n-1))` ("full jitter"), but never less than `Retry-After`.
    pub fn delay(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self.initial.saturating_mul(1u32 << n.saturating_sub(1).min(20)).min(self.max);
        let jittered = cap.mul_f64(rand::random::<f64>());
        jittered.max(retry_after.unwrap_or(Duration::ZERO).min(Duration::from_secs(3600)))
    }
}

/// Runs `call` until it succeeds, fails permanently, runs out of attempts or `shutdown`
/// fires. `requests` counts every attempt.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    shutdown: &CancellationToken,
    requests: &mut u64,
    mut call: F,
) -> Result<T, ScanError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        *requests += 1;
        let result = tokio::select! {
            r = call() => r,
            _ = shutdown.cancelled() => return Err(ScanError::Cancelled),
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < policy.attempts => {
                let delay = policy.delay(attempt, e.retry_after());
                tracing::debug!(error = %e, attempt, delay_ms = delay.as_millis() as u64, "retrying API request");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return Err(ScanError::Cancelled),
                }
            }
            Err(e) => return Err(ScanError::Api(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_respect_retry_after() {
        let p = RetryPolicy { initial: Duration::from_millis(100), max: Duration::from_secs(1), attempts: 5 };
        for _ in 0..100 {
            assert!(p.delay(1, None) <= Duration::from_millis(100));
            assert!(p.delay(3, None) <= Duration::from_millis(400));
            assert!(p.delay(30, None) <= Duration::from_secs(1));
            assert!(p.delay(1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        }
    }

    #[tokio::test]
    async fn retries_only_what_may_pass_and_counts_attempts() {
        let p = RetryPolicy { initial: Duration::from_millis(1), max: Duration::from_millis(2), attempts: 4 };
        let token = CancellationToken::new();
        let mut requests = 0;
        let mut left = 2;
        let r: Result<u8, _> = with_retries(&p, &token, &mut requests, || {
            left -= 1;
            let fail = left >= 0;
            async move {
                if fail { Err(ApiError::Status { status: 503, errors: vec![], retry_after: None }) } else { Ok(7) }
            }
        })
        .await;
        assert_eq!((r.unwrap(), requests), (7, 3));

        let mut requests = 0;
        let r: Result<u8, _> = with_retries(&p, &token, &mut requests, || async {
            Err(ApiError::Status { status: 401, errors: vec![], retry_after: None })
        })
        .await;
        assert!(matches!(r, Err(ScanError::Api(e)) if e.is_auth()));
        assert_eq!(requests, 1, "a 401 is not retried");

        let mut requests = 0;
        let r: Result<u8, _> =
            with_retries(&p, &token, &mut requests, || async { Err(ApiError::Transport("reset".into())) }).await;
        assert!(r.is_err());
        assert_eq!(requests, 4, "gives up after the policy's attempts");
    }
}
