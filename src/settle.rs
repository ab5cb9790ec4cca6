//! When Secoda's failing-tests answer can be taken as this run's result.
//!
//! Secoda has no sync-status endpoint, `failing_tests/` keeps answering the previous sync's
//! result while a new sync runs, and how it names entities is not documented. The rule
//! (docs/settle.md has the table of cases):
//!
//! * a baseline answer is read as this run's sync starts (right after the trigger is accepted);
//! * an answer counts only once two polls in a row return it;
//! * **changed**: it differs from the baseline, so the sync that was running has finished;
//! * **expected**: it is the baseline, and it names exactly the entities this run's results
//!   predict (by dbt unique_id, the test's own id, the node's name or its relation name);
//! * **consistent**: it is the baseline, its names cannot be matched to dbt's at all (opaque
//!   ids), and it counts as many failing and warning entities as this run's results; taken after
//!   three polls. Whatever it is, it calls for the same exit code as this run's results.
//!
//! An unchanged answer that contradicts this run is the previous sync's: the wait goes on until
//! it changes or `--wait-timeout` (exit 5). This module owns the rule and the comparison with
//! local results; it does no I/O.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::artifacts::outcomes::NameSet;
use crate::artifacts::{Level, RunOutcome, TestResult};
use crate::entities::Entities;

/// Polls an unchanged answer must hold before it is taken when only its counts can be compared.
const COUNT_POLLS: u32 = 3;

/// Which part of the rule ended the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettledBy {
    /// The answer changed from the one as this run's sync started, and held for a second poll.
    Changed,
    /// The answer is unchanged and names exactly what this run's results predict.
    Expected,
    /// The answer is unchanged, its names cannot be compared with dbt's, and its counts agree.
    Consistent,
}

/// How sure the rule is that the answer is this run's sync's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// This run's sync has finished (changed), or the answer is what it will say (expected).
    High,
    /// The answer agrees with this run in what can be compared; it may be the previous sync's.
    Medium,
}

impl SettledBy {
    pub fn explain(self) -> &'static str {
        match self {
            SettledBy::Changed => {
                "the answer changed from the one as this run's sync started and held for a second poll"
            }
            SettledBy::Expected => {
                "the answer names exactly the entities this run's results predict, two polls in a row"
            }
            SettledBy::Consistent => {
                "Secoda's entity names cannot be matched to dbt's, but the answer counts as many failing \
                 and warning entities as this run's results, three polls in a row (it may be the \
                 previous sync's, which called for the same exit code)"
            }
        }
    }

    pub fn confidence(self) -> Confidence {
        match self {
            SettledBy::Changed | SettledBy::Expected => Confidence::High,
            SettledBy::Consistent => Confidence::Medium,
        }
    }
}

/// The tests of this run that did not pass, as Secoda's answer could name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prediction {
    failing: Vec<Expected>,
    warning: Vec<Expected>,
    /// The names of the manifest's data nodes: a Secoda name among them is dbt's, not opaque.
    known: NameSet,
}

/// One test that failed or warned, and what it checks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    test: String,
    /// The tested node's unique_id, when the manifest told.
    node: Option<String>,
    /// The manifest names the node itself (a generic or unit test), rather than it being the
    /// first of `depends_on` (a singular test).
    attached: bool,
}

impl Expected {
    fn of(test: &TestResult) -> Expected {
        Expected {
            test: test.unique_id.clone(),
            node: test.entity.clone(),
            attached: test.attached,
        }
    }

    /// The name Secoda gives this test's entity when it names nodes by unique_id.
    fn by_node(&self) -> &str {
        self.node.as_deref().unwrap_or(&self.test)
    }

    /// The name when Secoda names singular tests by their own unique_id.
    fn by_test(&self) -> &str {
        if self.attached {
            self.by_node()
        } else {
            &self.test
        }
    }

    /// Whether Secoda's `name` could stand for this test: its node's unique_id, name or relation
    /// (`"db"."schema"."name"`), or the test's own unique_id, ignoring case and quotes.
    fn is_named_by(&self, name: &str) -> bool {
        let name = normalize(name);
        if name == normalize(&self.test) {
            return true;
        }
        let Some(node) = &self.node else {
            return false;
        };
        if name == normalize(node) {
            return true;
        }
        let short = short_name(node);
        name == short || name.ends_with(&format!(".{short}"))
    }
}

