//! Test outcomes: what run_results.json says of each test, and where the manifest says it lives.
//!
//! Owns the two [`Visitor`]s that ride along the streaming validation of each file:
//! [`RunResultsVisitor`] counts results by status and keeps every test that did not pass, and
//! [`ManifestVisitor`] picks, for chosen tests only, the file they come from and the node they
//! test. Memory stays bounded by the number of tests kept, never by file size.
//! It does not read files or decide exit codes.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::metadata::MetadataVisitor;
use super::scan::Visitor;
use super::{unescape, unescape_into};

/// At most this many tests that did not pass are kept with their details; the rest are counted.
pub const MAX_KEPT_TESTS: usize = 10_000;
/// At most this many passing tests are kept, when they are asked for (a JUnit report).
pub const MAX_KEPT_PASSED: usize = 200_000;

/// How a test result counts for the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// `fail`, `error`, `runtime error`: the test failed or could not run.
    Failing,
    /// `warn`.
    Warning,
    /// `skipped`: did not run (an upstream node failed, or fail-fast).
    Skipped,
    /// Anything else that is not a pass (`partial success`, `no-op`, ...).
    Other,
    /// `pass` (or `success` where tests really ran).
    Passed,
}

impl Level {
    pub fn of(status: &str) -> Level {
        match status {
            "pass" | "success" => Level::Passed,
            "fail" | "error" | "runtime error" => Level::Failing,
            "warn" => Level::Warning,
            "skipped" => Level::Skipped,
            _ => Level::Other,
        }
    }
}

/// dbt commands whose run_results hold no test outcomes: tests are compiled, not run.
pub fn command_runs_tests(which: &str) -> bool {
    !matches!(
        which,
        "compile"
            | "generate"
            | "docs.generate"
            | "show"
            | "run-operation"
            | "run_operation"
            | "list"
            | "parse"
    )
}

/// One test's result (those that did not pass, and the passing ones when asked for).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    pub unique_id: String,
    /// dbt's status, as written (`fail`, `error`, `warn`, `skipped`, ...).
    pub status: String,
    pub level: Level,
    /// Rows returned by the test (null when it errored or was skipped).
    pub failures: Option<u64>,
    pub message: Option<String>,
    /// The file the test is defined in (the manifest's `original_file_path`, with `/`).
    pub file: Option<String>,
    /// The node the test checks (a model, source, seed or snapshot unique_id).
    pub entity: Option<String>,
    /// How long it ran (`execution_time`), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Whether the manifest names that node itself (`attached_node`, a unit test's model), rather
    /// than it being guessed from `depends_on` (singular tests).
    #[serde(skip)]
    pub attached: bool,
}

/// What run_results.json says, summed up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunOutcome {
    pub invocation_id: Option<String>,
    /// `args.which` (or the older `rpc_method`): the dbt command that wrote the file.
    pub command: Option<String>,
    /// `args.invocation_command`, e.g. `dbt build --select tag:nightly`.
    pub invocation_command: Option<String>,
    /// `args.project_dir`: the dbt project folder, as dbt was given it.
    pub project_dir: Option<String>,
    /// Test results (`test.*`, `unit_test.*`) by status.
    pub tests: BTreeMap<String, u64>,
    /// Other results (models, seeds, snapshots, ...) by status.
    pub other_nodes: BTreeMap<String, u64>,
    /// Tests that did not pass, in file order, at most [`MAX_KEPT_TESTS`].
    pub not_passed: Vec<TestResult>,
    /// How many tests did not pass, kept or not.
    pub not_passed_total: u64,
    /// The manifest's data node names (when some test did not pass).
    #[serde(skip)]
    pub names: NameSet,
    /// Tests that passed, when asked for (at most [`MAX_KEPT_PASSED`]), in file order.
    #[serde(skip)]
    pub passed: Vec<TestResult>,
}

