//! File-system events as hints: a change near the artifacts makes the watch loop scan now
//! instead of at its next interval. Events are never trusted for what they say (inotify merges
//! and drops them, network file systems send none): the scan decides.
//!
//! The folders holding the two files are watched non-recursively (dbt's `compiled/` and `run/`
//! make hundreds of events a build), and so are their parents, to see a target folder created
//! or deleted (`dbt clean`); a folder that comes back is watched again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::ArtifactPaths;

/// The watcher and the hints it sends.
pub struct Events {
    watcher: RecommendedWatcher,
    /// Folders to watch, and whether each is being watched now.
    folders: Vec<(PathBuf, bool)>,
    pub hints: mpsc::UnboundedReceiver<()>,
}

/// The folders whose changes matter: those holding the files, and their parents.
fn folders(paths: &ArtifactPaths) -> Vec<PathBuf> {
    let mut set = BTreeSet::new();
    for file in [&paths.manifest, &paths.run_results] {
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        if let Some(dir) = absolute.parent() {
            set.insert(dir.to_path_buf());
            if let Some(up) = dir.parent() {
                set.insert(up.to_path_buf());
            }
        }
    }
    set.into_iter().collect()
}

/// Whether an event can mean a file changed: not a mere open or read (our own scans and copies
/// read the folder and the files, and must not wake the loop again).
fn writes(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn names(paths: &ArtifactPaths) -> Vec<std::ffi::OsString> {
    [&paths.manifest, &paths.run_results]
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
        .collect()
}

impl Events {
    /// Starts watching; an error means this platform or mount gives no events (use polling).
    pub fn start(paths: &ArtifactPaths) -> notify::Result<Events> {
        let (tx, hints) = mpsc::unbounded_channel();
        let files = names(paths);
        let dirs = folders(paths);
        let watched_dirs = dirs.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let relevant = match &event {
                // An error or an overflow (events lost): scan to be sure.
                Err(_) => true,
                Ok(event) => {
                    event.need_rescan()
                        || writes(&event.kind)
                            && event.paths.iter().any(|p| {
                                p.file_name().is_some_and(|n| files.iter().any(|f| f == n))
                                    || watched_dirs.iter().any(|d| d == p)
                            })
                }
            };
            if relevant {
                let _ = tx.send(());
            }
        })?;
        let mut events = Events {
            watcher,
            folders: dirs.into_iter().map(|d| (d, false)).collect(),
            hints,
        };
        events.refresh();
        Ok(events)
    }

    /// Watches the folders that exist and are not watched yet, and forgets those that are gone
    /// (a deleted folder's watch dies with it). Returns true when a folder came (back): the
    /// caller rescans, since a file written right after the folder was made can be missed.
    pub fn refresh(&mut self) -> bool {
        let mut attached = false;
        for (dir, watched) in &mut self.folders {
            let exists = dir.is_dir();
            if exists && !*watched {
                let _ = self.watcher.unwatch(dir);
                match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        *watched = true;
                        attached = true;
                        tracing::debug!("watching {}", dir.display());
                    }
                    Err(e) => tracing::debug!("cannot watch {}: {e}", dir.display()),
                }
            } else if !exists && *watched {
                *watched = false;
                let _ = self.watcher.unwatch(dir);
            }
        }
        attached
    }

    /// The folders watched now, for logs.
    pub fn watched(&self) -> Vec<&Path> {
        self.folders
            .iter()
            .filter(|(_, w)| *w)
            .map(|(d, _)| d.as_path())
            .collect()
    }
}
