//! CI-native reports through the binary: on a GitHub Actions runner (its environment, files and
//! workflow commands, as the runner provides and reads them) and as JUnit XML read by a real
//! consumer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

/// The repository: annotation paths must name files in it.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The dbt project the demo artifacts come from, a subfolder of the repository as in a monorepo.
pub const PROJECT: &str = "tests/dbt-project";
pub const ERRORING: &str =
    "test.fernleaf.not_null_rpt_revenue_by_region_discount_total_cents.a97f1455ab";
pub const ON_WINDOWS: &str = "test.fernleaf.unique_dim_customers_email.0472f7c2e8";

/// The demo's failing build, with what real runs can hold that it does not: an error message
/// with `%` in it (besides its newlines and colons), and a test file path written by dbt on
/// Windows. Edited as text: the files keep dbt's key order, `metadata` first.
pub fn failing_build_with_hard_text() -> tempfile::TempDir {
    let dir = failing_build();
    let edit =
        |name: &str, at: &str, from: &str, to: &str| edit_text(dir.path(), name, at, from, to);
    let message =
        r#""message": "Runtime Error in test not_null_rpt_revenue_by_region_discount_total_cents"#;
    edit(
        "run_results.json",
        message,
        r#""message": ""#,
        r#""message": "100% of rows, 0% done: "#,
    );
    edit(
        "manifest.json",
        &format!(r#""{ON_WINDOWS}": {{"#),
        r#""original_file_path": "models/marts/_marts.yml""#,
        r#""original_file_path": "models\\marts\\_marts.yml""#,
    );
    dir
}

/// In `dir/name`, the first `from` at or after the first `at` becomes `to`.
pub fn edit_text(dir: &Path, name: &str, at: &str, from: &str, to: &str) {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find(at)
        .unwrap_or_else(|| panic!("{at} not in {name}"));
    let offset = start + text[start..].find(from).unwrap();
    let edited = format!("{}{to}{}", &text[..offset], &text[offset + from.len()..]);
    std::fs::write(&path, edited).unwrap();
}

/// A runner's files for one step.
struct Runner {
    dir: tempfile::TempDir,
}

impl Runner {
    fn new() -> Runner {
        let runner = Runner {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(runner.temp()).unwrap();
        runner
    }
    fn summary(&self) -> PathBuf {
        self.dir.path().join("step_summary.md")
    }
    fn output(&self) -> PathBuf {
        self.dir.path().join("output")
    }
    fn temp(&self) -> PathBuf {
        self.dir.path().join("runner_temp")
    }
    /// The environment a runner gives a step.
    fn env(&self, cmd: &mut assert_cmd::Command) {
        cmd.env("GITHUB_ACTIONS", "true")
            .env("CI", "true")
            .env("GITHUB_WORKSPACE", repo())
            .env("GITHUB_STEP_SUMMARY", self.summary())
            .env("GITHUB_OUTPUT", self.output())
            .env("RUNNER_TEMP", self.temp());
    }
    /// `$GITHUB_OUTPUT` read as the runner reads it: `name<<DELIMITER` blocks (and `name=value`
    /// lines).
    fn outputs(&self) -> BTreeMap<String, String> {
        parse_outputs(&std::fs::read_to_string(self.output()).unwrap())
    }
}

pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for line in lines.by_ref() {
                if line == delimiter {
                    break;
                }
                value.push(line);
            }
            outputs.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            outputs.insert(name.to_string(), value.to_string());
        }
    }
    outputs
}

/// A workflow command line, as the runner's `ActionCommand.TryParseV2` reads it.
#[derive(Debug)]
pub struct WorkflowCommand {
    pub command: String,
    pub properties: BTreeMap<String, String>,
    pub data: String,
}

/// The toolkit's escapes, undone the way the runner does (`%25` last).
fn unescape(text: &str) -> String {
    text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}

