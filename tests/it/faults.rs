//! Secoda misbehaving: retries, what is never retried, and the exit codes that follow.

use std::time::{Duration, Instant};

use crate::support::*;

fn upload_path() -> String {
    format!("/api/v1/integration/dbt/{INTEGRATION}/upload_artifacts/")
}

#[test]
fn a_running_sync_is_waited_out() {
    let sim = Simulator::start(&["--conflicts", "3"]);
    let target = failing_build();
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--no-wait", "--output", "json"]),
        1,
    );
    let state = sim.state();
    assert_eq!(state["conflicts_served"], 3);
    assert_eq!(state["triggers"], 1);
    let report = json_report(&output);
    assert_eq!(report["trigger"]["conflicts"], 3);
    assert_eq!(report["trigger"]["attempts"], 4);
    assert_eq!(
        stderr(&output).matches("409 Conflict").count(),
        3,
        "each wait is logged: {}",
        stderr(&output)
    );
}

#[test]
fn a_sync_that_never_ends_times_out_with_exit_5() {
    let sim = Simulator::start(&["--conflicts", "1000"]);
    let target = failing_build();
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--no-wait", "--trigger-timeout", "1s"]),
        5,
    );
    assert_stderr_contains(&output, "a dbt sync was still running");
}

#[test]
fn server_errors_are_retried_and_the_upload_succeeds() {
    let sim = Simulator::start(&["--fail-requests", "3", "--fail-status", "503"]);
    let target = failing_build();
    let output = expect_exit(sim.upload(target.path()).args(["--output", "json"]), 1);
    let state = sim.state();
    assert_eq!(state["failures_served"], 3);
    assert_eq!(state["uploads"].as_array().unwrap().len(), 1);
    assert_eq!(
        state["uploads"][0]["manifest_sha256"],
        sha256(&target.path().join("manifest.json"))
    );
    assert_stderr_contains(&output, "retrying in");
}

#[test]
fn server_errors_on_the_upload_itself_are_retried_with_the_whole_body() {
    let sim = Simulator::start(&[
        "--fail-requests",
        "3",
        "--fail-status",
        "503",
        "--fail-path",
        "upload_artifacts",
    ]);
    let target = failing_build();
    expect_exit(sim.upload(target.path()).arg("--no-wait"), 1);
    let state = sim.state();
    let by_status = &state["requests"][upload_path().as_str()];
    assert_eq!(by_status["503"], 3, "{by_status}");
    assert_eq!(by_status["200"], 1, "{by_status}");
    let uploads = sim.state()["uploads"].clone();
    assert_eq!(uploads.as_array().unwrap().len(), 1);
    assert_eq!(
        uploads[0]["run_results_sha256"],
        sha256(&target.path().join("run_results.json"))
    );
    assert_eq!(sim.state()["triggers"], 1);
}

#[test]
fn server_errors_on_the_trigger_are_retried() {
    let sim = Simulator::start(&[
        "--fail-requests",
        "2",
        "--fail-status",
        "502",
        "--fail-path",
        "trigger",
    ]);
    let target = failing_build();
    let output = expect_exit(&mut sim.upload(target.path()), 1);
    let trigger = format!("/api/v1/integration/dbt/{INTEGRATION}/trigger/");
    let state = sim.state();
    let by_status = &state["requests"][trigger.as_str()];
    assert_eq!(by_status["502"], 2, "{by_status}");
    assert_eq!(by_status["200"], 1, "{by_status}");
    assert_eq!(
        sim.state()["uploads"].as_array().unwrap().len(),
        1,
        "uploaded once"
    );
    assert_eq!(sim.state()["triggers"], 1);
    assert_stderr_contains(&output, "retrying in");
}

#[test]
fn rate_limits_are_retried_after_the_time_secoda_asks_for() {
    // 429 with Retry-After: 1, twice: the upload waits about two seconds, not the scaled backoff.
    let sim = Simulator::start(&[
        "--fail-requests",
        "2",
        "--fail-status",
        "429",
        "--fail-path",
        "upload_artifacts",
    ]);
    let target = failing_build();
    let started = Instant::now();
    let output = expect_exit(sim.upload(target.path()).arg("--no-wait"), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "waited {:?}: {}",
        started.elapsed(),
        stderr(&output)
    );
    assert_eq!(sim.requests(&upload_path()), 3);
    assert_eq!(sim.state()["uploads"].as_array().unwrap().len(), 1);
}

