//! The file system under `watch`: a state folder that cannot be written or is full, and target
//! folders deleted or swapped while it watches. Driven through the flags the watcher keeps
//! (`--once`, `--state-file`, `--target-dir`); the outcome is read from the simulator.

use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn uploads(sim: &Simulator) -> Vec<serde_json::Value> {
    sim.state()["uploads"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `watch ARGS` against `sim` for `target`, recording its state in `state`.
fn watch(sim: &Simulator, target: &Path, state: &Path, extra: &[&str]) -> StdCommand {
    let mut cmd = clean_command(assert_cmd::cargo::cargo_bin("dbt-secoda"));
    cmd.env("SECODA_API_KEY", KEY)
        .args(["watch", "--no-wait", "--api-url", &sim.url])
        .args(["--integration-id", INTEGRATION, "--scan-interval", "100ms"])
        .arg("--target-dir")
        .arg(target)
        .arg("--state-file")
        .arg(state)
        .args(extra);
    cmd
}

fn copy_pair(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["manifest.json", "run_results.json"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

#[test]
fn a_state_folder_that_cannot_be_written_costs_a_warning_not_the_upload() {
    // The state file's folder is a file: nothing can be read or written there.
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let target = failing_build();
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "").unwrap();
    let state = blocker.join("state.json");
    let output = expect_exit(
        &mut assert_cmd::Command::from_std(watch(&sim, target.path(), &state, &["--once"])),
        1,
    );
    assert_stderr_contains(&output, "WARN");
    assert_stderr_contains(&output, &state.display().to_string());
    assert_eq!(uploads(&sim).len(), 1);
}

#[test]
fn a_full_state_folder_costs_a_warning_not_the_upload() {
    // A tmpfs of 8 KiB, filled, in a mount namespace of the watcher's own (root and util-linux
    // unshare needed; CI has both).
    if !have_tool("unshare") {
        return;
    }
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let target = failing_build();
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
    let script = "mount -t tmpfs -o size=8k tmpfs \"$1\" || exit 77; \
                  dd if=/dev/zero of=\"$1/fill\" bs=1k count=64 2>/dev/null; shift; exec \"$@\"";
    let mut cmd = clean_command("unshare");
    cmd.args(["-m", "sh", "-c", script, "sh"])
        .arg(&full)
        .arg(&exe)
        .env("SECODA_API_KEY", KEY)
        .args(["watch", "--once", "--no-wait", "--api-url", &sim.url])
        .args(["--integration-id", INTEGRATION, "--target-dir"])
        .arg(target.path())
        .arg("--state-file")
        .arg(full.join("state.json"));
    let output = cmd.output().unwrap();
    // 77: the mount failed; "unshare:": no mount namespace for this user.
    if output.status.code() == Some(77) || stderr(&output).starts_with("unshare:") {
        assert!(
            std::env::var_os("DBT_SECODA_REQUIRE_TOOLS").is_none(),
            "a tmpfs cannot be mounted here: {}",
            stderr(&output)
        );
        eprintln!("skipped: a tmpfs cannot be mounted here (not root?)");
        return;
    }
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_stderr_contains(&output, "No space left on device");
    assert_eq!(uploads(&sim).len(), 1);
}

/// A watcher running until dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the simulator holds an upload of invocation `id`.
fn wait_for_invocation(sim: &Simulator, id: &str) {
    let started = Instant::now();
    while !uploads(sim).iter().any(|u| u["invocation_id"] == id) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "invocation {id} was never uploaded: {:?}",
            uploads(sim)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn invocation_of(pair: &Path) -> String {
    let text = std::fs::read_to_string(pair.join("run_results.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["metadata"]["invocation_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_target_folder_swapped_or_deleted_while_watched_is_followed() {
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let state = dir.path().join("state.json");
    let (first, second, third) = (demo_artifacts(), fixture("build-passing"), fixture("test"));
    copy_pair(&first, &target);
    let _watcher = Running(
        watch(&sim, &target, &state, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_invocation(&sim, &invocation_of(&first));

    // Swapped: the folder is renamed away and another takes its name (a deploy's symlink flip,
    // a CI cache restore).
    let staged = dir.path().join("target.new");
    copy_pair(&second, &staged);
    std::fs::rename(&target, dir.path().join("target.old")).unwrap();
    std::fs::rename(&staged, &target).unwrap();
    wait_for_invocation(&sim, &invocation_of(&second));

    // Deleted (dbt clean), then written again by the next run.
    std::fs::remove_dir_all(&target).unwrap();
    copy_pair(&third, &target);
    wait_for_invocation(&sim, &invocation_of(&third));
    assert_eq!(uploads(&sim).len(), 3, "each pair once");
}