pub fn workflow_commands(stderr: &str) -> Vec<WorkflowCommand> {
    stderr
        .lines()
        .filter_map(|line| {
            // The runner trims leading white space first (ActionCommand.TryParseV2).
            let rest = line.trim_start().strip_prefix("::")?;
            let (head, data) = rest.split_once("::")?;
            let (command, props) = head.split_once(' ').unwrap_or((head, ""));
            let properties = props
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("a property is key=value");
                    (k.to_string(), unescape(v))
                })
                .collect();
            // Data escapes only %, CR and LF: a `%3A` there is what the text said.
            let data = data
                .replace("%0D", "\r")
                .replace("%0A", "\n")
                .replace("%25", "%");
            Some(WorkflowCommand {
                command: command.to_string(),
                properties,
                data,
            })
        })
        .collect()
}

/// The local results of `target` as the dry-run JSON report gives them.
fn local_tests(target: &Path) -> Vec<Value> {
    let report = json_report(&expect_exit(&mut dry_run(target), 0));
    report["tests"].as_array().unwrap().clone()
}

#[test]
fn on_a_runner_upload_annotates_summarises_and_sets_outputs() {
    let sim = Simulator::start(&[]);
    let target = failing_build_with_hard_text();
    let runner = Runner::new();
    let mut cmd = sim.upload(target.path());
    cmd.args(["--output", "json", "--project-dir", PROJECT])
        .current_dir(repo());
    runner.env(&mut cmd);
    let out = expect_exit(&mut cmd, 1);
    let err = stderr(&out);

    // stdout is still one JSON document: workflow commands go to stderr, which the runner
    // parses too.
    let report = json_report(&out);
    assert_eq!(report["exit_code"], 1);

    // The key is masked before anything else is said, and appears nowhere else.
    assert_eq!(
        err.lines().next(),
        Some(format!("::add-mask::{KEY}").as_str())
    );
    let summary = std::fs::read_to_string(runner.summary()).unwrap();
    let outputs_text = std::fs::read_to_string(runner.output()).unwrap();
    let outputs = runner.outputs();
    let report_file = std::fs::read_to_string(&outputs["report"]).unwrap();
    let after_mask: String = err.lines().skip(1).collect::<Vec<_>>().join("\n");
    for (what, text) in [
        ("stdout", &stdout(&out)),
        ("stderr after the mask", &after_mask),
        ("summary", &summary),
        ("outputs", &outputs_text),
        ("report file", &report_file),
    ] {
        assert!(!text.contains(KEY), "the key is in the {what}");
    }

    // One annotation a test that did not pass, on the file in the repository.
    let commands = workflow_commands(&err);
    let annotations: Vec<&WorkflowCommand> = commands
        .iter()
        .filter(|c| c.command == "error" || c.command == "warning")
        .collect();
    let tests = local_tests(target.path());
    let expected = |level: &str| tests.iter().filter(|t| t["level"] == level).count();
    let count = |kind: &str| annotations.iter().filter(|c| c.command == kind).count();
    assert_eq!(count("error"), expected("failing"), "{err}");
    assert_eq!(count("warning"), expected("warning"), "{err}");
    assert_eq!(count("error"), 4);
    for annotation in &annotations {
        let file = &annotation.properties["file"];
        assert!(file.starts_with("tests/dbt-project/"), "{file}");
        assert!(
            repo().join(file).is_file(),
            "{file} is not in the repository"
        );
    }
    let titled = |id: &str| {
        annotations
            .iter()
            .find(|a| a.properties["title"].ends_with(id))
            .unwrap_or_else(|| panic!("no annotation for {id}:\n{err}"))
    };
    assert_eq!(
        titled(ON_WINDOWS).properties["file"],
        "tests/dbt-project/models/marts/_marts.yml"
    );
    let erroring = titled(ERRORING);
    assert_eq!(
        erroring.properties["title"],
        format!("dbt test error: {ERRORING}")
    );
    let message = tests.iter().find(|t| t["unique_id"] == ERRORING).unwrap()["message"]
        .as_str()
        .unwrap()
        .trim()
        .to_string();
    assert!(message.contains('%') && message.contains('\n') && message.contains(':'));
    assert!(erroring.data.starts_with(&message), "{:?}", erroring.data);
    let raw = err.lines().find(|l| l.contains(ERRORING)).unwrap();
    assert!(
        raw.contains("100%25 of rows, 0%25 done: Runtime Error"),
        "{raw}"
    );
    assert!(
        raw.contains("title=dbt test error%3A test.fernleaf."),
        "{raw}"
    );

    // The job summary.
    assert!(
        summary.starts_with("## dbt-secoda: ❌ tests failed (exit 1)"),
        "{summary}"
    );
    let invocation = report["invocation_id"].as_str().unwrap();
    assert!(summary.contains(&format!("| invocation | `{invocation}` |")));
    assert!(summary.contains("| dbt | 1."), "{summary}");
    assert!(
        summary.contains("| uploaded | run_results.json "),
        "{summary}"
    );
    assert!(summary.contains("| settled by | `"), "{summary}");
    assert!(summary.contains("| Secoda failing | "), "{summary}");
    for test in tests.iter().filter(|t| t["level"] != "passed") {
        let id = test["unique_id"].as_str().unwrap();
        assert!(
            summary.contains(&format!("| `{id}` |")),
            "{id} not in the summary"
        );
    }
    assert!(summary.contains("`tests/dbt-project/models/marts/_marts.yml`"));
    assert!(summary.contains("100% of rows, 0% done: Runtime Error"));
    let json = summary
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the JSON report in the summary");
    assert_eq!(serde_json::from_str::<Value>(json).unwrap(), report);

    // The step outputs.
    assert_eq!(outputs["exit-code"], "1");
    assert_eq!(outputs["failing-count"], "4");
    assert_eq!(outputs["warning-count"], "2");
    assert_eq!(outputs["invocation-id"], invocation);
    assert_eq!(outputs["uploaded"], "true");
    assert!(Path::new(&outputs["report"]).starts_with(runner.temp()));
    assert_eq!(serde_json::from_str::<Value>(&report_file).unwrap(), report);
}

