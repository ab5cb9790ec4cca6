//! The state file: for each target folder, the last run processed and the ids of the runs before
//! it, so a restart neither uploads a run again nor skips a newer one; and the lock that keeps a
//! second watcher off the same state file.
//!
//! A small versioned JSON document, written atomically (a temporary file in the same folder,
//! fsync, rename over the old one, fsync of the folder) by one writer thread, never on the async
//! one: a crash leaves the old state or the new, never half of one, and a slow disk never stalls
//! the watcher's health answers. A file that cannot be read, is not this format or comes from a
//! newer dbt-secoda is reported and set aside (renamed beside itself), never a crash and never
//! silently overwritten. Format 1 (one folder) is read and rewritten as format 2.
//!
//! The lock is an advisory lock on `FILE.lock` beside the state file, held for the life of the
//! process (the state file itself is replaced by every write, so it cannot carry the lock); the
//! lock file names the process that holds it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::order::{Placed, Processed, format_time, parse_time};
use crate::exit::{ExitCode, Failure};

/// The format this build reads and writes.
pub const VERSION: u32 = 2;

/// Ids of earlier runs kept per folder (a restore of one of them is never uploaded twice).
const KEPT_IDS: usize = 32;

/// Folders kept (one a dbt invocation under dagster-dbt): the least recently processed go first.
const KEPT_FOLDERS: usize = 1000;

/// Why a watcher cannot use its state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("--state-file {path} is a folder, not a file", path = .path.display())]
    Folder { path: PathBuf },
    #[error("the state file {path} is in use by another watcher ({holder})", path = .path.display())]
    Locked { path: PathBuf, holder: String },
}

impl Failure for StateError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            StateError::Folder { path } => format!(
                "give --state-file a file name, e.g. {}",
                path.join("watch.json").display()
            ),
            StateError::Locked { .. } => "one watcher per state file: two would upload every run \
                 twice. Stop the other one, or give this one its own --state-file"
                .into(),
        })
    }
}

/// A run recorded for a folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub invocation_id: String,
    /// run_results.json's `metadata.generated_at`, as dbt wrote it.
    pub generated_at: Option<String>,
    /// When the watcher first read the run (RFC 3339).
    pub seen_at: String,
    /// When its sync was triggered (RFC 3339).
    pub processed_at: String,
    pub manifest_sha256: String,
    pub run_results_sha256: String,
}

impl Entry {
    pub fn new(processed: &Processed, manifest_sha256: &str, run_results_sha256: &str) -> Entry {
        Entry {
            invocation_id: processed.invocation_id.clone(),
            generated_at: processed.placed.generated.map(format_time),
            seen_at: format_time(processed.placed.seen),
            processed_at: format_time(processed.at),
            manifest_sha256: manifest_sha256.to_string(),
            run_results_sha256: run_results_sha256.to_string(),
        }
    }

