//! What leaves the process: no network call to anyone but the configured API root (every
//! command under strace's connect trace), and the key in no output, report, file or metric.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A peer a traced process connected to: `AF_INET 127.0.0.1:8080`, `AF_UNIX /run/nscd/socket`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Peer {
    family: String,
    address: String,
}

/// The peers in strace's `-e trace=connect` output (AF_UNSPEC, which only dissolves a UDP
/// socket's association, is no peer).
fn peers(trace: &str) -> Vec<Peer> {
    let between = |line: &str, start: &str, end: char| -> Option<String> {
        let from = line.find(start)? + start.len();
        Some(line[from..].split(end).next()?.to_string())
    };
    let mut peers: Vec<Peer> = trace
        .lines()
        .filter(|line| line.contains("connect("))
        .filter_map(|line| {
            let family =
                between(line, "sa_family=", ',').or_else(|| between(line, "sa_family=", '}'))?;
            let address = match family.as_str() {
                "AF_UNSPEC" => return None,
                "AF_INET" => format!(
                    "{}:{}",
                    between(line, "inet_addr(\"", '"')?,
                    between(line, "htons(", ')')?
                ),
                "AF_INET6" => format!(
                    "[{}]:{}",
                    between(line, "inet_pton(AF_INET6, \"", '"')?,
                    between(line, "htons(", ')')?
                ),
                "AF_UNIX" => between(line, "sun_path=\"", '"').unwrap_or_default(),
                _ => line.to_string(),
            };
            Some(Peer { family, address })
        })
        .collect();
    peers.sort();
    peers.dedup();
    peers
}

/// Runs `cmd` under `strace -f -e trace=connect`; its exit code and the peers it connected to.
fn traced(cmd: &mut StdCommand) -> (Option<i32>, Vec<Peer>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("connect.trace");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut strace = clean_command("strace");
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => strace.env(key, value),
            None => strace.env_remove(key),
        };
    }
    let status = strace
        .args(["-f", "-qq", "-e", "trace=connect", "-o"])
        .arg(&log)
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let trace = std::fs::read_to_string(&log).unwrap_or_default();
    (status.code(), peers(&trace))
}

/// The simulator's address as strace shows a peer.
fn peer_of(url: &str) -> Peer {
    Peer {
        family: "AF_INET".into(),
        address: url.trim_start_matches("http://").to_string(),
    }
}

/// Whether a connect is the C library's name-service cache (a local socket, not the network).
fn is_local_cache(peer: &Peer) -> bool {
    peer.family == "AF_UNIX" && peer.address.ends_with("nscd/socket")
}

#[test]
fn no_command_connects_to_anything_but_the_api_root() {
    if !have_tool("strace") {
        return;
    }
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let dir = tempfile::tempdir().unwrap();
    let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
    let command = |args: &[&str]| {
        let mut cmd = clean_command(&exe);
        cmd.env("SECODA_API_KEY", KEY)
            .env("SECODA_API_URL", &sim.url)
            .env("SECODA_INTEGRATION_ID", INTEGRATION)
            .env("DBT_TARGET_PATH", target.path())
            .args(args);
        cmd
    };
    let state = dir.path().join("watch-state.json");
    let health = free_loopback_address();
    let cases: Vec<(&str, StdCommand, i32)> = vec![
        (
            "upload",
            command(&["upload", "--poll-interval", "100ms"]),
            1,
        ),
        (
            "watch --once",
            command(&[
                "watch",
                "--once",
                "--no-wait",
                "--state-file",
                state.to_str().unwrap(),
                "--health-listen",
                &health,
            ]),
            1,
        ),
        ("doctor", command(&["doctor"]), 0),
        ("integrations list", command(&["integrations", "list"]), 0),
        (
            "slack conversations",
            command(&["slack", "conversations"]),
            0,
        ),
    ];
    let root = peer_of(&sim.url);
    for (name, mut cmd, code) in cases {
        let (exit, peers) = traced(&mut cmd);
        assert_eq!(exit, Some(code), "{name}");
        let others: Vec<&Peer> = peers
            .iter()
            .filter(|p| **p != root && !is_local_cache(p))
            .collect();
        assert!(others.is_empty(), "{name} connected to {others:?}");
        assert!(
            peers.contains(&root),
            "{name} never reached the API: {peers:?}"
        );
        println!("{name}: connected only to {}", root.address);
    }

    // Nothing at all: --version, a dry run (the default region's API is never called), help.
    let mut dry = clean_command(&exe);
    dry.env("SECODA_API_KEY", KEY).args([
        "upload",
        "--dry-run",
        "--integration-id",
        INTEGRATION,
        "--target-dir",
        target.path().to_str().unwrap(),
    ]);
    let mut version = clean_command(&exe);
    version.arg("--version");
    let mut help = clean_command(&exe);
    help.args(["upload", "--help"]);
    for (name, mut cmd) in [
        ("--version", version),
        ("upload --dry-run", dry),
        ("--help", help),
    ] {
        let (exit, peers) = traced(&mut cmd);
        assert_eq!(exit, Some(0), "{name}");
        assert!(
            peers.iter().all(is_local_cache),
            "{name} connected to {peers:?}"
        );
    }

    // demo: its own simulator on a loopback port, and nothing else.
    let mut demo = clean_command(&exe);
    demo.arg("demo");
    let (exit, peers) = traced(&mut demo);
    assert_eq!(exit, Some(0), "{peers:?}");
    let outside: Vec<&Peer> = peers
        .iter()
        .filter(|p| !is_local_cache(p))
        .filter(|p| !(p.family == "AF_INET" && p.address.starts_with("127.0.0.1:")))
        .collect();
    assert!(outside.is_empty(), "demo connected to {outside:?}");
    assert_eq!(
        peers.iter().filter(|p| p.family == "AF_INET").count(),
        1,
        "one port, the demo's simulator: {peers:?}"
    );
}

