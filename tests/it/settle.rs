//! The settle rule against the simulator's sync model: a stale answer is never taken as this run's.

use crate::support::*;

#[test]
fn a_slow_sync_does_not_pass_off_the_previous_answer() {
    // The previous sync's answer: nothing failing (a passing build). Then a failing build whose
    // sync takes far longer than the first polls: they still see "nothing failing".
    let sim = Simulator::start(&["--sync-seconds", "2"]);
    let passing = passing_build();
    expect_exit(&mut sim.upload(passing.path()), 0);

    let failing = failing_build();
    let output = expect_exit(
        sim.upload(failing.path()).args(["--output", "json", "-v"]),
        1,
    );
    let report = json_report(&output);
    let answer = &report["secoda"];
    assert_eq!(answer["settled_by"], "changed");
    assert_eq!(answer["before_sync"]["failing"], serde_json::json!([]));
    assert_eq!(answer["failing"].as_array().unwrap().len(), 2, "{answer}");
    assert!(
        answer["polls"].as_u64().unwrap() >= 10,
        "2 s of sync at 100 ms polls: {answer}"
    );
    assert!(answer["waited"].as_f64().unwrap() >= 1.8, "{answer}");
}

#[test]
fn a_sync_waited_out_at_the_trigger_is_not_taken_for_this_runs() {
    // Another upload's sync is running (a failing build's) when this run reads Secoda's answer
    // and uploads. Its trigger waits that sync out, and the sync's end changes the answer: to the
    // other run's result, which must not end this run's wait.
    let sim = Simulator::start(&["--sync-seconds", "2"]);
    let failing = failing_build();
    expect_exit(sim.upload(failing.path()).arg("--no-wait"), 1);

    let passing = passing_build();
    let output = expect_exit(sim.upload(passing.path()).args(["--output", "json"]), 0);
    let report = json_report(&output);
    let answer = &report["secoda"];
    assert_eq!(answer["failing"], serde_json::json!([]), "{answer}");
    assert_eq!(answer["warning"], serde_json::json!([]), "{answer}");
    assert_eq!(
        answer["before_sync"]["failing"].as_array().unwrap().len(),
        2,
        "the other run's result is this run's baseline: {answer}"
    );
    assert!(
        report["trigger"]["conflicts"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(
        answer["waited"].as_f64().unwrap() >= 1.5,
        "this run's own 2 s sync: {answer}"
    );
}

#[test]
fn an_unchanged_answer_settles_when_this_run_predicts_it() {
    // The same failing build twice: Secoda's answer does not change, and this run predicts it.
    let sim = Simulator::start(&["--sync-seconds", "5"]);
    let target = failing_build();
    expect_exit(&mut sim.upload(target.path()), 1);
    let second = sim
        .upload(target.path())
        .args(["--output", "json"])
        .output()
        .unwrap();
    let report = json_report(&second);
    assert_eq!(report["secoda"]["settled_by"], "expected");
    assert!(
        report["secoda"]["waited"].as_f64().unwrap() < 2.0,
        "no need to wait for the 5 s sync"
    );
}

#[test]
fn an_answer_that_never_comes_times_out_with_exit_5() {
    // The previous answer is a failing build's (a 0.2 s sync); this run passes, and its own sync
    // (30 s) outlasts the wait: the stale answer contradicts this run and never changes.
    let sim = Simulator::start(&["--sync-seconds", "0.2,30"]);
    let failing = failing_build();
    expect_exit(&mut sim.upload(failing.path()), 1);
    let passing = passing_build();
    let output = expect_exit(
        sim.upload(passing.path())
            .args(["--wait-timeout", "1s", "--output", "json"]),
        5,
    );
    let report = json_report(&output);
    assert_eq!(
        report["trigger"]["conflicts"], 0,
        "the exit 5 is the wait's, not the trigger's: {report}"
    );
    let message = report["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("did not settle within") && message.contains("still the one from before"),
        "{message}"
    );
}

#[test]
fn the_wait_times_out_when_the_answer_stays_stale() {
    let sim = Simulator::start(&["--sync-seconds", "30"]);
    let failing = failing_build();
    let output = expect_exit(
        sim.upload(failing.path())
            .args(["--wait-timeout", "1500ms", "--output", "json"]),
        5,
    );
    let report = json_report(&output);
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still the one from before this run's sync")
    );
    assert_eq!(
        report["test_summary"]["failing"], 4,
        "the local results are still reported"
    );
}