impl RunOutcome {
    /// Whether this run's results say anything about tests (false for `compile`,
    /// `docs generate`, `show`, `run-operation`).
    pub fn has_test_outcomes(&self) -> bool {
        self.command.as_deref().is_none_or(command_runs_tests)
    }

    pub fn test_count(&self) -> u64 {
        self.tests.values().sum()
    }

    /// Counts tests at `level`.
    pub fn count(&self, level: Level) -> u64 {
        self.tests
            .iter()
            .filter(|(status, _)| Level::of(status) == level)
            .map(|(_, n)| n)
            .sum()
    }

    /// The unique_ids whose manifest entries the report needs.
    pub fn wanted_nodes(&self) -> HashSet<String> {
        self.not_passed
            .iter()
            .chain(&self.passed)
            .map(|t| t.unique_id.clone())
            .collect()
    }

    /// Fills `file` and `entity` from what the manifest said.
    pub fn attach(&mut self, facts: &HashMap<String, NodeFacts>) {
        for test in self.not_passed.iter_mut().chain(&mut self.passed) {
            if let Some(node) = facts.get(&test.unique_id) {
                test.file = node.file.clone();
                test.entity = node.entity(&test.unique_id);
                test.attached = node.attached_node.is_some() || node.model.is_some();
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Section {
    #[default]
    None,
    Metadata,
    Results,
    Args,
}

#[derive(Debug, Clone, Copy)]
enum ResultField {
    Status,
    UniqueId,
    Failures,
    Message,
    Which,
    RpcMethod,
    InvocationCommand,
    ProjectDir,
    Metadata,
    ExecutionTime,
}

/// The result being read. Buffers are reused from result to result: a passing result (nearly
/// all of them) costs no allocation.
#[derive(Default)]
struct Partial {
    status: Option<String>,
    unique_id: Option<String>,
    failures: Option<u64>,
    message: Option<String>,
    seconds: Option<f64>,
}

impl Partial {
    /// Whether the status read so far says the result passed (then its details are not needed).
    fn passed(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| Level::of(s) == Level::Passed)
    }
}

/// Reads run_results.json as it streams past.
#[derive(Default)]
pub struct RunResultsVisitor {
    meta: MetadataVisitor,
    section: Section,
    pending: Option<ResultField>,
    current: Partial,
    rpc_method: Option<String>,
    outcome: RunOutcome,
    /// Keep the tests that passed too (a JUnit report lists every test).
    keep_passed: bool,
}

impl RunResultsVisitor {
    pub fn new() -> Self {
        Self::default()
    }

    /// A visitor that also keeps the tests that passed.
    pub fn keeping_passed() -> Self {
        RunResultsVisitor {
            keep_passed: true,
            ..Self::default()
        }
    }

    /// The summary; call once the file has been validated whole.
    pub fn finish(mut self) -> RunOutcome {
        self.outcome.invocation_id = self.meta.metadata.invocation_id.clone();
        if self.outcome.command.is_none() {
            self.outcome.command = self.rpc_method.map(|m| {
                if m == "docs.generate" {
                    "generate".into()
                } else {
                    m
                }
            });
        }
        self.outcome
    }

    fn end_result(&mut self) {
        let current = &mut self.current;
        let (Some(unique_id), Some(status)) =
            (current.unique_id.as_deref(), current.status.as_deref())
        else {
            return;
        };
        let is_test = unique_id.starts_with("test.") || unique_id.starts_with("unit_test.");
        let counts = if is_test {
            &mut self.outcome.tests
        } else {
            &mut self.outcome.other_nodes
        };
        match counts.get_mut(status) {
            Some(n) => *n += 1,
            None => {
                counts.insert(status.to_string(), 1);
            }
        }
        let level = Level::of(status);
        let kept = |list: &Vec<TestResult>, cap: usize| {
            (list.len() < cap).then(|| TestResult {
                unique_id: unique_id.to_string(),
                status: status.to_string(),
                level,
                failures: current.failures,
                message: current.message.clone(),
                file: None,
                entity: None,
                seconds: current.seconds,
                attached: false,
            })
        };
        if is_test && level != Level::Passed {
            self.outcome.not_passed_total += 1;
            if let Some(test) = kept(&self.outcome.not_passed, MAX_KEPT_TESTS) {
                self.outcome.not_passed.push(test);
            }
        } else if is_test
            && self.keep_passed
            && let Some(test) = kept(&self.outcome.passed, MAX_KEPT_PASSED)
        {
            self.outcome.passed.push(test);
        }
        for field in [&mut current.status, &mut current.unique_id] {
            if let Some(text) = field.as_mut() {
                text.clear();
            }
        }
        current.failures = None;
        current.message = None;
        current.seconds = None;
    }
}

impl Visitor for RunResultsVisitor {
    #[inline(always)]
    fn wants_keys(&self, depth: usize) -> bool {
        depth <= 2 || (depth == 3 && self.section == Section::Results)
    }

    fn key(&mut self, depth: usize, key: &[u8]) -> bool {
        if depth <= 2 && self.section != Section::Results {
            let wanted = self.meta.key(depth, key);
            if wanted {
                self.pending = Some(ResultField::Metadata);
                return true;
            }
        }
        match depth {
            1 => {
                self.section = match key {
                    b"metadata" => Section::Metadata,
                    b"results" => Section::Results,
                    b"args" => Section::Args,
                    _ => Section::None,
                };
                false
            }
            2 if self.section == Section::Args => {
                self.pending = match key {
                    b"which" => Some(ResultField::Which),
                    b"rpc_method" => Some(ResultField::RpcMethod),
                    b"invocation_command" => Some(ResultField::InvocationCommand),
                    b"project_dir" => Some(ResultField::ProjectDir),
                    _ => None,
                };
                self.pending.is_some()
            }
            3 if self.section == Section::Results => {
                self.pending = match key {
                    b"status" => Some(ResultField::Status),
                    b"unique_id" => Some(ResultField::UniqueId),
                    b"failures" if !self.current.passed() => Some(ResultField::Failures),
                    b"message" if !self.current.passed() => Some(ResultField::Message),
                    b"execution_time" if self.keep_passed || !self.current.passed() => {
                        Some(ResultField::ExecutionTime)
                    }
                    _ => None,
                };
                self.pending.is_some()
            }
            _ => false,
        }
    }

    fn string(&mut self, depth: usize, raw: &[u8]) {
        let reuse =
            |slot: &mut Option<String>| unescape_into(raw, slot.get_or_insert_with(String::new));
        match self.pending.take() {
            Some(ResultField::Metadata) => self.meta.string(depth, raw),
            Some(ResultField::Status) => reuse(&mut self.current.status),
            Some(ResultField::UniqueId) => reuse(&mut self.current.unique_id),
            Some(ResultField::Message) => self.current.message = Some(unescape(raw)),
            Some(ResultField::Which) => self.outcome.command = Some(unescape(raw)),
            Some(ResultField::RpcMethod) => self.rpc_method = Some(unescape(raw)),
            Some(ResultField::InvocationCommand) => {
                self.outcome.invocation_command = Some(unescape(raw))
            }
            Some(ResultField::ProjectDir) => self.outcome.project_dir = Some(unescape(raw)),
            Some(ResultField::Failures | ResultField::ExecutionTime) | None => {}
        }
    }

    fn scalar(&mut self, depth: usize, raw: &[u8]) {
        match self.pending.take() {
            Some(ResultField::Failures) => {
                // Counts are integers; a float (a fail_calc) is kept by its integer part.
                let text = std::str::from_utf8(raw).unwrap_or("");
                self.current.failures = text.parse::<u64>().ok().or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        .map(|f| f as u64)
                });
            }
            Some(ResultField::ExecutionTime) => {
                self.current.seconds = std::str::from_utf8(raw)
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0);
            }
            Some(ResultField::Metadata) => self.meta.scalar(depth, raw),
            _ => {}
        }
    }

