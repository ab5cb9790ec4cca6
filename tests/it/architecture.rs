//! The house rules of docs/architecture.md, read off the source: imports flow one way, from the
//! command line down to the leaves, and the client and the simulator never import each other.
//!
//! `cargo test --test it architecture -- --nocapture` prints the module import graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module's layer: a module may import only modules of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    // The leaves: units and formatting, colour, the exit-code table, environment variable names.
    ("units", 0),
    ("env_vars", 0),
    ("exit", 0),
    ("entities", 0),
    ("files", 0),
    ("blocking", 0),
    ("signals", 0),
    ("style", 1),
    // Man pages from the clap definitions it is handed; knows the exit codes.
    ("manual", 1),
    ("logging", 2),
    ("config", 3),
    ("artifacts", 4),
    ("imports", 4),
    ("api", 4),
    ("settle", 5),
    ("report", 6),
    ("pipeline", 7),
    ("simulator", 7),
    ("watch", 8),
    ("commands", 9),
    ("cli", 10),
    ("lib", 11),
];

/// The client's modules: none of them may import the simulator, nor it them.
const CLIENT: &[&str] = &["api", "artifacts", "pipeline", "report", "settle", "watch"];

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("module {module} has no layer in tests/it/architecture.rs"))
}

/// The code of a file without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module → the crate modules its files name (`use crate::x`, `crate::x::...`).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "main" {
                continue;
            }
            let text = code(&std::fs::read_to_string(&path).unwrap());
            let targets = graph.entry(module.clone()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let before = text[..i].chars().last();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // e.g. `dbt_secoda::crate::`, never in our code, but be exact
                }
                let rest = &text[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    targets.insert(name);
                }
            }
            // `use crate::{a, b::c}`
            for (i, _) in text.match_indices("use crate::{") {
                let group = &text[i + "use crate::{".len()..];
                let group = &group[..group.find("};").unwrap_or(group.len())];
                for item in group.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != module && name != "self" {
                        targets.insert(name);
                    }
                }
            }
        }
    }
    graph
}

#[test]
fn imports_flow_one_way_and_the_simulator_is_a_peer() {
    let graph = graph();
    for (module, targets) in &graph {
        println!(
            "{module:<10} -> {}",
            targets.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let mut problems = Vec::new();
    for (module, targets) in &graph {
        for target in targets {
            if layer(target) >= layer(module) {
                problems.push(format!("{module} imports {target}, which is not below it"));
            }
            let peers = (module == "simulator" && CLIENT.contains(&target.as_str()))
                || (target == "simulator" && CLIENT.contains(&module.as_str()));
            if peers {
                problems.push(format!(
                    "{module} imports {target}: the client and the simulator are peers"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every source file under src/, as (its module path, its code).
fn files() -> Vec<(Vec<String>, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            out.push((parts, std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

#[test]
fn every_source_file_is_compiled() {
    // A file no `mod` line names is dead code that still looks alive (and fools the graph).
    let files = files();
    for (path, _) in &files {
        if path.len() == 1 && matches!(path[0].as_str(), "lib" | "main") {
            continue;
        }
        let (name, parent) = path.split_last().unwrap();
        let declared = files.iter().any(|(p, text)| {
            let is_parent = if parent.is_empty() {
                p.len() == 1 && p[0] == "lib"
            } else {
                p == parent
            };
            is_parent
                && text.lines().any(|l| {
                    let l = l.trim();
                    l == format!("mod {name};")
                        || l == format!("pub mod {name};")
                        || l == format!("pub(crate) mod {name};")
                })
        });
        assert!(
            declared,
            "src/{}.rs is not declared by any `mod` line",
            path.join("/")
        );
    }
}

#[test]
fn no_circle_between_the_files_of_a_module() {
    // Within a module, sibling files may use each other only one way (the module's root,
    // mod.rs, is the parent of them all and is left out).
    let files = files();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &files {
        if path.len() != 2 {
            continue;
        }
        let (module, file) = (&path[0], &path[1]);
        let siblings: Vec<&String> = files
            .iter()
            .filter(|(p, _)| p.len() == 2 && p[0] == *module && p[1] != *file)
            .map(|(p, _)| &p[1])
            .collect();
        let code = code(text);
        for sibling in siblings {
            let named = [
                format!("super::{sibling}::"),
                format!("super::{sibling};"),
                format!("super::{sibling}::{{"),
                format!("crate::{module}::{sibling}::"),
            ];
            let uses_group = code.match_indices("use super::{").any(|(i, _)| {
                let group = &code[i..];
                let group = &group[..group.find("};").unwrap_or(group.len())];
                group.split([',', '{', ' ', '\n']).any(|item| {
                    item.trim().trim_end_matches("::") == sibling.as_str()
                        || item.trim().starts_with(&format!("{sibling}::"))
                })
            });
            if uses_group || named.iter().any(|n| code.contains(n.as_str())) {
                edges
                    .entry(format!("{module}/{file}"))
                    .or_default()
                    .insert(format!("{module}/{sibling}"));
            }
        }
    }
    // Depth-first search for a cycle.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("an import circle: {}", cycle.join(" -> "));
        }
    }
}
