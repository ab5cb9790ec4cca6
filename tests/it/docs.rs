//! The documentation holds to the repository: every YAML or Python example in the README and
//! docs/ is a real file (or an excerpt of one) that CI lints and validates, and every example file
//! is documented.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The files examples may be taken from: those `.ci/run` checks.
fn example_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("action.yml")];
    files_under(&repo().join("examples"), &mut files);
    files_under(&repo().join(".github/workflows"), &mut files);
    files
        .into_iter()
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yml" || e == "yaml" || e == "py")
        })
        .collect()
}

/// The README and docs/*.md.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo().join("README.md")];
    files_under(&repo().join("docs"), &mut docs);
    docs.retain(|p| p.extension().is_some_and(|e| e == "md"));
    docs
}

/// Fenced blocks of `language` in `text`.
fn blocks(text: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}");
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() == fence {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            out.push(body.join("\n"));
        }
    }
    out
}

fn dedent(lines: &[&str]) -> Vec<String> {
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or("").trim_end().to_string())
        .collect()
}

/// Whether `block` is `file`'s text, or a run of its lines (indentation aside).
fn is_excerpt(block: &str, file: &str) -> bool {
    let wanted: Vec<&str> = block.lines().collect();
    let have: Vec<&str> = file.lines().collect();
    let wanted = dedent(&wanted);
    have.windows(wanted.len()).any(|w| dedent(w) == wanted)
}

#[test]
fn every_yaml_and_python_example_is_a_checked_file() {
    let files: Vec<(PathBuf, String)> = example_files()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    let mut unchecked = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for language in ["yaml", "yml", "python"] {
            for block in blocks(&text, language) {
                if !files.iter().any(|(_, file)| is_excerpt(&block, file)) {
                    unchecked.push(format!(
                        "{}: a {language} block that is no checked file's text:\n{block}",
                        doc.display()
                    ));
                }
            }
        }
    }
    assert!(unchecked.is_empty(), "{}", unchecked.join("\n\n"));
}

#[test]
fn every_example_file_is_documented() {
    let docs: String = documents()
        .iter()
        .map(|d| std::fs::read_to_string(d).unwrap())
        .collect();
    let mut examples = Vec::new();
    files_under(&repo().join("examples"), &mut examples);
    for example in examples {
        let relative = example.strip_prefix(repo()).unwrap().display().to_string();
        assert!(docs.contains(&relative), "no document names {relative}");
    }
}

#[test]
fn the_readme_opens_with_the_install_then_doctor_and_upload_then_the_contributors_commands() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    // The first screen: a terminal's worth of lines, for someone who has dbt, not Rust.
    let first_screen: Vec<&str> = readme.lines().take(24).collect();
    let at = |needle: &str| {
        first_screen
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("the first screen has no line starting {needle:?}"))
    };
    assert!(at("pip install dbt-secoda") < at("dbt-secoda doctor"));
    assert!(at("dbt-secoda doctor") < at("dbt-secoda upload"));
    assert!(
        first_screen
            .iter()
            .any(|l| l.contains("`uvx dbt-secoda upload`"))
    );
    assert!(!first_screen.iter().any(|l| l.contains("cargo ")));
    // Then the demo and the test command, for contributors, before the rest.
    let demo = readme
        .find("\ncargo run --release -- demo")
        .expect("the demo from source");
    let tests = readme.find("\ncargo test ").expect("the test command");
    let install = readme.find("\n## Install\n").expect("an Install section");
    assert!(demo < install && tests < install);
    let action = readme
        .find("\n## GitHub Action\n")
        .expect("a GitHub Action section");
    readme
        .find("\n## Container\n")
        .expect("a Container section");
    // Reports after a failed build, but not after a cancelled job.
    assert!(readme[action..].contains("if: ${{ !cancelled() }}"));
}

/// The tests docs/reliability.md names: `module::test` (tests/it/module.rs), `src/….rs::test` (a
/// unit test) and `fuzz/….rs` (a fuzz target), from the last column of its tables.
fn reliability_references() -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(repo().join("docs/reliability.md")).unwrap();
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let cells: Vec<&str> = line.split(" | ").collect();
        if !line.starts_with("| ") || cells.len() < 4 || line.starts_with("| ---") {
            continue;
        }
        let held_by = cells[cells.len() - 1].trim_end_matches(" |");
        if held_by == "held by" {
            continue;
        }
        let names: Vec<&str> = held_by
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|n| !n.is_empty())
            .collect();
        assert!(
            !names.is_empty(),
            "docs/reliability.md:{}: no test named",
            i + 1
        );
        found.extend(names.into_iter().map(|n| (i + 1, n.to_string())));
    }
    found
}

#[test]
fn every_test_docs_reliability_names_exists() {
    let references = reliability_references();
    let rows: std::collections::BTreeSet<usize> = references.iter().map(|(l, _)| *l).collect();
    for (line, name) in &references {
        let (file, test) = match name.split_once(".rs::") {
            Some((file, test)) => (repo().join(format!("{file}.rs")), Some(test)),
            None if name.starts_with("fuzz/") => (repo().join(name), None),
            None => {
                let (module, test) = name
                    .split_once("::")
                    .unwrap_or_else(|| panic!("docs/reliability.md:{line}: {name:?}"));
                (repo().join(format!("tests/it/{module}.rs")), Some(test))
            }
        };
        let source = std::fs::read_to_string(&file)
            .unwrap_or_else(|_| panic!("docs/reliability.md:{line}: {name}: no {file:?}"));
        if let Some(test) = test {
            assert!(
                source.contains(&format!("fn {test}()")),
                "docs/reliability.md:{line}: {name} is not a test in {}",
                file.display()
            );
        }
    }
    println!(
        "docs/reliability.md: {} cases, {} tests named",
        rows.len(),
        references.len()
    );
}
