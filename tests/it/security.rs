//! The API key never shows: not in logs at any verbosity, not in errors, not in help.

use crate::support::*;

const SECRET: &str = "sk-live-NEVER-PRINT-ME-4242";

fn assert_hidden(output: &std::process::Output) {
    for (name, text) in [("stdout", stdout(output)), ("stderr", stderr(output))] {
        assert!(!text.contains(SECRET), "the key appears on {name}:\n{text}");
        assert!(
            !text.contains("NEVER-PRINT"),
            "part of the key appears on {name}"
        );
    }
}

#[test]
fn the_key_is_never_printed_even_at_vvv() {
    let sim = Simulator::start(&["--fail-requests", "1", "--fail-status", "503"]);
    let target = failing_build();
    // Rejected (401) at full verbosity, as flag, env and file.
    for verbosity in ["-vvv", "-v"] {
        let output = sim
            .upload(target.path())
            .env("SECODA_API_KEY", SECRET)
            .arg(verbosity)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(4));
        assert_hidden(&output);
        assert!(stderr(&output).contains("DEBUG") || verbosity == "-v");
    }
    let output = sim
        .upload(target.path())
        .env_remove("SECODA_API_KEY")
        .args(["--api-key", SECRET, "-vvv"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    assert_hidden(&output);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{SECRET}\n")).unwrap();
    let output = sim
        .upload(target.path())
        .env_remove("SECODA_API_KEY")
        .arg("--api-key-file")
        .arg(file.path())
        .args(["-vvv", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    assert_hidden(&output);
    assert_stderr_contains(&output, "from the file");
}

#[test]
fn a_successful_run_at_full_trace_hides_the_key() {
    // The simulator accepts SECRET here, so every request carries it in the Authorization header.
    let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
    let mut child = clean_command(exe)
        .args([
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            SECRET,
            "--sync-seconds",
            "0.2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line.trim().trim_start_matches("listening on ").to_string();
    let target = failing_build();
    let output = bin()
        .env("SECODA_API_KEY", SECRET)
        .env("RUST_LOG", "trace")
        .args([
            "upload",
            "--api-url",
            &url,
            "--integration-id",
            INTEGRATION,
            "--poll-interval",
            "100ms",
            "-vvv",
        ])
        .arg("--target-dir")
        .arg(target.path())
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("TRACE"), "full trace was on");
    assert_hidden(&output);
}

#[test]
fn help_never_shows_the_key_from_the_environment() {
    let output = bin()
        .env("SECODA_API_KEY", SECRET)
        .args(["upload", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_hidden(&output);
    assert!(stdout(&output).contains("SECODA_API_KEY"));
}
