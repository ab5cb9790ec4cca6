//! The retry policy: which failures are worth another attempt, how long to wait, and when to
//! give up.
//!
//! Transient failures (connection errors, timeouts, 408, 429, 500, 502, 503, 504) are retried
//! with jittered exponential backoff until a deadline; `Retry-After` lengthens a wait, never
//! shortens it. A request that carries a body is also bounded by a number of attempts, so a
//! server that fails every upload the same way costs a few uploads, not a deadline's worth.
//! A request that must not run twice (creating something) is retried only when it surely did
//! not reach the server. It does not build requests.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;

use super::error::{Endpoint, TlsRefusal};
use crate::units::format_duration;

/// How failed requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the first attempt.
    pub deadline: Duration,
    /// The first wait; later waits double, with jitter, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Also retry 409 Conflict (the trigger, while a sync runs).
    pub retry_conflicts: bool,
    /// The request must not run twice (creating something): retry only what surely did not
    /// reach the server (no connection made) or was refused before any work (429).
    pub once: bool,
    /// At most this many attempts (requests that carry a body); None: the deadline alone.
    pub max_attempts: Option<u32>,
}

impl RetryPolicy {
    /// The policy for one request: 1 s doubling to 30 s.
    pub fn requests(deadline: Duration) -> Self {
        RetryPolicy {
            deadline,
            first_delay: scaled(Duration::from_secs(1)),
            max_delay: scaled(Duration::from_secs(30)),
            retry_conflicts: false,
            once: false,
            max_attempts: None,
        }
    }

    /// The policy for waiting out a running sync (409): 2 s doubling to 30 s.
    pub fn sync_conflicts(deadline: Duration) -> Self {
        RetryPolicy {
            first_delay: scaled(Duration::from_secs(2)),
            retry_conflicts: true,
            ..RetryPolicy::requests(deadline)
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter();
        match self.max_attempts {
            Some(n) => builder.with_max_times(n.saturating_sub(1) as usize),
            None => builder.without_max_times(),
        }
    }
}

/// `DBT_SECODA_RETRY_SCALE` (a factor, e.g. `0.01`) shrinks every wait for the test suite; it
/// is not a user setting.
pub fn scaled(d: Duration) -> Duration {
    let factor = std::env::var(crate::env_vars::RETRY_SCALE)
        .ok()
        .and_then(|s| s.parse::<f64>().ok());
    match factor {
        Some(f) if f.is_finite() && f >= 0.0 => d.mul_f64(f),
        _ => d,
    }
}

/// What went wrong in one attempt.
#[derive(Debug)]
pub(crate) enum Fault<E> {
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        detail: String,
        location: Option<String>,
        /// The login asked for: `Proxy-Authenticate`, else `WWW-Authenticate`.
        challenge: Option<String>,
    },
    Transport {
        message: String,
        /// The connection was never made: nothing reached the server.
        unsent: bool,
    },
    /// TLS refused for a reason retrying cannot change.
    Tls {
        refusal: TlsRefusal,
        message: String,
    },
    /// A proxy refused to carry the request (its login, or its rules for CONNECT).
    Proxy { message: String },
    /// The request body's source failed, or the caller's own step did; never retried.
    Source(E),
}

impl<E> Fault<E> {
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Fault::Status { status, .. } => {
                matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
            }
            Fault::Transport { .. } => true,
            Fault::Tls { .. } | Fault::Proxy { .. } | Fault::Source(_) => false,
        }
    }

    /// Whether the server surely did not act on the request.
    fn surely_not_done(&self) -> bool {
        match self {
            Fault::Status { status, .. } => *status == StatusCode::TOO_MANY_REQUESTS,
            Fault::Transport { unsent, .. } => *unsent,
            _ => false,
        }
    }

    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, Fault::Status { status, .. } if *status == StatusCode::CONFLICT)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Fault::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Fault::Status { status, detail, .. } if detail.is_empty() => status.to_string(),
            Fault::Status { status, detail, .. } => format!("{status}: {detail}"),
            Fault::Transport { message, .. }
            | Fault::Tls { message, .. }
            | Fault::Proxy { message } => message.clone(),
            Fault::Source(_) => "the request body could not be produced".into(),
        }
    }
}

