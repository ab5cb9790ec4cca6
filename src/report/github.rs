//! The report as GitHub Actions reads it: workflow-command annotations on the files of the tests
//! that did not pass, a Markdown job summary, and step outputs.
//!
//! Used when `GITHUB_ACTIONS=true` (or `--github`), beside the usual text or JSON report. The
//! escaping follows actions/toolkit's `command.ts`: `%`, `\r` and `\n` in data; also `:` and `,`
//! in properties. The summary stays under GitHub's 1 MiB limit by dropping detail, with a note.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::sink::Sink;
use super::{Outcome, Report};
use crate::artifacts::{Level, TestResult};
use crate::config::ApiKey;
use crate::logging::print_workflow_commands;
use crate::units::{count, format_duration, human_bytes};
use sha2::Digest as _;

/// GitHub's limit for one step's summary.
const SUMMARY_LIMIT: usize = 1024 * 1024;
/// Room kept for the note that says what a cut summary left out.
const NOTE_ROOM: usize = 300;
/// Annotations written at most (GitHub shows ten of each kind per step; the rest are in the
/// summary).
const MAX_ANNOTATIONS: usize = 50;

/// Where GitHub's files are, and where the dbt project sits in the repository.
#[derive(Debug, Clone, Default)]
pub struct GitHub {
    /// `$GITHUB_STEP_SUMMARY`.
    pub summary: Option<PathBuf>,
    /// `$GITHUB_OUTPUT`.
    pub output: Option<PathBuf>,
    /// `$GITHUB_WORKSPACE`: annotation paths are relative to it.
    pub workspace: Option<PathBuf>,
    /// The dbt project folder (`--project-dir`, else the current folder).
    pub project_dir: PathBuf,
    /// Where the JSON report file goes (`$RUNNER_TEMP`, else the system's temporary folder).
    pub report_dir: PathBuf,
}

/// Tells the runner to mask the key in every later log line. Written straight to stderr, past the
/// redactor, which would turn the command into `::add-mask::***`; only where a runner reads it.
///
/// Workflow commands go to stderr, which the runner parses as it does stdout (`ScriptHandler.cs`
/// feeds both streams to its command manager), so stdout stays data: `--output json` stays one
/// JSON document.
pub fn mask(key: &ApiKey) {
    let mut out = std::io::stderr().lock();
    // Escaped as data: the runner unescapes `%25`, `%0D` and `%0A` before it masks.
    let _ = writeln!(out, "::add-mask::{}", escape_data(key.reveal_to_runner()));
    let _ = out.flush();
}

/// `%`, CR and LF escaped for a workflow command's data.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property value: the data escapes, and `:` and `,` too.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

impl GitHub {
    /// The settings from the environment a runner sets.
    pub fn from_env(project_dir: Option<&Path>) -> GitHub {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        GitHub {
            summary: var("GITHUB_STEP_SUMMARY"),
            output: var("GITHUB_OUTPUT"),
            workspace: var("GITHUB_WORKSPACE"),
            project_dir: project_dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            report_dir: var("RUNNER_TEMP").unwrap_or_else(std::env::temp_dir),
        }
    }

    /// A test's file as the repository knows it: the project folder relative to the workspace,
    /// then dbt's `original_file_path`.
    fn repo_path(&self, file: &str) -> String {
        // Canonical, so a symlinked work folder (self-hosted runners) still compares equal.
        let absolute = |p: &Path| {
            std::fs::canonicalize(p)
                .or_else(|_| std::path::absolute(p))
                .unwrap_or_else(|_| p.to_path_buf())
        };
        let project = absolute(&self.project_dir);
        let inside = self.workspace.as_deref().and_then(|w| {
            project
                .strip_prefix(absolute(w))
                .ok()
                .map(Path::to_path_buf)
        });
        let path = match inside {
            Some(rel) if !rel.as_os_str().is_empty() => rel.join(file),
            _ => PathBuf::from(file),
        };
        path.to_string_lossy().replace('\\', "/")
    }