    #[inline(always)]
    fn close_object(&mut self, depth: usize) {
        if depth > 3 {
            return;
        }
        if depth == 3 && self.section == Section::Results {
            self.end_result();
        }
        self.meta.close_object(depth);
    }
}

/// What the manifest says of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// `original_file_path`, with `/` separators.
    pub file: Option<String>,
    pub attached_node: Option<String>,
    pub depends_on: Vec<String>,
    /// For unit tests: the name of the model under test.
    pub model: Option<String>,
}

impl NodeFacts {
    /// The node a test checks: its `attached_node`; for a unit test, its model; otherwise the
    /// first model, source, seed or snapshot it depends on (singular tests, dbt < 1.5).
    pub fn entity(&self, test_id: &str) -> Option<String> {
        if let Some(node) = &self.attached_node {
            return Some(node.clone());
        }
        if let (Some(model), Some(rest)) = (&self.model, test_id.strip_prefix("unit_test.")) {
            let package = rest.split('.').next()?;
            return Some(format!("model.{package}.{model}"));
        }
        self.depends_on
            .iter()
            .find(|n| {
                ["model.", "source.", "seed.", "snapshot."]
                    .iter()
                    .any(|p| n.starts_with(p))
            })
            .cloned()
    }
}

/// Which manifest nodes to keep facts for: these unique_ids.
#[derive(Debug, Clone, Default)]
pub struct Wanted(pub HashSet<String>);

