//! The upload pipeline, end to end: what reaches Secoda, what is reported, which exit code.

use crate::support::*;

#[test]
fn a_failing_build_is_uploaded_byte_for_byte_and_exits_1() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let output = expect_exit(sim.upload(target.path()).args(["--output", "json"]), 1);
    let report = json_report(&output);

    let state = sim.state();
    let uploads = state["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 1);
    let upload = &uploads[0];
    assert_eq!(upload["integration_id"], INTEGRATION);
    assert_eq!(
        upload["manifest_sha256"],
        sha256(&target.path().join("manifest.json"))
    );
    assert_eq!(
        upload["run_results_sha256"],
        sha256(&target.path().join("run_results.json"))
    );
    assert_eq!(
        upload["manifest_bytes"],
        std::fs::metadata(target.path().join("manifest.json"))
            .unwrap()
            .len()
    );
    assert_eq!(
        upload["invocation_id"],
        "87cda89b-966f-40a0-931b-9a6cae8c6fc1"
    );
    // One request with a known length (not chunked), both parts named and typed as documented.
    let files =
        upload["manifest_bytes"].as_u64().unwrap() + upload["run_results_bytes"].as_u64().unwrap();
    let length = upload["content_length"].as_u64().expect("a Content-Length");
    assert!(
        length > files && length < files + 1024,
        "{length} for {files} bytes of files"
    );
    assert_eq!(
        upload["user_agent"],
        format!("dbt-secoda/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        upload["parts"],
        serde_json::json!([
            {"name": "run_results", "file_name": "run_results.json", "content_type": "application/json"},
            {"name": "manifest", "file_name": "manifest.json", "content_type": "application/json"},
        ])
    );
    assert_eq!(state["triggers"], 1);

    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["result"], "tests_failed");
    assert_eq!(
        report["invocation_id"],
        "87cda89b-966f-40a0-931b-9a6cae8c6fc1"
    );
    assert_eq!(report["dbt"]["command"], "build");
    assert_eq!(report["uploaded"]["attempts"], 1);
    assert_eq!(
        report["secoda"]["failing"],
        serde_json::json!([
            "model.fernleaf.dim_customers",
            "model.fernleaf.rpt_revenue_by_region"
        ])
    );
    assert_eq!(
        report["secoda"]["warning"],
        serde_json::json!(["model.fernleaf.stg_shop__customers"])
    );
    assert_eq!(report["secoda"]["settled_by"], "changed");

    let tests = report["tests"].as_array().unwrap();
    let by_status = |status: &str| tests.iter().filter(|t| t["status"] == status).count();
    assert_eq!(
        (
            by_status("fail"),
            by_status("error"),
            by_status("warn"),
            by_status("skipped")
        ),
        (3, 1, 2, 3)
    );
    let singular = tests
        .iter()
        .find(|t| {
            t["unique_id"] == "test.fernleaf.assert_no_region_month_with_negative_net_revenue"
        })
        .unwrap();
    assert_eq!(
        singular["file"],
        "tests/assert_no_region_month_with_negative_net_revenue.sql"
    );
    assert_eq!(singular["failures"], 1);
    assert_eq!(
        singular["message"],
        "Got 1 result, configured to fail if != 0"
    );
    let erroring = tests.iter().find(|t| t["status"] == "error").unwrap();
    assert_eq!(erroring["file"], "models/marts/_marts.yml");
    assert!(
        erroring["message"]
            .as_str()
            .unwrap()
            .contains("Binder Error")
    );
    assert_eq!(report["test_summary"]["failing"], 4);
    assert!(
        report["disagreements"].is_null(),
        "Secoda and the local results agree: {}",
        report["disagreements"]
    );
}

#[test]
fn a_failure_only_secoda_reports_fails_the_run_and_the_disagreement_is_reported() {
    // A sync shorter than one poll: a passing build's answer is this run's at the first poll.
    // (A longer sync would leave the previous answer, "nothing failing", which this run's
    // results explain: the rule would take it, docs/settle.md.)
    let secoda_says_failing = || {
        Simulator::start(&[
            "--sync-seconds",
            "0.05",
            "--fixed-answer",
            r#"{"failing": ["model.fernleaf.dim_customers"], "warning": []}"#,
        ])
    };
    let sim = secoda_says_failing();
    let target = passing_build();
    let output = expect_exit(sim.upload(target.path()).args(["--output", "json"]), 1);
    let report = json_report(&output);
    assert_eq!(
        report["test_summary"]["failing"], 0,
        "all tests passed locally"
    );
    assert_eq!(
        report["disagreements"]["failing_only_in_secoda"],
        serde_json::json!(["model.fernleaf.dim_customers"]),
        "{}",
        report["disagreements"]
    );
    assert_eq!(
        report["disagreements"]["failing_only_in_local"],
        serde_json::json!([])
    );

    // The same for people: the reason and the disagreement, on stdout. (A fresh simulator: a
    // second sync would leave the same answer, which this run could not tell from a stale one.)
    let sim = secoda_says_failing();
    let output = expect_exit(&mut sim.upload(target.path()), 1);
    let text = stdout(&output);
    assert!(
        text.contains("Secoda lists 1 entity with failing tests"),
        "{text}"
    );
    assert!(text.contains("failing in Secoda only"), "{text}");
}