    /// One annotation a test that did not pass (failing and erroring ones as errors, warning ones
    /// as warnings), then a notice when some were left out.
    pub fn annotations(&self, report: &Report) -> String {
        let mut out = String::new();
        let worth: Vec<&TestResult> = report
            .tests
            .iter()
            .filter(|t| matches!(t.level, Level::Failing | Level::Warning))
            .collect();
        for test in worth.iter().take(MAX_ANNOTATIONS) {
            let kind = if test.level == Level::Failing {
                "error"
            } else {
                "warning"
            };
            let mut properties = Vec::new();
            if let Some(file) = &test.file {
                properties.push(format!("file={}", escape_property(&self.repo_path(file))));
            }
            properties.push(format!(
                "title={}",
                escape_property(&format!("dbt test {}: {}", test.status, test.unique_id))
            ));
            let mut message = test.message.clone().unwrap_or_else(|| test.status.clone());
            if let Some(entity) = &test.entity {
                let _ = write!(message, "\n(tests {entity})");
            }
            let _ = writeln!(
                out,
                "::{kind} {}::{}",
                properties.join(","),
                escape_data(message.trim())
            );
        }
        if worth.len() > MAX_ANNOTATIONS {
            let _ = writeln!(
                out,
                "::notice title=dbt-secoda::{}",
                escape_data(&format!(
                    "{} more tests did not pass; the job summary lists them",
                    worth.len() - MAX_ANNOTATIONS
                ))
            );
        }
        out
    }

    /// The Markdown job summary in at most `budget` bytes (what is left of GitHub's 1 MiB for the
    /// step: `watch` appends one a run), or None when not even its head fits.
    pub fn summary(&self, report: &Report, budget: usize) -> Option<String> {
        let head = summary_head(report);
        // Room for the head and the note saying what was left out.
        if head.len() + NOTE_ROOM > budget {
            return None;
        }
        let json = report.to_json();
        // A fence longer than any run of backticks in the JSON (a dbt message may hold some).
        let longest = json.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat(longest.max(2) + 1);
        let json = format!(
            "\n<details><summary>The JSON report</summary>\n\n{fence}json\n{json}\n{fence}\n\n</details>\n"
        );
        let rows = test_rows(report, self);
        let all: usize = rows.iter().map(String::len).sum();
        if head.len() + all + json.len() <= budget {
            return Some(format!("{head}{}{json}", rows.concat()));
        }
        // Too big: the JSON report is left out, then the rows past what fits.
        let mut out = head;
        let mut kept = 0;
        for row in &rows {
            if out.len() + row.len() + NOTE_ROOM > budget {
                break;
            }
            out.push_str(row);
            kept += 1;
        }
        let _ = write!(
            out,
            "\n_{} and the JSON report were left out to stay under GitHub's 1 MiB summary limit; \
             the `report` output names the JSON report's file._\n",
            count((rows.len() - kept) as u64, "more row")
        );
        Some(out)
    }

    /// The step outputs, in the multiline-safe `name<<DELIMITER` form.
    pub fn outputs(report: &Report, report_file: Option<&Path>) -> String {
        let summary = report.test_summary.as_ref();
        let failing = summary.map_or(0, |s| s.failing);
        let warning = summary.map_or(0, |s| s.warning);
        let values = [
            ("exit-code", report.exit_code.to_string()),
            ("failing-count", failing.to_string()),
            ("warning-count", warning.to_string()),
            (
                "invocation-id",
                report.invocation_id.clone().unwrap_or_default(),
            ),
            ("uploaded", report.uploaded.is_some().to_string()),
            (
                "report",
                report_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        ];
        let mut out = String::new();
        for (name, value) in values {
            let mut delimiter = String::from("dbt_secoda_EOF");
            while value.contains(&delimiter) {
                delimiter.push('_');
            }
            let _ = write!(out, "{name}<<{delimiter}\n{value}\n{delimiter}\n");
        }
        out
    }

    fn write_report_file(&self, report: &Report) -> Option<PathBuf> {
        let path = self
            .report_dir
            .join(report_file_name(report.invocation_id.as_deref()));
        let text = crate::logging::redact(&report.to_json());
        match std::fs::write(&path, text) {
            Ok(()) => Some(path),
            Err(e) => {
                tracing::warn!("cannot write the JSON report to {}: {e}", path.display());
                None
            }
        }
    }
}

/// `dbt-secoda-report-ID.json`. The invocation id comes from the artifacts, which anyone can
/// edit: one that is not a plain id (dbt writes a UUID) is named by a hash of it instead, so it
/// can never climb out of the folder (`../`) or name a file a shell would trip on.
fn report_file_name(invocation_id: Option<&str>) -> String {
    let name = match invocation_id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            id.to_string()
        }
        Some(id) => {
            let digest = sha2::Sha256::digest(id.as_bytes());
            format!(
                "id-{}",
                digest[..8]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )
        }
        None => std::process::id().to_string(),
    };
    format!("dbt-secoda-report-{name}.json")
}

