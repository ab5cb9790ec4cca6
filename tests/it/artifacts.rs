//! Bad artifacts: each is refused with exit 3, a message naming the file, and nothing sent.

use std::path::Path;

use crate::support::*;

/// Runs an upload of `target` and checks it is refused before anything reaches Secoda; returns
/// the last stderr.
fn refused(target: &Path, expect_in_message: &[&str]) -> String {
    let sim = Simulator::start(&[]);
    let mut last = String::new();
    for wait in [true, false] {
        let mut cmd = sim.upload(target);
        if !wait {
            cmd.arg("--no-wait");
        }
        let output = cmd.output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(3),
            "stdout: {}\nstderr: {}",
            stdout(&output),
            stderr(&output)
        );
        let err = stderr(&output);
        for part in expect_in_message {
            assert!(err.contains(part), "{part:?} not in {err}");
        }
        assert!(err.contains("hint: "), "{err}");
        last = err;
    }
    let state = sim.state();
    assert_eq!(state["uploads"], serde_json::json!([]));
    assert_eq!(
        sim.requests(""),
        0,
        "nothing reaches Secoda: {}",
        state["requests"]
    );
    last
}

fn demo(file: &str) -> std::path::PathBuf {
    demo_artifacts().join(file)
}

#[test]
fn a_missing_file_is_named_with_what_to_do() {
    let target = target_with(Some(&demo("manifest.json")), None);
    refused(
        target.path(),
        &["run_results.json not found", "run dbt first"],
    );
    let target = target_with(None, Some(&demo("run_results.json")));
    refused(target.path(), &["manifest.json not found"]);
}

#[test]
fn a_pair_from_two_invocations_is_refused_with_both_ids_and_the_likely_cause() {
    // What target/ holds while a build runs: the new parse-time manifest beside the old results.
    let target = target_with(
        Some(&fixture("build-passing").join("manifest.json")),
        Some(&demo("run_results.json")),
    );
    refused(
        target.path(),
        &[
            "come from different dbt invocations",
            "0df4b965-d58b-4a53-99d7-bd4af13fec52",
            "87cda89b-966f-40a0-931b-9a6cae8c6fc1",
            "2026-11-28T07:11:12",
            "dbt parse",
        ],
    );
}

#[test]
fn truncated_files_are_refused_wherever_the_cut_is() {
    let manifest = std::fs::read(demo("manifest.json")).unwrap();
    // A cut mid-file (what a reader racing dbt's write sees), and one that happens to end in '}'
    // so only the full streaming check can tell.
    let mid = manifest.len() / 3;
    let brace = manifest[..mid].iter().rposition(|b| *b == b'}').unwrap() + 1;
    for cut in [&manifest[..mid], &manifest[..brace]] {
        let target = target_with(None, Some(&demo("run_results.json")));
        std::fs::write(target.path().join("manifest.json"), cut).unwrap();
        let sim = Simulator::start(&[]);
        let output = expect_exit(sim.upload(target.path()).arg("--no-wait"), 3);
        let err = stderr(&output);
        assert!(err.contains("manifest.json"), "{err}");
        assert!(err.contains("truncated"), "{err}");
        assert_eq!(
            sim.state()["uploads"],
            serde_json::json!([]),
            "no upload is accepted"
        );
        assert_eq!(sim.state()["triggers"], 0);
    }
}

#[test]
fn an_empty_file_is_refused() {
    let target = target_with(Some(&demo("manifest.json")), None);
    std::fs::write(target.path().join("run_results.json"), "").unwrap();
    refused(target.path(), &["run_results.json is empty (0 bytes)"]);
    // Not "0 bytes" when there are some: it holds whitespace only.
    std::fs::write(target.path().join("run_results.json"), " \n\t\n").unwrap();
    refused(
        target.path(),
        &["run_results.json is empty (4 bytes of whitespace only)"],
    );
}

#[test]
fn a_metadata_block_over_1_mib_is_named_as_such_not_as_truncated() {
    // The file ends with '}' as a complete artifact does; only its metadata block is absurd.
    let manifest = std::fs::read_to_string(demo("manifest.json")).unwrap();
    let huge = manifest.replacen(
        "\"metadata\": {",
        &format!(
            "\"metadata\": {{\"env\": {{\"BIG\": \"{}\"}}, ",
            "x".repeat(1 << 20)
        ),
        1,
    );
    let target = target_with(None, Some(&demo("run_results.json")));
    std::fs::write(target.path().join("manifest.json"), huge).unwrap();
    let message = refused(
        target.path(),
        &["manifest.json has a metadata block larger than 1 MiB"],
    );
    assert!(!message.contains("truncated"));
}

