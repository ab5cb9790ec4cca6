//! The report of one run: a plain data structure that is also the `--output json` document.
//!
//! Owns [`Report`] and its renderings: text for people ([`human`]), JSON (a document, or one line
//! a report for `watch`), the live upload [`progress`] bar, and the [`Sink`] a pipeline reports
//! through. Also the one place that prints an error with its hint ([`print_error`]), and the
//! plain tables of the other commands ([`table`]). Everything is written through
//! [`crate::logging`]'s redacting printers. It does not decide the exit code; it records the one
//! [`crate::exit`] decided.

pub mod github;
pub mod human;
pub mod junit;
pub mod progress;
pub mod sink;
pub mod table;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::api::TriggerStats;
use crate::artifacts::{ArtifactFile, Level, Pair, RunOutcome, TestResult};
use crate::entities::Entities;
use crate::exit::Failure;
use crate::settle::{Confidence, Disagreements, SettledBy};
use crate::units::{count, seconds};

pub use sink::{Event, OutputFormat, Sink};

#[derive(Debug, Clone, Serialize)]
pub struct DbtRun {
    pub version: Option<String>,
    /// `args.which`: build, test, run, compile, generate (docs generate), ...
    pub command: Option<String>,
    pub invocation_command: Option<String>,
    pub manifest_schema: String,
    pub run_results_schema: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub bytes: u64,
    /// Only in a dry run's plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl FileReport {
    pub fn of(file: &ArtifactFile) -> FileReport {
        FileReport {
            path: file.path.display().to_string(),
            bytes: file.len,
            sha256: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Uploaded {
    pub endpoint: String,
    pub manifest: FileReport,
    pub run_results: FileReport,
    pub attempts: u32,
    #[serde(serialize_with = "seconds")]
    pub seconds: Duration,
}

/// What a dry run would do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub manifest: FileReport,
    pub run_results: FileReport,
    pub upload: String,
    pub trigger: String,
    /// Asked first (it proves the key and the integration), and polled after the trigger.
    pub failing_tests: String,
    /// Whether the answer would be waited for (not with --no-wait).
    pub waits: bool,
}

/// Secoda's failing-tests answer, and how the wait for it ended.
#[derive(Debug, Clone, Serialize)]
pub struct SecodaAnswer {
    pub failing: Vec<String>,
    pub warning: Vec<String>,
    pub settled_by: SettledBy,
    /// How sure the rule is that the answer is this run's sync's.
    pub confidence: Confidence,
    /// The answer as this run's sync started, which the settle rule compares against.
    pub before_sync: Entities,
    pub polls: u32,
    #[serde(serialize_with = "seconds")]
    pub waited: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestSummary {
    /// False for runs whose results carry no test outcomes (compile, docs generate, show,
    /// run-operation): their tests were compiled, not run.
    pub has_outcomes: bool,
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
    pub failing: u64,
    pub warning: u64,
    pub skipped: u64,
    /// Other results (models, seeds, snapshots) by status.
    pub other_nodes: BTreeMap<String, u64>,
    /// Tests that did not pass but are not listed (past the list's cap).
    pub not_listed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorReport {
    pub message: String,
    pub hint: Option<String>,
}

impl ErrorReport {
    pub fn of(failure: &dyn Failure) -> ErrorReport {
        ErrorReport {
            message: failure.to_string(),
            hint: failure.hint(),
        }
    }
}

/// Why a run did not wait for Secoda's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotWaited {
    /// `--no-wait`.
    NoWait,
    /// The run's results carry no test outcomes (compile, docs generate, show, run-operation):
    /// there is nothing for the answer to confirm.
    NoTestOutcomes,
    /// The process is shutting down (watch's drain).
    ShuttingDown,
}

impl NotWaited {
    pub fn explain(self) -> &'static str {
        match self {
            NotWaited::NoWait => "not waited for (--no-wait): the local results decide",
            NotWaited::NoTestOutcomes => {
                "not waited for: this dbt command writes no test outcomes, so there is nothing for Secoda's failing-tests answer to confirm"
            }
            NotWaited::ShuttingDown => {
                "not waited for: shutting down after the upload and the sync trigger"
            }
        }
    }
}

/// How a run ended, as the JSON document's `result` says it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Success,
    TestsFailed,
    DryRun,
    Error,
}

/// One run of the upload pipeline (`upload`, each pair of `watch`, `demo`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub exit_code: u8,
    pub result: Outcome,
    pub dry_run: bool,
    pub invocation_id: Option<String>,
    pub integration_id: Option<String>,
    pub api_root: Option<String>,
    pub dbt: Option<DbtRun>,
    pub uploaded: Option<Uploaded>,
    pub plan: Option<Plan>,
    pub trigger: Option<TriggerStats>,
    /// Secoda's settled failing-tests answer; absent with --no-wait or when the wait failed.
    pub secoda: Option<SecodaAnswer>,
    /// Why the run did not wait for that answer, when it did not.
    pub not_waited: Option<NotWaited>,
    pub test_summary: Option<TestSummary>,
    /// One entry per test that did not pass (failed, errored, warned, skipped, ...).
    pub tests: Vec<TestResult>,
    /// The tests that passed, when the job kept them (for a JUnit report; not in the JSON).
    #[serde(skip)]
    pub passed: Vec<TestResult>,
    /// Where Secoda's answer and the local run_results differ.
    pub disagreements: Option<Disagreements>,
    pub warnings: Vec<String>,
    pub error: Option<ErrorReport>,
}

