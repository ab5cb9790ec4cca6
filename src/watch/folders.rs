//! Which target folders a watcher serves: those named (`--target-dir`, repeatable) and every
//! folder that matches a `--target-glob` now (folders made after the start are found by the next
//! survey, or sooner by an event; folders that disappear are dropped).
//!
//! A survey reads folders (the globs' walk, the event watches' attach): blocking, run off the
//! async threads. Its matches are capped, so a glob like `/**` cannot walk a whole disk into
//! memory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::events::Events;
use crate::config::ArtifactPaths;

/// At most this many folders match the globs; past it the rest wait (and a warning says so).
pub const MAX_MATCHES: usize = 10_000;

/// The folders named and the globs, as the watcher was started with them.
#[derive(Debug, Clone)]
pub struct Targets {
    pub named: Vec<ArtifactPaths>,
    pub globs: Vec<String>,
}

/// What a survey found.
#[derive(Debug, Default)]
pub struct Survey {
    /// The named folders, then every folder a glob matches now (each once).
    pub folders: Vec<ArtifactPaths>,
    /// Folders whose event watch was attached now: look at them.
    pub attached: Vec<PathBuf>,
    /// Nothing a later survey could change until something moves: no globs, and every folder
    /// wanted is watched (or there are no events).
    pub settled: bool,
    /// The globs matched more than [`MAX_MATCHES`] folders.
    pub capped: bool,
    pub problems: Vec<String>,
}

/// `pattern` made absolute against the current folder (its literal part escaped).
pub fn absolute_pattern(pattern: &str) -> String {
    if Path::new(pattern).is_absolute() {
        return pattern.to_string();
    }
    let here = std::env::current_dir().unwrap_or_default();
    let escaped = glob::Pattern::escape(&here.display().to_string());
    format!("{escaped}/{pattern}")
}

/// The fixed folder a pattern starts from: its components before the first with a wildcard.
pub fn base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for part in Path::new(pattern).components() {
        let text = part.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) {
            break;
        }
        base.push(part);
    }
    base
}

/// Checks a pattern as it is given: an error names what is wrong with it.
pub fn check(pattern: &str) -> Result<(), String> {
    glob::Pattern::new(pattern)
        .map(|_| ())
        .map_err(|e| format!("{pattern:?} is not a glob pattern: {e}"))
}

/// Surveys `targets` and, when events are on, attaches their watches.
pub fn survey(targets: &Targets, events: Option<&Arc<Mutex<Events>>>) -> Survey {
    let mut survey = Survey {
        folders: targets.named.clone(),
        ..Survey::default()
    };
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut matched = 0;
    let mut bases = Vec::new();
    for pattern in &targets.globs {
        let pattern = absolute_pattern(pattern);
        bases.push(base(&pattern));
        let paths = match glob::glob_with(&pattern, options) {
            Ok(paths) => paths,
            Err(e) => {
                survey.problems.push(format!("{pattern:?}: {e}"));
                continue;
            }
        };
        for entry in paths {
            let path = match entry {
                Ok(path) => path,
                // A folder that cannot be read is skipped; the rest are still found.
                Err(e) => {
                    survey.problems.push(e.to_string());
                    continue;
                }
            };
            if !path.is_dir() {
                continue;
            }
            let folder = std::path::absolute(&path).unwrap_or(path);
            if survey.folders.iter().any(|f| f.target_dir == folder) {
                continue;
            }
            if matched == MAX_MATCHES {
                survey.capped = true;
                break;
            }
            matched += 1;
            survey.folders.push(ArtifactPaths::in_target(&folder));
        }
    }
    let mut watched = true;
    if let Some(events) = events
        && let Ok(mut events) = events.lock()
    {
        (survey.attached, watched) = events.refresh(&survey.folders, &bases);
    }
    survey.settled = targets.globs.is_empty() && watched;
    survey
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_finds_folders_only_and_its_base_is_its_fixed_part() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in ["build-a1", "build-b2", "notes"] {
            std::fs::create_dir_all(root.join("target").join(name)).unwrap();
        }
        std::fs::write(root.join("target/build-file"), "x").unwrap();
        let pattern = format!("{}/target/build-*", root.display());
        assert_eq!(base(&pattern), root.join("target"));
        let found = survey(
            &Targets {
                named: vec![],
                globs: vec![pattern],
            },
            None,
        );
        let mut names: Vec<String> = found
            .folders
            .iter()
            .map(|f| {
                f.target_dir
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(names, vec!["build-a1", "build-b2"]);
        assert!(check("target/[").is_err());
        assert!(check("target/*/x").is_ok());
    }
}