#[test]
fn non_json_and_non_dbt_files_are_refused() {
    let target = target_with(Some(&demo("manifest.json")), None);
    std::fs::write(
        target.path().join("run_results.json"),
        "version: 2\nmodels: []\n",
    )
    .unwrap();
    refused(target.path(), &["run_results.json is not complete JSON"]);
    std::fs::write(
        target.path().join("run_results.json"),
        r#"{"results": [], "metadata": {}}"#,
    )
    .unwrap();
    refused(target.path(), &["is not a dbt artifact"]);
}

#[test]
fn the_wrong_kind_of_artifact_is_refused() {
    // run_results.json given as the manifest, and sources.json (dbt source freshness) as run_results.
    let target = target_with(
        Some(&demo("run_results.json")),
        Some(&demo("run_results.json")),
    );
    refused(target.path(), &["is run_results.json, not manifest.json"]);
    let target = target_with(Some(&demo("manifest.json")), None);
    let sources = r#"{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json", "dbt_version": "1.12.6", "generated_at": "2026-11-28T07:11:40Z", "invocation_id": "87cda89b-966f-40a0-931b-9a6cae8c6fc1"}, "results": []}"#;
    std::fs::write(target.path().join("run_results.json"), sources).unwrap();
    refused(target.path(), &["is sources.json, not run_results.json"]);
}

#[test]
fn a_manifest_of_many_chunks_streams_whole_and_a_flaw_deep_inside_stops_it_before_the_end() {
    // Past the first few 1 MiB chunks the bytes are already on the wire when the flaw is read:
    // the request must still never complete, and the reading thread must not be left behind.
    let padded = |flaw: Option<usize>| padded_manifest(6 << 20, flaw);

    let target = target_with(None, Some(&demo("run_results.json")));
    let path = target.path().join("manifest.json");
    std::fs::write(&path, padded(None)).unwrap();
    let sim = Simulator::start(&[]);
    expect_exit(sim.upload(target.path()).arg("--no-wait"), 1);
    let uploads = sim.state()["uploads"].clone();
    assert_eq!(uploads[0]["manifest_sha256"], sha256(&path), "{uploads}");
    assert_eq!(
        uploads[0]["manifest_bytes"],
        std::fs::metadata(&path).unwrap().len()
    );

    std::fs::write(&path, padded(Some(4 << 20))).unwrap();
    let sim = Simulator::start(&[]);
    let output = expect_exit(sim.upload(target.path()).arg("--no-wait"), 3);
    let err = stderr(&output);
    assert!(err.contains("manifest.json"), "{err}");
    assert!(err.contains("control character"), "{err}");
    assert_eq!(sim.state()["uploads"], serde_json::json!([]));
    assert_eq!(sim.state()["triggers"], 0);
}

#[test]
fn only_regular_files_are_read_as_artifacts() {
    // A named pipe would block the open for ever; a directory, a socket or a device is never
    // what was meant. Each is refused at once, named for what it is, and nothing is sent.
    let sim = Simulator::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.json");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    let socket = dir.path().join("socket.json");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let mut cases = vec![
        (dir.path().to_path_buf(), "a directory"),
        (socket, "a socket"),
        (std::path::PathBuf::from("/dev/null"), "a character device"),
    ];
    if made.is_ok_and(|s| s.success()) {
        cases.push((fifo, "a named pipe (FIFO)"));
    } else {
        eprintln!("mkfifo is not available: the named pipe case is skipped");
    }
    let run_results = fixture("build-passing").join("run_results.json");
    for (manifest, what) in cases {
        // Refused before it is opened: a named pipe would block the open for ever.
        let output = expect_exit(
            sim.upload(dir.path())
                .arg("--manifest")
                .arg(&manifest)
                .arg("--run-results")
                .arg(&run_results),
            3,
        );
        let err = stderr(&output);
        assert!(
            err.contains(&manifest.display().to_string()) && err.contains(what),
            "{what}: {err}"
        );
        assert!(err.contains("not a regular file"), "{err}");
    }
    assert_eq!(sim.requests(""), 0, "{}", sim.state()["requests"]);
}
