//! Snapshots: both files copied into the watcher's own temporary folder before they are
//! uploaded, so a new dbt run overwriting the target folder cannot corrupt an upload in flight.
//!
//! Each file is streamed through a fixed 1 MiB buffer into its copy, hashed and validated as
//! complete JSON on the way (memory stays flat whatever the size), and its stamp compared before
//! and after. The outcome is what the decision core needs to know ([`Copied`]): taken, changed
//! while copied (look again), held still but invalid (not copied again until a file changes), or
//! failed (a full disk). Blocking: run off the async threads.
//!
//! Copies live under one folder per state file (`$TMPDIR/dbt-secoda-<hash>/`); one watcher holds
//! a state file at a time, so at start it removes what a killed predecessor left there
//! ([`clear_stale`]).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use super::decide::{Copied, Run};
use super::scan::stat;
use crate::artifacts::outcomes::RunResultsVisitor;
use crate::artifacts::scan::{NoCapture, Scanner, Visitor};
use crate::artifacts::{self, ArtifactError, Pair};
use crate::config::ArtifactPaths;
use crate::files::OpenError;

/// A pair copied away from dbt's target folder.
pub struct Snapshot {
    /// The copies live as long as this does.
    _dir: TempDir,
    pub paths: ArtifactPaths,
    pub manifest_sha256: String,
    pub run_results_sha256: String,
    pub run: Run,
}

/// The folder that holds a watcher's copies, from its state file's path.
pub fn folder_for(state_file: &Path) -> PathBuf {
    let absolute = std::path::absolute(state_file).unwrap_or_else(|_| state_file.to_path_buf());
    let digest = Sha256::digest(absolute.to_string_lossy().as_bytes());
    let name: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    std::env::temp_dir().join(format!("dbt-secoda-{name}"))
}

/// Removes the copies a previous watcher of the same state file left behind (killed mid-upload);
/// returns how many. Only this watcher's folder is touched, and only after it holds the state
/// file's lock.
pub fn clear_stale(folder: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("snapshot-") {
            std::fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Why one file's copy is not usable.
enum Problem {
    Changed,
    Invalid(String),
    Failed(String),
}

/// Copies `from` to `to`, hashing and validating it; returns the sha256 and the visitor.
fn copy<V: Visitor>(from: &Path, to: &Path, visitor: V) -> Result<(String, V), Problem> {
    let before = stat(from);
    let mut source = match crate::files::open_regular(from) {
        Ok(file) => file,
        // Gone since the look: dbt cleaned or is rewriting; look again.
        Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Problem::Changed);
        }
        Err(OpenError::NotRegular(what)) => {
            return Err(Problem::Invalid(format!(
                "{} is {what}, not a regular file",
                from.display()
            )));
        }
        Err(e @ (OpenError::Io(_) | OpenError::TooLarge(_))) => {
            return Err(Problem::Failed(format!("reading {}: {e}", from.display())));
        }
    };
    let failed = |what: &str, path: &Path, e: std::io::Error| {
        Problem::Failed(format!("{what} {}: {e}", path.display()))
    };
    let mut copy = File::create(to).map_err(|e| failed("writing", to, e))?;
    let mut sha = Sha256::new();
    let mut scanner = Scanner::new(visitor);
    let mut buf = vec![0u8; artifacts::CHUNK];
    let mut error = None;
    loop {
        let n = source
            .read(&mut buf)
            .map_err(|e| failed("reading", from, e))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        sha.update(chunk);
        if error.is_none()
            && let Err(e) = scanner.feed(chunk)
        {
            error = Some(e);
        }
        copy.write_all(chunk)
            .map_err(|e| failed("writing", to, e))?;
    }
    copy.flush().map_err(|e| failed("writing", to, e))?;
    if stat(from) != before {
        return Err(Problem::Changed);
    }
    let finished = match error {
        Some(e) => Err(e),
        None => scanner.finish(),
    };
    match finished {
        Ok(visitor) => Ok((format!("{:x}", sha.finalize()), visitor)),
        Err(e) => Err(Problem::Invalid(format!(
            "{} is not complete JSON: {e}",
            from.display()
        ))),
    }
}

