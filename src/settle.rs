//! When Secoda's failing-tests answer can be taken as this run's result.
//!
//! Secoda has no sync-status endpoint, and `failing_tests/` keeps answering the previous sync's
//! result while a new sync runs. The rule (documented in docs/settle.md):
//!
//! * a baseline answer is read as this run's sync starts (right after the trigger is accepted);
//! * after the trigger, an answer counts only once two polls in a row return it;
//! * it is **changed** when it differs from the baseline: the new sync has finished;
//! * it is **expected** when it equals what this run's own results predict (the same failing
//!   and warning entities); then it is right whether or not the sync is done, since the sync
//!   could only confirm it.
//!
//! An answer equal to the baseline that this run does not predict is the previous sync's: the
//! wait goes on. This module owns the rule and the comparison with local results; it does no I/O.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::artifacts::{Level, RunOutcome};
use crate::entities::Entities;

/// Which part of the rule ended the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettledBy {
    /// The answer changed from the one as this run's sync started, and held for a second poll.
    Changed,
    /// The answer is the one this run's results predict, two polls in a row.
    Expected,
}

impl SettledBy {
    pub fn explain(self) -> &'static str {
        match self {
            SettledBy::Changed => {
                "the answer changed from the one as this run's sync started and held for a second poll"
            }
            SettledBy::Expected => {
                "the answer matches this run's own test results, two polls in a row"
            }
        }
    }
}

/// The failing and warning entities this run's results predict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prediction {
    pub failing: BTreeSet<String>,
    pub warning: BTreeSet<String>,
}

impl Prediction {
    /// None when the run cannot predict Secoda's answer: no test outcomes (compile, docs
    /// generate), tests left out of the list, or failing tests whose tested node is unknown.
    pub fn of(run: &RunOutcome) -> Option<Prediction> {
        if !run.has_test_outcomes() || run.not_passed_total > run.not_passed.len() as u64 {
            return None;
        }
        let mut prediction = Prediction::default();
        for test in &run.not_passed {
            let set = match test.level {
                Level::Failing => &mut prediction.failing,
                Level::Warning => &mut prediction.warning,
                _ => continue,
            };
            set.insert(test.entity.clone()?);
        }
        let failing = prediction.failing.clone();
        prediction.warning.retain(|e| !failing.contains(e));
        Some(prediction)
    }

    fn matches(&self, answer: &Entities) -> bool {
        same_entities(&answer.failing, &self.failing)
            && same_entities(&answer.warning, &self.warning)
    }
}

/// Applies the rule to successive answers.
pub struct Settler {
    baseline: Entities,
    prediction: Option<Prediction>,
    previous: Option<Entities>,
}

impl Settler {
    pub fn new(baseline: Entities, prediction: Option<Prediction>) -> Settler {
        Settler {
            baseline,
            prediction,
            previous: None,
        }
    }

    /// Takes the next answer; Some once the answer is settled.
    pub fn observe(&mut self, answer: &Entities) -> Option<SettledBy> {
        let previous = self.previous.replace(answer.clone());
        if previous.as_ref() != Some(answer) {
            return None;
        }
        if *answer != self.baseline {
            return Some(SettledBy::Changed);
        }
        self.prediction
            .as_ref()
            .filter(|p| p.matches(answer))
            .map(|_| SettledBy::Expected)
    }

