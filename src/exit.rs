//! The exit-code contract, and the only place that picks a code.
//!
//! Owns [`ExitCode`] (whose table `--help` shows and the README repeats; a test holds the two
//! together), the [`Failure`] trait every error type implements to say which code it stands for
//! and what the user can do, [`OnApiError`], and [`decide`], which weighs an error, the test gate
//! and `--on-api-error` in a fixed order. A leaf: it knows no error type, only their codes.

use std::fmt::Write;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ExitCode {
    Success = 0,
    TestsFailed = 1,
    Usage = 2,
    Artifacts = 3,
    Refused = 4,
    Unavailable = 5,
    Bug = 101,
    Interrupted = 130,
}

impl ExitCode {
    /// Every code, in the order of the table.
    pub const ALL: [ExitCode; 8] = [
        ExitCode::Success,
        ExitCode::TestsFailed,
        ExitCode::Usage,
        ExitCode::Artifacts,
        ExitCode::Refused,
        ExitCode::Unavailable,
        ExitCode::Bug,
        ExitCode::Interrupted,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code means, as the table in `--help` and the README say it.
    pub fn meaning(self) -> &'static str {
        match self {
            ExitCode::Success => {
                "success (also when --on-api-error warn turned a Secoda error into a warning)"
            }
            ExitCode::TestsFailed => {
                "tests failed (per --fail-on), in the local run_results or in Secoda's answer; for health: not healthy"
            }
            ExitCode::Usage => "usage or configuration error",
            ExitCode::Artifacts => {
                "artifacts missing, invalid, truncated, not regular files, or from different dbt invocations"
            }
            ExitCode::Refused => {
                "Secoda refused the request (400, 401, 403, 404, 413, a redirect, ...)"
            }
            ExitCode::Unavailable => {
                "Secoda unavailable after retries, or its answer never matched this run within --wait-timeout"
            }
            ExitCode::Bug => "dbt-secoda crashed: a bug (please report it)",
            ExitCode::Interrupted => "interrupted (Ctrl-C or SIGTERM)",
        }
    }

    /// A word or two, for the one-line summary under `-h`.
    fn brief(self) -> &'static str {
        match self {
            ExitCode::Success => "ok",
            ExitCode::TestsFailed => "tests failed",
            ExitCode::Usage => "usage",
            ExitCode::Artifacts => "artifacts",
            ExitCode::Refused => "Secoda refused",
            ExitCode::Unavailable => "Secoda unavailable",
            ExitCode::Bug => "bug",
            ExitCode::Interrupted => "interrupted",
        }
    }

    /// When several codes apply, the highest wins.
    fn precedence(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::TestsFailed => 1,
            ExitCode::Unavailable => 2,
            ExitCode::Refused => 3,
            ExitCode::Artifacts => 4,
            ExitCode::Usage => 5,
            ExitCode::Bug => 6,
            ExitCode::Interrupted => 7,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// The exit-code table for `--help`.
pub fn help() -> String {
    let mut text = String::from("Exit codes:");
    for code in ExitCode::ALL {
        let _ = write!(text, "\n  {:<4} {}", code.code(), code.meaning());
    }
    let _ = write!(text, "\n{PRECEDENCE}");
    text
}

/// Which code wins when several apply, in one sentence.
pub const PRECEDENCE: &str = "When several apply, the first of 130, 101, 2, 3, 4, 5 (4 and 5 not under --on-api-error warn), 1 wins.";

/// The same on one line, for `-h`.
pub fn help_short() -> String {
    let codes: Vec<String> = ExitCode::ALL
        .iter()
        .map(|c| format!("{} {}", c.code(), c.brief()))
        .collect();
    format!("Exit codes: {} (--help explains)", codes.join(", "))
}

/// An error a user sees: its message (`Display`), the code it stands for, and what to do.
pub trait Failure: std::fmt::Display {
    fn exit_code(&self) -> ExitCode;
    fn hint(&self) -> Option<String> {
        None
    }
}

/// What a Secoda error (exit 4 or 5) does to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnApiError {
    /// Exit 4 or 5.
    Fail,
    /// Print a loud warning and let the test gate decide the exit code.
    Warn,
}

/// The code of a health probe: 0 healthy, 1 not (what container health checks expect).
pub fn probe(healthy: bool) -> ExitCode {
    decide(None, !healthy, OnApiError::Fail)
}

/// Whether `code` stands for Secoda failing (what `--on-api-error warn` downgrades).
pub fn is_secoda_failure(code: ExitCode) -> bool {
    matches!(code, ExitCode::Refused | ExitCode::Unavailable)
}

/// The exit code of a run: `failure` is the code of what stopped it (if anything),
/// `tests_failed` the gate's verdict on what was learned before that.
pub fn decide(failure: Option<ExitCode>, tests_failed: bool, on_api_error: OnApiError) -> ExitCode {
    let failure =
        failure.filter(|code| !(is_secoda_failure(*code) && on_api_error == OnApiError::Warn));
    let gate = if tests_failed {
        ExitCode::TestsFailed
    } else {
        ExitCode::Success
    };
    worst(failure.into_iter().chain([gate]))
}

/// The code that wins among several problems (e.g. doctor's checks).
pub fn worst(codes: impl IntoIterator<Item = ExitCode>) -> ExitCode {
    codes
        .into_iter()
        .max_by_key(|c| c.precedence())
        .unwrap_or(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_of_precedence_holds() {
        let fail = OnApiError::Fail;
        let warn = OnApiError::Warn;
        assert_eq!(decide(None, false, fail), ExitCode::Success);
        assert_eq!(decide(None, true, fail), ExitCode::TestsFailed);
        let down = Some(ExitCode::Unavailable);
        assert_eq!(decide(down, true, fail), ExitCode::Unavailable);
        assert_eq!(decide(down, true, warn), ExitCode::TestsFailed);
        assert_eq!(decide(down, false, warn), ExitCode::Success);
        let stop = Some(ExitCode::Interrupted);
        assert_eq!(decide(stop, false, warn), ExitCode::Interrupted);
        assert_eq!(decide(Some(ExitCode::Usage), true, warn), ExitCode::Usage);
        assert_eq!(
            worst([
                ExitCode::Refused,
                ExitCode::Artifacts,
                ExitCode::Unavailable
            ]),
            ExitCode::Artifacts
        );
    }

    /// The README's table is the help's, row for row.
    #[test]
    fn the_readme_table_matches_the_codes() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("## Exit codes").unwrap()..];
        let rows: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with("| ---"))
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .collect();
        let expected: Vec<String> = ExitCode::ALL
            .iter()
            .map(|c| format!("| {} | {} |", c.code(), c.meaning()))
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn the_help_table_lists_every_code() {
        let help = help();
        for code in ExitCode::ALL {
            assert!(help.contains(&format!("  {:<4} {}", code.code(), code.meaning())));
            assert!(help_short().contains(&format!("{} {}", code.code(), code.brief())));
        }
    }
}
