//! Configuration and usage: exit 2 with messages that say what to do.

use crate::support::*;

#[test]
fn a_missing_key_names_both_ways_to_give_it() {
    let target = failing_build();
    let output = bin()
        .args(["upload", "--integration-id", INTEGRATION])
        .arg("--target-dir")
        .arg(target.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("SECODA_API_KEY") && err.contains("--api-key-file"),
        "{err}"
    );
    assert!(
        stdout(&output).is_empty(),
        "nothing on stdout: {}",
        stdout(&output)
    );
}

#[test]
fn a_key_flag_beats_a_key_in_the_environment() {
    // The simulator takes KEY only: a request that works proves which key was sent.
    let sim = Simulator::start(&[]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{KEY}\n")).unwrap();
    let wrong_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong_file.path(), "sk-not-this-one\n").unwrap();

    // An organisation-wide SECODA_API_KEY, and one step passing its own key file.
    let output = sim
        .cli(&["integrations", "list", "--api-key-file"])
        .arg(file.path())
        .env("SECODA_API_KEY", "sk-not-this-one")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // Both in the environment: SECODA_API_KEY is taken.
    let output = sim
        .cli(&["integrations", "list"])
        .env("SECODA_API_KEY_FILE", wrong_file.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // --api-key over SECODA_API_KEY_FILE.
    let output = sim
        .cli(&["integrations", "list", "--api-key", KEY])
        .env_remove("SECODA_API_KEY")
        .env("SECODA_API_KEY_FILE", wrong_file.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // Both flags typed: say so (exit 2) rather than pick one.
    let output = sim
        .cli(&["integrations", "list", "--api-key", KEY, "--api-key-file"])
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_stderr_contains(&output, "both --api-key and --api-key-file");
}

#[test]
fn boolean_variables_take_the_usual_spellings() {
    let sim = Simulator::start(&[]);
    let target = passing_build();
    let failing_tests = format!("/api/v1/integration/dbt/{INTEGRATION}/failing_tests/");

    // DBT_SECODA_DRY_RUN=yes: checked and planned, nothing sent.
    let output = sim
        .upload(target.path())
        .env("DBT_SECODA_DRY_RUN", "yes")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(sim.requests(""), 0, "a dry run sends nothing");

    // DBT_SECODA_NO_WAIT=1: uploaded and triggered, never polled.
    let output = sim
        .upload(target.path())
        .env("DBT_SECODA_NO_WAIT", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(sim.state()["uploads"].as_array().unwrap().len(), 1);
    assert_eq!(
        sim.requests(&failing_tests),
        1,
        "only the check before the upload"
    );

    // DBT_SECODA_NO_WAIT=off: waits as usual.
    let output = sim
        .upload(target.path())
        .env("DBT_SECODA_NO_WAIT", "off")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(sim.requests(&failing_tests) >= 2);

    // Anything else is a usage error that names the flag.
    let output = sim
        .upload(target.path())
        .env("DBT_SECODA_NO_WAIT", "maybe")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_stderr_contains(&output, "--no-wait");
}

#[test]
fn a_missing_integration_is_exit_2() {
    let output = bin()
        .env("SECODA_API_KEY", KEY)
        .arg("upload")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_stderr_contains(&output, "SECODA_INTEGRATION_ID");
}

#[test]
fn plain_http_is_only_for_loopback() {
    let target = passing_build();
    let run = |url: &str, extra: &[&str]| {
        let mut cmd = bin();
        cmd.env("SECODA_API_KEY", KEY)
            .args([
                "upload",
                "--dry-run",
                "--integration-id",
                INTEGRATION,
                "--api-url",
                url,
            ])
            .args(extra)
            .arg("--target-dir")
            .arg(target.path());
        cmd.output().unwrap()
    };
    let output = run("http://secoda.internal.example", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert_stderr_contains(&output, "--allow-insecure-http");
    assert_eq!(
        run("http://secoda.internal.example", &["--allow-insecure-http"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(run("http://localhost:8080", &[]).status.code(), Some(0));
}

#[test]
fn bare_hosts_get_the_api_path_and_known_wrong_hosts_warn() {
    let target = passing_build();
    let plan = |url: &str| {
        let output = dry_run(target.path())
            .args(["--api-url", url])
            .output()
            .unwrap();
        (json_report(&output), stderr(&output))
    };
    let (report, _) = plan("https://acme.secoda.co");
    assert_eq!(
        report["plan"]["trigger"],
        format!("POST https://acme.secoda.co/api/v1/integration/dbt/{INTEGRATION}/trigger/")
    );
    let (report, err) = plan("https://api.secoda.com");
    assert!(err.contains("secoda.co, not secoda.com"), "{err}");
    assert_eq!(
        err.matches("looks wrong").count(),
        1,
        "the warning is logged once: {err}"
    );
    assert_eq!(report["warnings"].as_array().unwrap().len(), 1);
    let (_, err) = plan("https://apac.secoda.co");
    assert!(err.contains("aapi.secoda.co"), "{err}");

    let output = dry_run(target.path())
        .env("SECODA_REGION", "eu")
        .output()
        .unwrap();
    assert!(
        json_report(&output)["plan"]["upload"]
            .as_str()
            .unwrap()
            .starts_with("POST https://eapi.secoda.co/api/v1/")
    );
}

#[test]
fn bad_values_are_usage_errors() {
    for (args, needle) in [
        (vec!["upload", "--wait-timeout", "soon"], "not a duration"),
        (vec!["upload", "--fail-on", "sometimes"], "sometimes"),
        (vec!["upload", "--poll-interval", "0"], "too short"),
        (vec!["upload", "--max-attempts", "0"], "max-attempts"),
        (
            vec!["simulator", "--api-key", "k", "--sync-seconds", "inf"],
            "between 0 and 86400",
        ),
        (vec!["nope"], "nope"),
    ] {
        let output = bin().args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_stderr_contains(&output, needle);
    }
}

#[test]
fn an_id_is_one_path_segment_for_every_command() {
    // A path smuggled in as an id must never reach another endpoint.
    let sim = Simulator::start(&[]);
    let smuggled = format!("../dbt/{INTEGRATION}/failing_tests");
    let target = failing_build();
    let commands: Vec<Vec<&str>> = vec![
        vec!["integrations", "get", &smuggled],
        vec!["integrations", "delete", "--yes", &smuggled],
        vec!["integrations", "import-csv", &smuggled, "x.csv"],
        vec!["upload", "--integration-id", &smuggled],
        vec!["doctor", "--integration-id", &smuggled],
    ];
    for args in commands {
        let mut cmd = sim.cli(&args);
        if matches!(args[0], "upload" | "doctor") {
            cmd.arg("--target-dir").arg(target.path());
        }
        let output = expect_exit(&mut cmd, 2);
        assert_stderr_contains(&output, "is not an id");
    }
    assert_eq!(sim.requests(""), 0, "{}", sim.state()["requests"]);
}

#[test]
fn help_carries_the_exit_code_table_and_env_vars() {
    let output = bin().args(["upload", "--help"]).output().unwrap();
    let help = stdout(&output);
    for needle in [
        "130",
        "Secoda unavailable",
        "SECODA_API_URL",
        "SECODA_REGION",
        "DBT_TARGET_PATH",
        "DBT_PROJECT_DIR",
        "SECODA_INTEGRATION_ID",
    ] {
        assert!(help.contains(needle), "{needle} missing from --help");
    }
}

#[test]
fn log_lines_can_be_json_for_log_collectors() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--log-format", "json", "-v"]),
        1,
    );
    let lines: Vec<String> = stderr(&output).lines().map(String::from).collect();
    assert!(lines.len() > 3, "{lines:?}");
    for line in lines {
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            event["level"].is_string() && event["fields"]["message"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn a_key_file_can_be_a_pipe_but_not_a_folder() {
    // `--api-key-file <(vault read ...)`: process substitution hands a pipe.
    let target = passing_build();
    let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
    let line = format!(
        "'{}' upload --dry-run --integration-id {INTEGRATION} --target-dir '{}' --api-key-file <(printf %s {KEY})",
        exe.display(),
        target.path().display()
    );
    let mut cmd = clean_command("bash");
    cmd.args(["-c", &line]).env_remove("SECODA_API_KEY");
    let output = cmd.output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mut folder = bin();
    folder
        .args(["upload", "--dry-run", "--integration-id", INTEGRATION])
        .arg("--target-dir")
        .arg(target.path())
        .arg("--api-key-file")
        .arg(target.path());
    let output = expect_exit(&mut folder, 2);
    assert_stderr_contains(&output, "a directory");
}

#[test]
fn a_wait_too_short_for_two_polls_is_refused() {
    let target = passing_build();
    let output = expect_exit(
        dry_run(target.path()).args(["--wait-timeout", "4s", "--poll-interval", "5s"]),
        2,
    );
    assert_stderr_contains(&output, "--wait-timeout 4s leaves no room for two polls");
    // Without waiting, the wait's length does not matter.
    expect_exit(
        dry_run(target.path()).args(["--wait-timeout", "4s", "--no-wait"]),
        0,
    );
}

#[test]
fn an_empty_variable_counts_as_unset() {
    // A GitHub Action passes an input left empty as `VAR=`: that must mean the default.
    let target = failing_build();
    let mut cmd = dry_run(target.path());
    for var in [
        "SECODA_REGION",
        "SECODA_API_URL",
        "DBT_SECODA_FAIL_ON",
        "DBT_SECODA_NO_WAIT",
        "DBT_SECODA_WAIT_TIMEOUT",
        "DBT_SECODA_JUNIT",
        "DBT_SECODA_LOG_FORMAT",
        "DBT_PROJECT_DIR",
    ] {
        cmd.env(var, "");
    }
    let report = json_report(&expect_exit(&mut cmd, 0));
    assert_eq!(report["api_root"], "https://api.secoda.co/api/v1");
}