#[test]
fn on_a_runner_a_configuration_error_is_reported_too() {
    let runner = Runner::new();
    let target = failing_build();
    let junit = runner.temp().join("dbt.xml");
    let mut cmd = bin();
    cmd.env("SECODA_API_KEY", KEY)
        .args(["upload", "--target-dir"])
        .arg(target.path())
        .arg("--junit")
        .arg(&junit);
    runner.env(&mut cmd);
    let out = expect_exit(&mut cmd, 2);
    // The JUnit file says the run failed, not that no test did.
    if let Some(read) = read_junit(&junit) {
        let case = &read["suites"][0]["cases"][0];
        assert_eq!(case["name"], "dbt-secoda");
        assert_eq!(case["status"], "error");
        assert_eq!(case["message"], "no dbt integration id was given");
    }
    let outputs = runner.outputs();
    assert_eq!(outputs["exit-code"], "2");
    assert_eq!(outputs["uploaded"], "false");
    let summary = std::fs::read_to_string(runner.summary()).unwrap();
    assert!(summary.contains("⚠️ error (exit 2)"), "{summary}");
    assert!(
        summary.contains("| error | no dbt integration id was given |"),
        "{summary}"
    );
    assert!(summary.contains("SECODA_INTEGRATION_ID"), "{summary}");
    // The first line is the mask; after it the key is never said.
    let err = stderr(&out);
    assert!(err.starts_with("::add-mask::"));
    let said: Vec<&str> = err.lines().skip(1).collect();
    assert!(!said.concat().contains(KEY) && !summary.contains(KEY));
}

#[test]
fn github_reports_on_request_off_a_runner_without_the_mask() {
    // `--github` where GitHub's files are not set: annotations only, and the key is never
    // written, not even to mask it.
    let target = failing_build();
    let mut cmd = dry_run(target.path());
    cmd.arg("--github");
    let out = expect_exit(&mut cmd, 0);
    let commands = workflow_commands(&stderr(&out));
    assert!(commands.iter().all(|c| c.command != "add-mask"));
    assert_eq!(commands.iter().filter(|c| c.command == "error").count(), 4);
    assert!(!stderr(&out).contains(KEY));
    json_report(&out);
}

