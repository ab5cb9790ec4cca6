//! `dbt-secoda watch` through the binary: fresh pairs uploaded once, pairs in progress never,
//! the state file across restarts, shutdown, health and metrics, and a writer that imitates dbt.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// A running `dbt-secoda watch`, its stderr collected line by line.
struct Watcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    health: Option<String>,
}

impl Watcher {
    /// Starts `watch` on `target` against `sim`, health endpoints on a free port, plus `extra`.
    fn start(sim: &Simulator, target: &Path, state: &Path, extra: &[&str]) -> Watcher {
        let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
        let mut child = clean_command(exe)
            .env("SECODA_API_KEY", KEY)
            .args([
                "watch",
                "--api-url",
                &sim.url,
                "--integration-id",
                INTEGRATION,
                "--poll-interval",
                "100ms",
                "--health-listen",
                "127.0.0.1:0",
            ])
            .arg("--target-dir")
            .arg(target)
            .arg("--state-file")
            .arg(state)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watch starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&stdout_lines);
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        let mut watcher = Watcher {
            child,
            lines,
            stdout: stdout_lines,
            health: None,
        };
        let line = watcher.wait_for("health endpoints on http://");
        watcher.health = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(String::from);
        watcher.wait_for("watching ");
        watcher
    }

    /// Waits for a line on stderr containing `needle`; returns it.
    fn wait_for(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{needle:?} never appeared on stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// GET a health path; the status and the body.
    fn get(&self, path: &str) -> (u16, String) {
        http_get(self.health.as_deref().unwrap(), path)
    }

    /// A metric's value (the first sample whose line starts with `name`).
    fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until the watcher has finished `n` more scans: it has looked at what is on disk now.
    fn scans(&self, n: f64) {
        let target = self.metric("dbt_secoda_watch_scans_total") + n;
        let started = Instant::now();
        while self.metric("dbt_secoda_watch_scans_total") < target {
            assert!(started.elapsed() < Duration::from_secs(30), "no scans");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, name: &str) {
        let sent = StdCommand::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit; its code.
    fn exit_code(&mut self) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status.code();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "watch did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(host: &str, path: &str) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn uploads(sim: &Simulator) -> Vec<serde_json::Value> {
    sim.state()["uploads"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until the simulator holds `n` uploads.
fn wait_for_uploads(sim: &Simulator, n: usize) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        let got = uploads(sim);
        if got.len() >= n {
            return got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} uploads, expected {n}",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies a fixture pair into `target` (creating it), run_results last, as dbt writes them.
fn write_pair(target: &Path, from: &Path) {
    std::fs::create_dir_all(target).unwrap();
    std::fs::copy(from.join("manifest.json"), target.join("manifest.json")).unwrap();
    std::fs::copy(
        from.join("run_results.json"),
        target.join("run_results.json"),
    )
    .unwrap();
}

#[test]
fn a_fresh_pair_is_uploaded_once_and_a_restart_does_not_upload_it_again() {
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let dir = tempfile::tempdir().unwrap();
    // The target folder does not exist yet: dbt makes it.
    let target = dir.path().join("target");
    let state = dir.path().join("state/watch.json");
    let mut once = Watcher::start(&sim, &target, &state, &["--once"]);
    write_pair(&target, &demo_artifacts());
    assert_eq!(once.exit_code(), Some(1), "{}", once.stderr());
    let got = uploads(&sim);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["manifest_sha256"],
        sha256(&target.join("manifest.json"))
    );
    assert_eq!(
        got[0]["run_results_sha256"],
        sha256(&target.join("run_results.json"))
    );
    let state_doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(state_doc["version"], 1);
    assert_eq!(
        state_doc["last"]["invocation_id"],
        "87cda89b-966f-40a0-931b-9a6cae8c6fc1"
    );
    assert!(!state_doc.to_string().contains(KEY), "no key in the state");

    // Restarted with the same state: the pair is the one already processed.
    let mut again = Watcher::start(&sim, &target, &state, &[]);
    again.scans(2.0);
    assert_eq!(uploads(&sim).len(), 1, "{}", again.stderr());
    // A new build arrives: uploaded.
    write_pair(&target, &fixture("build-passing"));
    wait_for_uploads(&sim, 2);
    again.wait_for("Secoda's answer settled");
    again.signal("TERM");
    assert_eq!(again.exit_code(), Some(0), "{}", again.stderr());
    let reports = again.stdout_lines();
    assert!(
        reports.iter().any(|l| l.contains("Result    OK (exit 0)")),
        "{reports:?}"
    );
}

#[test]
fn a_pair_in_progress_or_a_manifest_alone_is_never_uploaded() {
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    // A stale run_results beside a newer manifest: a run in progress, or `dbt parse`.
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(
        fixture("build-passing").join("manifest.json"),
        target.join("manifest.json"),
    )
    .unwrap();
    std::fs::copy(
        demo_artifacts().join("run_results.json"),
        target.join("run_results.json"),
    )
    .unwrap();
    let watcher = Watcher::start(
        &sim,
        &target,
        &dir.path().join("state.json"),
        &["--no-wait", "--output", "json"],
    );
    watcher.scans(3.0);
    assert!(uploads(&sim).is_empty(), "{}", watcher.stderr());
    // Half a run_results (dbt still writing it) with the manifest's id: not yet either.
    let passing = std::fs::read(fixture("build-passing").join("run_results.json")).unwrap();
    std::fs::write(
        target.join("run_results.json"),
        &passing[..passing.len() / 2],
    )
    .unwrap();
    watcher.scans(3.0);
    assert!(uploads(&sim).is_empty(), "{}", watcher.stderr());
    // The run ends: uploaded, as JSON Lines on stdout.
    std::fs::write(target.join("run_results.json"), &passing).unwrap();
    let got = wait_for_uploads(&sim, 1);
    assert_eq!(
        got[0]["run_results_sha256"],
        sha256(&target.join("run_results.json"))
    );
    let started = Instant::now();
    while watcher.stdout_lines().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let line = &watcher.stdout_lines()[0];
    let report: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(report["exit_code"], 0);
    assert_eq!(
        report["uploaded"]["manifest"]["path"],
        target.join("manifest.json").display().to_string(),
        "the report names the files dbt wrote, not the copies"
    );
}

#[test]
fn only_the_commands_asked_for_are_uploaded_and_dbt_clean_is_survived() {
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let watcher = Watcher::start(
        &sim,
        &target,
        &dir.path().join("state.json"),
        &["--no-wait"],
    );
    write_pair(&target, &fixture("compile"));
    let started = Instant::now();
    while watcher.metric("dbt_secoda_watch_pairs_skipped_total{reason=\"command\"}") < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            watcher.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(uploads(&sim).is_empty());
    watcher.wait_for("not one of --commands");
    // dbt clean: the folder goes, and comes back with the next build.
    std::fs::remove_dir_all(&target).unwrap();
    watcher.scans(2.0);
    write_pair(&target, &demo_artifacts());
    let got = wait_for_uploads(&sim, 1);
    assert_eq!(
        got[0]["invocation_id"],
        "87cda89b-966f-40a0-931b-9a6cae8c6fc1"
    );
    drop(watcher);

    // Asked for, compile is uploaded (and its report does not wait for an answer).
    let other = tempfile::tempdir().unwrap();
    let target = other.path().join("target");
    write_pair(&target, &fixture("compile"));
    let mut watcher = Watcher::start(
        &sim,
        &target,
        &other.path().join("state.json"),
        &["--once", "--commands", "build,compile"],
    );
    assert_eq!(watcher.exit_code(), Some(0), "{}", watcher.stderr());
    assert_eq!(uploads(&sim).len(), 2);
}

#[test]
fn a_corrupt_state_file_is_set_aside_and_watching_goes_on() {
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let state = dir.path().join("state.json");
    std::fs::write(&state, "{\"version\": 1, \"target\": tru").unwrap();
    write_pair(&target, &demo_artifacts());
    let mut watcher = Watcher::start(&sim, &target, &state, &["--once", "--no-wait"]);
    assert_eq!(watcher.exit_code(), Some(1));
    let err = watcher.stderr();
    assert!(err.contains("set aside as"), "{err}");
    let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains("json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{err}");
    assert_eq!(
        std::fs::read_to_string(&aside[0]).unwrap(),
        "{\"version\": 1, \"target\": tru"
    );
    assert_eq!(uploads(&sim).len(), 1);
}

#[test]
fn sigterm_lets_the_upload_in_flight_finish_and_a_second_signal_stops_at_once() {
    // 800 KB read at 400 KB/s: the upload takes about 2 s.
    let sim = Simulator::start(&[
        "--sync-seconds",
        "0.05",
        "--upload-bytes-per-second",
        "400000",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let state = dir.path().join("state.json");
    let mut watcher = Watcher::start(&sim, &target, &state, &[]);
    write_pair(&target, &demo_artifacts());
    watcher.wait_for("uploading invocation");
    watcher.signal("TERM");
    watcher.wait_for("shutting down within");
    assert_eq!(watcher.exit_code(), Some(0), "{}", watcher.stderr());
    assert_eq!(uploads(&sim).len(), 1, "the upload in flight finished");
    let err = watcher.stderr();
    assert!(err.contains("dbt sync triggered"), "{err}");
    assert!(
        watcher
            .stdout_lines()
            .iter()
            .any(|l| l.contains("not waited for: shutting down")),
        "{:?}",
        watcher.stdout_lines()
    );
    assert!(state.exists(), "the pair is recorded");

    // A second signal does not wait for anything.
    let other = tempfile::tempdir().unwrap();
    let target = other.path().join("target");
    let mut watcher = Watcher::start(&sim, &target, &other.path().join("state.json"), &[]);
    write_pair(&target, &fixture("build-passing"));
    watcher.wait_for("uploading invocation");
    watcher.signal("INT");
    watcher.wait_for("shutting down within");
    let started = Instant::now();
    watcher.signal("INT");
    assert_eq!(watcher.exit_code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn past_the_shutdown_grace_it_stops_and_says_what_was_left() {
    // A 16 MiB manifest at 400 KB/s takes 40 s: far past a 1 s grace.
    let sim = Simulator::start(&[
        "--sync-seconds",
        "0.05",
        "--upload-bytes-per-second",
        "400000",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(
        target.join("manifest.json"),
        padded_manifest(16 << 20, None),
    )
    .unwrap();
    std::fs::copy(
        demo_artifacts().join("run_results.json"),
        target.join("run_results.json"),
    )
    .unwrap();
    let state = dir.path().join("state.json");
    let mut watcher = Watcher::start(&sim, &target, &state, &["--shutdown-grace", "1s"]);
    watcher.wait_for("uploading invocation");
    let started = Instant::now();
    watcher.signal("TERM");
    assert_eq!(watcher.exit_code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        watcher
            .stderr()
            .contains("is uploaded again at the next start"),
        "{}",
        watcher.stderr()
    );
    assert!(uploads(&sim).is_empty());
    assert!(!state.exists(), "the cut pair is not recorded");
}

#[test]
fn a_crash_during_an_upload_uploads_that_pair_again_after_a_restart() {
    let sim = Simulator::start(&[
        "--sync-seconds",
        "0.05",
        "--upload-bytes-per-second",
        "200000",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let state = dir.path().join("state.json");
    write_pair(&target, &demo_artifacts());
    let mut first = Watcher::start(&sim, &target, &state, &[]);
    first.wait_for("uploading invocation");
    first.signal("KILL");
    first.exit_code();
    assert!(uploads(&sim).is_empty());
    drop(sim);

    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let mut again = Watcher::start(&sim, &target, &state, &["--once"]);
    assert_eq!(again.exit_code(), Some(1), "{}", again.stderr());
    assert_eq!(uploads(&sim).len(), 1, "uploaded again after the crash");
}

/// Where `promtool` is: $PROMTOOL, or on PATH.
fn promtool() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PROMTOOL") {
        return Some(PathBuf::from(path));
    }
    StdCommand::new("promtool")
        .arg("--version")
        .output()
        .ok()
        .map(|_| PathBuf::from("promtool"))
}

#[test]
fn health_readiness_and_metrics_in_the_prometheus_format() {
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let watcher = Watcher::start(
        &sim,
        &target,
        &dir.path().join("state.json"),
        &["--no-wait"],
    );
    watcher.scans(1.0);
    assert_eq!(watcher.get("/healthz"), (200, "ok\n".into()));
    assert_eq!(
        watcher.get("/readyz").0,
        200,
        "the parent folder can be read"
    );
    write_pair(&target, &demo_artifacts());
    wait_for_uploads(&sim, 1);
    let started = Instant::now();
    while watcher.metric("dbt_secoda_watch_uploads_total") < 1.0 {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, metrics) = watcher.get("/metrics");
    assert_eq!(status, 200);
    for needle in [
        "dbt_secoda_watch_pairs_seen_total 1",
        "dbt_secoda_watch_uploads_total{exit_code=\"1\",result=\"ok\"} 1",
        "dbt_secoda_watch_last_exit_code 1",
        "dbt_secoda_watch_pending_pairs 0",
        "# HELP dbt_secoda_watch_last_success_timestamp_seconds",
    ] {
        assert!(metrics.contains(needle), "{needle}: {metrics}");
    }
    // The health probe for container health checks.
    let url = format!("http://{}/readyz", watcher.health.as_deref().unwrap());
    expect_exit(bin().args(["health", &url]), 0);
    expect_exit(
        bin().args(["health", "http://127.0.0.1:9/healthz", "--timeout", "1s"]),
        1,
    );

    let Some(promtool) = promtool() else {
        assert!(
            std::env::var_os("DBT_SECODA_REQUIRE_TOOLS").is_none(),
            "promtool is required here"
        );
        eprintln!("skipped: promtool is not installed (Debian's prometheus package ships it)");
        return;
    };
    let mut check = StdCommand::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// The demo pair's invocation_id, replaced in a file's bytes (same length, still valid JSON).
fn with_id(bytes: &[u8], id: &str) -> Vec<u8> {
    const DEMO: &str = "87cda89b-966f-40a0-931b-9a6cae8c6fc1";
    assert_eq!(id.len(), DEMO.len());
    String::from_utf8_lossy(bytes)
        .replace(DEMO, id)
        .into_bytes()
}

/// Writes a file as dbt does: truncated, then 8 KiB at a time with small pauses.
fn write_like_dbt(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::File::create(path).unwrap();
    for (i, chunk) in bytes.chunks(8192).enumerate() {
        file.write_all(chunk).unwrap();
        if i % 16 == 15 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// 50 dbt runs back to back, some stopped after their first manifest; the simulator must never
/// receive a mismatched or cut pair, and must end with the last complete run.
fn churn(extra: &[&str]) {
    let sim = Simulator::start(&["--sync-seconds", "0.01"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let mut args = vec![
        "--no-wait",
        "--debounce",
        "50ms",
        "--scan-interval",
        "200ms",
    ];
    args.extend_from_slice(extra);
    let watcher = Watcher::start(&sim, &target, &dir.path().join("state.json"), &args);
    let manifest = std::fs::read(demo_artifacts().join("manifest.json")).unwrap();
    let run_results = std::fs::read(demo_artifacts().join("run_results.json")).unwrap();
    let mut complete: std::collections::HashMap<String, (String, String)> = Default::default();
    let mut last_complete = String::new();
    for run in 0..50u32 {
        let id = format!("00000000-0000-4000-8000-{run:012}");
        let m = with_id(&manifest, &id);
        write_like_dbt(&target.join("manifest.json"), &m);
        if run % 7 == 3 {
            continue; // interrupted after parsing: no run_results for this id
        }
        std::thread::sleep(Duration::from_millis(5));
        write_like_dbt(&target.join("manifest.json"), &m);
        // Each run ends later than the one before, as dbt's generated_at says.
        let r = String::from_utf8_lossy(&with_id(&run_results, &id))
            .replace(
                "2026-11-28T07:10:58.440612Z",
                &format!("2026-11-28T08:{:02}:{:02}.440612Z", run / 60, run % 60),
            )
            .into_bytes();
        write_like_dbt(&target.join("run_results.json"), &r);
        let digest = |b: &[u8]| {
            use sha2::Digest;
            format!("{:x}", sha2::Sha256::digest(b))
        };
        complete.insert(id.clone(), (digest(&m), digest(&r)));
        last_complete = id;
        // Runs end at uneven moments: some while an upload is in flight, some back to back.
        std::thread::sleep(Duration::from_millis(u64::from(run * 37 % 180 + 5)));
    }
    // The last complete run reaches Secoda.
    let started = Instant::now();
    loop {
        let got = uploads(&sim);
        if got
            .last()
            .is_some_and(|u| u["invocation_id"] == last_complete.as_str())
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the last run never arrived: {}",
            watcher.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = uploads(&sim);
    let mut ids = std::collections::HashSet::new();
    for upload in &got {
        let id = upload["invocation_id"].as_str().unwrap();
        assert_eq!(
            upload["manifest_invocation_id"], id,
            "a mismatched pair: {upload}"
        );
        let (m, r) = complete
            .get(id)
            .unwrap_or_else(|| panic!("an upload of an incomplete run: {upload}"));
        assert_eq!(upload["manifest_sha256"], m.as_str(), "{upload}");
        assert_eq!(upload["run_results_sha256"], r.as_str(), "{upload}");
        assert!(ids.insert(id.to_string()), "uploaded twice: {id}");
    }
    println!(
        "{} complete runs, {} uploaded ({extra:?})",
        complete.len(),
        got.len()
    );
    assert!(
        got.len() >= 5,
        "the runs were paced to be uploaded while others were written: {} uploads",
        got.len()
    );
}

#[test]
fn a_pair_older_than_the_last_processed_is_never_uploaded() {
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let state = dir.path().join("state.json");
    // The newer run first (generated 2026-11-28T09:00), then an older one restored from a cache.
    let run_results = std::fs::read(demo_artifacts().join("run_results.json")).unwrap();
    let manifest = std::fs::read(demo_artifacts().join("manifest.json")).unwrap();
    let at = |id: &str, when: &str| {
        String::from_utf8_lossy(&with_id(&run_results, id))
            .replace("2026-11-28T07:10:58.440612Z", when)
            .into_bytes()
    };
    std::fs::create_dir_all(&target).unwrap();
    let newer = "00000000-0000-4000-8000-000000000002";
    std::fs::write(target.join("manifest.json"), with_id(&manifest, newer)).unwrap();
    std::fs::write(
        target.join("run_results.json"),
        at(newer, "2026-11-28T09:00:00.000000Z"),
    )
    .unwrap();
    let watcher = Watcher::start(&sim, &target, &state, &["--no-wait"]);
    wait_for_uploads(&sim, 1);
    let older = "00000000-0000-4000-8000-000000000001";
    std::fs::write(target.join("manifest.json"), with_id(&manifest, older)).unwrap();
    std::fs::write(
        target.join("run_results.json"),
        at(older, "2026-11-28T08:00:00.000000Z"),
    )
    .unwrap();
    watcher.wait_for("is older than the last one processed");
    assert_eq!(uploads(&sim).len(), 1);
}

#[test]
fn churn_of_fifty_runs_with_file_system_events() {
    churn(&[]);
}

#[test]
fn churn_of_fifty_runs_with_polling() {
    churn(&["--polling"]);
}
