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

#[test]
fn credentials_in_the_api_url_are_refused_and_never_repeated() {
    // A user and password in the URL would replace the key with Basic auth and travel into
    // every message that shows the URL: refused (exit 2) before anything is sent.
    const PASSWORD: &str = "url-PW-never-shown-5150";
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let with_login = sim
        .url
        .replace("http://", &format!("http://robot:{PASSWORD}@"));
    let hidden = |output: &std::process::Output| {
        for text in [stdout(output), stderr(output)] {
            assert!(
                !text.contains("never-shown"),
                "the password is printed:\n{text}"
            );
        }
    };
    for format in ["text", "json"] {
        let output = expect_exit(
            sim.upload(target.path())
                .args(["--api-url", &with_login, "--output", format, "-vvv"]),
            2,
        );
        hidden(&output);
        assert_stderr_contains(&output, "has a user name or password in it");
        assert_stderr_contains(&output, "http://***@127.0.0.1");
        assert_stderr_contains(&output, "SECODA_API_KEY");
        if format == "json" {
            let report = json_report(&output);
            assert_eq!(report["exit_code"], 2);
            assert!(
                report["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("user name or password in it")
            );
        }
    }
    for args in [
        vec!["doctor"],
        vec!["integrations", "list", "--output", "json"],
    ] {
        let output = expect_exit(sim.cli(&args).env("SECODA_API_URL", &with_login), 2);
        hidden(&output);
    }
    // A token in the user's place is just as secret.
    let token = sim.url.replace("http://", "http://tok-never-shown-8080@");
    hidden(&expect_exit(
        sim.upload(target.path()).args(["--api-url", &token]),
        2,
    ));
    assert_eq!(sim.requests(""), 0, "{}", sim.state()["requests"]);
}

#[test]
fn an_api_url_with_a_space_is_refused_instead_of_sent_as_percent_20() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--api-url", &format!("{} /api/v1", sim.url)]),
        2,
    );
    assert_stderr_contains(&output, "contains a space");
    assert_eq!(sim.requests(""), 0);
}

#[test]
fn a_key_file_is_read_with_a_cap_and_devices_are_refused() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let upload = |file: &std::path::Path| {
        let mut cmd = sim.upload(target.path());
        cmd.env_remove("SECODA_API_KEY")
            .arg("--api-key-file")
            .arg(file);
        cmd
    };
    // /dev/zero used to be read until memory ran out.
    let output = expect_exit(&mut upload(std::path::Path::new("/dev/zero")), 2);
    assert_stderr_contains(&output, "/dev/zero");
    assert_stderr_contains(&output, "a character device");

    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big-key");
    std::fs::write(&big, vec![b'k'; 1 << 20]).unwrap();
    let output = expect_exit(&mut upload(&big), 2);
    assert_stderr_contains(&output, "more than 64 KiB");

    // A named pipe nobody writes to reads as empty instead of hanging.
    let fifo = dir.path().join("key-fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let output = expect_exit(&mut upload(&fifo), 2);
        assert_stderr_contains(&output, "is empty");
    }
    // A pipe with a writer is how `--api-key-file <(vault read ...)` works.
    let mut bash = clean_command("bash");
    bash.arg("-c")
        .arg(format!(
            "exec \"$0\" upload --api-url {} --integration-id {INTEGRATION} --target-dir \"$1\" \
                 --no-wait --api-key-file <(printf '%s\\n' {KEY})",
            sim.url
        ))
        .arg(assert_cmd::cargo::cargo_bin("dbt-secoda"))
        .arg(target.path());
    let output = expect_exit(&mut assert_cmd::Command::from_std(bash), 1);
    assert!(!stderr(&output).contains("other users"));
    assert_eq!(sim.state()["uploads"].as_array().unwrap().len(), 1);
}

#[test]
fn a_key_file_others_can_read_is_used_with_a_warning_as_ssh_gives() {
    use std::os::unix::fs::PermissionsExt;
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secoda-key");
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let upload = || {
        let mut cmd = sim.upload(target.path());
        cmd.env_remove("SECODA_API_KEY")
            .arg("--api-key-file")
            .arg(&file)
            .arg("--no-wait");
        cmd
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = expect_exit(&mut upload(), 1);
    assert_stderr_contains(&output, "can be read or changed by other users (mode 0644)");
    assert_stderr_contains(&output, "chmod 600");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = expect_exit(&mut upload(), 1);
    assert!(
        !stderr(&output).contains("other users"),
        "{}",
        stderr(&output)
    );
    assert_eq!(sim.state()["uploads"].as_array().unwrap().len(), 2);
}