    /// Whether the latest answer is still the one from before this run's sync.
    pub fn unchanged(&self) -> bool {
        self.previous.as_ref().is_none_or(|p| *p == self.baseline)
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
    pub fn between(answer: &Entities, prediction: &Prediction) -> Option<Disagreements> {
        let (failing_only_in_secoda, failing_only_in_local) =
            differences(&answer.failing, &prediction.failing);
        let (warning_only_in_secoda, warning_only_in_local) =
            differences(&answer.warning, &prediction.warning);
        let d = Disagreements {
            failing_only_in_secoda,
            failing_only_in_local,
            warning_only_in_secoda,
            warning_only_in_local,
        };
        (d != Disagreements::default()).then_some(d)
    }
}

/// Secoda may name an entity by its dbt unique_id, its name, or its relation: any of them match.
fn entity_matches(name: &str, unique_id: &str) -> bool {
    let name = name.trim();
    if name.eq_ignore_ascii_case(unique_id) {
        return true;
    }
    let parts: Vec<&str> = unique_id.split('.').collect();
    let short = match parts.as_slice() {
        ["source", _, _, table] => *table,
        [_, _, node, ..] => *node,
        _ => return false,
    };
    let lower = name.to_ascii_lowercase();
    let short = short.to_ascii_lowercase();
    lower == short || lower.ends_with(&format!(".{short}"))
}

fn differences(answer: &[String], local: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let only_secoda = answer
        .iter()
        .filter(|a| !local.iter().any(|l| entity_matches(a, l)))
        .cloned()
        .collect();
    let only_local = local
        .iter()
        .filter(|l| !answer.iter().any(|a| entity_matches(a, l)))
        .cloned()
        .collect();
    (only_secoda, only_local)
}

fn same_entities(answer: &[String], local: &BTreeSet<String>) -> bool {
    let (a, b) = differences(answer, local);
    a.is_empty() && b.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(failing: &[&str], warning: &[&str]) -> Entities {
        Entities {
            failing: failing.iter().map(|s| s.to_string()).collect(),
            warning: warning.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn prediction(failing: &[&str], warning: &[&str]) -> Prediction {
        Prediction {
            failing: failing.iter().map(|s| s.to_string()).collect(),
            warning: warning.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_stale_answer_is_not_taken_while_the_sync_runs() {
        let before = answer(&[], &[]);
        let mut settler = Settler::new(before.clone(), Some(prediction(&["model.p.dim"], &[])));
        // The slow sync: three polls still see the previous result.
        for _ in 0..3 {
            assert_eq!(settler.observe(&before), None);
        }
        let after = answer(&["model.p.dim"], &[]);
        assert_eq!(settler.observe(&after), None, "must hold for a second poll");
        assert_eq!(settler.observe(&after), Some(SettledBy::Changed));
    }

    #[test]
    fn an_unchanged_answer_settles_when_this_run_predicts_it() {
        let same = answer(&["dim"], &["stg"]);
        let mut settler = Settler::new(
            same.clone(),
            Some(prediction(&["model.p.dim"], &["model.p.stg"])),
        );
        assert_eq!(settler.observe(&same), None);
        assert_eq!(settler.observe(&same), Some(SettledBy::Expected));
    }

    #[test]
    fn an_unchanged_answer_this_run_does_not_predict_keeps_waiting() {
        let before = answer(&["model.p.old"], &[]);
        let mut settler = Settler::new(before.clone(), Some(prediction(&["model.p.new"], &[])));
        for _ in 0..5 {
            assert_eq!(settler.observe(&before), None);
        }
        let mut blind = Settler::new(before.clone(), None);
        for _ in 0..5 {
            assert_eq!(blind.observe(&before), None);
        }
    }

    #[test]
    fn names_match_by_unique_id_name_or_relation() {
        assert!(entity_matches(
            "model.p.dim_customers",
            "model.p.dim_customers"
        ));
        assert!(entity_matches("DIM_CUSTOMERS", "model.p.dim_customers"));
        assert!(entity_matches(
            "analytics.marts.dim_customers",
            "model.p.dim_customers"
        ));
        assert!(entity_matches("customers", "source.p.shop.customers"));
        assert!(!entity_matches("dim_customer", "model.p.dim_customers"));
        let d = Disagreements::between(
            &answer(&["a", "x"], &[]),
            &prediction(&["model.p.a", "model.p.b"], &[]),
        )
        .unwrap();
        assert_eq!(d.failing_only_in_secoda, ["x"]);
        assert_eq!(d.failing_only_in_local, ["model.p.b"]);
    }
}