/// The JUnit file as `junitparser` reads it.
fn read_junit(path: &Path) -> Option<Value> {
    let Some(python) = std::env::var_os("JUNITPARSER_PYTHON") else {
        assert!(
            std::env::var_os("DBT_SECODA_REQUIRE_TOOLS").is_none(),
            "JUNITPARSER_PYTHON (a python with junitparser) is required here"
        );
        eprintln!("skipped: set JUNITPARSER_PYTHON to a python that has junitparser");
        return None;
    };
    let out = clean_command(python)
        .arg(repo().join("tests/it/junit_read.py"))
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "junitparser: {}", stderr(&out));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn junit_reports_every_test_as_a_real_consumer_reads_it() {
    let sim = Simulator::start(&[]);
    let target = failing_build_with_hard_text();
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("dbt.xml");
    let mut cmd = sim.upload(target.path());
    cmd.args(["--output", "json", "--junit"]).arg(&junit);
    let report = json_report(&expect_exit(&mut cmd, 1));
    assert!(junit.is_file());

    let Some(read) = read_junit(&junit) else {
        return;
    };
    let suites = read["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 1);
    let suite = &suites[0];
    let summary = &report["test_summary"];
    assert_eq!(suite["name"], "dbt build");
    assert_eq!(suite["tests"], summary["total"]);
    assert_eq!(
        suite["properties"]["invocation_id"],
        report["invocation_id"]
    );
    assert_eq!(suite["failures"], 3);
    assert_eq!(suite["errors"], 1);
    assert_eq!(suite["skipped"], summary["by_status"]["skipped"]);
    let cases = suite["cases"].as_array().unwrap();
    assert_eq!(cases.len() as u64, summary["total"].as_u64().unwrap());
    let case = |id: &str| cases.iter().find(|c| c["name"] == id).unwrap();
    for test in report["tests"].as_array().unwrap() {
        let id = test["unique_id"].as_str().unwrap();
        let status = match test["status"].as_str().unwrap() {
            "fail" => "failure",
            "error" => "error",
            "skipped" => "skipped",
            _ => "passed",
        };
        assert_eq!(case(id)["status"], status, "{id}");
        let file = test["file"].as_str().unwrap().replace('\\', "/");
        assert_eq!(case(id)["file"], file.as_str());
        assert_eq!(case(id)["properties"]["tests"], test["entity"]);
    }
    let erroring = case(ERRORING);
    assert!(
        erroring["message"]
            .as_str()
            .unwrap()
            .starts_with("100% of rows, 0% done: Runtime Error in test"),
        "{erroring}"
    );
    assert_eq!(case(ON_WINDOWS)["file"], "models/marts/_marts.yml");
    let passing = cases.iter().filter(|c| c["status"] == "passed").count();
    assert!(passing > 20, "{passing} passing cases");

    // Warnings fail under --fail-on warn, in the file as in the exit code.
    let mut strict = sim.upload(target.path());
    strict.args(["--fail-on", "warn", "--junit"]).arg(&junit);
    expect_exit(&mut strict, 1);
    let read = read_junit(&junit).unwrap();
    assert_eq!(read["suites"][0]["failures"], 5);
}

#[test]
fn a_junit_path_in_a_missing_folder_stops_before_anything_is_sent() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let mut cmd = sim.upload(target.path());
    cmd.args(["--junit", "/nonexistent/reports/dbt.xml"]);
    let out = expect_exit(&mut cmd, 2);
    assert_stderr_contains(&out, "/nonexistent/reports/dbt.xml");
    assert_stderr_contains(&out, "hint: create the folder first");
    assert_eq!(sim.requests(""), 0, "nothing reaches Secoda");
}

#[test]
fn watch_reports_each_pair_to_github_and_junit_too() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let runner = Runner::new();
    let junit = runner.temp().join("dbt.xml");
    let state = runner.dir.path().join("state.json");
    let mut cmd = sim.cli(&["watch", "--once", "--integration-id", INTEGRATION]);
    cmd.args(["--poll-interval", "100ms", "--target-dir"])
        .arg(target.path())
        .arg("--state-file")
        .arg(&state)
        .arg("--junit")
        .arg(&junit);
    runner.env(&mut cmd);
    let out = expect_exit(&mut cmd, 1);
    assert_eq!(runner.outputs()["exit-code"], "1");
    assert_eq!(
        workflow_commands(&stderr(&out))
            .iter()
            .filter(|c| c.command == "error")
            .count(),
        4
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<testsuite name="dbt build" tests="39""#),
        "{xml}"
    );
}

