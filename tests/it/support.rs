//! Shared test support: the binary under test, a simulator process, artifact folders.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long a test waits for something that must happen before it calls it a failure. Generous:
/// the machines are shared and have 2 cores, and nothing here measures speed (benchmarks do).
pub const PATIENCE: Duration = Duration::from_secs(300);

/// Polls `check` until it gives a value; past [`PATIENCE`], fails with what `what` says.
pub fn eventually<T>(what: impl FnOnce() -> String, mut check: impl FnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        if started.elapsed() > PATIENCE {
            panic!("waited {PATIENCE:?} in vain: {}", what());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The key every simulator in these tests expects.
pub const KEY: &str = "sk-test-9f8e7d6c5b4a";
pub const INTEGRATION: &str = "5ec0da00-0000-4000-8000-00000000db70";

/// The repository's own artifacts (the fixture project's `dbt build` with failures).
pub fn demo_artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/artifacts/build-with-failures")
}

/// The tests' own small artifact sets (copied from the fixture project's runs).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `../shared`, when this checkout has it beside it.
pub fn shared() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    path.is_dir().then_some(path)
}

/// Whether the caller's environment variable `key` would change what the binary does: Secoda and
/// dbt settings, a CI runner's (on GitHub Actions the binary would annotate and write summaries),
/// proxies and CA overrides of this machine (network.rs sets its own), log filters.
pub fn is_callers_setting(key: &str) -> bool {
    key.starts_with("SECODA_")
        || key.starts_with("DBT_")
        || key.starts_with("GITHUB_")
        || key.starts_with("RUNNER_")
        || key.starts_with("SSL_CERT_")
        || key.to_ascii_lowercase().ends_with("_proxy")
        || matches!(key, "RUST_LOG" | "CI" | "NO_COLOR")
}

/// `program` (the binary, or a shell or `script` that runs it) with none of the caller's settings
/// and fast retries.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> StdCommand {
    let mut cmd = StdCommand::new(program);
    for (key, _) in std::env::vars() {
        if is_callers_setting(&key) {
            cmd.env_remove(key);
        }
    }
    cmd.env("DBT_SECODA_RETRY_SCALE", "0.01")
        .env("NO_COLOR", "1");
    cmd
}

/// The binary, with an environment free of the caller's settings and fast retries.
pub fn bin() -> Command {
    Command::from_std(clean_command(assert_cmd::cargo::cargo_bin("dbt-secoda")))
}

/// A simulator process on a free loopback port; killed when dropped.
pub struct Simulator {
    child: Child,
    pub url: String,
}

impl Simulator {
    /// Starts `dbt-secoda simulator` with the test key and short syncs (unless `extra` says how
    /// long), plus `extra` flags.
    pub fn start(extra: &[&str]) -> Simulator {
        let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
        let sync: &[&str] = if extra.contains(&"--sync-seconds") {
            &[]
        } else {
            &["--sync-seconds", "0.3"]
        };
        let mut child = clean_command(exe)
            .args(["simulator", "--listen", "127.0.0.1:0", "--api-key", KEY])
            .args(sync)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the simulator starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("the simulator prints its address");
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .expect("first line is `listening on URL`")
            .to_string();
        Simulator { child, url }
    }

    fn host(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// A raw HTTP request; returns the status and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(self.host()).expect("connect to the simulator");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host(),
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("send head");
        stream.write_all(body).expect("send body");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read the answer");
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head")
            + 4;
        let status = String::from_utf8_lossy(&response[9..12])
            .parse()
            .expect("a status");
        (status, response[split..].to_vec())
    }

    /// A GET with the test key; returns the status and the JSON body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let auth = format!("Bearer {KEY}");
        let (status, body) = self.request("GET", path, &[("Authorization", &auth)], b"");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// `GET /_simulator/state`.
    pub fn state(&self) -> Value {
        self.get("/_simulator/state").1
    }

    /// How many requests reached `path` (any status), or every path but the state's with "".
    pub fn requests(&self, path: &str) -> u64 {
        let state = self.state();
        let counts = state["requests"].as_object().cloned().unwrap_or_default();
        counts
            .iter()
            .filter(|(p, _)| {
                if path.is_empty() {
                    !p.starts_with("/_simulator")
                } else {
                    p.as_str() == path
                }
            })
            .flat_map(|(_, by_status)| by_status.as_object().cloned().unwrap_or_default())
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .sum()
    }

