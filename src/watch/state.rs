//! The state file: which pair the watcher processed last, so a restart neither re-uploads it nor
//! skips a newer one.
//!
//! A small versioned JSON document, written atomically (a temporary file in the same folder,
//! fsync, rename over the old one, fsync of the folder), so a crash leaves either the old state
//! or the new, never half of one. A file that cannot be read, is not this format, comes from a
//! newer dbt-secoda or names another target folder is reported and set aside (renamed beside
//! itself), never a crash and never silently overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The format this build reads and writes.
pub const VERSION: u32 = 1;

/// A pair uploaded and triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processed {
    pub invocation_id: String,
    /// run_results.json's `metadata.generated_at`: a pair older than this is never uploaded.
    pub run_results_generated_at: Option<String>,
    pub manifest_sha256: String,
    pub run_results_sha256: String,
    /// When it was processed, in seconds since 1970.
    pub processed_at: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Document {
    version: u32,
    /// The target folder watched, as given.
    target: String,
    last: Option<Processed>,
}

/// The state of one watcher, and where it is kept.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    target: String,
    last: Option<Processed>,
    /// False when the file could neither be read nor set aside: then nothing is written over it.
    writable: bool,
}

/// The default place for a target folder's state: `$XDG_STATE_HOME/dbt-secoda/` (or
/// `~/.local/state/dbt-secoda/`), one file per target folder; beside the target folder when
/// neither variable is set.
pub fn default_path(target: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let absolute = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    let digest = Sha256::digest(absolute.to_string_lossy().as_bytes());
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let file = format!("watch-{name}.json");
    let non_empty = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    if let Some(state) = non_empty("XDG_STATE_HOME") {
        return PathBuf::from(state).join("dbt-secoda").join(file);
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home)
            .join(".local/state/dbt-secoda")
            .join(file);
    }
    let parent = absolute.parent().unwrap_or(Path::new("."));
    parent.join(format!(".dbt-secoda-{file}"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl StateFile {
    /// Opens the state at `path` for `target`. A problem with the file is logged as a warning and
    /// the file set aside; the watcher then starts with no state.
    pub fn open(path: &Path, target: &Path) -> StateFile {
        let target = target.display().to_string();
        let mut state = StateFile {
            path: path.to_path_buf(),
            target: target.clone(),
            last: None,
            writable: true,
        };
        let bytes = match crate::files::read_regular(path) {
            Ok(bytes) => bytes,
            Err(crate::files::OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return state;
            }
            Err(e) => {
                state.set_aside(&format!("it cannot be read ({e})"), "unreadable");
                return state;
            }
        };
        match serde_json::from_slice::<Document>(&bytes) {
            Ok(doc) if doc.version > VERSION => state.set_aside(
                &format!(
                    "it was written by a newer dbt-secoda (format {}; this one reads {VERSION})",
                    doc.version
                ),
                "newer",
            ),
            Ok(doc) if doc.target != target => state.set_aside(
                &format!("it is the state of another target folder ({})", doc.target),
                "other-target",
            ),
            Ok(doc) => state.last = doc.last,
            Err(e) => state.set_aside(&format!("it is not a state file ({e})"), "corrupt"),
        }
        state
    }

    /// Renames the file beside itself, so nothing in it is lost, and says so.
    fn set_aside(&mut self, why: &str, tag: &str) {
        let stamp = unix_now();
        let aside = (0..)
            .map(|n| match n {
                0 => self.path.with_extension(format!("json.{tag}-{stamp}")),
                n => self.path.with_extension(format!("json.{tag}-{stamp}-{n}")),
            })
            .find(|p| !p.exists())
            .unwrap_or_else(|| self.path.with_extension("json.aside"));
        match std::fs::rename(&self.path, &aside) {
            Ok(()) => tracing::warn!(
                "state file {}: {why}; set aside as {}; starting with no state",
                self.path.display(),
                aside.display()
            ),
            Err(e) => {
                self.writable = false;
                tracing::warn!(
                    "state file {}: {why}, and it cannot be set aside ({e}); starting with no \
                     state and writing none (pass --state-file to keep state elsewhere)",
                    self.path.display()
                );
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn last(&self) -> Option<&Processed> {
        self.last.as_ref()
    }

    /// Records `processed` as the last pair, on disk before this returns.
    pub fn record(&mut self, mut processed: Processed) -> std::io::Result<()> {
        processed.processed_at = unix_now();
        self.last = Some(processed);
        if !self.writable {
            return Ok(());
        }
        let doc = Document {
            version: VERSION,
            target: self.target.clone(),
            last: self.last.clone(),
        };
        let json = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &json)
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename itself is durable only once the folder is.
    std::fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processed(id: &str) -> Processed {
        Processed {
            invocation_id: id.into(),
            run_results_generated_at: Some("2026-11-28T07:10:58Z".into()),
            manifest_sha256: "m".into(),
            run_results_sha256: "r".into(),
            processed_at: 0,
        }
    }

    #[test]
    fn a_state_survives_a_restart_and_bad_files_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let target = Path::new("target");
        let mut state = StateFile::open(&path, target);
        assert!(state.last().is_none());
        state.record(processed("a")).unwrap();
        let again = StateFile::open(&path, target);
        assert_eq!(again.last().unwrap().invocation_id, "a");

        for (text, tag) in [
            ("{not json".to_string(), "corrupt"),
            (
                r#"{"version": 9, "target": "target", "last": null}"#.to_string(),
                "newer",
            ),
            (
                r#"{"version": 1, "target": "elsewhere", "last": null}"#.to_string(),
                "other-target",
            ),
        ] {
            std::fs::write(&path, &text).unwrap();
            let fresh = StateFile::open(&path, target);
            assert!(fresh.last().is_none(), "{tag}");
            assert!(
                !path.exists(),
                "{tag}: set aside, not left to be overwritten"
            );
            let aside: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains(tag))
                .collect();
            assert_eq!(aside.len(), 1, "{tag}");
            assert_eq!(std::fs::read_to_string(aside[0].path()).unwrap(), text);
        }
    }
}
