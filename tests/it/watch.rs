//! `dbt-secoda watch` through the binary: fresh pairs uploaded once, pairs in progress never,
//! the state file across restarts and its lock, shutdown, health, readiness and metrics, many
//! target folders and their routes, writers that imitate dbt Core and dbt Fusion, and the faults
//! the decision core rules out (each also proven in `src/watch/decide.rs` and `model.rs`).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::*;

/// The demo pair's invocation id.
const DEMO_ID: &str = "87cda89b-966f-40a0-931b-9a6cae8c6fc1";

/// A running `dbt-secoda watch`, its stdout and stderr collected line by line.
struct Watcher {
    child: Child,
    /// The process of dbt-secoda (the child's own, or the wrapper's child).
    pid: u32,
    lines: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    health: Option<String>,
}

/// The first child of process `parent` (the program a wrapper runs), once it has one.
fn wrapped_pid(parent: u32) -> u32 {
    eventually(
        || format!("process {parent} to start one"),
        || {
            let children =
                std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
                    .unwrap_or_default();
            children
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
        },
    )
}

/// How to start a watcher beyond its arguments.
#[derive(Default)]
struct Launch {
    env: Vec<(&'static str, OsString)>,
    /// A program (and its arguments) that runs the binary, given as its last argument.
    wrapper: Vec<OsString>,
}

/// Collects a pipe's lines in a thread.
fn collect(pipe: impl std::io::Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let collected = Arc::clone(&lines);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            collected.lock().unwrap().push(line);
        }
    });
    (lines, reader)
}

impl Watcher {
    /// Starts `watch` on `target` against `sim`, health endpoints on a free port, plus `extra`.
    fn start(sim: &Simulator, target: &Path, state: &Path, extra: &[&str]) -> Watcher {
        let mut args: Vec<OsString> = vec!["--target-dir".into(), target.into()];
        args.extend(extra.iter().map(OsString::from));
        Watcher::launch(sim, state, &args, &Launch::default())
    }

