//! The report as a JUnit XML file (`--junit PATH`): the format GitLab, Jenkins, Azure DevOps,
//! CircleCI and Buildkite read. One test case a dbt test (failed, errored, warned, skipped or
//! passed), with its file and message; written with `quick-junit`, checked in the tests by
//! `junitparser`, the reader behind the publish-unit-test-result GitHub Action.

use std::path::PathBuf;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::Report;
use super::sink::Sink;
use crate::artifacts::{Level, TestResult};

/// Writes the run's tests to a JUnit file, replacing it.
pub struct Junit {
    pub path: PathBuf,
    /// Warnings count as failures (`--fail-on warn`); otherwise they pass, with their message.
    pub warnings_fail: bool,
}

impl Junit {
    fn case(&self, test: &TestResult) -> TestCase {
        let message = test.message.clone().unwrap_or_default();
        let not_passed = |kind| {
            let mut s = TestCaseStatus::non_success(kind);
            s.set_type(test.status.as_str());
            s.set_message(message.trim());
            s
        };
        let status = match test.level {
            Level::Failing if test.status == "fail" => not_passed(NonSuccessKind::Failure),
            // "error", "runtime error": the test could not run.
            Level::Failing => not_passed(NonSuccessKind::Error),
            Level::Warning if self.warnings_fail => not_passed(NonSuccessKind::Failure),
            Level::Skipped => {
                let mut s = TestCaseStatus::skipped();
                s.set_message("skipped: an upstream node failed, or --fail-fast");
                s
            }
            Level::Warning | Level::Other | Level::Passed => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(test.unique_id.as_str(), status);
        // Windows' dbt writes `models\marts\_marts.yml`; reports are read on any machine.
        let file = test.file.as_deref().map(|f| f.replace('\\', "/"));
        // Grouped by the file the test is defined in, as test runners group by class.
        case.set_classname(file.as_deref().unwrap_or("dbt"));
        // A negative or non-finite execution_time is dbt's odd value, not a reason to panic.
        if let Some(time) = test
            .seconds
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
        {
            case.set_time(time);
        }
        if matches!(test.level, Level::Warning | Level::Other) && !self.warnings_fail {
            case.set_system_out(format!("{}: {}", test.status, message.trim()));
        }
        if let Some(entity) = &test.entity {
            case.add_property(Property::new("tests", entity.as_str()));
        }
        if let Some(file) = file {
            // Not in the strict Surefire schema, but what GitLab shows as the test's file (and
            // what pytest's xunit1 family writes); consumers that do not know it ignore it.
            case.extra.insert("file".into(), file.into());
        }
        case
    }

    /// The XML document for `report`.
    pub fn render(&self, report: &Report) -> Result<String, quick_junit::SerializeError> {
        let command = report
            .dbt
            .as_ref()
            .and_then(|d| d.command.clone())
            .unwrap_or_else(|| "run".into());
        let mut suite = TestSuite::new(format!("dbt {command}"));
        if let Some(id) = &report.invocation_id {
            suite.add_property(Property::new("invocation_id", id.as_str()));
        }
        if let Some(version) = report.dbt.as_ref().and_then(|d| d.version.clone()) {
            suite.add_property(Property::new("dbt_version", version.as_str()));
        }
        suite.add_test_cases(
            report
                .tests
                .iter()
                .chain(&report.passed)
                .map(|t| self.case(t)),
        );
        // Past the lists' caps the counts are still right; say how many cases are missing.
        let listed = (report.tests.len() + report.passed.len()) as u64;
        if let Some(missing) = report
            .test_summary
            .as_ref()
            .map(|s| s.total.saturating_sub(listed))
            .filter(|n| *n > 0)
        {
            suite.add_property(Property::new("tests_not_listed", missing.to_string()));
        }
        // A run that failed (no artifacts, Secoda refused, ...) must not read as a green suite.
        if let Some(error) = report.error.as_ref().filter(|_| report.exit_code != 0) {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_type(format!("exit {}", report.exit_code));
            status.set_message(error.message.as_str());
            if let Some(hint) = &error.hint {
                status.set_description(hint.as_str());
            }
            let mut case = TestCase::new("dbt-secoda", status);
            case.set_classname("dbt-secoda");
            suite.add_test_case(case);
        }
        let mut junit = quick_junit::Report::new("dbt-secoda");
        junit.add_test_suite(suite);
        junit.to_string()
    }
}

impl Sink for Junit {
    fn report(&self, report: &Report) {
        let written = self
            .render(report)
            .map_err(|e| e.to_string())
            .and_then(|xml| std::fs::write(&self.path, xml).map_err(|e| e.to_string()));
        match written {
            Ok(()) => tracing::info!("JUnit report written to {}", self.path.display()),
            Err(e) => tracing::warn!("cannot write the JUnit report {}: {e}", self.path.display()),
        }
    }
}