fn append(path: &Path, text: &str, what: &str) {
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(crate::logging::redact(text).as_bytes()));
    if let Err(e) = written {
        tracing::warn!("cannot append the {what} to {}: {e}", path.display());
    }
}

impl Sink for GitHub {
    fn report(&self, report: &Report) {
        print_workflow_commands(&self.annotations(report));
        if let Some(path) = &self.summary {
            let used = std::fs::metadata(path).map_or(0, |m| m.len());
            let budget = SUMMARY_LIMIT.saturating_sub(usize::try_from(used).unwrap_or(usize::MAX));
            match self.summary(report, budget) {
                Some(text) => append(path, &text, "job summary"),
                None => tracing::warn!(
                    "the job summary is full (GitHub's 1 MiB a step): this run is in the log \
                     and the report output"
                ),
            }
        }
        let file = self.write_report_file(report);
        if let Some(output) = &self.output {
            append(
                output,
                &GitHub::outputs(report, file.as_deref()),
                "step outputs",
            );
        }
    }
}

/// A Markdown table cell: one line, no pipes, no markup.
fn cell(text: &str) -> String {
    text.trim()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

fn summary_head(report: &Report) -> String {
    let mut out = String::new();
    let verdict = match report.result {
        Outcome::Success => "✅ OK",
        Outcome::DryRun => "✅ OK (dry run: nothing was sent)",
        Outcome::TestsFailed => "❌ tests failed",
        Outcome::Error => "⚠️ error",
    };
    let _ = writeln!(
        out,
        "## dbt-secoda: {verdict} (exit {})\n",
        report.exit_code
    );
    let _ = writeln!(out, "| | |\n| --- | --- |");
    if let Some(id) = &report.invocation_id {
        let _ = writeln!(out, "| invocation | `{}` |", cell(&id.replace('`', "'")));
    }
    if let Some(dbt) = &report.dbt {
        let command = dbt
            .invocation_command
            .clone()
            .or_else(|| dbt.command.as_ref().map(|c| format!("dbt {c}")))
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(
            out,
            "| dbt | {} · `{}` |",
            dbt.version.as_deref().unwrap_or("?"),
            cell(&command)
        );
    }
    if let Some(up) = &report.uploaded {
        let _ = writeln!(
            out,
            "| uploaded | run_results.json {} + manifest.json {} in {}, {} |",
            human_bytes(up.run_results.bytes),
            human_bytes(up.manifest.bytes),
            format_duration(up.seconds),
            count(up.attempts, "attempt")
        );
    }
    if let Some(s) = &report.test_summary {
        let text = if s.has_outcomes {
            let mut by: Vec<String> = s
                .by_status
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            by.sort();
            format!("{}: {}", count(s.total, "test"), by.join(", "))
        } else {
            "this dbt command writes no test outcomes".into()
        };
        let _ = writeln!(out, "| tests | {} |", cell(&text));
    }
    if let Some(answer) = &report.secoda {
        let _ = writeln!(
            out,
            "| Secoda failing | {} |",
            cell(&answer.failing.join(", "))
        );
        let _ = writeln!(
            out,
            "| Secoda warning | {} |",
            cell(&answer.warning.join(", "))
        );
        let _ = writeln!(
            out,
            "| settled by | `{}` after {}: {} |",
            serde_json::to_value(answer.settled_by)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            count(answer.polls, "poll"),
            cell(answer.settled_by.explain())
        );
    } else if let Some(why) = report.not_waited {
        let _ = writeln!(out, "| Secoda's answer | {} |", cell(why.explain()));
    }
    if let Some(error) = &report.error {
        let _ = writeln!(out, "| error | {} |", cell(&error.message));
        if let Some(hint) = &error.hint {
            let _ = writeln!(out, "| hint | {} |", cell(hint));
        }
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "| warning | {} |", cell(warning));
    }
    if !report.tests.is_empty() {
        let _ = writeln!(
            out,
            "\n### Tests that did not pass\n\n| status | test | file | tests node | message |\n| --- | --- | --- | --- | --- |"
        );
    }
    out
}