/// The dbt project's name: the manifest's `metadata.project_name` (dbt 1.6 and later), else
/// the last part of run_results' `args.project_dir`, else the name of the folder above the
/// target folder.
fn project_name(pair: &Pair, project_dir: Option<&str>, origin: &ArtifactPaths) -> Option<String> {
    let last_part = |path: &str| {
        path.trim_end_matches(['/', '\\'])
            .rsplit(['/', '\\'])
            .next()
            .filter(|p| !p.is_empty() && *p != ".")
            .map(String::from)
    };
    pair.manifest
        .metadata
        .project_name
        .clone()
        .or_else(|| project_dir.and_then(last_part))
        .or_else(|| {
            std::path::absolute(&origin.target_dir)
                .ok()?
                .parent()?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
}

/// Copies both files of `paths` into a new folder under `parent` and checks the copies again:
/// complete, one invocation, the one expected.
pub fn take(paths: &ArtifactPaths, expected_id: &str, parent: &Path) -> (Copied, Option<Snapshot>) {
    let made = std::fs::create_dir_all(parent).and_then(|()| {
        tempfile::Builder::new()
            .prefix("snapshot-")
            .tempdir_in(parent)
    });
    let dir = match made {
        Ok(dir) => dir,
        Err(e) => {
            let why = format!(
                "making a folder for the copies in {}: {e}",
                parent.display()
            );
            return (Copied::Failed(why), None);
        }
    };
    let copies = ArtifactPaths::in_target(dir.path());
    let problem = |p: Problem| match p {
        Problem::Changed => Copied::Changed,
        Problem::Invalid(why) => Copied::Invalid(why),
        Problem::Failed(why) => Copied::Failed(why),
    };
    // run_results first: dbt Core writes it last, so a manifest copied after it is at least as
    // new (dbt Fusion writes it first; the id check below catches a pair that moved on).
    let copied = copy(
        &paths.run_results,
        &copies.run_results,
        RunResultsVisitor::new(),
    )
    .and_then(|(rr_sha, run)| {
        copy(&paths.manifest, &copies.manifest, NoCapture).map(|(m_sha, _)| (rr_sha, run, m_sha))
    });
    let (run_results_sha256, run, manifest_sha256) = match copied {
        Ok(done) => done,
        Err(p) => return (problem(p), None),
    };
    let pair = match artifacts::inspect_pair(&copies.manifest, &copies.run_results) {
        Ok(pair) => pair,
        Err(ArtifactError::Mismatched { .. }) => return (Copied::Changed, None),
        Err(e) => return (Copied::Invalid(e.to_string()), None),
    };
    if pair.invocation_id() != expected_id {
        return (Copied::Changed, None);
    }
    let outcome = run.finish();
    let facts = Run {
        id: pair.invocation_id().to_string(),
        generated_at: pair.run_results.metadata.generated_at.clone(),
        command: outcome.command.clone(),
        project: project_name(&pair, outcome.project_dir.as_deref(), paths),
    };
    let snapshot = Snapshot {
        _dir: dir,
        paths: copies,
        manifest_sha256,
        run_results_sha256,
        run: facts.clone(),
    };
    (Copied::Taken(facts), Some(snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/artifacts/build-with-failures")
    }

    fn target_with_demo() -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in ["manifest.json", "run_results.json"] {
            std::fs::copy(demo().join(name), dir.path().join(name)).unwrap();
        }
        dir
    }

    #[test]
    fn a_pair_is_copied_hashed_and_named_by_its_project() {
        let target = target_with_demo();
        let copies = tempfile::tempdir().unwrap();
        let paths = ArtifactPaths::in_target(target.path());
        let (copied, snapshot) = take(
            &paths,
            "87cda89b-966f-40a0-931b-9a6cae8c6fc1",
            copies.path(),
        );
        let Copied::Taken(run) = copied else {
            panic!("{copied:?}")
        };
        assert_eq!(run.command.as_deref(), Some("build"));
        assert_eq!(run.project.as_deref(), Some("fernleaf"));
        let snapshot = snapshot.unwrap();
        assert_eq!(
            std::fs::read(&snapshot.paths.manifest).unwrap(),
            std::fs::read(&paths.manifest).unwrap()
        );
        assert_eq!(clear_stale(copies.path()).unwrap(), 1, "a snapshot folder");
    }

    #[test]
    fn what_cannot_be_taken_says_why() {
        let target = target_with_demo();
        let copies = tempfile::tempdir().unwrap();
        let paths = ArtifactPaths::in_target(target.path());
        // Another invocation on disk than the one the look saw: changed.
        let (copied, _) = take(
            &paths,
            "00000000-0000-4000-8000-000000000000",
            copies.path(),
        );
        assert_eq!(copied, Copied::Changed);
        // A bad byte inside: held still, invalid.
        let mut bytes = std::fs::read(&paths.manifest).unwrap();
        let at = bytes.len() / 2;
        bytes[at] = 0x01;
        std::fs::write(&paths.manifest, &bytes).unwrap();
        let (copied, _) = take(
            &paths,
            "87cda89b-966f-40a0-931b-9a6cae8c6fc1",
            copies.path(),
        );
        assert!(
            matches!(copied, Copied::Invalid(ref why) if why.contains("not complete JSON")),
            "{copied:?}"
        );
        // Gone: changed.
        std::fs::remove_file(&paths.manifest).unwrap();
        let (copied, _) = take(
            &paths,
            "87cda89b-966f-40a0-931b-9a6cae8c6fc1",
            copies.path(),
        );
        assert_eq!(copied, Copied::Changed);
        // Nothing is left behind by the failures.
        assert_eq!(clear_stale(copies.path()).unwrap(), 0);
    }
}