impl Report {
    pub fn describe_pair(&mut self, pair: &Pair) {
        self.invocation_id = Some(pair.invocation_id().to_string());
        self.dbt = Some(DbtRun {
            version: pair.run_results.metadata.dbt_version.clone(),
            command: None,
            invocation_command: None,
            manifest_schema: pair.manifest.schema.clone(),
            run_results_schema: pair.run_results.schema.clone(),
        });
    }

    pub fn record_run(&mut self, run: &RunOutcome) {
        if let Some(dbt) = self.dbt.as_mut() {
            dbt.command = run.command.clone();
            dbt.invocation_command = run.invocation_command.clone();
        }
        self.test_summary = Some(TestSummary {
            has_outcomes: run.has_test_outcomes(),
            total: run.test_count(),
            by_status: run.tests.clone(),
            failing: run.count(Level::Failing),
            warning: run.count(Level::Warning),
            skipped: run.count(Level::Skipped),
            other_nodes: run.other_nodes.clone(),
            not_listed: run.not_passed_total - run.not_passed.len() as u64,
        });
        self.tests = if run.has_test_outcomes() {
            let mut tests = run.not_passed.clone();
            // Failing first, then warnings, then the rest; dbt's order within each.
            tests.sort_by_key(|t| t.level);
            tests
        } else {
            Vec::new()
        };
        if run.has_test_outcomes() {
            self.passed = run.passed.clone();
        }
    }

    /// The local results, when the run's results carry test outcomes.
    pub fn local_outcomes(&self) -> Option<&TestSummary> {
        self.test_summary.as_ref().filter(|s| s.has_outcomes)
    }

    /// Why the tests fail the run, for people: e.g. "4 tests failed or errored; Secoda lists 2
    /// entities with failing tests".
    pub fn failure_reasons(&self) -> String {
        let mut reasons = Vec::new();
        if let Some(s) = self.local_outcomes() {
            if s.failing > 0 {
                reasons.push(format!("{} failed or errored", count(s.failing, "test")));
            }
            if s.warning > 0 {
                reasons.push(format!("{} warned", count(s.warning, "test")));
            }
        }
        if let Some(a) = &self.secoda {
            for (list, what) in [(&a.failing, "failing"), (&a.warning, "warning")] {
                if !list.is_empty() {
                    reasons.push(format!(
                        "Secoda lists {} with {what} tests",
                        count(list.len() as u64, "entity")
                    ));
                }
            }
        }
        reasons.join("; ")
    }

    /// The JSON document, pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the report: {e}\"}}"))
    }

    /// The JSON document on one line (JSON Lines).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the report: {e}\"}}"))
    }
}

/// Prints `error: MESSAGE` and `hint: HINT` on stderr: the one place errors reach people.
pub fn print_error(message: &str, hint: Option<&str>) {
    let mut text = format!("error: {message}\n");
    if let Some(hint) = hint {
        text.push_str(&format!("hint: {hint}\n"));
    }
    crate::logging::print_stderr(&text);
}

/// [`print_error`] for an error that knows its hint.
pub fn print_failure(failure: &dyn Failure) {
    print_error(&failure.to_string(), failure.hint().as_deref());
}
