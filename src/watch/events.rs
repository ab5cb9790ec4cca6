//! File-system events as hints: a change to a folder's artifacts makes the shell look at that
//! folder now instead of at the next scan. Events are never trusted for what they say (inotify
//! merges and drops them, network file systems send none): the look decides.
//!
//! Watched, each non-recursively (dbt's `compiled/` and `run/` make hundreds of events a build):
//! every target folder, the folder above it (to see it made or removed by `dbt clean`), and the
//! fixed part of every `--target-glob` (to see new folders sooner than the next survey). An event
//! about any other name (a log file written beside the target folder, dbt's other artifacts) is
//! dropped in the callback, before anything is logged or sent; so is notify's own chatter (see
//! `logging`). Attaching and detaching watches touches the file system: the shell calls
//! [`Events::refresh`] from a blocking thread.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::event::{CreateKind, ModifyKind, RemoveKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::config::ArtifactPaths;

/// What an event hints at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Look at this target folder.
    Folder(PathBuf),
    /// Survey again: a folder appeared or vanished under a glob, or events were lost.
    Survey,
}

/// Which paths matter, shared with the callback.
#[derive(Debug, Default)]
struct Routes {
    /// Artifact file → its target folder.
    files: HashMap<PathBuf, PathBuf>,
    /// Target folders (made or removed).
    folders: BTreeSet<PathBuf>,
    /// Folders whose new or removed subfolders matter (glob bases).
    bases: BTreeSet<PathBuf>,
}

/// The watcher and its watches.
pub struct Events {
    watcher: RecommendedWatcher,
    routes: Arc<Mutex<Routes>>,
    /// Folders watched now.
    watched: BTreeSet<PathBuf>,
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether an event can mean something was written, made, removed or renamed: not a mere open
/// or read (the watcher's own looks and copies read the files and must not wake it again).
fn writes(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Whether an event in a glob base is a folder made, removed or renamed.
fn folder_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(CreateKind::Folder | CreateKind::Any)
            | EventKind::Remove(RemoveKind::Folder | RemoveKind::Any)
            | EventKind::Modify(ModifyKind::Name(_))
    )
}

fn route(routes: &Routes, event: &Event) -> Vec<Hint> {
    let mut hints = Vec::new();
    if !writes(&event.kind) {
        return hints;
    }
    for path in &event.paths {
        if let Some(folder) = routes.files.get(path) {
            hints.push(Hint::Folder(folder.clone()));
        } else if routes.folders.contains(path) {
            hints.push(Hint::Folder(path.clone()));
        } else if folder_change(&event.kind)
            && path.parent().is_some_and(|p| routes.bases.contains(p))
        {
            hints.push(Hint::Survey);
        }
    }
    hints
}

impl Events {
    /// Starts the watcher; `send` gets every hint (from notify's thread). An error means this
    /// platform or mount gives no events (the scan alone then).
    pub fn start(send: impl Fn(Hint) + Send + 'static) -> notify::Result<Events> {
        let routes = Arc::new(Mutex::new(Routes::default()));
        let shared = Arc::clone(&routes);
        let watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let hints = match &event {
                Err(_) => vec![Hint::Survey],
                Ok(event) if event.need_rescan() => vec![Hint::Survey],
                Ok(event) => match shared.lock() {
                    Ok(routes) => route(&routes, event),
                    Err(_) => Vec::new(),
                },
            };
            for hint in hints {
                send(hint);
            }
        })?;
        Ok(Events {
            watcher,
            routes,
            watched: BTreeSet::new(),
        })
    }

    /// Watches what `folders` and `bases` need and forgets what they no longer do. Returns the
    /// folders newly attached (a file written right after its folder was made can be missed, so
    /// the shell looks at them), and whether every folder wanted is watched now. Touches the file
    /// system: call it from a blocking thread.
    pub fn refresh(
        &mut self,
        folders: &[ArtifactPaths],
        bases: &[PathBuf],
    ) -> (Vec<PathBuf>, bool) {
        let mut routes = Routes::default();
        let mut wanted: BTreeMap<PathBuf, Option<PathBuf>> = BTreeMap::new();
        for paths in folders {
            let folder = absolute(&paths.target_dir);
            for file in [&paths.manifest, &paths.run_results] {
                let file = absolute(file);
                if let Some(dir) = file.parent() {
                    wanted.insert(dir.to_path_buf(), Some(folder.clone()));
                }
                routes.files.insert(file, folder.clone());
            }
            if let Some(up) = folder.parent() {
                wanted.entry(up.to_path_buf()).or_insert(None);
            }
            routes.folders.insert(folder);
        }
        for base in bases {
            let base = absolute(base);
            wanted.entry(base.clone()).or_insert(None);
            routes.bases.insert(base);
        }
        if let Ok(mut shared) = self.routes.lock() {
            *shared = routes;
        }
        let mut attached = Vec::new();
        let mut complete = true;
        for (dir, folder) in &wanted {
            let exists = dir.is_dir();
            let watched = self.watched.contains(dir);
            if exists && !watched {
                if self.watcher.watch(dir, RecursiveMode::NonRecursive).is_ok() {
                    self.watched.insert(dir.clone());
                    if let Some(folder) = folder {
                        attached.push(folder.clone());
                    }
                }
            } else if !exists && watched {
                // A removed folder's watch died with it.
                self.watched.remove(dir);
                let _ = self.watcher.unwatch(dir);
            }
            complete &= self.watched.contains(dir);
        }
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|d| !wanted.contains_key(*d))
            .cloned()
            .collect();
        for dir in stale {
            let _ = self.watcher.unwatch(&dir);
            self.watched.remove(&dir);
        }
        (attached, complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, DataChange};

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_the_artifacts_their_folders_and_new_folders_under_a_glob_are_hints() {
        let mut routes = Routes::default();
        routes
            .files
            .insert("/p/target/run_results.json".into(), "/p/target".into());
        routes.folders.insert("/p/target".into());
        routes.bases.insert("/runs".into());
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert_eq!(
            route(&routes, &event(write, "/p/target/run_results.json")),
            vec![Hint::Folder("/p/target".into())]
        );
        // A log file beside the target folder, or dbt's other files: nothing.
        assert!(route(&routes, &event(write, "/p/watch.log")).is_empty());
        assert!(route(&routes, &event(write, "/p/target/graph.gpickle")).is_empty());
        // Our own reads: nothing.
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert!(route(&routes, &event(read, "/p/target/run_results.json")).is_empty());
        // The target folder removed (dbt clean) or made.
        let removed = EventKind::Remove(RemoveKind::Folder);
        assert_eq!(
            route(&routes, &event(removed, "/p/target")),
            vec![Hint::Folder("/p/target".into())]
        );
        // A new folder under a glob base: survey; a file written there: nothing.
        let made = EventKind::Create(CreateKind::Folder);
        assert_eq!(
            route(&routes, &event(made, "/runs/b-2")),
            vec![Hint::Survey]
        );
        assert!(route(&routes, &event(write, "/runs/notes.txt")).is_empty());
    }
}