#[test]
fn a_failure_secoda_does_not_report_still_fails_the_run() {
    let sim = Simulator::start(&[
        "--sync-seconds",
        "0.2",
        "--fixed-answer",
        r#"{"failing": ["model.fernleaf.stg_shop__orders"], "warning": []}"#,
    ]);
    let target = failing_build();
    let output = expect_exit(sim.upload(target.path()).args(["--output", "json"]), 1);
    let report = json_report(&output);
    assert_eq!(
        report["secoda"]["failing"],
        serde_json::json!(["model.fernleaf.stg_shop__orders"])
    );
    let disagreements = &report["disagreements"];
    let local_only = disagreements["failing_only_in_local"].as_array().unwrap();
    assert_eq!(local_only.len(), 2, "{disagreements}");
    assert!(
        !local_only.contains(&serde_json::json!("model.fernleaf.stg_shop__orders")),
        "{disagreements}"
    );
    assert_eq!(
        disagreements["failing_only_in_secoda"],
        serde_json::json!(["model.fernleaf.stg_shop__orders"])
    );
}

#[test]
fn a_passing_build_exits_0_with_a_readable_report() {
    let sim = Simulator::start(&[]);
    let target = passing_build();
    let output = expect_exit(&mut sim.upload(target.path()), 0);
    let text = stdout(&output);
    assert!(text.contains("33 pass"), "{text}");
    assert!(
        text.contains("no entities with failing or warning tests"),
        "{text}"
    );
    assert!(text.contains("OK (exit 0)"), "{text}");
    assert_eq!(sim.state()["uploads"].as_array().unwrap().len(), 1);
}

#[test]
fn the_nodes_beside_the_tests_are_counted_in_words_that_agree() {
    // The passing build, with one model left beside its tests and its seeds dropped.
    let passing = fixture("build-passing");
    let mut results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(passing.join("run_results.json")).unwrap()).unwrap();
    let mut models = 0;
    results["results"].as_array_mut().unwrap().retain(|r| {
        let id = r["unique_id"].as_str().unwrap();
        let model = id.starts_with("model.");
        models += u32::from(model);
        id.starts_with("test.") || id.starts_with("unit_test.") || (model && models == 1)
    });
    // dbt's own order: the metadata block first.
    let mut rest = results.as_object().unwrap().clone();
    let metadata = rest.remove("metadata").unwrap();
    let body = serde_json::to_string(&rest).unwrap();
    let target = target_with(Some(&passing.join("manifest.json")), None);
    std::fs::write(
        target.path().join("run_results.json"),
        format!("{{\"metadata\": {metadata}, {}", &body[1..]),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.env("SECODA_API_KEY", KEY)
        .args(["upload", "--dry-run", "--integration-id", INTEGRATION])
        .arg("--target-dir")
        .arg(target.path());
    let text = stdout(&expect_exit(&mut cmd, 0));
    assert!(text.contains("(and 1 other node)\n"), "{text}");
}