fn normalize(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| !matches!(c, '"' | '`' | '[' | ']'))
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `model.pkg.orders` → `orders`; `source.pkg.shop.customers` → `customers`; a versioned
/// `model.pkg.orders.v2` → `orders`.
fn short_name(unique_id: &str) -> String {
    let parts: Vec<&str> = unique_id.split('.').collect();
    let short = match parts.as_slice() {
        ["source", _, _, table, ..] => table,
        [_, _, node, ..] => node,
        _ => unique_id,
    };
    short.to_ascii_lowercase()
}

/// `model.pkg.orders`, `source.pkg.shop.customers`, `test.pkg.x`: a name dbt gave.
fn looks_like_unique_id(name: &str) -> bool {
    const TYPES: [&str; 8] = [
        "model.",
        "source.",
        "seed.",
        "snapshot.",
        "test.",
        "unit_test.",
        "exposure.",
        "metric.",
    ];
    let name = normalize(name);
    TYPES.iter().any(|t| name.starts_with(t)) && name.split('.').count() >= 3
}

/// How an answer compares with this run's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// It names exactly this run's failing and warning tests.
    Names,
    /// No name can be matched, and the counts agree.
    Counts,
    /// It contradicts this run.
    Contradicts,
}

impl Prediction {
    /// None when the run cannot predict Secoda's answer: no test outcomes (compile, docs
    /// generate), or tests left out of the list (more than the cap did not pass).
    pub fn of(run: &RunOutcome) -> Option<Prediction> {
        if !run.has_test_outcomes() || run.not_passed_total > run.not_passed.len() as u64 {
            return None;
        }
        let at = |level| {
            run.not_passed
                .iter()
                .filter(|t| t.level == level)
                .map(Expected::of)
                .collect()
        };
        Some(Prediction {
            failing: at(Level::Failing),
            warning: at(Level::Warning),
            known: run.names.clone(),
        })
    }

    fn everyone(&self) -> impl Iterator<Item = &Expected> {
        self.failing.iter().chain(&self.warning)
    }

    /// The failing and warning counts Secoda would give under one way of naming: an entity once,
    /// at its worst.
    fn counts(&self, name: impl Fn(&Expected) -> &str) -> (usize, usize) {
        let failing: BTreeSet<&str> = self.failing.iter().map(&name).collect();
        let warning: BTreeSet<&str> = self
            .warning
            .iter()
            .map(&name)
            .filter(|n| !failing.contains(n))
            .collect();
        (failing.len(), warning.len())
    }

    /// Whether `answer` names exactly this run's tests: every entity it lists stands for a test
    /// at that level, and every test is stood for (a warning test by a warning entity, or by a
    /// failing one when its node also fails).
    fn names_match(&self, answer: &Entities) -> bool {
        let stands_for = |names: &[String], tests: &[Expected]| {
            names.iter().all(|n| tests.iter().any(|t| t.is_named_by(n)))
        };
        let named = |t: &Expected, names: &[&String]| names.iter().any(|n| t.is_named_by(n));
        let failing: Vec<&String> = answer.failing.iter().collect();
        let any: Vec<&String> = answer.failing.iter().chain(&answer.warning).collect();
        stands_for(&answer.failing, &self.failing)
            && stands_for(&answer.warning, &self.warning)
            && self.failing.iter().all(|t| named(t, &failing))
            && self.warning.iter().all(|t| named(t, &any))
    }

    /// Whether Secoda's names cannot be compared with dbt's: none matches any of this run's
    /// tests, none is a dbt unique_id, and none is the name (or relation) of a node in the
    /// manifest. Any of those would make a mismatch a real disagreement.
    fn names_incomparable(&self, answer: &Entities) -> bool {
        answer.failing.iter().chain(&answer.warning).all(|n| {
            !looks_like_unique_id(n)
                && !self.known.knows(&normalize(n))
                && !self.everyone().any(|t| t.is_named_by(n))
        })
    }

    pub fn compare(&self, answer: &Entities) -> Comparison {
        if self.names_match(answer) {
            return Comparison::Names;
        }
        let listed = (answer.failing.len(), answer.warning.len());
        let counts_agree =
            listed == self.counts(Expected::by_node) || listed == self.counts(Expected::by_test);
        let something = !answer.failing.is_empty() || !answer.warning.is_empty();
        if something && counts_agree && self.names_incomparable(answer) {
            Comparison::Counts
        } else {
            Comparison::Contradicts
        }
    }
}