#[test]
fn strace_lines_are_read_as_peers() {
    let trace = "12 connect(9, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = -1 EINPROGRESS\n\
                 13 connect(3, {sa_family=AF_UNSPEC, sa_data=\"\"}, 16) = 0\n\
                 14 connect(4, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, \"::1\", &sin6_addr), sin6_scope_id=0}, 28) = 0\n\
                 15 connect(5, {sa_family=AF_UNIX, sun_path=\"/var/run/nscd/socket\"}, 110) = -1 ENOENT\n";
    let found = peers(trace);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found.contains(&peer_of("http://127.0.0.1:8080")));
    assert!(found.iter().any(|p| p.address == "[::1]:443"));
    assert!(found.iter().any(is_local_cache));
}

/// The key of the test below: accepted by its simulator, so every request carries it.
const SECRET: &str = "sk-live-LEAK-CANARY-90210";

/// Every place a run writes to, read back.
struct Outputs {
    texts: Vec<(String, String)>,
}

impl Outputs {
    fn new() -> Outputs {
        Outputs { texts: Vec::new() }
    }

    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.texts.push((what.into(), text.into()));
    }

    /// Every file under `dir`, by name.
    fn add_files(&mut self, what: &str, dir: &Path) {
        for entry in walk(dir) {
            let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
            self.add(format!("{what} {}", entry.display()), text);
        }
    }

    fn add_run(&mut self, what: &str, output: &std::process::Output) {
        self.add(format!("{what}: stdout"), stdout(output));
        self.add(format!("{what}: stderr"), stderr(output));
    }

    /// The key is nowhere but in a runner's `::add-mask::` line; returns how many places were read.
    fn assert_no_key(&self) -> usize {
        for (what, text) in &self.texts {
            for line in text.lines() {
                if line.starts_with("::add-mask::") {
                    continue;
                }
                assert!(!line.contains(SECRET), "the key is in {what}: {line}");
                assert!(
                    !line.contains("LEAK-CANARY"),
                    "part of the key is in {what}: {line}"
                );
            }
        }
        self.texts.len()
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A GitHub runner's files for one step, under `dir`.
fn runner_env(cmd: &mut assert_cmd::Command, dir: &Path) {
    let temp = dir.join("runner_temp");
    std::fs::create_dir_all(&temp).unwrap();
    cmd.env("GITHUB_ACTIONS", "true")
        .env("CI", "true")
        .env("GITHUB_STEP_SUMMARY", dir.join("step_summary.md"))
        .env("GITHUB_OUTPUT", dir.join("output"))
        .env("RUNNER_TEMP", temp);
}

fn http_get(host: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn the_key_is_in_no_output_report_file_or_metric() {
    // Through 503s (retried), at -vvv, text and JSON logs and reports, on a GitHub runner with
    // JUnit: every byte written anywhere is read back. Then a 401 (a key Secoda refuses), the
    // listing commands, doctor, and watch with its state file and /metrics.
    let sim = Simulator::start(&[
        "--api-key",
        SECRET,
        "--fail-requests",
        "3",
        "--fail-status",
        "503",
    ]);
    let refusing = Simulator::start(&[]);
    let target = failing_build();
    let csv = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        csv.path(),
        "database,schema,name,col_name\nshop,sales,orders,id\n",
    )
    .unwrap();
    let csv_file = csv.path().to_str().unwrap();
    let mut seen = Outputs::new();
    let secret_cli = |sim: &Simulator, args: &[&str]| {
        let mut cmd = bin();
        cmd.env("SECODA_API_KEY", SECRET)
            .env("SECODA_API_URL", &sim.url)
            .args(args);
        cmd
    };
    for log_format in ["text", "json"] {
        for output_format in ["text", "json"] {
            for (sim, code) in [(&sim, 1), (&refusing, 4)] {
                let dir = tempfile::tempdir().unwrap();
                let mut cmd = secret_cli(
                    sim,
                    &[
                        "upload",
                        "-vvv",
                        "--log-format",
                        log_format,
                        "--output",
                        output_format,
                        "--integration-id",
                        INTEGRATION,
                        "--poll-interval",
                        "100ms",
                        "--junit",
                    ],
                );
                cmd.arg(dir.path().join("dbt-tests.xml"))
                    .arg("--target-dir")
                    .arg(target.path());
                runner_env(&mut cmd, dir.path());
                let output = expect_exit(&mut cmd, code);
                // The runner is told to mask the key before dbt-secoda prints anything (the
                // async runtime's own trace line may come first at -vvv).
                let err = stderr(&output);
                let mask = err
                    .lines()
                    .position(|l| l == format!("::add-mask::{SECRET}"))
                    .unwrap_or_else(|| panic!("no mask line: {err}"));
                assert!(
                    err.lines().take(mask).all(|l| l.contains("mio::")),
                    "printed before the mask: {err}"
                );
                let what = format!("upload ({log_format} logs, {output_format}, exit {code})");
                seen.add_run(&what, &output);
                seen.add_files(&what, dir.path());
            }
            for args in [
                vec!["doctor", "--integration-id", INTEGRATION],
                vec!["integrations", "list"],
                vec!["integrations", "get", INTEGRATION],
                vec!["integrations", "create", "--name", "leak check"],
                vec!["integrations", "import-csv", INTEGRATION, csv_file],
                vec![
                    "integrations",
                    "delete",
                    "--yes",
                    "00000000-0000-4000-8000-000000000000",
                ],
                vec!["slack", "conversations"],
            ] {
                let mut all = args.clone();
                all.extend([
                    "-vvv",
                    "--log-format",
                    log_format,
                    "--output",
                    output_format,
                ]);
                let mut cmd = secret_cli(&sim, &all);
                if args[0] == "doctor" {
                    cmd.arg("--target-dir").arg(target.path());
                }
                let output = cmd.output().unwrap();
                seen.add_run(&format!("{all:?}"), &output);
                let output = secret_cli(&refusing, &all).output().unwrap();
                assert_ne!(output.status.code(), Some(0), "{all:?} with a refused key");
                seen.add_run(&format!("{all:?} (refused)"), &output);
            }
        }
    }

    // watch: its log, the state file and /metrics after an upload.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/watch.json");
    let health = free_loopback_address();
    let uploads_before = sim.state()["uploads"].as_array().unwrap().len();
    let mut watcher = clean_command(assert_cmd::cargo::cargo_bin("dbt-secoda"))
        .env("SECODA_API_KEY", SECRET)
        .args([
            "watch",
            "-vvv",
            "--api-url",
            &sim.url,
            "--integration-id",
            INTEGRATION,
            "--poll-interval",
            "100ms",
            "--health-listen",
            &health,
        ])
        .arg("--target-dir")
        .arg(target.path())
        .arg("--state-file")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while sim.state()["uploads"].as_array().unwrap().len() == uploads_before || !state.exists() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = watcher.kill();
            panic!(
                "watch never uploaded: {}",
                stderr(&watcher.wait_with_output().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = http_get(&health, "/metrics");
    seen.add_files("watch state", dir.path());
    let _ = StdCommand::new("kill")
        .args(["-TERM", &watcher.id().to_string()])
        .status();
    let output = watcher.wait_with_output().unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    seen.add("/metrics", metrics);
    seen.add_run("watch", &output);

    let places = seen.assert_no_key();
    println!("the key was in none of {places} outputs, reports, files and metrics");
}
