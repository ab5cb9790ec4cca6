//! action.yml, run the way a GitHub runner runs a composite action: each step's `env:` evaluated
//! from the inputs (defaults included), its `run:` script executed by `bash --noprofile --norc
//! -eo pipefail`, with the runner's files (`GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`, `GITHUB_PATH`)
//! and variables, the steps' outputs feeding the action's. The release it installs comes from a
//! local file server holding a fake release of the binary under test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};

use yaml_rust2::{Yaml, YamlLoader};

use crate::ci_reports::{
    ERRORING, PROJECT, failing_build_with_hard_text, parse_outputs, repo, workflow_commands,
};
use crate::support::*;

const VERSION: &str = "1.2.3";

fn action() -> Yaml {
    let text = std::fs::read_to_string(repo().join("action.yml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

fn text(yaml: &Yaml) -> &str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{yaml:?} is not a string"))
}

/// What one step did.
struct StepRun {
    id: String,
    code: Option<i32>,
    stderr: String,
    outputs: BTreeMap<String, String>,
    summary: String,
}

/// What the action did: its steps (up to the first that failed) and its outputs.
struct ActionRun {
    steps: Vec<StepRun>,
    outputs: BTreeMap<String, String>,
    /// `$RUNNER_TEMP`.
    temp: tempfile::TempDir,
}

impl ActionRun {
    fn step(&self, id: &str) -> &StepRun {
        self.steps
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("step {id} did not run"))
    }

    fn ran(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.id.as_str()).collect()
    }
}

/// `${{ ... }}` in a value of action.yml, evaluated as the runner would for the expressions the
/// action uses; any other expression fails the test (the action stays that simple).
fn evaluate(value: &str, inputs: &BTreeMap<String, String>, steps: &[StepRun]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("a closed expression") + start;
        let expression = rest[start + 3..end].trim();
        let value = if let Some(name) = expression.strip_prefix("inputs.") {
            inputs
                .get(name)
                .unwrap_or_else(|| panic!("action.yml uses an undeclared input {name}"))
                .clone()
        } else if expression == "github.action_repository" {
            "dbt-secoda/dbt-secoda".into()
        } else if let Some(path) = expression.strip_prefix("steps.") {
            let (id, name) = path.split_once(".outputs.").expect("steps.ID.outputs.NAME");
            steps
                .iter()
                .find(|s| s.id == id)
                .and_then(|s| s.outputs.get(name).cloned())
                .unwrap_or_default()
        } else {
            panic!("action.yml uses an expression this test does not know: {expression}")
        };
        out.push_str(&value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A step's `if:`, for the one form the action uses, `steps.ID.outputs.NAME == 'VALUE'`; any
/// other fails the test (the action stays that simple). A skipped step sets no outputs.
fn condition_holds(condition: &str, steps: &[StepRun]) -> bool {
    let (left, right) = condition
        .split_once(" == ")
        .unwrap_or_else(|| panic!("action.yml has an if: this test does not know: {condition}"));
    let value = right
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or_else(|| panic!("not a quoted literal: {right}"));
    let (id, name) = left
        .strip_prefix("steps.")
        .and_then(|p| p.split_once(".outputs."))
        .unwrap_or_else(|| panic!("not steps.ID.outputs.NAME: {left}"));
    steps
        .iter()
        .find(|s| s.id == id)
        .and_then(|s| s.outputs.get(name))
        .is_some_and(|v| v == value)
}

/// The runner's architecture name for this machine.
fn runner_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "ARM64",
        _ => "X64",
    }
}

