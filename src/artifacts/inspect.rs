//! The cheap checks made before anything is read whole or sent: a regular file, not empty,
//! ending like a JSON object, starting with dbt's `metadata` block of the right kind, with an
//! `invocation_id`; and both files of a pair from one invocation.
//!
//! They read a file's first bytes and its last, never the middle, so they cost the same for a
//! 1 KiB file and a 1 GiB one. Passing them does not prove a file complete: the streaming read
//! in [`super::read`] does that.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::metadata::{self, Prefix};
use super::scan::SyntaxErrorKind;
use super::{ArtifactError, ArtifactFile, Pair, Role};
use crate::files::{self, OpenError};

/// Opens `path` as `role`, refusing what is not a regular file before it is opened (a named pipe
/// would block the open).
pub(super) fn open(role: Role, path: &Path) -> Result<(File, u64), ArtifactError> {
    let problem = |e: OpenError| match e {
        OpenError::NotRegular(what) => ArtifactError::NotRegular {
            role,
            path: path.to_path_buf(),
            what,
        },
        OpenError::Io(source) if source.kind() == io::ErrorKind::NotFound => {
            ArtifactError::Missing {
                role,
                path: path.to_path_buf(),
            }
        }
        OpenError::Io(source) => ArtifactError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
        too_large @ OpenError::TooLarge(_) => ArtifactError::Unreadable {
            path: path.to_path_buf(),
            source: io::Error::other(too_large.to_string()),
        },
    };
    let file = files::open_regular(path).map_err(problem)?;
    let len = file
        .metadata()
        .map_err(|e| problem(OpenError::Io(e)))?
        .len();
    Ok((file, len))
}

/// Checks one file cheaply: its first bytes and its last, never the middle.
pub fn inspect(role: Role, path: &Path) -> Result<ArtifactFile, ArtifactError> {
    let unreadable = |source| ArtifactError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let (mut file, len) = open(role, path)?;
    if len == 0 {
        return Err(ArtifactError::Empty {
            path: path.to_path_buf(),
            len,
        });
    }
    let last = last_byte(&mut file, len).map_err(unreadable)?;
    let prefix = metadata::read_prefix(&mut file).map_err(unreadable)?;
    let meta = match prefix {
        Prefix::Found(meta) => meta,
        Prefix::NotJson(error) if error.kind == SyntaxErrorKind::Empty => {
            return Err(ArtifactError::Empty {
                path: path.to_path_buf(),
                len,
            });
        }
        Prefix::NotJson(error) => {
            return Err(ArtifactError::NotJson {
                path: path.to_path_buf(),
                error,
            });
        }
        Prefix::NotFirst => {
            return Err(not_dbt(
                path,
                "it does not start with dbt's \"metadata\" block",
            ));
        }
        Prefix::Incomplete => {
            return Err(ArtifactError::Truncated {
                path: path.to_path_buf(),
            });
        }
        Prefix::TooLong => {
            return Err(ArtifactError::MetadataTooLarge {
                path: path.to_path_buf(),
            });
        }
    };
    // A file cut short by a reader racing dbt's write ends mid-value: the last non-blank byte of
    // a complete artifact is the top-level object's '}'.
    if last != Some(b'}') {
        return Err(ArtifactError::Truncated {
            path: path.to_path_buf(),
        });
    }
    let schema_url = meta.dbt_schema_version.clone().unwrap_or_default();
    let Some((kind, schema)) = meta.kind() else {
        return Err(not_dbt(
            path,
            &format!(
                "metadata.dbt_schema_version is {}, not a https://schemas.getdbt.com/dbt/... URL",
                if schema_url.is_empty() {
                    "missing".to_string()
                } else {
                    format!("{schema_url:?}")
                }
            ),
        ));
    };
    if kind != role.kind() {
        return Err(ArtifactError::WrongKind {
            path: path.to_path_buf(),
            expected: role.kind(),
            found: kind,
            schema: schema_url,
        });
    }
    if meta.invocation_id.as_deref().is_none_or(str::is_empty) {
        return Err(ArtifactError::NoInvocationId {
            path: path.to_path_buf(),
        });
    }
    Ok(ArtifactFile {
        role,
        path: path.to_path_buf(),
        len,
        metadata: meta,
        schema,
    })
}

fn not_dbt(path: &Path, reason: &str) -> ArtifactError {
    ArtifactError::NotDbtArtifact {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The last byte that is not whitespace, reading at most the last 64 bytes; the file is left at
/// its start.
fn last_byte(file: &mut File, len: u64) -> io::Result<Option<u8>> {
    let tail_len = len.min(64);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0; tail_len as usize];
    file.read_exact(&mut tail)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(tail
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        .copied())
}

/// Checks both files and that they come from one dbt invocation.
pub fn inspect_pair(manifest: &Path, run_results: &Path) -> Result<Pair, ArtifactError> {
    let manifest = inspect(Role::Manifest, manifest)?;
    let run_results = inspect(Role::RunResults, run_results)?;
    if manifest.invocation_id() != run_results.invocation_id() {
        return Err(ArtifactError::Mismatched {
            manifest: Box::new(manifest),
            run_results: Box::new(run_results),
        });
    }
    Ok(Pair {
        manifest,
        run_results,
    })
}