#[test]
fn rate_limits_without_retry_after_are_retried_with_the_backoff() {
    // A proxy's 429 (or a 503) often says nothing about when to come back: the backoff decides.
    let sim = Simulator::start(&[
        "--fail-requests",
        "2",
        "--fail-status",
        "429",
        "--fail-path",
        "upload_artifacts",
        "--fail-without-retry-after",
    ]);
    let target = failing_build();
    let output = expect_exit(sim.upload(target.path()).arg("--no-wait"), 1);
    assert_eq!(sim.requests(&upload_path()), 3, "{}", stderr(&output));
    assert_eq!(stderr(&output).matches("retrying in").count(), 2);
    assert_eq!(sim.state()["uploads"].as_array().unwrap().len(), 1);
}

#[test]
fn the_simulators_rate_limit_answers_429_with_retry_after() {
    let sim = Simulator::start(&["--rate-limit", "1"]);
    let auth = format!("Bearer {KEY}");
    let trigger = format!("/api/v1/integration/dbt/{INTEGRATION}/trigger/");
    let (first, _) = sim.request("POST", &trigger, &[("Authorization", &auth)], b"");
    assert_eq!(first, 200);
    let (second, body) = sim.request("POST", &trigger, &[("Authorization", &auth)], b"");
    assert_eq!(second, 429);
    assert!(String::from_utf8_lossy(&body).contains("Expected available in"));
    assert_eq!(sim.state()["rate_limited"], 1);
}

#[test]
fn uploads_cut_off_mid_body_are_sent_again_whole() {
    let sim = Simulator::start(&["--reset-uploads", "2"]);
    let target = failing_build();
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--no-wait", "--output", "json"]),
        1,
    );
    let state = sim.state();
    assert_eq!(state["resets_served"], 2);
    let uploads = state["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        uploads[0]["manifest_sha256"],
        sha256(&target.path().join("manifest.json"))
    );
    assert_eq!(
        uploads[0]["run_results_sha256"],
        sha256(&target.path().join("run_results.json"))
    );
    assert_eq!(uploads[0]["manifest_bytes"], 776_465);
    assert_eq!(state["requests"][upload_path()]["reset"], 2);
    assert_eq!(json_report(&output)["uploaded"]["attempts"], 3);
}

#[test]
fn a_wrong_key_fails_fast_after_one_request() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let output = expect_exit(
        sim.upload(target.path())
            .env("SECODA_API_KEY", "sk-wrong-key-1234"),
        4,
    );
    assert_eq!(sim.requests(""), 1, "{}", sim.state()["requests"]);
    let err = stderr(&output);
    assert!(err.contains("401"), "{err}");
    assert!(
        err.contains("from SECODA_API_KEY"),
        "the message says where the key came from: {err}"
    );
    // The local results are still in the report.
    assert!(stdout(&output).contains("tests:"), "{}", stdout(&output));
}

#[test]
fn an_unknown_integration_is_exit_4() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--integration-id", "00000000-0000-4000-8000-000000000000"]),
        4,
    );
    assert_stderr_contains(&output, "404");
    assert_stderr_contains(&output, "--integration-id");
}

#[test]
fn a_redirected_post_is_refused_with_a_hint() {
    let sim = Simulator::start(&[
        "--fail-requests",
        "1",
        "--fail-status",
        "301",
        "--fail-path",
        "upload_artifacts",
    ]);
    let target = failing_build();
    let output = expect_exit(sim.upload(target.path()).arg("--no-wait"), 4);
    let err = stderr(&output);
    assert!(err.contains("POST"), "{err}");
    assert!(err.contains("301"), "{err}");
    assert!(
        err.contains("wrong base URL or missing trailing slash"),
        "{err}"
    );
    assert_eq!(
        sim.requests(&upload_path()),
        1,
        "the redirect is not followed"
    );
    assert_eq!(sim.state()["uploads"], serde_json::json!([]));
}

#[test]
fn secoda_down_for_good_is_exit_5_and_on_api_error_warn_makes_it_a_warning() {
    let sim = Simulator::start(&["--fail-requests", "100000", "--fail-status", "502"]);
    let target = passing_build();
    let output = expect_exit(sim.upload(target.path()).args(["--retry-timeout", "1s"]), 5);
    assert_stderr_contains(&output, "Secoda unavailable");

    let output = expect_exit(
        sim.upload(target.path()).args([
            "--retry-timeout",
            "1s",
            "--on-api-error",
            "warn",
            "--output",
            "json",
        ]),
        0,
    );
    let report = json_report(&output);
    assert!(
        report["warnings"][0]
            .as_str()
            .unwrap()
            .contains("--on-api-error warn")
    );

    // The local results still gate: failing tests are exit 1 even when Secoda is down.
    let failing = failing_build();
    expect_exit(
        sim.upload(failing.path())
            .args(["--retry-timeout", "1s", "--on-api-error", "warn"]),
        1,
    );
}

