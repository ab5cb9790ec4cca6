//! The test gate: whether the tests fail the run, and how a finished run's report and exit code
//! are settled from what stopped it (if anything) and what was learned before.
//!
//! Owns [`FailOn`]. The exit code itself is [`crate::exit::decide`]'s to pick.

use crate::exit::{self, ExitCode, Failure, OnApiError};
use crate::report::{ErrorReport, Outcome, Report};

/// Which tests fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Tests that failed or errored.
    Error,
    /// Also tests that warned.
    Warn,
    /// Never fail because of tests (still report them).
    Never,
}

/// Whether the tests fail the run under `fail_on`, from the local results and Secoda's answer.
pub fn tests_failed(report: &Report, fail_on: FailOn) -> bool {
    let (local_failing, local_warning) = report
        .local_outcomes()
        .map_or((0, 0), |s| (s.failing, s.warning));
    let (secoda_failing, secoda_warning) = report
        .secoda
        .as_ref()
        .map_or((0, 0), |a| (a.failing.len() as u64, a.warning.len() as u64));
    match fail_on {
        FailOn::Never => false,
        FailOn::Error => local_failing > 0 || secoda_failing > 0,
        FailOn::Warn => local_failing + local_warning > 0 || secoda_failing + secoda_warning > 0,
    }
}

/// Records the outcome in the report and returns the exit code.
pub fn conclude(
    report: &mut Report,
    error: Option<&dyn Failure>,
    fail_on: FailOn,
    on_api_error: OnApiError,
) -> ExitCode {
    // A dry run's exit code says whether the upload could go ahead, not how the tests went.
    let failed = !report.dry_run && tests_failed(report, fail_on);
    let class = error.map(|e| e.exit_code());
    let code = exit::decide(class, failed, on_api_error);
    if let (Some(error), Some(class)) = (error, class) {
        if exit::is_secoda_failure(class) && on_api_error == OnApiError::Warn {
            report.warnings.push(format!(
                "Secoda failed ({error}); exiting {} instead of {} because of --on-api-error warn",
                code.code(),
                class.code()
            ));
        }
        report.error = Some(ErrorReport::of(error));
    }
    report.exit_code = code.code();
    report.result = match code {
        ExitCode::Success if report.dry_run => Outcome::DryRun,
        ExitCode::Success => Outcome::Success,
        ExitCode::TestsFailed => Outcome::TestsFailed,
        _ => Outcome::Error,
    };
    code
}
