//! The report of one run: a plain data structure that is also the `--output json` document.
//!
//! Owns [`Report`] and its two renderings (JSON here, text in [`human`]), plus the live upload
//! [`progress`] bar. Everything is written through [`crate::logging`]'s redacting printers.
//! It does not decide the exit code; it records the one [`crate::exit`] decided.

pub mod human;
pub mod progress;

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::api::dbt::{FailingTests, TriggerStats};
use crate::artifacts::{ArtifactFile, Level, Pair, RunOutcome, TestResult};
use crate::pipeline::settle::{Disagreements, SettledBy};

/// Serializes a duration as seconds with millisecond precision.
pub fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

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
    /// Absent with --no-wait.
    pub failing_tests: Option<String>,
}

/// Secoda's failing-tests answer, and how the wait for it ended.
#[derive(Debug, Clone, Serialize)]
pub struct SecodaAnswer {
    pub failing: Vec<String>,
    pub warning: Vec<String>,
    pub settled_by: SettledBy,
    /// The answer as this run's sync started, which the settle rule compares against.
    pub before_sync: FailingTests,
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
    pub by_status: std::collections::BTreeMap<String, u64>,
    pub failing: u64,
    pub warning: u64,
    pub skipped: u64,
    /// Other results (models, seeds, snapshots) by status.
    pub other_nodes: std::collections::BTreeMap<String, u64>,
    /// Tests that did not pass but are not listed (past the list's cap).
    pub not_listed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorReport {
    pub message: String,
    pub hint: Option<String>,
}

/// One run of `upload` (or `demo`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub exit_code: u8,
    /// success, tests_failed, dry_run, or error.
    pub result: &'static str,
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
    pub test_summary: Option<TestSummary>,
    /// One entry per test that did not pass (failed, errored, warned, skipped, ...).
    pub tests: Vec<TestResult>,
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
    }

    /// Why the tests fail the run, for people: e.g. "4 tests failed or errored; Secoda lists 2
    /// entities with failing tests".
    pub fn failure_reasons(&self) -> String {
        let mut reasons = Vec::new();
        if let Some(s) = self.test_summary.as_ref().filter(|s| s.has_outcomes) {
            if s.failing > 0 {
                reasons.push(format!(
                    "{} test{} failed or errored",
                    s.failing,
                    plural(s.failing)
                ));
            }
            if s.warning > 0 {
                reasons.push(format!("{} test{} warned", s.warning, plural(s.warning)));
            }
        }
        if let Some(a) = &self.secoda {
            for (n, what) in [(a.failing.len(), "failing"), (a.warning.len(), "warning")] {
                if n > 0 {
                    reasons.push(format!(
                        "Secoda lists {n} entit{} with {what} tests",
                        if n == 1 { "y" } else { "ies" }
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
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Sizes for people: 776.5 KiB, 1.0 GiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(776_465), "758.3 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
