//! What people see on a terminal: the progress bar and colour, under a real pseudo-terminal
//! (util-linux `script`), and their absence in CI logs and with NO_COLOR.

use std::process::{Command, Output};

use crate::support::*;

/// Runs `dbt-secoda ARGS` under a pseudo-terminal; `script` copies what it printed to stdout.
fn on_terminal(args: &[String], env: &[(&str, &str)]) -> Option<Output> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed");
        return None;
    }
    let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
    let line = std::iter::once(exe.display().to_string())
        .chain(args.iter().cloned())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = clean_command("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR");
    cmd.env("TERM", "xterm").envs(env.iter().copied());
    Some(cmd.output().expect("script runs"))
}

fn upload_args(sim: &Simulator, target: &std::path::Path) -> Vec<String> {
    [
        "upload",
        "--no-wait",
        "--api-url",
        &sim.url,
        "--integration-id",
        INTEGRATION,
        "--target-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([target.display().to_string()])
    .collect()
}

#[test]
fn a_slow_upload_shows_a_progress_bar_on_a_terminal_only() {
    // Secoda takes 1.5 s to answer: the upload lasts longer than the bar's one-second grace.
    let sim = Simulator::start(&["--latency", "1500"]);
    let target = failing_build();
    let args = upload_args(&sim, target.path());
    let Some(output) = on_terminal(&args, &[("SECODA_API_KEY", KEY)]) else {
        return;
    };
    let seen = stdout(&output);
    assert!(seen.contains("Uploading [") && seen.contains('%'), "{seen}");

    let key = ("SECODA_API_KEY", KEY);
    let quiet = [&["-q"][..], &[][..]].map(|extra| {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend(args.iter().cloned());
        a
    });
    let in_ci = on_terminal(&quiet[1], &[key, ("CI", "true")]).unwrap();
    assert!(!stdout(&in_ci).contains("Uploading ["), "no bar in CI logs");
    let with_q = on_terminal(&quiet[0], &[key]).unwrap();
    assert!(!stdout(&with_q).contains("Uploading ["), "no bar with -q");
    let mut json = args.clone();
    json.extend(["--output".into(), "json".into()]);
    let as_json = on_terminal(&json, &[key]).unwrap();
    assert!(
        !stdout(&as_json).contains("Uploading ["),
        "no bar with --output json"
    );
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let args = upload_args(&sim, target.path());
    let Some(output) = on_terminal(&args, &[("SECODA_API_KEY", KEY)]) else {
        return;
    };
    assert!(
        stdout(&output).contains("\x1b[1;31mFAIL"),
        "failing tests in red: {}",
        stdout(&output)
    );
    let output = on_terminal(&args, &[("SECODA_API_KEY", KEY), ("NO_COLOR", "1")]).unwrap();
    assert!(
        !stdout(&output).contains("\x1b["),
        "NO_COLOR: {}",
        stdout(&output)
    );
    // Not a terminal: no colour either (the other tests read plain text from pipes).
    let piped = expect_exit(
        sim.upload(target.path())
            .arg("--no-wait")
            .env_remove("NO_COLOR"),
        1,
    );
    assert!(!stdout(&piped).contains("\x1b["));
}