#[test]
fn fail_on_decides_what_fails_the_run() {
    let sim = Simulator::start(&[]);
    // `dbt test` fixture: 3 fail, 1 error, 2 warn.
    let t = fixture("test");
    let target = target_with(
        Some(&t.join("manifest.json")),
        Some(&t.join("run_results.json")),
    );
    let code = |fail_on: &str| {
        sim.upload(target.path())
            .args(["--no-wait", "--fail-on", fail_on])
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(code("error"), Some(1));
    assert_eq!(code("warn"), Some(1));
    assert_eq!(code("never"), Some(0));

    // A run with only warnings fails with --fail-on warn and passes with error: keep the two
    // warning tests of `dbt test` and mark the failing ones as passed.
    let rr = std::fs::read_to_string(t.join("run_results.json")).unwrap();
    let only_warn = rr
        .replace("\"status\": \"fail\"", "\"status\": \"pass\"")
        .replace("\"status\": \"error\"", "\"status\": \"pass\"");
    std::fs::write(target.path().join("run_results.json"), only_warn).unwrap();
    assert_eq!(code("error"), Some(0));
    assert_eq!(code("warn"), Some(1));
}

#[test]
fn no_wait_lets_the_local_results_decide_without_polling() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let output = sim
        .upload(target.path())
        .args(["--no-wait", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report = json_report(&output);
    assert!(report["secoda"].is_null());
    assert_eq!(report["not_waited"], "no_wait");
    assert_eq!(
        sim.requests(&format!(
            "/api/v1/integration/dbt/{INTEGRATION}/failing_tests/"
        )),
        1,
        "the check of the key and integration before the upload; no polling"
    );
    assert_eq!(sim.state()["triggers"], 1);
}

#[test]
fn runs_without_test_outcomes_never_claim_tests_passed() {
    let sim = Simulator::start(&[]);
    for set in ["compile", "run-operation"] {
        let f = fixture(set);
        let target = target_with(
            Some(&f.join("manifest.json")),
            Some(&f.join("run_results.json")),
        );
        let output = sim
            .upload(target.path())
            .args(["--no-wait"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{set}: {}", stderr(&output));
        let text = stdout(&output);
        assert!(text.contains("writes no test outcomes"), "{set}: {text}");
        assert!(!text.contains(" pass"), "{set}: {text}");
        let json = sim
            .upload(target.path())
            .args(["--no-wait", "--output", "json"])
            .output()
            .unwrap();
        let report = json_report(&json);
        assert_eq!(report["test_summary"]["has_outcomes"], false, "{set}");
        assert_eq!(report["tests"], serde_json::json!([]), "{set}");
    }
}

#[test]
fn dry_run_checks_everything_and_sends_nothing() {
    let sim = Simulator::start(&[]);
    let target = failing_build();
    let output = expect_exit(
        sim.upload(target.path())
            .args(["--dry-run", "--output", "json"]),
        0,
    );
    let report = json_report(&output);
    assert_eq!(report["result"], "dry_run");
    assert_eq!(
        report["plan"]["manifest"]["sha256"],
        sha256(&target.path().join("manifest.json"))
    );
    assert_eq!(
        report["plan"]["run_results"]["sha256"],
        sha256(&target.path().join("run_results.json"))
    );
    assert_eq!(report["plan"]["manifest"]["bytes"], 776_465);
    assert_eq!(
        report["plan"]["upload"],
        format!(
            "POST {}/api/v1/integration/dbt/{INTEGRATION}/upload_artifacts/",
            sim.url
        )
    );
    assert_eq!(report["tests"].as_array().unwrap().len(), 9);
    assert_eq!(sim.requests(""), 0, "a dry run sends nothing");

    let text = sim.upload(target.path()).arg("--dry-run").output().unwrap();
    assert!(stdout(&text).contains("nothing sent (--dry-run)"));
}

#[test]
fn the_target_folder_comes_from_the_project_and_files_can_be_named() {
    let sim = Simulator::start(&[]);
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("dbt_project.yml"),
        "name: fernleaf\ntarget-path: \"out/dbt\"\n",
    )
    .unwrap();
    let target = project.path().join("out/dbt");
    std::fs::create_dir_all(&target).unwrap();
    for f in ["manifest.json", "run_results.json"] {
        std::fs::copy(demo_artifacts().join(f), target.join(f)).unwrap();
    }
    let mut cmd = bin();
    cmd.env("SECODA_API_KEY", KEY)
        .env("SECODA_API_URL", &sim.url)
        .env("SECODA_INTEGRATION_ID", INTEGRATION)
        .env("DBT_PROJECT_DIR", project.path())
        .args(["upload", "--no-wait"]);
    expect_exit(&mut cmd, 1);

    // --manifest and --run-results point at files anywhere.
    let elsewhere = tempfile::tempdir().unwrap();
    expect_exit(
        sim.upload(elsewhere.path())
            .arg("--manifest")
            .arg(target.join("manifest.json"))
            .arg("--run-results")
            .arg(target.join("run_results.json"))
            .arg("--no-wait"),
        1,
    );
    assert_eq!(sim.state()["uploads"].as_array().unwrap().len(), 2);
}

#[test]
fn the_demo_runs_the_whole_pipeline() {
    let output = expect_exit(bin().args(["demo", "--output", "json"]), 0);
    let report = json_report(&output);
    assert_eq!(
        report["exit_code"], 1,
        "the demo's upload fails on the fixture's failing tests"
    );
    assert_eq!(report["trigger"]["conflicts"], 1);
    assert_eq!(report["secoda"]["settled_by"], "changed");
    assert!(
        stderr(&output).contains("409"),
        "the demo shows the wait for a running sync"
    );
}