    /// Starts `watch` with `args` (the folders and anything else), as `how` says.
    fn launch(sim: &Simulator, state: &Path, args: &[OsString], how: &Launch) -> Watcher {
        let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
        let mut cmd = match how.wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = clean_command(program);
                cmd.args(rest).arg(exe);
                cmd
            }
            None => clean_command(exe),
        };
        cmd.env("SECODA_API_KEY", KEY)
            .args([
                "watch",
                "--api-url",
                &sim.url,
                "--poll-interval",
                "100ms",
                "--health-listen",
                "127.0.0.1:0",
            ])
            .arg("--state-file")
            .arg(state)
            .args(args)
            .envs(how.env.iter().map(|(k, v)| (k, v)));
        if !args
            .iter()
            .any(|a| a == "--integration-for" || a == "--integration-id")
        {
            cmd.args(["--integration-id", INTEGRATION]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watch starts");
        let (lines, err_reader) = collect(child.stderr.take().unwrap());
        let (stdout, out_reader) = collect(child.stdout.take().unwrap());
        let pid = if how.wrapper.is_empty() {
            child.id()
        } else {
            wrapped_pid(child.id())
        };
        let mut watcher = Watcher {
            child,
            pid,
            lines,
            stdout,
            readers: vec![err_reader, out_reader],
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
        self.wait_for_nth(needle, 1)
    }

    /// Waits for the `n`th line on stderr containing `needle`.
    fn wait_for_nth(&self, needle: &str, n: usize) -> String {
        eventually(
            || format!("{needle:?} (x{n}) on stderr:\n{}", self.stderr()),
            || {
                let lines = self.lines.lock().unwrap();
                let mut found = lines.iter().filter(|l| l.contains(needle));
                found.nth(n - 1).cloned()
            },
        )
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

    /// A metric's value: the sum of the samples whose line starts with `name` (labels included
    /// in `name` narrow it).
    fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next())
            .filter_map(|v| v.parse::<f64>().ok())
            .sum()
    }

    /// Waits until `name` reaches `at_least`.
    fn wait_metric(&self, name: &str, at_least: f64) {
        eventually(
            || format!("{name} to reach {at_least}:\n{}", self.stderr()),
            || (self.metric(name) >= at_least).then_some(()),
        );
    }

    /// Waits until the watcher has finished `n` more looks: it has looked at what is on disk now.
    fn scans(&self, n: f64) {
        let target = self.metric("dbt_secoda_watch_scans_total") + n;
        self.wait_metric("dbt_secoda_watch_scans_total", target);
    }

    /// Waits until `/readyz` answers `status`; returns its body.
    fn wait_ready(&self, status: u16) -> String {
        eventually(
            || format!("/readyz to answer {status}:\n{}", self.stderr()),
            || {
                let (got, body) = self.get("/readyz");
                (got == status).then_some(body)
            },
        )
    }

    fn signal(&self, name: &str) {
        let sent = StdCommand::new("kill")
            .args([&format!("-{name}"), &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(
            sent.success(),
            "kill -{name} {}: {:?}\n{}",
            self.pid,
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok(),
            self.stderr()
        );
    }

    /// Waits for the process to exit, and for its last lines; its code.
    fn exit_code(&mut self) -> Option<i32> {
        let lines = Arc::clone(&self.lines);
        let child = &mut self.child;
        let status = eventually(
            || format!("watch to exit:\n{}", lines.lock().unwrap().join("\n")),
            || child.try_wait().unwrap(),
        );
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status.code()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Under a wrapper (strace), the watcher itself too: killing the wrapper may only detach.
        if self.pid != self.child.id() {
            let _ = StdCommand::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
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
    eventually(
        || format!("{n} uploads; the simulator has {}", uploads(sim).len()),
        || {
            let got = uploads(sim);
            (got.len() >= n).then_some(got)
        },
    )
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

/// The demo pair's bytes with its invocation id (and, given, run_results' generated_at and the
/// manifest's project name) replaced.
struct Pair {
    manifest: Vec<u8>,
    run_results: Vec<u8>,
}

impl Pair {
    fn demo(id: &str) -> Pair {
        let read = |name| std::fs::read(demo_artifacts().join(name)).unwrap();
        let swap = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).replace(DEMO_ID, id);
        assert_eq!(id.len(), DEMO_ID.len());
        Pair {
            manifest: swap(read("manifest.json")).into_bytes(),
            run_results: swap(read("run_results.json")).into_bytes(),
        }
    }

    /// run_results' `generated_at` set to `when`.
    fn generated(mut self, when: &str) -> Pair {
        self.run_results = String::from_utf8_lossy(&self.run_results)
            .replace("2026-11-28T07:10:58.440612Z", when)
            .into_bytes();
        self
    }

    /// The manifest's `metadata.project_name`.
    fn project(mut self, name: &str) -> Pair {
        self.manifest = String::from_utf8_lossy(&self.manifest)
            .replacen(
                "\"project_name\": \"fernleaf\"",
                &format!("\"project_name\": \"{name}\""),
                1,
            )
            .into_bytes();
        self
    }

    /// Written as dbt Core does: the manifest, then run_results.
    fn write(&self, target: &Path) {
        std::fs::create_dir_all(target).unwrap();
        write_like_dbt(&target.join("manifest.json"), &self.manifest);
        write_like_dbt(&target.join("run_results.json"), &self.run_results);
    }

    fn sha256s(&self) -> (String, String) {
        use sha2::Digest;
        let digest = |b: &[u8]| format!("{:x}", sha2::Sha256::digest(b));
        (digest(&self.manifest), digest(&self.run_results))
    }
}

fn run_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
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

/// The folder `watch` keeps its snapshot copies in, for a state file, under `tmp`.
fn snapshot_folders(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("dbt-secoda-")
                })
                .flat_map(|folder| {
                    std::fs::read_dir(folder)
                        .into_iter()
                        .flatten()
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_fresh_pair_is_uploaded_once_and_a_restart_does_not_upload_it_again() {
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let dir = tempfile::tempdir().unwrap();
    // The target folder does not exist yet: dbt makes it.
    let target = dir.path().join("target");
    let state = dir.path().join("state/watch.json");
    let mut once = Watcher::start(&sim, &target, &state, &["--once"]);
    once.wait_for("does not exist yet: watching for dbt to make it");
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
    assert_eq!(state_doc["version"], 2);
    let key = target.display().to_string();
    assert_eq!(state_doc["folders"][&key]["last"]["invocation_id"], DEMO_ID);
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
    let line = eventually(
        || "a report on stdout".into(),
        || watcher.stdout_lines().first().cloned(),
    );
    let report: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(report["exit_code"], 0);
    assert_eq!(
        report["uploaded"]["manifest"]["path"],
        target.join("manifest.json").display().to_string(),
        "the report names the files dbt wrote, not the copies"
    );
}

#[test]
fn dbt_fusion_writes_run_results_first_and_the_pair_is_uploaded_once_complete() {
    let sim = Simulator::start(&["--sync-seconds", "0.01"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let first = Pair::demo(&run_id(1));
    first.write(&target);
    let watcher = Watcher::start(
        &sim,
        &target,
        &dir.path().join("state.json"),
        &["--no-wait"],
    );
    wait_for_uploads(&sim, 1);
    // dbt Fusion: run_results of the next run first, the previous manifest still beside it.
    let second = Pair::demo(&run_id(2)).generated("2026-11-28T08:00:00.000000Z");
    write_like_dbt(&target.join("run_results.json"), &second.run_results);
    watcher.scans(3.0);
    assert_eq!(uploads(&sim).len(), 1, "{}", watcher.stderr());
    write_like_dbt(&target.join("manifest.json"), &second.manifest);
    let got = wait_for_uploads(&sim, 2);
    let (m, r) = second.sha256s();
    assert_eq!(got[1]["manifest_sha256"], m.as_str());
    assert_eq!(got[1]["run_results_sha256"], r.as_str());
    assert_eq!(got[1]["invocation_id"], got[1]["manifest_invocation_id"]);
}

#[test]
fn only_the_commands_asked_for_are_uploaded_and_dbt_clean_is_said_in_words() {
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
    watcher.wait_metric(
        "dbt_secoda_watch_pairs_skipped_total{project=\"fernleaf\",reason=\"command\"}",
        1.0,
    );
    assert!(uploads(&sim).is_empty());
    watcher.wait_for("not one of --commands");
    // dbt clean: the folder goes, and comes back with the next build.
    std::fs::remove_dir_all(&target).unwrap();
    watcher.wait_for("was removed (dbt clean?): watching for it to come back");
    write_pair(&target, &demo_artifacts());
    let got = wait_for_uploads(&sim, 1);
    assert_eq!(got[0]["invocation_id"], DEMO_ID);
    assert!(
        !watcher.stderr().contains("Error {"),
        "no debug structures in the log:\n{}",
        watcher.stderr()
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
fn a_run_from_2099_or_a_fraction_of_a_second_never_holds_back_later_runs() {
    let sim = Simulator::start(&["--sync-seconds", "0.01"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let state = dir.path().join("state.json");
    // A state file of format 1 that recorded a run from a clock set to 2099 (as the watcher
    // before this one did): the next real run must still go.
    let v1 = serde_json::json!({"version": 1, "target": target.display().to_string(), "last": {
        "invocation_id": run_id(1), "run_results_generated_at": "2099-01-01T00:00:00.000000Z",
        "manifest_sha256": "m", "run_results_sha256": "r", "processed_at": 1_764_000_000u64}});
    std::fs::write(&state, v1.to_string()).unwrap();
    Pair::demo(&run_id(2))
        .generated("2026-11-28T07:10:00.000000Z")
        .write(&target);
    let watcher = Watcher::start(&sim, &target, &state, &["--no-wait"]);
    wait_for_uploads(&sim, 1);
    // A run whose clock says 2099 is uploaded, with a warning, and does not poison the order.
    Pair::demo(&run_id(3))
        .generated("2099-06-01T00:00:00.000000Z")
        .write(&target);
    wait_for_uploads(&sim, 2);
    watcher.wait_for("in the future: the clock of the machine that ran dbt is wrong");
    Pair::demo(&run_id(4))
        .generated("2026-12-04T10:00:00.000000Z")
        .write(&target);
    wait_for_uploads(&sim, 3);
    // Times are compared as times: 0.5 s after is after.
    Pair::demo(&run_id(5))
        .generated("2026-12-04T10:00:00.5Z")
        .write(&target);
    let got = wait_for_uploads(&sim, 4);
    let ids: Vec<&str> = got
        .iter()
        .map(|u| u["invocation_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [run_id(2), run_id(3), run_id(4), run_id(5)]);
    assert_eq!(
        watcher.metric("dbt_secoda_watch_pairs_skipped_total"),
        0.0,
        "{}",
        watcher.stderr()
    );
}

#[test]
fn a_pair_older_than_the_last_processed_is_never_uploaded() {
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let state = dir.path().join("state.json");
    // The newer run first (generated 2026-11-28T09:00), then an older one restored from a cache.
    Pair::demo(&run_id(2))
        .generated("2026-11-28T09:00:00.000000Z")
        .write(&target);
    let watcher = Watcher::start(&sim, &target, &state, &["--no-wait"]);
    wait_for_uploads(&sim, 1);
    Pair::demo(&run_id(1))
        .generated("2026-11-28T08:00:00.000000Z")
        .write(&target);
    watcher.wait_for("is older than the last one processed");
    assert_eq!(uploads(&sim).len(), 1);
}

#[test]
fn sigterm_lets_the_upload_in_flight_finish_and_a_second_request_stops_at_once() {
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

    // A second request, once the first has sunk in, does not wait for anything.
    let other = tempfile::tempdir().unwrap();
    let target = other.path().join("target");
    let mut watcher = Watcher::start(&sim, &target, &other.path().join("state.json"), &["-v"]);
    write_pair(&target, &fixture("build-passing"));
    watcher.wait_for("uploading invocation");
    watcher.signal("INT");
    watcher.wait_for("a second SIGTERM or Ctrl-C now stops at once");
    watcher.signal("INT");
    assert_eq!(watcher.exit_code(), Some(130));
    watcher.wait_for("SIGINT again: stopping at once");
}

#[test]
fn one_stop_delivered_twice_still_drains() {
    // As `timeout 600 dbt-secoda watch`, stopped through its process group, delivers it.
    let sim = Simulator::start(&[
        "--sync-seconds",
        "0.05",
        "--upload-bytes-per-second",
        "400000",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let mut watcher = Watcher::start(&sim, &target, &dir.path().join("state.json"), &[]);
    write_pair(&target, &demo_artifacts());
    watcher.wait_for("uploading invocation");
    watcher.signal("TERM");
    watcher.signal("TERM");
    assert_eq!(watcher.exit_code(), Some(0), "{}", watcher.stderr());
    assert_eq!(uploads(&sim).len(), 1, "the upload in flight finished");
    assert!(!watcher.stderr().contains("stopping at once"));
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
    watcher.signal("TERM");
    assert_eq!(watcher.exit_code(), Some(130));
    assert!(
        watcher
            .stderr()
            .contains("is uploaded again at the next start"),
        "{}",
        watcher.stderr()
    );
    assert!(uploads(&sim).is_empty());
    let recorded = std::fs::read_to_string(&state).unwrap_or_default();
    assert!(!recorded.contains(DEMO_ID), "the cut pair is not recorded");
}

#[test]
fn a_crash_during_an_upload_uploads_that_pair_again_and_its_copy_is_cleared() {
    let sim = Simulator::start(&[
        "--sync-seconds",
        "0.05",
        "--upload-bytes-per-second",
        "200000",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let target = dir.path().join("target");
    let state = dir.path().join("state.json");
    write_pair(&target, &demo_artifacts());
    let with_tmp = Launch {
        env: vec![("TMPDIR", tmp.clone().into())],
        ..Launch::default()
    };
    let args: Vec<OsString> = vec!["--target-dir".into(), target.clone().into()];
    let mut first = Watcher::launch(&sim, &state, &args, &with_tmp);
    first.wait_for("uploading invocation");
    first.signal("KILL");
    first.exit_code();
    assert!(uploads(&sim).is_empty());
    assert_eq!(snapshot_folders(&tmp).len(), 1, "kill -9 left its copy");
    drop(sim);

    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let mut args = args.clone();
    args.push("--once".into());
    let mut again = Watcher::launch(&sim, &state, &args, &with_tmp);
    again.wait_for("removed 1 snapshot copy a stopped watcher left");
    assert_eq!(again.exit_code(), Some(1), "{}", again.stderr());
    assert_eq!(uploads(&sim).len(), 1, "uploaded again after the crash");
    assert!(snapshot_folders(&tmp).is_empty(), "no copy is left behind");
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
    assert_eq!(watcher.get("/healthz"), (200, "ok\n".into()));
    assert_eq!(
        watcher.wait_ready(200),
        "ready\n",
        "the parent folder can be read"
    );
    write_pair(&target, &demo_artifacts());
    wait_for_uploads(&sim, 1);
    watcher.wait_metric("dbt_secoda_watch_uploads_total", 1.0);
    let (status, metrics) = watcher.get("/metrics");
    assert_eq!(status, 200);
    for needle in [
        "dbt_secoda_watch_pairs_seen_total{project=\"fernleaf\"} 1",
        "dbt_secoda_watch_uploads_total{exit_code=\"1\",project=\"fernleaf\",result=\"ok\"} 1",
        "dbt_secoda_watch_last_exit_code 1",
        "dbt_secoda_watch_pending_pairs 0",
        "dbt_secoda_watch_folders 1",
        "dbt_secoda_watch_secoda_up 1",
        "dbt_secoda_watch_snapshots_total{result=\"taken\"} 1",
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

#[test]
fn a_wrong_key_or_an_unknown_integration_keeps_readyz_failing_and_once_exits_4() {
    let sim = Simulator::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let state = dir.path().join("state.json");
    let args: Vec<OsString> = vec!["--target-dir".into(), target.clone().into()];
    let wrong_key = Launch {
        env: vec![("SECODA_API_KEY", "sk-not-the-right-one".into())],
        ..Launch::default()
    };
    let watcher = Watcher::launch(&sim, &state, &args, &wrong_key);
    let body = watcher.wait_ready(503);
    assert!(body.contains("401"), "{body}");
    assert!(!body.contains("sk-not-the-right-one"), "{body}");
    watcher.wait_for("hint:");
    // Still not ready a few looks later: a refused key does not go away by itself.
    watcher.scans(3.0);
    assert_eq!(watcher.get("/readyz").0, 503);
    drop(watcher);

    let unknown = "00000000-0000-4000-8000-0000000000aa";
    let mut once = Watcher::launch(
        &sim,
        &dir.path().join("other.json"),
        &[
            "--target-dir".into(),
            target.into(),
            "--integration-id".into(),
            unknown.into(),
            "--once".into(),
        ],
        &Launch::default(),
    );
    assert_eq!(once.exit_code(), Some(4), "{}", once.stderr());
    assert!(once.stderr().contains("404"), "{}", once.stderr());
    assert_eq!(
        sim.requests(&format!(
            "/api/v1/integration/dbt/{unknown}/upload_artifacts/"
        )),
        0
    );
}

#[test]
fn an_outage_keeps_the_watcher_ready_retries_without_spinning_and_says_so_in_metrics() {
    // Every request to the pair's endpoints fails with 503 for a while.
    let sim = Simulator::start(&[
        "--sync-seconds",
        "0.01",
        "--fail-requests",
        "6",
        "--fail-path",
        "upload_artifacts",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let watcher = Watcher::start(
        &sim,
        &target,
        &dir.path().join("state.json"),
        &[
            "--no-wait",
            "--retry-timeout",
            "2s",
            "--scan-interval",
            "10s",
        ],
    );
    watcher.wait_ready(200);
    write_pair(&target, &demo_artifacts());
    watcher.wait_for("was not uploaded (Secoda unavailable); trying again");
    assert_eq!(watcher.metric("dbt_secoda_watch_secoda_up"), 0.0);
    assert_eq!(watcher.get("/healthz").0, 200);
    assert_eq!(
        watcher.get("/readyz").0,
        200,
        "an outage is not the watcher's"
    );
    // The retries go on until Secoda answers; the pair arrives once.
    let got = wait_for_uploads(&sim, 1);
    assert_eq!(got.len(), 1);
    watcher.wait_metric(
        "dbt_secoda_watch_uploads_total{exit_code=\"1\",project=\"fernleaf\",result=\"ok\"}",
        1.0,
    );
    assert_eq!(watcher.metric("dbt_secoda_watch_retrying_pairs"), 0.0);
    // With a scan every 10 s, looks come from the writes, the retries and the first scans: a
    // loop woken by a deadline already past would have made thousands.
    let scans = watcher.metric("dbt_secoda_watch_scans_total");
    assert!(scans < 100.0, "{scans} looks:\n{}", watcher.stderr());
}

#[test]
fn a_pair_that_stays_invalid_is_copied_once_until_its_files_change() {
    let sim = Simulator::start(&["--sync-seconds", "0.01"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    // One bad byte near the end of an 8 MiB manifest: its first and last bytes look fine.
    let bad = padded_manifest(8 << 20, Some((8 << 20) - 100));
    std::fs::write(target.join("manifest.json"), &bad).unwrap();
    std::fs::copy(
        demo_artifacts().join("run_results.json"),
        target.join("run_results.json"),
    )
    .unwrap();
    let watcher = Watcher::start(
        &sim,
        &target,
        &dir.path().join("state.json"),
        &["--no-wait", "--scan-interval", "100ms"],
    );
    watcher.wait_for("held still but is not a complete pair");
    watcher.scans(20.0);
    assert_eq!(
        watcher.metric("dbt_secoda_watch_snapshots_total{result=\"invalid\"}"),
        1.0,
        "{}",
        watcher.stderr()
    );
    assert!(uploads(&sim).is_empty());
    // dbt writes it again, whole: copied and uploaded.
    std::fs::write(target.join("manifest.json"), padded_manifest(8 << 20, None)).unwrap();
    wait_for_uploads(&sim, 1);
}

#[test]
fn a_log_written_beside_the_target_folder_at_trace_level_does_not_feed_itself() {
    let sim = Simulator::start(&["--sync-seconds", "0.01"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let log = dir.path().join("watch.log");
    let file = std::fs::File::create(&log).unwrap();
    let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
    let mut child = clean_command(exe)
        .env("SECODA_API_KEY", KEY)
        .args(["-vvv", "watch", "--api-url", &sim.url])
        .args([
            "--integration-id",
            INTEGRATION,
            "--health-listen",
            "127.0.0.1:0",
        ])
        .arg("--target-dir")
        .arg(&target)
        .arg("--state-file")
        .arg(dir.path().join("state.json"))
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let health = eventually(
        || std::fs::read_to_string(&log).unwrap_or_default(),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.split("health endpoints on http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(String::from)
        },
    );
    let metric = |name: &str| -> f64 {
        http_get(&health, "/metrics")
            .1
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let scans = metric("dbt_secoda_watch_scans_total");
    eventually(
        || "three more looks".into(),
        || (metric("dbt_secoda_watch_scans_total") >= scans + 3.0).then_some(()),
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let about_events = text.lines().filter(|l| l.contains("inotify event")).count();
    assert_eq!(
        about_events, 0,
        "no log line about inotify's events:\n{text}"
    );
    assert!(text.contains("TRACE"), "the log is at trace level:\n{text}");
}

#[test]
fn one_watcher_per_state_file_and_bad_places_are_refused() {
    let sim = Simulator::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let state = dir.path().join("state.json");
    let first = Watcher::start(&sim, &target, &state, &[]);
    let second = expect_exit(
        sim.cli(&["watch", "--integration-id", INTEGRATION])
            .arg("--target-dir")
            .arg(&target)
            .arg("--state-file")
            .arg(&state),
        2,
    );
    assert_stderr_contains(
        &second,
        &format!("in use by another watcher (pid {}", first.pid),
    );
    assert_stderr_contains(&second, "one watcher per state file");
    drop(first);

    // A state file that is a folder.
    let folder = expect_exit(
        sim.cli(&["watch", "--integration-id", INTEGRATION])
            .arg("--target-dir")
            .arg(&target)
            .arg("--state-file")
            .arg(dir.path()),
        2,
    );
    assert_stderr_contains(&folder, "is a folder, not a file");
    assert!(dir.path().is_dir(), "the folder is left alone");

    // A target folder that is a file.
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let not_folder = expect_exit(
        sim.cli(&["watch", "--integration-id", INTEGRATION])
            .arg("--target-dir")
            .arg(&file)
            .arg("--state-file")
            .arg(dir.path().join("other.json")),
        2,
    );
    assert_stderr_contains(&not_folder, "is a file, not a folder");
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
    let mut complete: std::collections::HashMap<String, (String, String)> = Default::default();
    let mut last_complete = String::new();
    for run in 0..50u32 {
        let id = run_id(run);
        let pair = Pair::demo(&id).generated(&format!(
            "2026-11-28T08:{:02}:{:02}.440612Z",
            run / 60,
            run % 60
        ));
        write_like_dbt(&target.join("manifest.json"), &pair.manifest);
        if run % 7 == 3 {
            continue; // interrupted after parsing: no run_results for this id
        }
        std::thread::sleep(Duration::from_millis(5));
        write_like_dbt(&target.join("manifest.json"), &pair.manifest);
        write_like_dbt(&target.join("run_results.json"), &pair.run_results);
        complete.insert(id.clone(), pair.sha256s());
        last_complete = id;
        // Runs end at uneven moments: some while an upload is in flight, some back to back.
        std::thread::sleep(Duration::from_millis(u64::from(run * 37 % 180 + 5)));
    }
    // The last complete run reaches Secoda.
    eventually(
        || format!("the last run, {last_complete}: {}", watcher.stderr()),
        || {
            let got = uploads(&sim);
            got.last()
                .is_some_and(|u| u["invocation_id"] == last_complete.as_str())
                .then_some(())
        },
    );
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
}

#[test]
fn churn_of_fifty_runs_with_file_system_events() {
    churn(&[]);
}

#[test]
fn churn_of_fifty_runs_with_polling() {
    churn(&["--polling"]);
}

#[test]
fn many_folders_a_glob_of_runs_and_routes_by_project() {
    // dagster-dbt: one target folder a run under target/; a second project named by its folder.
    let sim = Simulator::start(&[
        "--sync-seconds",
        "0.01",
        "--dbt-integration",
        INTEGRATION,
        "--dbt-integration",
        "00000000-0000-4000-8000-00000000b0b0",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("analytics/target");
    std::fs::create_dir_all(&runs).unwrap();
    let other = dir.path().join("finance/target");
    let third = dir.path().join("marketing/target");
    let state = dir.path().join("state.json");
    let finance = "00000000-0000-4000-8000-00000000b0b0";
    let args: Vec<OsString> = vec![
        "--no-wait".into(),
        "--target-glob".into(),
        format!("{}/*", runs.display()).into(),
        "--target-dir".into(),
        other.clone().into(),
        "--target-dir".into(),
        third.clone().into(),
        "--integration-for".into(),
        format!("oakgrove={finance}").into(),
        "--integration-for".into(),
        format!("fernleaf={INTEGRATION}").into(),
    ];
    let watcher = Watcher::launch(&sim, &state, &args, &Launch::default());
    watcher.wait_ready(200);
    assert_eq!(watcher.metric("dbt_secoda_watch_folders"), 2.0);
    // Two dagster runs, each in its own folder made after the start.
    Pair::demo(&run_id(1)).write(&runs.join("build-3f2a"));
    Pair::demo(&run_id(2)).write(&runs.join("build-9c1d"));
    // The finance project goes to its own integration.
    Pair::demo(&run_id(3)).project("oakgrove").write(&other);
    // A project with no route and no --integration-id is skipped, said and counted.
    Pair::demo(&run_id(4)).project("hollybank").write(&third);
    let got = wait_for_uploads(&sim, 3);
    watcher.wait_for("has no integration");
    watcher.wait_metric(
        "dbt_secoda_watch_pairs_skipped_total{project=\"hollybank\",reason=\"no-integration\"}",
        1.0,
    );
    let by_id = |id: &str| {
        got.iter()
            .find(|u| u["invocation_id"] == id)
            .unwrap_or_else(|| panic!("{id} not uploaded: {got:?}"))
            .clone()
    };
    assert_eq!(by_id(&run_id(1))["integration_id"], INTEGRATION);
    assert_eq!(by_id(&run_id(2))["integration_id"], INTEGRATION);
    assert_eq!(by_id(&run_id(3))["integration_id"], finance);
    // One integration takes one upload at a time.
    let mut same: Vec<(f64, f64)> = got
        .iter()
        .filter(|u| u["integration_id"] == INTEGRATION)
        .map(|u| {
            (
                u["first_byte_unix"].as_f64().unwrap(),
                u["last_byte_unix"].as_f64().unwrap(),
            )
        })
        .collect();
    same.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(same[1].0 >= same[0].1, "overlapping uploads: {same:?}");
    // The state file keeps each folder's own last pair.
    watcher.wait_metric("dbt_secoda_watch_uploads_total", 3.0);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    for (folder, id) in [
        (runs.join("build-3f2a"), run_id(1)),
        (runs.join("build-9c1d"), run_id(2)),
        (other.clone(), run_id(3)),
    ] {
        assert_eq!(
            doc["folders"][folder.display().to_string()]["last"]["invocation_id"],
            id.as_str(),
            "{doc}"
        );
    }
    // A run's folder removed (dagster cleans up): no longer watched.
    std::fs::remove_dir_all(runs.join("build-3f2a")).unwrap();
    watcher.wait_for("build-3f2a is gone: no longer watched");
    assert_eq!(watcher.metric("dbt_secoda_watch_folders"), 3.0);
    assert_eq!(uploads(&sim).len(), 3);
}

#[test]
fn secodas_write_limit_is_kept_across_folders_and_a_429_is_still_honoured() {
    // 16 runs, each in its own folder: 32 writes (an upload and a trigger each) against a limit
    // of 30 in a window the test's scale shrinks (the client's pacer shrinks with it: 6.2 s).
    let sim = Simulator::start(&[
        "--sync-seconds",
        "0.01",
        "--rate-limit",
        "30",
        "--rate-window",
        "5s",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("target");
    for n in 0..16 {
        Pair::demo(&run_id(100 + n)).write(&runs.join(format!("run-{n:02}")));
    }
    let args: Vec<OsString> = vec![
        "--no-wait".into(),
        "--target-glob".into(),
        format!("{}/run-*", runs.display()).into(),
    ];
    let scaled = Launch {
        env: vec![("DBT_SECODA_RETRY_SCALE", "0.1".into())],
        ..Launch::default()
    };
    let watcher = Watcher::launch(&sim, &dir.path().join("state.json"), &args, &scaled);
    wait_for_uploads(&sim, 16);
    watcher.wait_for("requests to Secoda in the last minute (its documented limit): waiting");
    watcher.wait_metric("dbt_secoda_watch_uploads_total", 16.0);
    let state = sim.state();
    assert_eq!(state["rate_limited"], 0, "no 429: {state}");
    assert_eq!(state["triggers"].as_u64(), Some(16), "{state}");
}

/// `watch` under strace, which holds every system call on `paths` for 30 s: a target on a hung
/// network mount.
fn with_hung_reads(paths: &[PathBuf]) -> Launch {
    let mut wrapper: Vec<OsString> = vec!["strace".into(), "-f".into(), "-qq".into()];
    wrapper.extend(["-o".into(), "/dev/null".into()]);
    for path in paths {
        wrapper.push("-P".into());
        wrapper.push(path.into());
    }
    wrapper.extend([
        "-e".into(),
        "trace=all".into(),
        "-e".into(),
        "inject=all:delay_enter=30000000".into(),
    ]);
    Launch {
        env: Vec::new(),
        wrapper,
    }
}

#[test]
fn sigterm_and_healthz_answer_while_a_targets_reads_hang() {
    if !have_tool("strace") {
        return;
    }
    let sim = Simulator::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    write_pair(&target, &demo_artifacts());
    let hung = vec![
        target.join("manifest.json"),
        target.join("run_results.json"),
    ];
    let args: Vec<OsString> = vec![
        "--target-dir".into(),
        target.clone().into(),
        "--shutdown-grace".into(),
        "1s".into(),
    ];
    let mut watcher = Watcher::launch(
        &sim,
        &dir.path().join("state.json"),
        &args,
        &with_hung_reads(&hung),
    );
    // The look at the target hangs; the async thread does not.
    let body = eventually(
        || {
            format!(
                "/readyz to say a look has not returned:\n{}",
                watcher.stderr()
            )
        },
        || {
            let (_, body) = watcher.get("/readyz");
            body.contains("has not returned").then_some(body)
        },
    );
    assert!(body.contains(&target.display().to_string()), "{body}");
    assert_eq!(watcher.get("/healthz"), (200, "ok\n".into()));
    watcher.signal("TERM");
    watcher.wait_for("shutting down within");
    assert_eq!(watcher.exit_code(), Some(130), "{}", watcher.stderr());
    assert!(uploads(&sim).is_empty());
}
