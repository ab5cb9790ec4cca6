//! The stat scan, the watcher's source of truth: what the two files look like now, and whether
//! they are a complete pair from one dbt invocation.
//!
//! A scan costs two `stat`s; only when a file changed are its first bytes and last bytes read
//! (the cheap checks of [`crate::artifacts::inspect`]). Whether the pair holds still long
//! enough, and whether it is fresh, is the watch loop's call.

use std::path::Path;
use std::time::SystemTime;

use crate::artifacts::{self, ArtifactError, Pair};
use crate::config::ArtifactPaths;

/// What `stat` says of a file: enough to notice any rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    pub fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        })
    }
}

/// Both files' stamps: equal stamps mean nothing was rewritten in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairStamp {
    pub manifest: Option<Stamp>,
    pub run_results: Option<Stamp>,
}

impl PairStamp {
    pub fn of(paths: &ArtifactPaths) -> PairStamp {
        PairStamp {
            manifest: Stamp::of(&paths.manifest),
            run_results: Stamp::of(&paths.run_results),
        }
    }

    pub fn both_present(&self) -> bool {
        self.manifest.is_some() && self.run_results.is_some()
    }
}

/// What the files are, judged by their first and last bytes.
#[derive(Debug)]
pub enum Look {
    /// One or both files are missing.
    Missing,
    /// Both are there but are no pair yet: a file still being written, or a manifest from a later
    /// invocation than run_results (a run in progress, or `dbt parse`/`ls`).
    NotAPair(String),
    /// Both look complete and carry one invocation_id.
    Pair(Box<Pair>),
}

/// Looks at the pair, reading only the first and last bytes of each file.
pub fn look(paths: &ArtifactPaths) -> Look {
    match artifacts::inspect_pair(&paths.manifest, &paths.run_results) {
        Ok(pair) => Look::Pair(Box::new(pair)),
        Err(ArtifactError::Missing { .. }) => Look::Missing,
        Err(ArtifactError::Mismatched {
            manifest,
            run_results,
        }) => Look::NotAPair(format!(
            "manifest.json is invocation {}, run_results.json {}: a dbt run in progress or a \
             manifest-only command",
            manifest.invocation_id(),
            run_results.invocation_id()
        )),
        Err(other) => Look::NotAPair(other.to_string()),
    }
}
