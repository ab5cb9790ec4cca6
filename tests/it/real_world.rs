//! The real-world corpus (dbt 0.19 to 2.0 preview): every pair classified as its README says.
//! Read from `../shared/fixtures/real-world/` at test time (the files carry no licence to copy).

use std::collections::BTreeMap;

use crate::support::*;

struct Row {
    folder: String,
    dbt: String,
    manifest_schema: String,
    run_results_schema: String,
    ids_match: bool,
    command: String,
    tests: BTreeMap<String, u64>,
    not_passing: Vec<(String, String)>,
}

/// The README's table, one row per folder.
fn rows(readme: &str) -> Vec<Row> {
    readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<String> = line.split('|').map(|c| c.trim().to_string()).collect();
            let plain = |s: &str| s.trim_matches('`').trim_matches('*').to_string();
            let tests = if cells[11] == "-" {
                BTreeMap::new()
            } else {
                cells[11]
                    .split(", ")
                    .map(|part| {
                        let (status, n) = part.rsplit_once(' ').expect("status count");
                        (status.to_string(), n.parse().expect("a count"))
                    })
                    .collect()
            };
            let not_passing = if cells[14] == "-" {
                Vec::new()
            } else {
                cells[14]
                    .split("<br>")
                    .map(|entry| {
                        let (status, id) = entry.split_once(": ").expect("status: id");
                        (plain(status), plain(id))
                    })
                    .collect()
            };
            Row {
                folder: plain(&cells[1]),
                dbt: cells[5].clone(),
                manifest_schema: cells[6].clone(),
                run_results_schema: cells[7].clone(),
                ids_match: plain(&cells[9]) == "yes",
                command: cells[10].clone(),
                tests,
                not_passing,
            }
        })
        .collect()
}

/// The corpus folder and its README's rows, or None (with a note) when ../shared is absent.
fn corpus() -> Option<(std::path::PathBuf, Vec<Row>)> {
    let Some(shared) = shared() else {
        eprintln!("skipped: ../shared/fixtures/real-world is not beside this checkout");
        return None;
    };
    let corpus = shared.join("fixtures/real-world");
    let readme = std::fs::read_to_string(corpus.join("README.md")).expect("the corpus README");
    Some((corpus, rows(&readme)))
}

#[test]
fn every_real_world_pair_is_classified_as_its_readme_says() {
    let Some((corpus, rows)) = corpus() else {
        return;
    };
    assert_eq!(rows.len(), 16, "the README lists 16 pairs");
    for row in rows {
        let dir = corpus.join(&row.folder);
        let output = dry_run(&dir).output().unwrap();
        let report = json_report(&output);
        let name = &row.folder;
        if !row.ids_match {
            assert_eq!(
                output.status.code(),
                Some(3),
                "{name}: mismatched ids are refused"
            );
            assert!(
                stderr(&output).contains("different dbt invocations"),
                "{name}"
            );
            continue;
        }
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
        assert_eq!(report["dbt"]["version"], row.dbt, "{name}");
        assert_eq!(report["dbt"]["command"], row.command, "{name}");
        assert_eq!(
            report["dbt"]["manifest_schema"], row.manifest_schema,
            "{name}"
        );
        assert_eq!(
            report["dbt"]["run_results_schema"], row.run_results_schema,
            "{name}"
        );
        let summary = &report["test_summary"];
        let counted: BTreeMap<String, u64> =
            serde_json::from_value(summary["by_status"].clone()).unwrap();
        assert_eq!(counted, row.tests, "{name}: test results by status");
        let runs_tests = !matches!(row.command.as_str(), "generate" | "compile");
        assert_eq!(summary["has_outcomes"], runs_tests, "{name}");

        let tests = report["tests"].as_array().unwrap();
        let mut not_passing: Vec<(String, String)> = tests
            .iter()
            .filter(|t| matches!(t["status"].as_str(), Some("fail" | "warn" | "error")))
            .map(|t| {
                (
                    t["status"].as_str().unwrap().to_string(),
                    t["unique_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut expected = row.not_passing.clone();
        not_passing.sort();
        expected.sort();
        assert_eq!(
            not_passing, expected,
            "{name}: tests that failed, warned or errored"
        );
        for test in tests {
            let file = test["file"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {} has no file", test["unique_id"]));
            assert!(
                !file.contains('\\'),
                "{name}: {file} keeps Windows separators"
            );
            assert!(
                test["entity"].is_string(),
                "{name}: {} has no tested node",
                test["unique_id"]
            );
        }
        if !runs_tests {
            assert!(
                tests.is_empty(),
                "{name}: compiled tests are not reported as outcomes"
            );
        }
    }
}

#[test]
fn windows_paths_are_reported_with_forward_slashes() {
    let Some(shared) = shared() else { return };
    let dir = shared.join(
        "fixtures/real-world/Nikhil201716__05-AI-Augmented-Data-Quality-Validation-Framework",
    );
    let output = dry_run(&dir).output().unwrap();
    let report = json_report(&output);
    let singular = report["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["unique_id"] == "test.data_quality_platform.assert_no_extreme_line_totals")
        .expect("the singular failing test");
    assert_eq!(singular["file"], "tests/assert_no_extreme_line_totals.sql");
}

#[test]
fn every_matching_real_world_pair_uploads_byte_for_byte() {
    let Some((corpus, rows)) = corpus() else {
        return;
    };
    let sim = Simulator::start(&["--sync-seconds", "0.05"]);
    let mut uploaded = 0;
    for row in rows.into_iter().filter(|r| r.ids_match) {
        let dir = corpus.join(&row.folder);
        let output = sim.upload(&dir).arg("--no-wait").output().unwrap();
        let name = &row.folder;
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{name}: exit {:?}: {}",
            output.status.code(),
            stderr(&output)
        );
        let state = sim.state();
        let last = &state["uploads"][uploaded];
        uploaded += 1;
        assert_eq!(
            last["manifest_sha256"],
            sha256(&dir.join("manifest.json")),
            "{name}"
        );
        assert_eq!(
            last["run_results_sha256"],
            sha256(&dir.join("run_results.json")),
            "{name}"
        );
    }
    assert!(uploaded >= 10, "only {uploaded} pairs uploaded");
}
