//! How the simulated catalog names the entities in its failing-tests answer.
//!
//! Secoda's documentation does not say, so the simulator can answer each plausible way: by the
//! tested node's dbt unique_id, by the test's own unique_id for singular tests, by the node's
//! name, by its relation name, or by an opaque id per node (as a catalog's internal ids would
//! be). The client must reach the right verdict whichever it is.

use sha2::{Digest, Sha256};

use super::reading::{Manifest, RunResults};
use crate::entities::Entities;

/// `--entity-names`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Naming {
    /// The tested node's dbt unique_id (model.shop.orders).
    #[default]
    Node,
    /// The test's own unique_id for singular tests (which have no attached node); the tested
    /// node's unique_id otherwise.
    Test,
    /// The tested node's name (orders).
    Name,
    /// The tested node's relation name ("db"."schema"."orders").
    Relation,
    /// An opaque, stable id per node (a UUID), as a catalog's internal ids would be.
    Opaque,
}

/// The node a test checks: its attached node, a unit test's model, or the first model, seed,
/// snapshot or source it depends on; the test itself when none is known.
fn tested_node(test_id: &str, manifest: &Manifest) -> String {
    if let Some(test) = manifest.nodes.get(test_id) {
        if let Some(node) = &test.attached_node {
            return node.clone();
        }
        let data = ["model.", "seed.", "snapshot.", "source."];
        if let Some(dep) = test
            .depends_on()
            .iter()
            .find(|d| data.iter().any(|p| d.starts_with(p)))
        {
            return dep.clone();
        }
    }
    if let (Some(unit), Some(rest)) = (
        manifest.unit_tests.get(test_id),
        test_id.strip_prefix("unit_test."),
    ) && let (Some(model), Some(package)) = (&unit.model, rest.split('.').next())
    {
        return format!("model.{package}.{model}");
    }
    test_id.to_string()
}

/// A UUID-shaped id derived from the node, stable across uploads.
fn opaque(node: &str) -> String {
    let h = Sha256::digest(node.as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn name_of(naming: Naming, test_id: &str, manifest: &Manifest) -> String {
    let node = tested_node(test_id, manifest);
    let facts = manifest.node(&node);
    let last = || node.rsplit('.').next().unwrap_or(&node).to_string();
    match naming {
        Naming::Node => node,
        Naming::Test => {
            let attached = manifest
                .nodes
                .get(test_id)
                .is_some_and(|t| t.attached_node.is_some());
            if attached || manifest.unit_tests.contains_key(test_id) {
                node
            } else {
                test_id.to_string()
            }
        }
        Naming::Name => facts.and_then(|n| n.name.clone()).unwrap_or_else(last),
        Naming::Relation => facts
            .and_then(|n| n.relation_name.clone().or_else(|| n.name.clone()))
            .unwrap_or_else(last),
        Naming::Opaque => opaque(&node),
    }
}

/// The failing-tests answer a sync of these files leaves: entities of tests that failed or
/// errored, and of tests that warned (an entity is listed once, at its worst).
pub fn answer(naming: Naming, run_results: &RunResults, manifest: &Manifest) -> Entities {
    let mut failing = Vec::new();
    let mut warning = Vec::new();
    for result in run_results.results() {
        let is_test =
            result.unique_id.starts_with("test.") || result.unique_id.starts_with("unit_test.");
        if !is_test {
            continue;
        }
        match result.status.as_str() {
            "fail" | "error" | "runtime error" => {
                failing.push(name_of(naming, &result.unique_id, manifest))
            }
            "warn" => warning.push(name_of(naming, &result.unique_id, manifest)),
            _ => {}
        }
    }
    Entities::new(failing, warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_ids_are_stable_and_uuid_shaped() {
        let a = opaque("model.p.a");
        assert_eq!(a, opaque("model.p.a"));
        assert_ne!(a, opaque("model.p.b"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