impl Wanted {
    fn wants(&self, unique_id: &str) -> bool {
        self.0.contains(unique_id)
    }
}

#[derive(Debug, Clone, Copy)]
enum NodeField {
    File,
    AttachedNode,
    DependsOn,
    Model,
    Metadata,
}

/// The short names of a manifest's models, seeds, snapshots and sources (`orders` for
/// `model.shop.orders`), as 64-bit hashes: enough to tell whether a name Secoda gives is one dbt
/// would use, at 8 bytes a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameSet(HashSet<u64>);

impl NameSet {
    fn hash(name: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        name.to_ascii_lowercase().hash(&mut hasher);
        hasher.finish()
    }

    /// Adds the short name of a node's unique_id, if it is a data node.
    pub fn add(&mut self, unique_id: &str) {
        let parts: Vec<&str> = unique_id.split('.').collect();
        let short = match parts.as_slice() {
            ["source", _, _, table, ..] => table,
            ["model" | "seed" | "snapshot", _, name, ..] => name,
            _ => return,
        };
        self.0.insert(Self::hash(short));
    }

    /// Whether `name` is a known node's name, or a relation ending in one (`db.schema.orders`).
    pub fn knows(&self, name: &str) -> bool {
        let last = name.rsplit('.').next().unwrap_or(name);
        self.0.contains(&Self::hash(name)) || self.0.contains(&Self::hash(last))
    }
}

/// Reads manifest.json as it streams past, keeping facts for the wanted nodes only.
pub struct ManifestVisitor {
    meta: MetadataVisitor,
    wanted: Wanted,
    /// The names of every data node, kept when some test did not pass (to read Secoda's names).
    names: Option<NameSet>,
    in_nodes: bool,
    in_sources: bool,
    current: Option<(String, NodeFacts)>,
    in_depends_on: bool,
    pending: Option<NodeField>,
    facts: HashMap<String, NodeFacts>,
}

impl ManifestVisitor {
    pub fn new(wanted: Wanted) -> Self {
        ManifestVisitor {
            meta: MetadataVisitor::default(),
            names: (!wanted.0.is_empty()).then(NameSet::default),
            wanted,
            in_nodes: false,
            in_sources: false,
            current: None,
            in_depends_on: false,
            pending: None,
            facts: HashMap::new(),
        }
    }