/// Counts of one call's attempts.
#[derive(Debug, Clone, Copy)]
pub struct Attempts {
    pub count: u32,
    pub elapsed: Duration,
}

/// Runs `attempt` until it succeeds, fails for good, or the policy gives up.
pub(crate) async fn retrying<T, E, Fut>(
    endpoint: &Endpoint,
    policy: RetryPolicy,
    mut attempt: impl FnMut() -> Fut,
) -> (Result<T, Fault<E>>, Attempts)
where
    Fut: Future<Output = Result<T, Fault<E>>>,
{
    let start = Instant::now();
    let count = AtomicU32::new(0);
    let result = (|| {
        count.fetch_add(1, Ordering::Relaxed);
        attempt()
    })
    .retry(policy.backoff())
    .sleep(tokio::time::sleep)
    .when(|f| {
        let retry = f.is_transient() || (policy.retry_conflicts && f.is_conflict());
        retry && (!policy.once || f.surely_not_done())
    })
    .adjust(|fault, next| {
        // Retry-After lengthens the wait, never shortens it: "0" must not turn the retries
        // into a busy loop resending a whole upload.
        let asked = fault.retry_after();
        let delay = retry_delay(asked, next)?;
        let fits = start.elapsed() + delay <= policy.deadline;
        if !fits && asked.is_some_and(|a| a == delay) {
            tracing::warn!(
                "{endpoint}: Secoda asked to retry in {}, past the time left to keep trying",
                format_duration(delay)
            );
        }
        fits.then_some(delay)
    })
    .notify(|fault, delay| {
        let left = policy.deadline.saturating_sub(start.elapsed());
        if fault.is_conflict() {
            tracing::info!(
                "a dbt sync is already running (409 Conflict); triggering again in {} (giving up in {})",
                format_duration(delay),
                format_duration(left)
            );
            return;
        }
        let budget = policy
            .max_attempts
            .map(|n| format!(" of at most {n}"))
            .unwrap_or_default();
        tracing::warn!(
            "{endpoint}: {}; retrying in {} (attempt {}{budget}, giving up in {})",
            fault.describe(),
            format_duration(delay),
            count.load(Ordering::Relaxed) + 1,
            format_duration(left)
        );
    })
    .await;
    (
        result,
        Attempts {
            count: count.load(Ordering::Relaxed),
            elapsed: start.elapsed(),
        },
    )
}

/// The wait before the next attempt: the backoff's, or longer when Secoda asks for longer.
fn retry_delay(asked: Option<Duration>, backoff: Option<Duration>) -> Option<Duration> {
    // The backoff says None when the attempts are used up: that ends it, whatever was asked.
    let backoff = backoff?;
    Some(asked.map_or(backoff, |asked| asked.max(backoff)))
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds.max(0.0)).ok();
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_lengthens_the_backoff_and_never_shortens_it() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(Some(s(0)), Some(s(2))), Some(s(2)));
        assert_eq!(retry_delay(Some(s(5)), Some(s(2))), Some(s(5)));
        assert_eq!(retry_delay(None, Some(s(2))), Some(s(2)));
        assert_eq!(retry_delay(Some(s(3)), None), None, "attempts used up");
        assert_eq!(retry_delay(None, None), None);
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let status = |code| Fault::<()>::Status {
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: None,
            detail: String::new(),
            location: None,
            challenge: None,
        };
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(status(code).is_transient(), "{code}");
        }
        for code in [301, 400, 401, 403, 404, 409, 413] {
            assert!(!status(code).is_transient(), "{code}");
        }
    }
}