fn test_rows(report: &Report, github: &GitHub) -> Vec<String> {
    report
        .tests
        .iter()
        .map(|t| {
            format!(
                "| {} | `{}` | {} | {} | {} |\n",
                cell(&t.status),
                cell(&t.unique_id),
                t.file
                    .as_deref()
                    .map(|f| format!("`{}`", cell(&github.repo_path(f))))
                    .unwrap_or_default(),
                t.entity.as_deref().map(cell).unwrap_or_default(),
                cell(t.message.as_deref().unwrap_or_default())
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_command_escaping_follows_the_toolkit() {
        assert_eq!(escape_data("50% of rows\r\nbad"), "50%25 of rows%0D%0Abad");
        assert_eq!(escape_property("models/a,b:c.yml"), "models/a%2Cb%3Ac.yml");
    }

    #[test]
    fn paths_are_relative_to_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("analytics/dbt");
        std::fs::create_dir_all(&project).unwrap();
        let github = GitHub {
            workspace: Some(dir.path().to_path_buf()),
            project_dir: project,
            ..GitHub::default()
        };
        assert_eq!(
            github.repo_path("models\\marts\\_marts.yml"),
            "analytics/dbt/models\\marts\\_marts.yml".replace('\\', "/")
        );
    }

    #[test]
    fn a_huge_summary_is_cut_under_the_limit_with_a_note() {
        let test = |i: usize| TestResult {
            unique_id: format!("test.p.t{i}"),
            status: "error".into(),
            level: Level::Failing,
            failures: None,
            message: Some("x".repeat(10_000)),
            file: Some("models/a.yml".into()),
            entity: None,
            seconds: None,
            attached: false,
        };
        let report = Report {
            tests: (0..300).map(test).collect(),
            ..Report::default()
        };
        let summary = GitHub::default().summary(&report, SUMMARY_LIMIT).unwrap();
        assert!(summary.len() <= SUMMARY_LIMIT, "{}", summary.len());
        assert!(summary.len() > SUMMARY_LIMIT - 20_000);
        assert!(summary.contains("more rows and the JSON report were left out"));
        assert!(!summary.contains("<details>"));
        assert!(summary.contains("| `test.p.t0` |"));

        let small = Report {
            tests: (0..3).map(test).collect(),
            ..Report::default()
        };
        let summary = GitHub::default().summary(&small, SUMMARY_LIMIT).unwrap();
        assert!(summary.contains("<details>") && !summary.contains("left out"));
        // What is left of the step's summary bounds the next one; nothing when the head does
        // not fit.
        let cut = GitHub::default().summary(&small, 20_000).unwrap();
        assert!(cut.len() <= 20_000 && cut.contains("left out"));
        assert_eq!(GitHub::default().summary(&small, 200), None);
    }

    #[test]
    fn the_json_fence_outlasts_backticks_in_messages() {
        let report = Report {
            tests: vec![TestResult {
                unique_id: "test.p.t".into(),
                status: "error".into(),
                level: Level::Failing,
                failures: None,
                message: Some("near ```` in the SQL".into()),
                file: None,
                entity: None,
                seconds: None,
                attached: false,
            }],
            ..Report::default()
        };
        let summary = GitHub::default().summary(&report, SUMMARY_LIMIT).unwrap();
        assert!(summary.contains("\n`````json\n"), "{summary}");
        assert!(summary.contains("\n`````\n\n</details>"));
    }

    #[test]
    fn outputs_survive_newlines_in_values() {
        let report = Report {
            invocation_id: Some("a\ndbt_secoda_EOF\nb".into()),
            ..Report::default()
        };
        let out = GitHub::outputs(&report, None);
        assert!(
            out.contains("invocation-id<<dbt_secoda_EOF_\na\ndbt_secoda_EOF\nb\ndbt_secoda_EOF_\n")
        );
        assert!(out.starts_with("exit-code<<dbt_secoda_EOF\n0\ndbt_secoda_EOF\n"));
    }
}
