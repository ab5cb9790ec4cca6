//! One look at a target folder: whether it is there, what `stat` says of both files, and, unless
//! their stamps are the ones the decision core trusts, what their first and last bytes say (the
//! cheap checks of [`crate::artifacts::inspect`]).
//!
//! Blocking: the shell runs it on a blocking thread, never on the async one, so a target on a
//! hung network mount stalls only its own folder. Whether what it finds is fresh, and what to do
//! about it, is [`super::decide`]'s call.

use std::path::Path;
use std::time::SystemTime;

use super::decide::{Look, NotAPair, Observed, PairStamp, Presence, Stamp};
use crate::artifacts::{self, ArtifactError};
use crate::config::ArtifactPaths;

/// What `stat` says of `path` (links followed); None when it is not there.
pub fn stat(path: &Path) -> Option<Stamp> {
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

/// Both files' stamps.
pub fn stamps(paths: &ArtifactPaths) -> PairStamp {
    PairStamp {
        manifest: stat(&paths.manifest),
        run_results: stat(&paths.run_results),
    }
}

/// Whether the target folder is there, and a folder.
pub fn presence(folder: &Path) -> Presence {
    match std::fs::metadata(folder) {
        Ok(meta) if meta.is_dir() => match std::fs::read_dir(folder) {
            Ok(_) => Presence::Present,
            Err(e) => Presence::Unreadable(e.kind().to_string()),
        },
        Ok(meta) if meta.is_file() => Presence::NotAFolder("a file"),
        Ok(meta) => Presence::NotAFolder(crate::files::describe(meta.file_type())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Presence::Missing,
        Err(e) => Presence::Unreadable(e.kind().to_string()),
    }
}

/// The cheap checks of both files.
pub fn inspect(paths: &ArtifactPaths) -> Look {
    match artifacts::inspect_pair(&paths.manifest, &paths.run_results) {
        Ok(pair) => Look::Pair {
            id: pair.invocation_id().to_string(),
            generated_at: pair.run_results.metadata.generated_at.clone(),
        },
        Err(ArtifactError::Missing { .. }) => Look::Missing,
        Err(ArtifactError::Mismatched {
            manifest,
            run_results,
        }) => Look::NotAPair(NotAPair::Mismatched {
            manifest: manifest.invocation_id().to_string(),
            run_results: run_results.invocation_id().to_string(),
        }),
        Err(other) => Look::NotAPair(NotAPair::Unfinished(other.to_string())),
    }
}

/// Looks at the folder of `paths`: the files are read unless their stamps equal `trust`.
pub fn look(paths: &ArtifactPaths, trust: Option<PairStamp>) -> Observed {
    let at = SystemTime::now();
    let presence = presence(&paths.target_dir);
    let stamp = stamps(paths);
    if trust == Some(stamp) {
        return Observed {
            at,
            presence,
            stamp,
            look: None,
            settled: true,
        };
    }
    let look = inspect(paths);
    let settled = stamps(paths) == stamp;
    Observed {
        at,
        presence,
        stamp,
        look: Some(look),
        settled,
    }
}