#[test]
fn nothing_listening_is_exit_5() {
    let target = passing_build();
    let mut cmd = bin();
    cmd.env("SECODA_API_KEY", KEY)
        .args([
            "upload",
            "--api-url",
            "http://127.0.0.1:9",
            "--integration-id",
            INTEGRATION,
            "--retry-timeout",
            "500ms",
        ])
        .arg("--target-dir")
        .arg(target.path());
    let output = expect_exit(&mut cmd, 5);
    assert_stderr_contains(&output, "hint: check the API URL");
}

#[test]
fn a_bad_request_is_exit_4_and_not_retried() {
    let sim = Simulator::start(&[
        "--fail-requests",
        "1",
        "--fail-status",
        "413",
        "--fail-path",
        "upload_artifacts",
    ]);
    let target = passing_build();
    let output = expect_exit(sim.upload(target.path()).arg("--no-wait"), 4);
    assert!(
        stderr(&output).contains("client_max_body_size"),
        "413 explains proxy limits: {}",
        stderr(&output)
    );
    assert_eq!(sim.requests(&upload_path()), 1);
}

/// Runs `upload --api-url SIM --integration-id ID ARGS`, sends it Ctrl-C (SIGINT) once its
/// stderr shows `ready` (the upload is under way), and returns its exit code; fails if it is
/// still running 10 s later. Also returns how long it took after the signal.
fn interrupted_upload(
    sim: &Simulator,
    args: &[&std::ffi::OsStr],
    ready: &str,
) -> (Option<i32>, Duration) {
    let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
    let mut child = clean_command(exe)
        .env("SECODA_API_KEY", KEY)
        .args([
            "upload",
            "--api-url",
            &sim.url,
            "--integration-id",
            INTEGRATION,
        ])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let seen = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains(ready));
    assert!(seen.is_some(), "{ready:?} never appeared on stderr");
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), started.elapsed());
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("still running {PATIENCE:?} after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_is_exit_130_at_once() {
    // Secoda takes 5 s to answer anything: Ctrl-C during the first request ends the run at once.
    let sim = Simulator::start(&["--latency", "5000"]);
    let target = passing_build();
    let (code, took) = interrupted_upload(
        &sim,
        &["--target-dir".as_ref(), target.path().as_os_str()],
        "are a pair",
    );
    assert_eq!(code, Some(130));
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn a_gateway_timeout_says_which_proxy_limit_to_raise() {
    let sim = Simulator::start(&["--fail-requests", "100000", "--fail-status", "504"]);
    let target = passing_build();
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--no-wait", "--retry-timeout", "300ms"]),
        5,
    );
    assert_stderr_contains(&output, "proxy_read_timeout");
}