/// Runs action.yml with `given` inputs and the workflow's `env`.
fn run_action(given: &[(&str, &str)], env: &[(&str, &str)]) -> ActionRun {
    let action = action();
    let mut inputs = BTreeMap::new();
    for (name, spec) in action["inputs"].as_hash().unwrap() {
        let default = spec["default"].as_str().unwrap_or_default();
        inputs.insert(text(name).to_string(), default.to_string());
    }
    for (name, value) in given {
        assert!(inputs.contains_key(*name), "action.yml has no input {name}");
        inputs.insert(name.to_string(), value.to_string());
    }
    for (name, spec) in action["inputs"].as_hash().unwrap() {
        if spec["required"].as_bool() == Some(true) {
            assert!(!inputs[text(name)].is_empty(), "input {name:?} is required");
        }
    }

    let temp = tempfile::tempdir().unwrap();
    let github_path = temp.path().join("github_path");
    std::fs::write(&github_path, "").unwrap();
    let mut steps: Vec<StepRun> = Vec::new();
    for (n, step) in action["runs"]["steps"].as_vec().unwrap().iter().enumerate() {
        let id = text(&step["id"]).to_string();
        assert_eq!(text(&step["shell"]), "bash", "step {id}");
        if let Some(condition) = step["if"].as_str()
            && !condition_holds(condition, &steps)
        {
            continue;
        }
        let script = text(&step["run"]);
        assert!(
            !script.contains("${{"),
            "step {id} interpolates an expression into its script: pass it through env:"
        );
        let script_file = temp.path().join(format!("step-{n}.sh"));
        std::fs::write(&script_file, script).unwrap();
        let output = temp.path().join(format!("output-{n}"));
        let summary = temp.path().join(format!("summary-{n}"));
        std::fs::write(&output, "").unwrap();

        // PATH: what earlier steps added through GITHUB_PATH (newest first), then the system's
        // folders only, so dbt-secoda can come from nowhere but the install step.
        let added = std::fs::read_to_string(&github_path).unwrap();
        let mut path: Vec<&str> = added.lines().rev().collect();
        path.extend(["/usr/local/bin", "/usr/bin", "/bin"]);
        let mut cmd = clean_command("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script_file)
            .current_dir(repo())
            .env("PATH", path.join(":"))
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", repo())
            .env("GITHUB_ACTION_PATH", repo())
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_PATH", &github_path)
            .env("RUNNER_TEMP", temp.path())
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", runner_arch())
            .envs(env.iter().copied());
        if let Some(vars) = step["env"].as_hash() {
            for (name, value) in vars {
                cmd.env(text(name), evaluate(text(value), &inputs, &steps));
            }
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let run = StepRun {
            id,
            code: out.status.code(),
            stderr: format!("{}{}", stdout(&out), stderr(&out)),
            outputs: parse_outputs(&std::fs::read_to_string(&output).unwrap()),
            summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        };
        let failed = run.code != Some(0);
        steps.push(run);
        if failed {
            break;
        }
    }
    let mut outputs = BTreeMap::new();
    for (name, spec) in action["outputs"].as_hash().unwrap() {
        outputs.insert(
            text(name).to_string(),
            evaluate(text(&spec["value"]), &inputs, &steps),
        );
    }
    ActionRun {
        steps,
        outputs,
        temp,
    }
}

/// A local file server holding a release of the binary under test, laid out as GitHub's
/// release downloads are: `v1.2.3/dbt-secoda-v1.2.3-TARGET.tar.gz` and its `.sha256`.
struct Releases {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Releases {
    fn start() -> Releases {
        let target = match std::env::consts::ARCH {
            "aarch64" => "aarch64-unknown-linux-gnu",
            _ => "x86_64-unknown-linux-gnu",
        };
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join(format!("v{VERSION}"));
        let staging = dir.path().join("staging");
        std::fs::create_dir_all(&release).unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::copy(
            assert_cmd::cargo::cargo_bin("dbt-secoda"),
            staging.join("dbt-secoda"),
        )
        .unwrap();
        let archive = release.join(format!("dbt-secoda-v{VERSION}-{target}.tar.gz"));
        // gzip -1: the debug binary is large, and the archive's format is what matters here.
        let packed = clean_command("tar")
            .args(["-I", "gzip -1", "-cf"])
            .arg(&archive)
            .arg("-C")
            .arg(&staging)
            .arg("dbt-secoda")
            .status()
            .unwrap();
        assert!(packed.success());
        let name = archive.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(
            release.join(format!("{name}.sha256")),
            format!("{}  {name}\n", sha256(&archive)),
        )
        .unwrap();

        let mut child = clean_command("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .unwrap_or_else(|| panic!("no port in {line:?}"))
            .to_string();
        Releases {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The release's `.sha256` file.
    fn checksum_file(&self) -> PathBuf {
        let release = self.dir.path().join(format!("v{VERSION}"));
        std::fs::read_dir(&release)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "sha256"))
            .unwrap()
    }
}

impl Drop for Releases {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn installed(run: &ActionRun) -> PathBuf {
    run.temp.path().join("dbt-secoda/bin/dbt-secoda")
}

#[test]
fn the_action_installs_the_release_and_reports_a_failing_run() {
    let sim = Simulator::start(&[]);
    let releases = Releases::start();
    let target = failing_build_with_hard_text();
    let junit = target.path().join("dbt-junit.xml");
    let target_dir = target.path().display().to_string();
    let junit_path = junit.display().to_string();
    let run = run_action(
        &[
            ("api-key", KEY),
            ("integration-id", INTEGRATION),
            ("api-url", &sim.url),
            ("project-dir", PROJECT),
            ("target-dir", &target_dir),
            ("junit", &junit_path),
            ("wait", "20s"),
            ("version", VERSION),
        ],
        // The workflow's own env: reaches every step, as on a runner.
        &[
            ("DBT_SECODA_RELEASES", &releases.url),
            ("DBT_SECODA_POLL_INTERVAL", "100ms"),
        ],
    );

    let install = run.step("install");
    assert_eq!(install.code, Some(0), "{}", install.stderr);
    assert!(installed(&run).is_file());
    assert!(install.stderr.contains("dbt-secoda "), "{}", install.stderr);

    let upload = run.step("upload");
    assert_eq!(upload.code, Some(1), "{}", upload.stderr);
    assert!(upload.stderr.contains(&format!("::add-mask::{KEY}")));
    let commands = workflow_commands(&upload.stderr);
    let errors: Vec<_> = commands.iter().filter(|c| c.command == "error").collect();
    assert_eq!(errors.len(), 4, "{}", upload.stderr);
    assert!(errors.iter().all(
        |e| e.properties["file"].starts_with("tests/dbt-project/models/")
            || e.properties["file"].starts_with("tests/dbt-project/tests/")
    ));
    let erroring = errors
        .iter()
        .find(|e| e.properties["title"].ends_with(ERRORING))
        .unwrap();
    assert!(
        erroring
            .data
            .starts_with("100% of rows, 0% done: Runtime Error in test")
    );
    assert!(
        erroring
            .data
            .contains("\n  Binder Error: Referenced column")
    );
    assert!(
        upload
            .summary
            .starts_with("## dbt-secoda: ❌ tests failed (exit 1)")
    );

    assert_eq!(run.outputs["exit-code"], "1");
    assert_eq!(run.outputs["failing-count"], "4");
    assert_eq!(run.outputs["warning-count"], "2");
    assert_eq!(run.outputs["uploaded"], "true");
    assert_eq!(
        run.outputs["invocation-id"],
        "87cda89b-966f-40a0-931b-9a6cae8c6fc1"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&run.outputs["report"]).unwrap()).unwrap();
    assert_eq!(report["exit_code"], 1);
    assert!(junit.is_file(), "the junit input is honoured");
}

#[test]
fn a_release_whose_checksum_does_not_match_is_not_installed() {
    let sim = Simulator::start(&[]);
    let releases = Releases::start();
    let file = releases.checksum_file();
    let line = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{}{}", "0".repeat(64), &line[64..])).unwrap();
    let target = failing_build();
    let target_dir = target.path().display().to_string();
    let run = run_action(
        &[
            ("api-key", KEY),
            ("integration-id", INTEGRATION),
            ("api-url", &sim.url),
            ("target-dir", &target_dir),
            ("version", VERSION),
        ],
        &[("DBT_SECODA_RELEASES", &releases.url)],
    );
    let install = run.step("install");
    assert_eq!(install.code, Some(1), "{}", install.stderr);
    assert!(
        install
            .stderr
            .contains("::error title=dbt-secoda install::")
            && install.stderr.contains("but the release says 0000"),
        "{}",
        install.stderr
    );
    assert_eq!(
        run.ran(),
        ["key", "install"],
        "the upload step does not run"
    );
    assert!(!installed(&run).exists(), "nothing is installed");
    let path = std::fs::read_to_string(run.temp.path().join("github_path")).unwrap();
    assert_eq!(path, "", "nothing is put on the PATH");
    assert_eq!(run.outputs["exit-code"], "");
    assert_eq!(sim.requests(""), 0);
}

#[test]
fn a_missing_release_or_a_bad_version_stops_the_install_with_a_reason() {
    let releases = Releases::start();
    let base = [("api-key", KEY), ("integration-id", INTEGRATION)];
    let env = [("DBT_SECODA_RELEASES", releases.url.as_str())];
    let with = |version: &'static str| {
        let mut inputs = base.to_vec();
        inputs.push(("version", version));
        run_action(&inputs, &env)
    };

    let missing = with("9.9.9");
    let install = missing.step("install");
    assert_eq!(install.code, Some(1));
    assert!(
        install.stderr.contains(&format!(
            "cannot download {}/v9.9.9/dbt-secoda-v9.9.9-",
            releases.url
        )),
        "{}",
        install.stderr
    );

    let crafted = with("1.2.3/../../../etc");
    let install = crafted.step("install");
    assert_eq!(install.code, Some(1));
    assert!(
        install.stderr.contains("is not a release number"),
        "{}",
        install.stderr
    );
    assert!(!installed(&crafted).exists());
}

#[test]
fn the_action_declares_the_documented_inputs_and_mirrors_the_step_outputs() {
    let action = action();
    let names = |key: &str| -> Vec<String> {
        action[key]
            .as_hash()
            .unwrap()
            .keys()
            .map(|k| text(k).to_string())
            .collect()
    };
    assert_eq!(
        names("inputs"),
        [
            "api-key",
            "require-key",
            "integration-id",
            "api-url",
            "region",
            "target-dir",
            "project-dir",
            "fail-on",
            "on-api-error",
            "wait",
            "junit",
            "version"
        ]
    );
    assert_eq!(
        names("outputs"),
        [
            "exit-code",
            "failing-count",
            "warning-count",
            "invocation-id",
            "uploaded",
            "report"
        ]
    );
    for (name, spec) in action["outputs"].as_hash().unwrap() {
        assert_eq!(
            text(&spec["value"]),
            format!("${{{{ steps.upload.outputs.{} }}}}", text(name))
        );
    }
    for (name, spec) in action["inputs"].as_hash().unwrap() {
        assert!(
            !text(&spec["description"]).is_empty(),
            "input {name:?} has no description"
        );
    }
    assert_eq!(text(&action["runs"]["using"]), "composite");
    // Every input reaches a step, and through env: only.
    let steps = action["runs"]["steps"].as_vec().unwrap();
    for input in names("inputs") {
        let used = steps.iter().any(|s| {
            s["env"].as_hash().is_some_and(|env| {
                env.values()
                    .any(|v| text(v) == format!("${{{{ inputs.{input} }}}}"))
            })
        });
        assert!(used, "input {input} reaches no step's env");
    }
}

#[test]
fn an_empty_input_leaves_the_jobs_own_setting_in_force() {
    // The job sets DBT_SECODA_FAIL_ON at its level; the fail-on input is left empty.
    let sim = Simulator::start(&[]);
    let releases = Releases::start();
    let target = failing_build();
    let target_dir = target.path().display().to_string();
    let run = run_action(
        &[
            ("api-key", KEY),
            ("integration-id", INTEGRATION),
            ("api-url", &sim.url),
            ("target-dir", &target_dir),
            ("version", VERSION),
            ("wait", "false"),
        ],
        &[
            ("DBT_SECODA_RELEASES", &releases.url),
            ("DBT_SECODA_FAIL_ON", "never"),
        ],
    );
    let upload = run.step("upload");
    assert_eq!(upload.code, Some(0), "{}", upload.stderr);
    assert_eq!(run.outputs["exit-code"], "0");
    assert_eq!(run.outputs["failing-count"], "4");
}

#[test]
fn without_a_key_the_action_says_so_and_succeeds_unless_a_key_is_required() {
    // A pull request from a fork: the secret is empty.
    let sim = Simulator::start(&[]);
    let releases = Releases::start();
    let target = failing_build();
    let target_dir = target.path().display().to_string();
    let inputs = |require: &'static str| {
        vec![
            ("api-key", ""),
            ("require-key", require),
            ("integration-id", INTEGRATION),
            ("api-url", sim.url.as_str()),
            ("target-dir", target_dir.as_str()),
            ("version", VERSION),
        ]
    };
    let env = [("DBT_SECODA_RELEASES", releases.url.as_str())];

    let fork = run_action(&inputs("false"), &env);
    assert_eq!(fork.ran(), ["key"], "nothing is installed or uploaded");
    let key = fork.step("key");
    assert_eq!(key.code, Some(0), "{}", key.stderr);
    let notices: Vec<_> = workflow_commands(&key.stderr)
        .into_iter()
        .filter(|c| c.command == "notice")
        .collect();
    assert_eq!(notices.len(), 1, "{}", key.stderr);
    assert!(
        notices[0].data.contains("nothing was uploaded")
            && notices[0].data.contains("require-key: true"),
        "{}",
        key.stderr
    );
    assert!(!installed(&fork).exists());
    assert_eq!(
        std::fs::read_to_string(fork.temp.path().join("github_path")).unwrap(),
        ""
    );
    assert_eq!(fork.outputs["exit-code"], "");
    assert_eq!(fork.outputs["uploaded"], "");

    let required = run_action(&inputs("true"), &env);
    assert_eq!(required.ran(), ["key"]);
    let key = required.step("key");
    assert_eq!(key.code, Some(2), "{}", key.stderr);
    assert!(
        workflow_commands(&key.stderr)
            .iter()
            .any(|c| c.command == "error" && c.data.contains("require-key is true")),
        "{}",
        key.stderr
    );
    assert!(!installed(&required).exists());
    assert_eq!(sim.requests(""), 0, "Secoda heard nothing");

    let typo = run_action(&inputs("yes please"), &env);
    assert_eq!(typo.step("key").code, Some(2));
    assert_eq!(typo.ran(), ["key"]);
}