    /// `dbt-secoda ARGS` with this simulator's URL and key in the environment.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = bin();
        cmd.env("SECODA_API_KEY", KEY)
            .env("SECODA_API_URL", &self.url)
            .args(args);
        cmd
    }

    /// An `upload` command against this simulator for `target`, waiting with fast polls.
    pub fn upload(&self, target: &Path) -> Command {
        let mut cmd = bin();
        cmd.env("SECODA_API_KEY", KEY)
            .args([
                "upload",
                "--api-url",
                &self.url,
                "--integration-id",
                INTEGRATION,
            ])
            .arg("--target-dir")
            .arg(target)
            .args([
                "--poll-interval",
                "100ms",
                "--wait-timeout",
                "20s",
                "--trigger-timeout",
                "20s",
                "--retry-timeout",
                "20s",
            ]);
        cmd
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `upload --dry-run --output json` of `target` with the test key and integration: nothing is sent,
/// so no simulator is needed.
pub fn dry_run(target: &Path) -> Command {
    let mut cmd = bin();
    cmd.env("SECODA_API_KEY", KEY)
        .args([
            "upload",
            "--dry-run",
            "--output",
            "json",
            "--integration-id",
            INTEGRATION,
        ])
        .arg("--target-dir")
        .arg(target);
    cmd
}

/// A temporary target folder holding copies of `manifest` and `run_results` (either may be None).
pub fn target_with(manifest: Option<&Path>, run_results: Option<&Path>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    if let Some(m) = manifest {
        std::fs::copy(m, dir.path().join("manifest.json")).expect("copy the manifest");
    }
    if let Some(r) = run_results {
        std::fs::copy(r, dir.path().join("run_results.json")).expect("copy run_results");
    }
    dir
}

/// A target folder with the demo's pair.
pub fn failing_build() -> tempfile::TempDir {
    let a = demo_artifacts();
    target_with(
        Some(&a.join("manifest.json")),
        Some(&a.join("run_results.json")),
    )
}

/// A target folder with the fixture project's all-passing build.
pub fn passing_build() -> tempfile::TempDir {
    let a = fixture("build-passing");
    target_with(
        Some(&a.join("manifest.json")),
        Some(&a.join("run_results.json")),
    )
}

pub fn sha256(path: &Path) -> String {
    format!(
        "{:x}",
        Sha256::digest(std::fs::read(path).expect("read the file"))
    )
}

/// Runs `cmd` and checks its exit code, showing stderr when it is not the one expected.
pub fn expect_exit(cmd: &mut Command, code: i32) -> std::process::Output {
    let output = cmd.output().expect("the command runs");
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    output
}

/// stdout of an `--output json` run, parsed.
pub fn json_report(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Fails with the whole of stderr when `needle` is not in it.
pub fn assert_stderr_contains(output: &std::process::Output, needle: &str) {
    let err = stderr(output);
    assert!(err.contains(needle), "{needle:?} not in stderr:\n{err}");
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The demo manifest with a `"padding"` string of `len` bytes added at its end, so it spans
/// many 1 MiB chunks; `flaw_at` puts a control character (invalid JSON) that far into it.
pub fn padded_manifest(len: usize, flaw_at: Option<usize>) -> Vec<u8> {
    let manifest = std::fs::read(demo_artifacts().join("manifest.json")).unwrap();
    let end = manifest.iter().rposition(|b| *b == b'}').unwrap();
    let mut padding = vec![b'a'; len];
    if let Some(at) = flaw_at {
        padding[at] = 0x01;
    }
    let mut file = manifest[..end].to_vec();
    file.extend_from_slice(b", \"padding\": \"");
    file.extend_from_slice(&padding);
    file.extend_from_slice(b"\"}\n");
    file
}

/// Whether the machine has `program` (it answers `--version`). Tests that need one skip without
/// it, except in CI (`DBT_SECODA_REQUIRE_TOOLS`), where a missing tool is a failure.
pub fn have_tool(program: &str) -> bool {
    let found = StdCommand::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("DBT_SECODA_REQUIRE_TOOLS").is_none(),
            "{program} is required here"
        );
        eprintln!("skipped: {program} is not installed");
    }
    found
}

/// `127.0.0.1:PORT` with a port the kernel just handed out, for a peer that must be told its
/// address in advance (tinyproxy, `--health-listen` when the test must know where). Free enough:
/// nothing else on the machine asks for that port in the meantime.
pub fn free_loopback_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    format!(
        "127.0.0.1:{}",
        listener.local_addr().expect("its address").port()
    )
}
