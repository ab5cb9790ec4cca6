//! Snapshots: both files copied into a private temporary folder before they are uploaded, so a
//! new dbt run overwriting the target folder cannot corrupt an upload in flight.
//!
//! Each file is streamed through a fixed 1 MiB buffer into its copy, hashed and validated as
//! complete JSON on the way (memory stays flat whatever the size), and the original's stamp is
//! compared before and after: if dbt rewrote it meanwhile, or it is not complete JSON yet, the
//! snapshot is refused as "not ready" and the watcher tries again after the debounce.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use super::scan::Stamp;
use crate::artifacts::outcomes::RunResultsVisitor;
use crate::artifacts::scan::{NoCapture, Scanner, Visitor};
use crate::artifacts::{self, Pair};
use crate::config::ArtifactPaths;

/// A pair copied away from dbt's target folder.
pub struct Snapshot {
    /// The copies live as long as this does.
    _dir: TempDir,
    pub paths: ArtifactPaths,
    pub pair: Pair,
    pub manifest_sha256: String,
    pub run_results_sha256: String,
    /// `args.which` of run_results.json: the dbt command that wrote the pair.
    pub command: Option<String>,
}

/// Why no snapshot was taken now.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("{0} changed while it was copied")]
    Changed(String),
    #[error("{0}")]
    Incomplete(String),
    #[error("copying {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> NotReady + '_ {
    move |source| NotReady::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Copies `from` to `to`, hashing and validating it; returns the sha256 and the visitor.
fn copy<V: Visitor>(from: &Path, to: &Path, visitor: V) -> Result<(String, V), NotReady> {
    let before = Stamp::of(from);
    let mut source = crate::files::open_regular(from)
        .map_err(|e| NotReady::Incomplete(format!("{}: {e}", from.display())))?;
    let mut copy = File::create(to).map_err(io_error(to))?;
    let mut sha = Sha256::new();
    let mut scanner = Scanner::new(visitor);
    let mut buf = vec![0u8; artifacts::CHUNK];
    let mut valid = true;
    loop {
        let n = source.read(&mut buf).map_err(io_error(from))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        sha.update(chunk);
        valid = valid && scanner.feed(chunk).is_ok();
        copy.write_all(chunk).map_err(io_error(to))?;
    }
    copy.flush().map_err(io_error(to))?;
    if Stamp::of(from) != before {
        return Err(NotReady::Changed(from.display().to_string()));
    }
    let visitor = match (valid, scanner.finish()) {
        (true, Ok(visitor)) => visitor,
        _ => {
            return Err(NotReady::Incomplete(format!(
                "{} is not complete JSON yet",
                from.display()
            )));
        }
    };
    Ok((format!("{:x}", sha.finalize()), visitor))
}

/// Copies both files of `paths` into a new folder under `parent` (the system's temporary folder
/// when None) and checks the copies again: complete, one invocation, the one expected.
pub fn take(
    paths: &ArtifactPaths,
    expected_id: &str,
    parent: Option<&Path>,
) -> Result<Snapshot, NotReady> {
    let dir = match parent {
        Some(p) => tempfile::Builder::new()
            .prefix("dbt-secoda-snapshot-")
            .tempdir_in(p),
        None => tempfile::Builder::new()
            .prefix("dbt-secoda-snapshot-")
            .tempdir(),
    }
    .map_err(io_error(parent.unwrap_or(Path::new("(temporary folder)"))))?;
    let copies = ArtifactPaths::in_target(dir.path());
    // run_results first: dbt writes it last, so a manifest copied after it is at least as new.
    let (run_results_sha256, run) = copy(
        &paths.run_results,
        &copies.run_results,
        RunResultsVisitor::new(),
    )?;
    let (manifest_sha256, NoCapture) = copy(&paths.manifest, &copies.manifest, NoCapture)?;
    let pair = artifacts::inspect_pair(&copies.manifest, &copies.run_results)
        .map_err(|e| NotReady::Incomplete(e.to_string()))?;
    if pair.invocation_id() != expected_id {
        return Err(NotReady::Changed(format!(
            "the pair (now invocation {})",
            pair.invocation_id()
        )));
    }
    Ok(Snapshot {
        _dir: dir,
        paths: copies,
        pair,
        manifest_sha256,
        run_results_sha256,
        command: run.finish().command,
    })
}