#[test]
fn github_reporting_can_be_turned_off_on_a_runner() {
    let runner = Runner::new();
    let target = failing_build();
    let mut cmd = dry_run(target.path());
    cmd.arg("--github=false");
    runner.env(&mut cmd);
    let out = expect_exit(&mut cmd, 0);
    let commands = workflow_commands(&stderr(&out));
    assert!(
        commands.iter().all(|c| c.command == "add-mask"),
        "{commands:?}"
    );
    assert!(!runner.summary().exists() && !runner.output().exists());
}

#[test]
fn text_from_dbt_cannot_forge_workflow_commands() {
    // A test's message (databases quote values in errors) whose lines read as commands.
    let sim = Simulator::start(&[]);
    let target = failing_build();
    edit_text(
        target.path(),
        "run_results.json",
        r#""message": "Got 2 results, configured to fail if != 0""#,
        r#""message": "Got 2 results"#,
        r#""message": "Got 2 results\n  ::error file=README.md,title=forged::x\n::stop-commands::t"#,
    );
    let runner = Runner::new();
    let mut cmd = sim.upload(target.path());
    runner.env(&mut cmd);
    let out = expect_exit(&mut cmd, 1);
    let printed = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        printed.contains("::error file=README.md,title=forged::x"),
        "{printed}"
    );
    let commands = workflow_commands(&printed);
    assert!(
        commands
            .iter()
            .all(|c| c.command != "stop-commands" && !c.properties.values().any(|v| v == "forged")),
        "{printed}"
    );
    // dbt-secoda's own annotation carries the message, escaped, as data.
    assert_eq!(commands.iter().filter(|c| c.command == "error").count(), 4);
}

#[test]
fn escape_sequences_in_a_servers_error_text_are_shown_never_obeyed() {
    // A server's error text with a terminal title, a screen clear, a colour and a bell: printed
    // raw, it would rewrite the CI log's terminal and the job summary.
    let sim = Simulator::start(&[
        "--fail-requests",
        "1",
        "--fail-status",
        "400",
        "--fail-path",
        "upload_artifacts",
        "--fail-detail",
        "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mbad\u{202e}txt",
    ]);
    let runner = Runner::new();
    let target = failing_build();
    let mut cmd = sim.upload(target.path());
    cmd.arg("--no-wait");
    runner.env(&mut cmd);
    let output = expect_exit(&mut cmd, 4);
    let summary = std::fs::read_to_string(runner.summary()).unwrap();
    for (name, text) in [
        ("stdout", stdout(&output)),
        ("stderr", stderr(&output)),
        ("summary", summary),
    ] {
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\u{202e}']),
            "{name} carries raw control characters: {text:?}"
        );
        assert!(text.contains("\\u{1b}[31mbad"), "{name}: {text}");
    }
}

#[test]
fn an_invocation_id_that_is_not_an_id_never_names_a_file_outside_runner_temp() {
    // The artifacts are the user's (or anyone's who can write the target folder): an invocation
    // id of "../../x" must not put the report file anywhere but $RUNNER_TEMP.
    let sim = Simulator::start(&[]);
    let target = failing_build();
    for name in ["manifest.json", "run_results.json"] {
        edit_text(
            target.path(),
            name,
            "\"invocation_id\"",
            "87cda89b-966f-40a0-931b-9a6cae8c6fc1",
            "../../escaped-report",
        );
    }
    let runner = Runner::new();
    let mut cmd = sim.upload(target.path());
    cmd.arg("--no-wait");
    runner.env(&mut cmd);
    expect_exit(&mut cmd, 1);
    let report = PathBuf::from(&runner.outputs()["report"]);
    assert_eq!(report.parent(), Some(runner.temp().as_path()), "{report:?}");
    let name = report.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("dbt-secoda-report-id-"), "{name}");
    assert!(report.is_file());
    assert!(!runner.dir.path().join("escaped-report.json").exists());
    assert_eq!(runner.outputs()["invocation-id"], "../../escaped-report");
}