/// Applies the rule to successive answers.
pub struct Settler {
    baseline: Entities,
    prediction: Option<Prediction>,
    previous: Option<Entities>,
    /// Polls in a row that returned `previous`.
    held: u32,
}

impl Settler {
    pub fn new(baseline: Entities, prediction: Option<Prediction>) -> Settler {
        Settler {
            baseline,
            prediction,
            previous: None,
            held: 0,
        }
    }

    /// Takes the next answer; Some once the answer is settled.
    pub fn observe(&mut self, answer: &Entities) -> Option<SettledBy> {
        if self.previous.as_ref() == Some(answer) {
            self.held += 1;
        } else {
            self.previous = Some(answer.clone());
            self.held = 1;
        }
        if self.held < 2 {
            return None;
        }
        if *answer != self.baseline {
            return Some(SettledBy::Changed);
        }
        match self.prediction.as_ref()?.compare(answer) {
            Comparison::Names => Some(SettledBy::Expected),
            Comparison::Counts if self.held >= COUNT_POLLS => Some(SettledBy::Consistent),
            _ => None,
        }
    }

    /// Why the wait has not ended, for the timeout's message.
    pub fn why_not(&self) -> &'static str {
        match &self.previous {
            Some(latest) if *latest != self.baseline => "the answer kept changing",
            _ if self.prediction.is_none() => {
                "the answer is still the one from before this run's sync, and this run's results \
                 cannot say whether that is right"
            }
            _ => {
                "the answer is still the one from before this run's sync and does not match this \
                 run's results"
            }
        }
    }
}

/// Where Secoda's answer and the local results name different entities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Disagreements {
    pub failing_only_in_secoda: Vec<String>,
    pub failing_only_in_local: Vec<String>,
    pub warning_only_in_secoda: Vec<String>,
    pub warning_only_in_local: Vec<String>,
}

