//! What a stop signal means: the first one drains, the same request delivered again is still one
//! request, and a second request from a person stops at once.
//!
//! Wrappers deliver one stop twice: `timeout 600 dbt-secoda watch`, stopped through its process
//! group, passes its own SIGTERM on after the group's; a container runtime and a shell can do the
//! same. Signals that arrive within [`SAME_REQUEST`] of the first are taken as that request. A
//! person who presses Ctrl-C again after reading "shutting down" is later than that, and is
//! obeyed at once. A pure state machine; the clock is the caller's.

use std::time::{Duration, Instant};

/// Signals this close to the first are the same stop request.
pub const SAME_REQUEST: Duration = Duration::from_secs(1);

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first request: stop watching, finish what is in flight within the grace.
    Drain,
    /// The first request again, delivered twice.
    Repeated,
    /// A second request: stop at once.
    Abort,
}

#[derive(Debug, Default)]
pub struct StopRequests {
    first: Option<Instant>,
}

impl StopRequests {
    pub fn signal(&mut self, now: Instant) -> Step {
        match self.first {
            None => {
                self.first = Some(now);
                Step::Drain
            }
            Some(first) if now.saturating_duration_since(first) < SAME_REQUEST => Step::Repeated,
            Some(_) => Step::Abort,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_delivered_twice_drains_once_and_a_later_one_aborts() {
        let t0 = Instant::now();
        let mut stops = StopRequests::default();
        assert_eq!(stops.signal(t0), Step::Drain);
        assert_eq!(stops.signal(t0 + Duration::from_millis(3)), Step::Repeated);
        assert_eq!(
            stops.signal(t0 + Duration::from_millis(999)),
            Step::Repeated
        );
        assert_eq!(stops.signal(t0 + SAME_REQUEST), Step::Abort);
        assert_eq!(stops.signal(t0 + Duration::from_secs(30)), Step::Abort);
    }
}