    /// The manifest's invocation_id, the facts of the wanted nodes found, and the names of its
    /// data nodes (empty when nothing was wanted).
    pub fn finish(self) -> (Option<String>, HashMap<String, NodeFacts>, NameSet) {
        (
            self.meta.metadata.invocation_id,
            self.facts,
            self.names.unwrap_or_default(),
        )
    }
}

impl Visitor for ManifestVisitor {
    #[inline(always)]
    fn wants_keys(&self, depth: usize) -> bool {
        depth <= 2 || (depth == 3 && self.current.is_some()) || (depth == 4 && self.in_depends_on)
    }

    fn key(&mut self, depth: usize, key: &[u8]) -> bool {
        match depth {
            1 => {
                self.in_nodes = key == b"nodes" || key == b"unit_tests";
                self.in_sources = key == b"sources";
                if self.meta.key(1, key) {
                    self.pending = Some(NodeField::Metadata);
                    return true;
                }
                false
            }
            2 if !self.in_nodes => {
                if self.in_sources
                    && let Some(names) = self.names.as_mut()
                {
                    names.add(std::str::from_utf8(key).unwrap_or(""));
                }
                let wanted = self.meta.key(2, key);
                self.pending = wanted.then_some(NodeField::Metadata);
                wanted
            }
            2 => {
                let id = std::str::from_utf8(key).unwrap_or("");
                if let Some(names) = self.names.as_mut() {
                    names.add(id);
                }
                if self.wanted.wants(id) {
                    self.current = Some((id.to_string(), NodeFacts::default()));
                }
                false
            }
            3 if self.current.is_some() => {
                self.in_depends_on = key == b"depends_on";
                self.pending = match key {
                    b"original_file_path" => Some(NodeField::File),
                    b"attached_node" => Some(NodeField::AttachedNode),
                    b"model" => Some(NodeField::Model),
                    _ => None,
                };
                self.pending.is_some()
            }
            4 if self.in_depends_on && key == b"nodes" => {
                self.pending = Some(NodeField::DependsOn);
                true
            }
            _ => false,
        }
    }

    fn string(&mut self, depth: usize, raw: &[u8]) {
        let field = match self.pending {
            // A depends_on list delivers several strings for one key.
            Some(NodeField::DependsOn) => Some(NodeField::DependsOn),
            _ => self.pending.take(),
        };
        if let Some(NodeField::Metadata) = field {
            self.meta.string(depth, raw);
            return;
        }
        let Some((_, facts)) = self.current.as_mut() else {
            return;
        };
        let value = unescape(raw);
        match field {
            Some(NodeField::File) => facts.file = Some(value.replace('\\', "/")),
            Some(NodeField::AttachedNode) => facts.attached_node = Some(value),
            Some(NodeField::Model) => facts.model = Some(value),
            Some(NodeField::DependsOn) => facts.depends_on.push(value),
            Some(NodeField::Metadata) | None => {}
        }
    }

    fn scalar(&mut self, depth: usize, raw: &[u8]) {
        match self.pending {
            Some(NodeField::DependsOn) => {}
            Some(NodeField::Metadata) => {
                self.pending = None;
                self.meta.scalar(depth, raw);
            }
            _ => self.pending = None,
        }
    }