impl Disagreements {
    /// None when they agree, or when Secoda's names cannot be compared with dbt's at all.
    pub fn between(answer: &Entities, prediction: &Prediction) -> Option<Disagreements> {
        let something = !answer.failing.is_empty() || !answer.warning.is_empty();
        let anything_local = prediction.everyone().next().is_some();
        if something && anything_local && prediction.names_incomparable(answer) {
            return None;
        }
        let only_secoda = |names: &[String], tests: &[Expected]| -> Vec<String> {
            names
                .iter()
                .filter(|n| !tests.iter().any(|t| t.is_named_by(n)))
                .cloned()
                .collect()
        };
        let only_local = |tests: &[Expected], names: &[&String]| -> Vec<String> {
            let missing: BTreeSet<String> = tests
                .iter()
                .filter(|t| !names.iter().any(|n| t.is_named_by(n)))
                .map(|t| t.by_node().to_string())
                .collect();
            missing.into_iter().collect()
        };
        let failing: Vec<&String> = answer.failing.iter().collect();
        let any: Vec<&String> = answer.failing.iter().chain(&answer.warning).collect();
        let d = Disagreements {
            failing_only_in_secoda: only_secoda(&answer.failing, &prediction.failing),
            failing_only_in_local: only_local(&prediction.failing, &failing),
            warning_only_in_secoda: only_secoda(&answer.warning, &prediction.warning),
            warning_only_in_local: only_local(&prediction.warning, &any),
        };
        (d != Disagreements::default()).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(failing: &[&str], warning: &[&str]) -> Entities {
        Entities::new(
            failing.iter().map(|s| s.to_string()),
            warning.iter().map(|s| s.to_string()),
        )
    }

    fn expected(test: &str, node: &str, attached: bool) -> Expected {
        Expected {
            test: test.into(),
            node: Some(node.into()),
            attached,
        }
    }

    /// Two failing tests on dim (one generic, one singular), a warning on stg; the manifest also
    /// has a model `other`.
    fn prediction() -> Prediction {
        let mut known = NameSet::default();
        for node in ["model.p.dim", "model.p.stg", "model.p.other"] {
            known.add(node);
        }
        Prediction {
            known,
            failing: vec![
                expected("test.p.unique_dim_id", "model.p.dim", true),
                expected("test.p.assert_dim_ok", "model.p.dim", false),
            ],
            warning: vec![expected("test.p.not_null_stg_x", "model.p.stg", true)],
        }
    }

    #[test]
    fn a_stale_answer_is_not_taken_while_the_sync_runs() {
        let before = answer(&[], &[]);
        let mut settler = Settler::new(before.clone(), Some(prediction()));
        for _ in 0..5 {
            assert_eq!(settler.observe(&before), None);
        }
        let after = answer(&["model.p.dim"], &["model.p.stg"]);
        assert_eq!(settler.observe(&after), None, "must hold for a second poll");
        assert_eq!(settler.observe(&after), Some(SettledBy::Changed));
    }

    #[test]
    fn every_naming_of_this_runs_result_is_expected() {
        for same in [
            answer(&["model.p.dim"], &["model.p.stg"]),
            answer(&["model.p.dim", "test.p.assert_dim_ok"], &["model.p.stg"]),
            answer(&["DIM"], &["stg"]),
            answer(&["\"db\".\"main\".\"dim\""], &["db.main.stg"]),
        ] {
            let mut settler = Settler::new(same.clone(), Some(prediction()));
            assert_eq!(settler.observe(&same), None, "{same:?}");
            assert_eq!(
                settler.observe(&same),
                Some(SettledBy::Expected),
                "{same:?}"
            );
        }
    }

    #[test]
    fn opaque_names_settle_on_counts_after_three_polls() {
        let opaque = answer(&["5f1c-uuid"], &["a9e0-uuid"]);
        let mut settler = Settler::new(opaque.clone(), Some(prediction()));
        assert_eq!(settler.observe(&opaque), None);
        assert_eq!(settler.observe(&opaque), None);
        assert_eq!(settler.observe(&opaque), Some(SettledBy::Consistent));
        // The counts of "test" naming (the singular test as its own entity) agree too.
        let by_test = answer(&["u1", "u2"], &["u3"]);
        assert_eq!(prediction().compare(&by_test), Comparison::Counts);
        let wrong = answer(&["u1", "u2", "u3"], &[]);
        assert_eq!(prediction().compare(&wrong), Comparison::Contradicts);
        // Names of other nodes of the manifest are dbt's names: a different result, not opaque.
        let other = answer(&["other"], &["\"db\".\"main\".\"other\""]);
        assert_eq!(prediction().compare(&other), Comparison::Contradicts);
    }

    #[test]
    fn an_unchanged_answer_that_contradicts_this_run_keeps_waiting() {
        for stale in [
            answer(&["model.p.old"], &[]),
            answer(&["model.p.dim"], &[]),
            answer(&[], &[]),
        ] {
            let mut settler = Settler::new(stale.clone(), Some(prediction()));
            for _ in 0..6 {
                assert_eq!(settler.observe(&stale), None, "{stale:?}");
            }
        }
        let nothing = answer(&[], &[]);
        let mut blind = Settler::new(nothing.clone(), None);
        for _ in 0..6 {
            assert_eq!(blind.observe(&nothing), None);
        }
    }

    #[test]
    fn disagreements_are_named_unless_the_names_cannot_be_compared() {
        let d = Disagreements::between(&answer(&["dim", "x"], &[]), &prediction()).unwrap();
        assert_eq!(d.failing_only_in_secoda, ["x"]);
        assert!(d.failing_only_in_local.is_empty(), "{d:?}");
        assert_eq!(d.warning_only_in_local, ["model.p.stg"]);
        // A dbt unique_id that matches nothing is a disagreement, not an opaque name.
        let other = answer(&["model.p.other"], &[]);
        let d = Disagreements::between(&other, &prediction()).unwrap();
        assert_eq!(d.failing_only_in_secoda, ["model.p.other"]);
        assert_eq!(d.failing_only_in_local, ["model.p.dim"]);
        assert_eq!(prediction().compare(&other), Comparison::Contradicts);
        assert_eq!(
            Disagreements::between(&answer(&["u1"], &["u2"]), &prediction()),
            None
        );
        assert_eq!(
            Disagreements::between(&answer(&["model.p.dim"], &["model.p.stg"]), &prediction()),
            None
        );
    }
}
