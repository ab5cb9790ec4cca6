//! The exit-code contract, and the only place that picks a code.
//!
//! Owns [`ExitCode`] (the table in `--help` and the README) and [`decide`], which weighs an error,
//! the test gate and `--on-api-error` in a fixed order: interrupted, configuration, artifacts,
//! Secoda (unless downgraded to a warning), tests, success.

use crate::Error;
use crate::cli::OnApiError;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    TestsFailed = 1,
    Usage = 2,
    Artifacts = 3,
    Refused = 4,
    Unavailable = 5,
    Interrupted = 130,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// The code an error stands for on its own.
pub fn for_error(error: &Error) -> ExitCode {
    match error {
        Error::Config(_) => ExitCode::Usage,
        Error::Artifact(_) | Error::Import(_) => ExitCode::Artifacts,
        Error::Api(e) if e.is_refusal() => ExitCode::Refused,
        Error::Api(_) => ExitCode::Unavailable,
        Error::Interrupted => ExitCode::Interrupted,
    }
}

/// The exit code of a run: `error` is what stopped it (if anything), `tests_failed` the gate's
/// verdict on what was learned before that.
pub fn decide(error: Option<&Error>, tests_failed: bool, on_api_error: OnApiError) -> ExitCode {
    match error.map(for_error) {
        Some(ExitCode::Refused | ExitCode::Unavailable) if on_api_error == OnApiError::Warn => {}
        Some(code) => return code,
        None => {}
    }
    if tests_failed {
        ExitCode::TestsFailed
    } else {
        ExitCode::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;
    use std::time::Duration;

    fn unavailable() -> Error {
        Error::Api(ApiError::WaitTimeout {
            waited: Duration::ZERO,
            polls: 1,
            reason: String::new(),
        })
    }

    #[test]
    fn the_order_of_precedence_holds() {
        assert_eq!(decide(None, false, OnApiError::Fail), ExitCode::Success);
        assert_eq!(decide(None, true, OnApiError::Fail), ExitCode::TestsFailed);
        assert_eq!(
            decide(Some(&unavailable()), true, OnApiError::Fail),
            ExitCode::Unavailable
        );
        assert_eq!(
            decide(Some(&unavailable()), true, OnApiError::Warn),
            ExitCode::TestsFailed
        );
        assert_eq!(
            decide(Some(&unavailable()), false, OnApiError::Warn),
            ExitCode::Success
        );
        assert_eq!(
            decide(Some(&Error::Interrupted), false, OnApiError::Warn),
            ExitCode::Interrupted
        );
        let config = Error::Config(crate::config::ConfigError::MissingKey);
        assert_eq!(
            decide(Some(&config), true, OnApiError::Warn),
            ExitCode::Usage
        );
    }
}