#[test]
fn a_slow_upload_that_keeps_moving_is_never_cut() {
    // 16 MiB read at 4 MB/s take about 4 s, more than the 3 s stall timeout: the bytes keep
    // moving (the socket buffers, a few MiB, drain in well under 3 s at the end), so the one
    // attempt runs to its end.
    let target = target_with(None, Some(&demo_artifacts().join("run_results.json")));
    std::fs::write(
        target.path().join("manifest.json"),
        padded_manifest(16 << 20, None),
    )
    .unwrap();

    let sim = Simulator::start(&["--upload-bytes-per-second", "4000000"]);
    let started = Instant::now();
    expect_exit(
        sim.upload(target.path())
            .args(["--no-wait", "--stall-timeout", "3s"]),
        1,
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let state = sim.state();
    assert_eq!(
        state["requests"][upload_path().as_str()]["200"],
        1,
        "{state}"
    );
    assert_eq!(state["uploads"].as_array().unwrap().len(), 1);
}

#[test]
fn a_stalled_upload_is_abandoned_and_retried_within_the_retry_timeout() {
    // Secoda takes 30 s before it reads or answers anything: each attempt is abandoned after 1 s
    // without progress, and the command gives up once --retry-timeout has passed.
    let sim = Simulator::start(&["--latency", "30000"]);
    let target = failing_build();
    let output = expect_exit(
        sim.upload(target.path()).args([
            "--no-wait",
            "--stall-timeout",
            "1s",
            "--retry-timeout",
            "3s",
        ]),
        5,
    );
    assert_stderr_contains(&output, "the connection stalled");
    assert!(
        stderr(&output).matches("retrying in").count() >= 1,
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_wrong_key_costs_no_upload_even_when_the_server_closes_early() {
    // gunicorn with nothing in front answers 401 before reading the body and closes: a client
    // still sending sees a reset and may take it for a transient failure. One cheap request
    // before any file is sent settles the key, also with --no-wait.
    let sim = Simulator::start(&["--early-close"]);
    let target = failing_build();
    let output = expect_exit(
        sim.upload(target.path())
            .arg("--no-wait")
            .env("SECODA_API_KEY", "sk-wrong-key-5678"),
        4,
    );
    assert_stderr_contains(&output, "401");
    assert_eq!(sim.requests(""), 1, "{}", sim.state()["requests"]);
    assert_eq!(sim.requests(&upload_path()), 0);
    let unknown = expect_exit(
        sim.upload(target.path()).args([
            "--no-wait",
            "--integration-id",
            "00000000-0000-4000-8000-000000000000",
        ]),
        4,
    );
    assert_stderr_contains(&unknown, "404");
    assert_eq!(
        sim.requests(&upload_path()),
        0,
        "no upload to an unknown integration"
    );
}

#[test]
fn a_body_size_limit_is_learnt_with_one_upload_and_a_few_mib() {
    // nginx's client_max_body_size (1 MiB by default) answers 413 before reading; the client
    // stops sending as soon as the answer arrives instead of pushing the whole pair into it.
    let target = target_with(None, Some(&demo_artifacts().join("run_results.json")));
    std::fs::write(
        target.path().join("manifest.json"),
        padded_manifest(300 << 20, None),
    )
    .unwrap();
    let sim = Simulator::start(&["--max-body-bytes", "1048576"]);
    let started = Instant::now();
    let output = expect_exit(sim.upload(target.path()).arg("--no-wait"), 4);
    let elapsed = started.elapsed();
    assert_stderr_contains(&output, "413");
    assert_stderr_contains(&output, "client_max_body_size");
    let state = sim.state();
    assert_eq!(
        state["requests"][upload_path().as_str()]["413"],
        1,
        "{state}"
    );
    assert_eq!(sim.requests(&upload_path()), 1, "one attempt: {state}");
    let sent = state["received_bytes"][upload_path().as_str()]
        .as_u64()
        .unwrap_or(0);
    assert!(sent <= 4 << 20, "{sent} bytes sent before the 413 ended it");
    println!("a 300 MiB upload sent {sent} bytes before the 413, in {elapsed:?}");
}

#[test]
fn a_server_failing_every_upload_gets_at_most_max_attempts_uploads() {
    let sim = Simulator::start(&[
        "--fail-requests",
        "100000",
        "--fail-status",
        "500",
        "--fail-path",
        "upload_artifacts",
    ]);
    let target = failing_build();
    let output = expect_exit(sim.upload(target.path()).arg("--no-wait"), 5);
    assert_stderr_contains(&output, "after 4 attempts");
    assert_eq!(sim.requests(&upload_path()), 4, "the default budget");
    expect_exit(
        sim.upload(target.path())
            .args(["--no-wait", "--max-attempts", "2"]),
        5,
    );
    assert_eq!(sim.requests(&upload_path()), 6);
    expect_exit(
        sim.upload(target.path())
            .arg("--no-wait")
            .env("DBT_SECODA_MAX_ATTEMPTS", "1"),
        5,
    );
    assert_eq!(sim.requests(&upload_path()), 7);
}

#[test]
fn a_401_answered_in_the_middle_of_the_body_is_final() {
    // The key check passes, but the upload itself is refused (say, a key that may read but not
    // write) by a server that answers before reading and closes: the answer ends the attempt.
    let target = target_with(None, Some(&demo_artifacts().join("run_results.json")));
    std::fs::write(
        target.path().join("manifest.json"),
        padded_manifest(64 << 20, None),
    )
    .unwrap();
    let sim = Simulator::start(&[
        "--early-close",
        "--fail-requests",
        "1",
        "--fail-status",
        "401",
        "--fail-path",
        "upload_artifacts",
    ]);
    let output = expect_exit(sim.upload(target.path()).arg("--no-wait"), 4);
    assert_stderr_contains(&output, "401");
    assert_eq!(sim.requests(&upload_path()), 1, "not sent again");
}

#[test]
fn ctrl_c_during_an_upload_stops_its_reading_too() {
    // 16 MiB read at 1 MB/s: Ctrl-C arrives mid-body; the process ends at once, not after
    // waiting for the thread that reads the files.
    let target = target_with(None, Some(&demo_artifacts().join("run_results.json")));
    std::fs::write(
        target.path().join("manifest.json"),
        padded_manifest(16 << 20, None),
    )
    .unwrap();
    let sim = Simulator::start(&["--upload-bytes-per-second", "1000000"]);
    let (code, took) = interrupted_upload(
        &sim,
        &[
            "--no-wait".as_ref(),
            "-v".as_ref(),
            "--target-dir".as_ref(),
            target.path().as_os_str(),
        ],
        "upload_artifacts/: sending",
    );
    assert_eq!(code, Some(130));
    // Not the runtime's 1 s grace for a reading thread nobody stopped.
    assert!(took < Duration::from_millis(900), "{took:?}");
}

#[test]
fn a_connection_closed_mid_body_is_retried_at_once_not_after_the_stall_timeout() {
    // The server drops the connection half way through a 16 MiB upload (a server killed behind
    // a relay that then closes). The reading thread is blocked on a full channel at that moment;
    // the attempt must end with the connection, not when --stall-timeout (longer than
    // --retry-timeout here) notices that nothing moves: then there would be no second attempt.
    let target = target_with(None, Some(&demo_artifacts().join("run_results.json")));
    std::fs::write(
        target.path().join("manifest.json"),
        padded_manifest(16 << 20, None),
    )
    .unwrap();
    let sim = Simulator::start(&["--reset-uploads", "1"]);
    let output = expect_exit(
        sim.upload(target.path()).args([
            "--no-wait",
            "--output",
            "json",
            "--stall-timeout",
            "3m",
            "--retry-timeout",
            "2m",
        ]),
        1,
    );
    let state = sim.state();
    assert_eq!(state["resets_served"], 1);
    let by_status = &state["requests"][upload_path().as_str()];
    assert_eq!(by_status["reset"], 1, "{by_status}");
    assert_eq!(by_status["200"], 1, "{by_status}");
    let uploads = state["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        uploads[0]["manifest_sha256"],
        sha256(&target.path().join("manifest.json"))
    );
    assert_eq!(json_report(&output)["uploaded"]["attempts"], 2);
    assert!(!stderr(&output).contains("stalled"), "{}", stderr(&output));
}

#[test]
fn kill_9_mid_upload_leaves_nothing_half_received_and_a_rerun_sends_it_whole() {
    let target = target_with(None, Some(&demo_artifacts().join("run_results.json")));
    std::fs::write(
        target.path().join("manifest.json"),
        padded_manifest(16 << 20, None),
    )
    .unwrap();
    let sim = Simulator::start(&["--upload-bytes-per-second", "1000000"]);
    let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
    let mut child = clean_command(exe)
        .env("SECODA_API_KEY", KEY)
        .args(["upload", "--no-wait", "--api-url", &sim.url])
        .args(["--integration-id", INTEGRATION, "--target-dir"])
        .arg(target.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the server has read a few hundred KB of the body.
    let started = Instant::now();
    let received = || {
        sim.state()["received_bytes"][upload_path().as_str()]
            .as_u64()
            .unwrap_or(0)
    };
    while received() < 300_000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            sim.state()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The server sees the connection end mid-body: nothing recorded, nothing synced.
    while sim.requests(&upload_path()) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{}",
            sim.state()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = sim.state();
    assert_eq!(state["uploads"], serde_json::json!([]));
    assert_eq!(state["triggers"], 0);
    assert_eq!(
        state["requests"][upload_path().as_str()]["aborted"],
        1,
        "{state}"
    );

    // Run again (at full speed): the pair goes whole.
    let sim = Simulator::start(&[]);
    expect_exit(sim.upload(target.path()).arg("--no-wait"), 1);
    let uploads = sim.state()["uploads"].clone();
    assert_eq!(uploads.as_array().unwrap().len(), 1);
    assert_eq!(
        uploads[0]["manifest_sha256"],
        sha256(&target.path().join("manifest.json"))
    );
}