    #[inline(always)]
    fn close_object(&mut self, depth: usize) {
        if depth > 4 {
            return;
        }
        match depth {
            3 => {
                if let Some((id, facts)) = self.current.take() {
                    self.facts.insert(id, facts);
                }
                self.in_depends_on = false;
                self.pending = None;
            }
            4 => {
                self.in_depends_on = false;
                self.pending = None;
            }
            _ => {}
        }
        self.meta.close_object(depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::scan::Scanner;

    fn scan<V: Visitor>(visitor: V, doc: &[u8]) -> V {
        let mut scanner = Scanner::new(visitor);
        scanner.feed(doc).expect("valid JSON");
        scanner.finish().expect("complete JSON")
    }

    #[test]
    fn keeps_tests_that_did_not_pass_and_counts_the_rest() {
        let doc = br#"{"metadata": {"invocation_id": "i-1"}, "results": [
            {"status": "pass", "failures": 0, "message": null, "unique_id": "test.p.a"},
            {"status": "fail", "timing": [{"name": "x"}], "failures": 3, "message": "Got 3 results", "unique_id": "test.p.b"},
            {"status": "error", "failures": null, "message": "Runtime Error\n", "unique_id": "unit_test.p.m.c"},
            {"status": "success", "failures": null, "unique_id": "model.p.m"},
            {"status": "skipped", "unique_id": "test.p.d"}
        ], "elapsed_time": 1.5, "args": {"which": "build", "invocation_command": "dbt build"}}"#;
        let outcome = scan(RunResultsVisitor::new(), doc).finish();
        assert_eq!(outcome.invocation_id.as_deref(), Some("i-1"));
        assert_eq!(outcome.command.as_deref(), Some("build"));
        assert!(outcome.has_test_outcomes());
        assert_eq!(outcome.test_count(), 4);
        assert_eq!(outcome.count(Level::Failing), 2);
        assert_eq!(outcome.other_nodes.get("success"), Some(&1));
        let ids: Vec<_> = outcome
            .not_passed
            .iter()
            .map(|t| (t.unique_id.as_str(), t.failures))
            .collect();
        assert_eq!(
            ids,
            [
                ("test.p.b", Some(3)),
                ("unit_test.p.m.c", None),
                ("test.p.d", None)
            ]
        );
        assert_eq!(
            outcome.not_passed[1].message.as_deref(),
            Some("Runtime Error\n")
        );
    }

    #[test]
    fn older_files_name_the_command_in_rpc_method() {
        let doc = br#"{"metadata": {}, "results": [], "args": {"rpc_method": "docs.generate"}}"#;
        let outcome = scan(RunResultsVisitor::new(), doc).finish();
        assert_eq!(outcome.command.as_deref(), Some("generate"));
        assert!(!outcome.has_test_outcomes());
    }

    #[test]
    fn finds_files_and_tested_nodes_for_wanted_tests_only() {
        let doc = br#"{"metadata": {"invocation_id": "i-1"}, "nodes": {
            "model.p.dim": {"name": "dim"},
            "test.p.generic": {"original_file_path": "models\\marts\\_marts.yml", "attached_node": "model.p.dim", "depends_on": {"macros": ["macro.x"], "nodes": ["model.p.dim"]}},
            "test.p.singular": {"depends_on": {"nodes": ["model.p.rpt", "model.p.dim"]}, "original_file_path": "tests/s.sql"},
            "test.p.ignored": {"original_file_path": "x.yml"}
        }, "unit_tests": {"unit_test.p.fct.totals": {"model": "fct", "original_file_path": "models/u.yml"}}}"#;
        let wanted = [
            "test.p.generic",
            "test.p.singular",
            "unit_test.p.fct.totals",
        ];
        let visitor = ManifestVisitor::new(Wanted(wanted.iter().map(|s| s.to_string()).collect()));
        let (id, facts, names) = scan(visitor, doc).finish();
        assert!(names.knows("dim") && names.knows("db.main.DIM"));
        assert!(!names.knows("5f1c0000-uuid"));
        assert_eq!(id.as_deref(), Some("i-1"));
        assert_eq!(facts.len(), 3);
        let generic = &facts["test.p.generic"];
        assert_eq!(generic.file.as_deref(), Some("models/marts/_marts.yml"));
        assert_eq!(
            generic.entity("test.p.generic").as_deref(),
            Some("model.p.dim")
        );
        assert_eq!(
            facts["test.p.singular"]
                .entity("test.p.singular")
                .as_deref(),
            Some("model.p.rpt")
        );
        let unit = &facts["unit_test.p.fct.totals"];
        assert_eq!(
            unit.entity("unit_test.p.fct.totals").as_deref(),
            Some("model.p.fct")
        );
    }
}
