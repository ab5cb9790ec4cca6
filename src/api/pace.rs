//! Keeping under Secoda's documented limit of 30 write requests a minute (429 past it).
//!
//! One [`Pacer`] per process, shared by every clone of the client: a watcher serving many target
//! folders and integrations sends its uploads, triggers (and their 409 retries) through one
//! window. Every attempt of a request that is not a GET counts. The window is a little longer
//! than Secoda's minute, because Secoda counts requests when they arrive and a slow network can
//! bunch them up. A 429 that comes anyway is still honoured by the retry policy (`Retry-After`).
//!
//! [`Window`] is the decision, over plain instants; [`Pacer`] waits for it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Secoda's documented limit.
pub const WRITES_PER_WINDOW: usize = 30;
/// Secoda's minute, and a margin for requests that arrive closer together than they left.
pub const WINDOW: Duration = Duration::from_secs(62);

/// The last writes' send times, and the rule: at most `limit` within `span`.
#[derive(Debug)]
pub struct Window {
    limit: usize,
    span: Duration,
    sent: VecDeque<Instant>,
}

impl Window {
    pub fn new(limit: usize, span: Duration) -> Window {
        Window {
            limit: limit.max(1),
            span,
            sent: VecDeque::new(),
        }
    }

    /// How long a write must wait at `now` (zero: it may go).
    pub fn wait(&mut self, now: Instant) -> Duration {
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.span)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < self.limit {
            return Duration::ZERO;
        }
        let oldest = self.sent.front().copied().unwrap_or(now);
        self.span
            .saturating_sub(now.saturating_duration_since(oldest))
    }

    /// A write leaves at `now`.
    pub fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
    }
}

/// Waits until a write may go, and counts it.
#[derive(Debug)]
pub struct Pacer {
    window: Mutex<Window>,
}

impl Pacer {
    /// Secoda's limit; its window shrinks with the test suite's retry scale.
    pub fn secoda(scale: impl Fn(Duration) -> Duration) -> Pacer {
        Pacer {
            window: Mutex::new(Window::new(WRITES_PER_WINDOW, scale(WINDOW))),
        }
    }

    /// Returns once a write may be sent, having counted it.
    pub async fn ready(&self) {
        let mut said = false;
        loop {
            let wait = match self.window.lock() {
                Ok(mut window) => {
                    let now = Instant::now();
                    let wait = window.wait(now);
                    if wait.is_zero() {
                        window.record(now);
                    }
                    wait
                }
                // A poisoned lock means a panic elsewhere: do not hold requests back for it.
                Err(_) => Duration::ZERO,
            };
            if wait.is_zero() {
                return;
            }
            if !said {
                said = true;
                tracing::info!(
                    "{WRITES_PER_WINDOW} requests to Secoda in the last minute (its documented \
                     limit): waiting {} before the next",
                    crate::units::format_duration(wait)
                );
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_than_the_limit_within_the_span() {
        let t0 = Instant::now();
        let span = Duration::from_secs(62);
        let mut window = Window::new(30, span);
        for i in 0..30 {
            let at = t0 + Duration::from_millis(i * 10);
            assert_eq!(window.wait(at), Duration::ZERO);
            window.record(at);
        }
        let now = t0 + Duration::from_secs(1);
        assert_eq!(window.wait(now), span - Duration::from_secs(1));
        // Once the first has left the span, one more may go.
        let later = t0 + span;
        assert_eq!(window.wait(later), Duration::ZERO);
        window.record(later);
        assert_eq!(
            window.wait(later),
            Duration::from_millis(10),
            "the second write leaves the span 10 ms later"
        );
    }
}