    fn processed(&self) -> Processed {
        let at = parse_time(&self.processed_at).unwrap_or(SystemTime::UNIX_EPOCH);
        Processed {
            invocation_id: self.invocation_id.clone(),
            placed: Placed {
                generated: self.generated_at.as_deref().and_then(parse_time),
                // Read no later than it was processed.
                seen: parse_time(&self.seen_at).map_or(at, |s| s.min(at)),
            },
            at,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FolderState {
    last: Option<Entry>,
    /// Ids of the runs processed before `last`, oldest first.
    #[serde(default)]
    earlier: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Document {
    version: u32,
    /// By the target folder's absolute path.
    folders: BTreeMap<String, FolderState>,
}

/// Format 1: one target folder.
#[derive(Debug, Deserialize)]
struct DocumentV1 {
    target: String,
    last: Option<EntryV1>,
}

#[derive(Debug, Deserialize)]
struct EntryV1 {
    invocation_id: String,
    run_results_generated_at: Option<String>,
    manifest_sha256: String,
    run_results_sha256: String,
    processed_at: u64,
}

#[derive(Debug, Deserialize)]
struct Version {
    version: u32,
}

/// The key a folder is kept under.
pub fn key(folder: &Path) -> String {
    std::path::absolute(folder)
        .unwrap_or_else(|_| folder.to_path_buf())
        .display()
        .to_string()
}

/// The default place for a watcher's state: `$XDG_STATE_HOME/dbt-secoda/` (or
/// `~/.local/state/dbt-secoda/`), one file per set of folders watched; beside the first target
/// folder when neither variable is set.
pub fn default_path(targets: &[PathBuf], globs: &[String]) -> PathBuf {
    use sha2::{Digest, Sha256};
    let mut what: Vec<String> = targets.iter().map(|t| key(t)).collect();
    what.extend(globs.iter().map(|g| format!("glob:{g}")));
    let digest = Sha256::digest(what.join("\n").as_bytes());
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
    let first = targets
        .first()
        .map(|t| std::path::absolute(t).unwrap_or_else(|_| t.clone()))
        .unwrap_or_default();
    let parent = first.parent().unwrap_or(Path::new("."));
    parent.join(format!(".dbt-secoda-{file}"))
}

/// What the state file held at start, and warnings about it.
pub struct Loaded {
    pub warnings: Vec<String>,
    pub lock_warning: Option<String>,
}

/// A watcher's state, held under its lock.
pub struct StateFile {
    path: PathBuf,
    doc: Document,
    /// False when the file could neither be read nor set aside: then nothing is written over it.
    writable: bool,
    _lock: Option<File>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Takes the lock beside `path`: Ok(None) when it cannot be made (a read-only folder: the state
/// cannot be written either, and that is said elsewhere).
fn lock(path: &Path) -> Result<(Option<File>, Option<String>), StateError> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
    {
        Ok(file) => file,
        Err(e) => {
            return Ok((
                None,
                Some(format!(
                    "cannot lock the state file ({}: {e}): a second watcher on it would not be \
                     stopped",
                    lock_path.display()
                )),
            ));
        }
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "a process that has not said which".into());
            return Err(StateError::Locked {
                path: path.to_path_buf(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Ok((
                None,
                Some(format!(
                    "cannot lock the state file ({}: {e}): a second watcher on it would not be \
                     stopped",
                    lock_path.display()
                )),
            ));
        }
    }
    let _ = file.set_len(0);
    let _ = writeln!(
        file,
        "pid {}, started {}",
        std::process::id(),
        format_time(SystemTime::now())
    );
    Ok((Some(file), None))
}

impl StateFile {
    /// Opens the state at `path` under its lock. A folder, or a lock another watcher holds, is an
    /// error; a problem with the file's contents is a warning, and the file is set aside.
    pub fn open(path: &Path) -> Result<(StateFile, Loaded), StateError> {
        if path.is_dir() {
            return Err(StateError::Folder {
                path: path.to_path_buf(),
            });
        }
        let (lock, lock_warning) = lock(path)?;
        let mut state = StateFile {
            path: path.to_path_buf(),
            doc: Document {
                version: VERSION,
                folders: BTreeMap::new(),
            },
            writable: true,
            _lock: lock,
        };
        let mut warnings = Vec::new();
        match crate::files::read_regular(path) {
            Ok(bytes) => state.read(&bytes, &mut warnings),
            Err(crate::files::OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => state.set_aside(
                &format!("it cannot be read ({e})"),
                "unreadable",
                &mut warnings,
            ),
        }
        Ok((
            state,
            Loaded {
                warnings,
                lock_warning,
            },
        ))
    }

    fn read(&mut self, bytes: &[u8], warnings: &mut Vec<String>) {
        let version = match serde_json::from_slice::<Version>(bytes) {
            Ok(v) => v.version,
            Err(e) => {
                return self.set_aside(
                    &format!("it is not a state file ({e})"),
                    "corrupt",
                    warnings,
                );
            }
        };
        match version {
            1 => match serde_json::from_slice::<DocumentV1>(bytes) {
                Ok(v1) => {
                    let last = v1.last.map(|e| {
                        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(e.processed_at);
                        Entry {
                            invocation_id: e.invocation_id,
                            generated_at: e.run_results_generated_at,
                            seen_at: format_time(at),
                            processed_at: format_time(at),
                            manifest_sha256: e.manifest_sha256,
                            run_results_sha256: e.run_results_sha256,
                        }
                    });
                    let folder = FolderState {
                        last,
                        earlier: Vec::new(),
                    };
                    self.doc.folders.insert(key(Path::new(&v1.target)), folder);
                }
                Err(e) => self.set_aside(
                    &format!("it is not a state file ({e})"),
                    "corrupt",
                    warnings,
                ),
            },
            VERSION => match serde_json::from_slice::<Document>(bytes) {
                Ok(doc) => self.doc = doc,
                Err(e) => self.set_aside(
                    &format!("it is not a state file ({e})"),
                    "corrupt",
                    warnings,
                ),
            },
            newer => self.set_aside(
                &format!(
                    "it was written by a newer dbt-secoda (format {newer}; this one reads \
                     {VERSION})"
                ),
                "newer",
                warnings,
            ),
        }
    }

    /// Renames the file beside itself, so nothing in it is lost, and says so.
    fn set_aside(&mut self, why: &str, tag: &str, warnings: &mut Vec<String>) {
        let stamp = unix_now();
        let aside = (0..100)
            .map(|n| match n {
                0 => self.path.with_extension(format!("json.{tag}-{stamp}")),
                n => self.path.with_extension(format!("json.{tag}-{stamp}-{n}")),
            })
            .find(|p| !p.exists())
            .unwrap_or_else(|| self.path.with_extension("json.aside"));
        match std::fs::rename(&self.path, &aside) {
            Ok(()) => warnings.push(format!(
                "state file {}: {why}; set aside as {}; starting with no state",
                self.path.display(),
                aside.display()
            )),
            Err(e) => {
                self.writable = false;
                warnings.push(format!(
                    "state file {}: {why}, and it cannot be set aside ({e}); starting with no \
                     state and writing none (pass --state-file to keep state elsewhere)",
                    self.path.display()
                ));
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every folder's last run and the ids before it, by folder key.
    pub fn folders(&self) -> BTreeMap<String, (Option<Processed>, Vec<String>)> {
        self.doc
            .folders
            .iter()
            .map(|(k, f)| {
                let mut ids = f.earlier.clone();
                ids.extend(f.last.iter().map(|l| l.invocation_id.clone()));
                (k.clone(), (f.last.as_ref().map(Entry::processed), ids))
            })
            .collect()
    }

    /// Records `entry` as `folder`'s last run, on disk before this returns.
    fn record(&mut self, folder: &str, entry: Entry) -> std::io::Result<()> {
        let state = self.doc.folders.entry(folder.to_string()).or_default();
        if let Some(previous) = state.last.replace(entry)
            && previous.invocation_id != state.last.as_ref().map_or("", |l| &l.invocation_id)
        {
            state.earlier.push(previous.invocation_id);
            let over = state.earlier.len().saturating_sub(KEPT_IDS);
            state.earlier.drain(..over);
        }
        while self.doc.folders.len() > KEPT_FOLDERS {
            let oldest = self
                .doc
                .folders
                .iter()
                .min_by_key(|(_, f)| f.last.as_ref().map(|l| l.processed_at.clone()))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) if k != folder => {
                    self.doc.folders.remove(&k);
                }
                _ => break,
            }
        }
        if !self.writable {
            return Ok(());
        }
        self.doc.version = VERSION;
        let json = serde_json::to_vec_pretty(&self.doc).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &json)
    }

    /// Hands the state to a writer thread; records go through the returned [`Writer`].
    pub fn into_writer(self, report: impl Fn(Written) + Send + 'static) -> Writer {
        let (tx, rx) = mpsc::channel::<Message>();
        let thread = std::thread::Builder::new()
            .name("dbt-secoda-state".into())
            .spawn(move || {
                let mut state = self;
                for message in rx {
                    match message {
                        Message::Record { folder, entry } => {
                            let id = entry.invocation_id.clone();
                            let result = state.record(&folder, entry);
                            report(Written {
                                invocation_id: id,
                                error: result.err().map(|e| e.to_string()),
                                path: state.path.clone(),
                            });
                        }
                        Message::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
        Writer {
            tx: thread.ok().map(|_| tx),
        }
    }
}

/// One record written (or not).
#[derive(Debug)]
pub struct Written {
    pub invocation_id: String,
    pub path: PathBuf,
    pub error: Option<String>,
}

enum Message {
    Record { folder: String, entry: Entry },
    Flush(mpsc::Sender<()>),
}

/// Sends records to the writer thread; never blocks.
#[derive(Clone)]
pub struct Writer {
    tx: Option<mpsc::Sender<Message>>,
}

impl Writer {
    pub fn record(&self, folder: String, entry: Entry) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Record { folder, entry });
        }
    }

    /// Blocks until every record sent so far is on disk, or `timeout` passed; whether it was.
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(tx) = &self.tx else {
            return true;
        };
        let (done, wait) = mpsc::channel();
        if tx.send(Message::Flush(done)).is_err() {
            return true;
        }
        wait.recv_timeout(timeout).is_ok()
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

    fn entry(id: &str) -> Entry {
        Entry {
            invocation_id: id.into(),
            generated_at: Some("2026-11-28T07:10:58Z".into()),
            seen_at: "2026-11-28T07:11:00Z".into(),
            processed_at: "2026-11-28T07:11:01Z".into(),
            manifest_sha256: "m".into(),
            run_results_sha256: "r".into(),
        }
    }

    #[test]
    fn a_state_survives_a_restart_and_keeps_earlier_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (mut state, loaded) = StateFile::open(&path).unwrap();
        assert!(loaded.warnings.is_empty() && loaded.lock_warning.is_none());
        state.record("/t", entry("a")).unwrap();
        state.record("/t", entry("b")).unwrap();
        state.record("/u", entry("c")).unwrap();
        drop(state);
        let (again, _) = StateFile::open(&path).unwrap();
        let folders = again.folders();
        let (last, ids) = &folders["/t"];
        assert_eq!(last.as_ref().unwrap().invocation_id, "b");
        assert_eq!(ids, &vec!["a".to_string(), "b".to_string()]);
        assert_eq!(folders["/u"].0.as_ref().unwrap().invocation_id, "c");
    }

    #[test]
    fn one_watcher_per_state_file_and_a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (first, _) = StateFile::open(&path).unwrap();
        let Err(StateError::Locked { holder, .. }) = StateFile::open(&path) else {
            panic!("a second open must fail")
        };
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        drop(first);
        assert!(
            StateFile::open(&path).is_ok(),
            "the lock goes with its holder"
        );
        assert!(matches!(
            StateFile::open(dir.path()),
            Err(StateError::Folder { .. })
        ));
    }

    #[test]
    fn format_1_is_read_and_bad_files_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let target = dir.path().join("target");
        let v1 = serde_json::json!({"version": 1, "target": target.display().to_string(), "last": {
            "invocation_id": "old", "run_results_generated_at": "2099-01-01T00:00:00Z",
            "manifest_sha256": "m", "run_results_sha256": "r", "processed_at": 1_800_000_000u64}});
        std::fs::write(&path, v1.to_string()).unwrap();
        let (state, loaded) = StateFile::open(&path).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let folders = state.folders();
        let last = folders[&key(&target)].0.clone().unwrap();
        assert_eq!(last.invocation_id, "old");
        // A run from 2099 recorded by format 1 is placed no later than it was processed.
        assert_eq!(
            last.placed.seen,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
        );
        assert!(last.placed.ahead().is_some());
        drop(state);

        for (text, tag) in [
            ("{not json".to_string(), "corrupt"),
            (r#"{"version": 9, "folders": {}}"#.to_string(), "newer"),
        ] {
            std::fs::write(&path, &text).unwrap();
            let (fresh, loaded) = StateFile::open(&path).unwrap();
            assert!(fresh.folders().is_empty(), "{tag}");
            assert_eq!(loaded.warnings.len(), 1, "{tag}");
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

    #[test]
    fn the_writer_thread_records_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (state, _) = StateFile::open(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = state.into_writer(move |w| {
            let _ = tx.send(w);
        });
        writer.record("/t".into(), entry("a"));
        assert!(writer.flush(Duration::from_secs(30)));
        let written = rx.recv().unwrap();
        assert_eq!(written.invocation_id, "a");
        assert!(written.error.is_none());
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["version"], 2);
        assert_eq!(doc["folders"]["/t"]["last"]["invocation_id"], "a");
    }
}
