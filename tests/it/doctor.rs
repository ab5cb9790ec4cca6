//! `dbt-secoda doctor`: one line a check, a hint when one fails, the usual exit codes.

use crate::support::*;

fn doctor(sim: &Simulator, target: &std::path::Path, extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = sim.cli(&["doctor", "--integration-id", INTEGRATION]);
    cmd.arg("--target-dir").arg(target).args(extra);
    cmd
}

#[test]
fn a_good_setup_passes_every_check() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let output = expect_exit(&mut doctor(&sim, target.path(), &[]), 0);
    let text = stdout(&output);
    for line in [
        "ok    configuration",
        "ok    API reachable",
        "ok    API key accepted",
        "ok    dbt integration",
        "ok    artifacts",
        "info  proxy",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    assert!(text.contains("87cda89b-966f-40a0-931b-9a6cae8c6fc1"));
    let report = json_report(&expect_exit(
        &mut doctor(&sim, target.path(), &["--output", "json"]),
        0,
    ));
    assert_eq!(report["exit_code"], 0);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] != "failed")
    );
}

#[test]
fn each_failure_says_what_to_do_and_sets_the_exit_code() {
    let sim = Simulator::start(&[]);
    let good = failing_build();

    let output = expect_exit(
        doctor(&sim, good.path(), &[]).env("SECODA_API_KEY", "sk-wrong-key-0000"),
        4,
    );
    let text = stdout(&output);
    assert!(
        text.contains("FAIL  API key accepted")
            && text.contains("hint: check the key from SECODA_API_KEY"),
        "{text}"
    );
    assert!(
        text.contains("ok    artifacts"),
        "local checks still run: {text}"
    );
    // The refused key is said once, not again on the integration's line.
    assert_eq!(text.matches("401").count(), 1, "{text}");
    assert!(
        text.contains("skip  dbt integration") && text.contains("the API key was not accepted"),
        "{text}"
    );
    let integration = format!("/api/v1/integration/integrations/{INTEGRATION}/");
    assert_eq!(
        sim.requests(&integration),
        0,
        "the integration is not asked for"
    );

    let output = expect_exit(
        doctor(&sim, good.path(), &[]).env_remove("SECODA_API_KEY"),
        2,
    );
    let text = stdout(&output);
    assert!(
        text.contains("FAIL  configuration")
            && text.contains("skip  API reachable")
            && text.contains("ok    artifacts"),
        "{text}"
    );

    let custom = json_report(&expect_exit(
        &mut sim.cli(&[
            "integrations",
            "create",
            "--name",
            "csv",
            "--output",
            "json",
        ]),
        0,
    ));
    let mut cmd = sim.cli(&["doctor", "--integration-id", custom["id"].as_str().unwrap()]);
    let output = expect_exit(cmd.arg("--target-dir").arg(good.path()), 4);
    assert!(stdout(&output).contains("not dbt"), "{}", stdout(&output));

    let mismatched = target_with(
        Some(&fixture("build-passing").join("manifest.json")),
        Some(&demo_artifacts().join("run_results.json")),
    );
    let output = expect_exit(&mut doctor(&sim, mismatched.path(), &[]), 3);
    assert!(
        stdout(&output).contains("different dbt invocations"),
        "{}",
        stdout(&output)
    );

    let output = expect_exit(
        doctor(&sim, good.path(), &[]).env("HTTPS_PROXY", "http://me:pr0xy-s3cret@127.0.0.1:9"),
        0,
    );
    let text = stdout(&output);
    assert!(
        text.contains("HTTPS_PROXY=http://***@127.0.0.1:9") && !text.contains("pr0xy-s3cret"),
        "{text}"
    );
}

#[test]
fn a_host_that_does_not_resolve_is_diagnosed_in_seconds() {
    let target = failing_build();
    let mut cmd = bin();
    cmd.env("SECODA_API_KEY", KEY)
        .args(["doctor", "--api-url", "https://nonexistent.invalid"])
        .arg("--target-dir")
        .arg(target.path());
    let output = expect_exit(&mut cmd, 5);
    // A name that does not resolve is not retried: one attempt, no retry warnings.
    assert!(
        !stderr(&output).contains("retrying in"),
        "{}",
        stderr(&output)
    );
    let text = stdout(&output);
    assert!(
        text.contains("FAIL  API reachable")
            && text.contains("skip  API key accepted")
            && text.contains("ok    artifacts"),
        "{text}"
    );
}
