//! Entities with failing and with warning tests: the shape of Secoda's `failing_tests/` answer.
//!
//! A leaf, and the one `{failing, warning}` type: the client reads Secoda's answer into it, the
//! settle rule compares answers and predictions as it, the report prints it, and the simulator
//! answers with it. It says nothing about how entities are named (that is the settle rule's
//! and the simulator's business).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entities {
    pub failing: Vec<String>,
    pub warning: Vec<String>,
}

impl Entities {
    /// Sorted, without repeats, and an entity that fails is not also listed as warning (as
    /// Secoda lists an entity once, at its worst).
    pub fn new(
        failing: impl IntoIterator<Item = String>,
        warning: impl IntoIterator<Item = String>,
    ) -> Entities {
        let failing: BTreeSet<String> = failing.into_iter().collect();
        let warning: BTreeSet<String> = warning
            .into_iter()
            .filter(|w| !failing.contains(w))
            .collect();
        Entities {
            failing: failing.into_iter().collect(),
            warning: warning.into_iter().collect(),
        }
    }
}

impl std::str::FromStr for Entities {
    type Err = String;

    /// `{"failing": [...], "warning": [...]}`, both lists required.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        serde_json::from_str::<Entities>(text)
            .map(|e| Entities::new(e.failing, e.warning))
            .map_err(|e| {
                format!(
                    "expected {{\"failing\": [...], \"warning\": [...]}} with entity names: {e}"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_are_sorted_once_at_their_worst() {
        let e = Entities::new(
            ["b".to_string(), "a".into(), "a".into()],
            ["a".to_string(), "c".into()],
        );
        assert_eq!(e.failing, ["a", "b"]);
        assert_eq!(e.warning, ["c"]);
        assert!("{\"failing\": []}".parse::<Entities>().is_err());
        assert!(
            "{\"failing\": [\"x\"], \"warning\": []}"
                .parse::<Entities>()
                .is_ok()
        );
    }
}
