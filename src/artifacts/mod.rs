//! dbt artifacts on disk: checking that manifest.json and run_results.json are a complete,
//! matching pair, and reading them once, in chunks, for whoever sends or hashes the bytes.
//!
//! Owns what an artifact is ([`ArtifactFile`], [`Pair`], [`Role`]) and why one cannot be used
//! ([`ArtifactError`], exit 3). The cheap checks done before anything is sent are in
//! [`inspect`]; the streaming read that validates every byte on its way out, holding the last
//! chunk back until the file has proven complete, is in [`read`]; what the files say about tests
//! is in [`outcomes`]. It does not know about HTTP, multipart or where the target folder is.

pub mod inspect;
pub mod metadata;
pub mod outcomes;
pub mod read;
pub mod scan;

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use inspect::{inspect, inspect_pair};
pub use metadata::{Kind, Metadata};
pub use outcomes::{Level, RunOutcome, TestResult};
pub use read::{CHUNK, Piece, ReadError, Stopped, check_pair, read_pair, read_pair_locally};

use crate::exit::{ExitCode, Failure};

/// Which of the pair a file plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Manifest,
    RunResults,
}

impl Role {
    pub fn kind(self) -> Kind {
        match self {
            Role::Manifest => Kind::Manifest,
            Role::RunResults => Kind::RunResults,
        }
    }

    /// The multipart part name Secoda's upload endpoint expects.
    pub fn part_name(self) -> &'static str {
        match self {
            Role::Manifest => "manifest",
            Role::RunResults => "run_results",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Role::Manifest => "manifest.json",
            Role::RunResults => "run_results.json",
        }
    }

    /// The flag that points at this file directly.
    fn flag(self) -> &'static str {
        match self {
            Role::Manifest => "--manifest",
            Role::RunResults => "--run-results",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// A checked artifact: exists, ends like JSON, starts with a dbt metadata block of the right kind.
#[derive(Debug, Clone)]
pub struct ArtifactFile {
    pub role: Role,
    pub path: PathBuf,
    pub len: u64,
    pub metadata: Metadata,
    /// The schema version, e.g. `v12`.
    pub schema: String,
}

impl ArtifactFile {
    pub fn invocation_id(&self) -> &str {
        self.metadata.invocation_id.as_deref().unwrap_or_default()
    }
}

/// manifest.json and run_results.json from one dbt invocation.
#[derive(Debug, Clone)]
pub struct Pair {
    pub manifest: ArtifactFile,
    pub run_results: ArtifactFile,
}

impl Pair {
    pub fn invocation_id(&self) -> &str {
        self.manifest.invocation_id()
    }

    /// "target/manifest.json and target/run_results.json (dbt 1.12.6, invocation 87cd...)".
    pub fn describe(&self) -> String {
        format!(
            "{} and {} (dbt {}, invocation {})",
            self.manifest.path.display(),
            self.run_results.path.display(),
            self.run_results
                .metadata
                .dbt_version
                .as_deref()
                .unwrap_or("?"),
            self.invocation_id()
        )
    }

    pub fn files(&self) -> [&ArtifactFile; 2] {
        // Sent and read in this order: run_results first, since reading the manifest needs to
        // know which tests did not pass.
        [&self.run_results, &self.manifest]
    }
}

/// Why a file cannot be used. Every variant names the file; `hint` says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{} not found: {path}", role.file_name(), path = .path.display())]
    Missing { role: Role, path: PathBuf },
    #[error("{path} is {what}, not a regular file: it cannot be read as {}", role.file_name(), path = .path.display())]
    NotRegular {
        role: Role,
        path: PathBuf,
        what: &'static str,
    },
    #[error("cannot read {path}: {source}", path = .path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{path} is empty ({})", if *.len == 0 { "0 bytes".to_string() } else { format!("{} of whitespace only", crate::units::count(*.len, "byte")) }, path = .path.display())]
    Empty { path: PathBuf, len: u64 },
    #[error("{path} has a metadata block larger than {} MiB; dbt writes one of well under 1 KiB", metadata::PREFIX_LIMIT >> 20, path = .path.display())]
    MetadataTooLarge { path: PathBuf },
    #[error("{path} is not complete JSON: {error}", path = .path.display())]
    NotJson {
        path: PathBuf,
        error: scan::SyntaxError,
    },
    #[error("{path} is truncated: it does not end with '}}' as a complete artifact does", path = .path.display())]
    Truncated { path: PathBuf },
    #[error("{path} is not a dbt artifact: {reason}", path = .path.display())]
    NotDbtArtifact { path: PathBuf, reason: String },
    #[error("{path} is {found}, not {expected} (its dbt_schema_version is {schema})", path = .path.display())]
    WrongKind {
        path: PathBuf,
        expected: Kind,
        found: Kind,
        schema: String,
    },
    #[error("{path} has no metadata.invocation_id, so it cannot be paired with the other artifact", path = .path.display())]
    NoInvocationId { path: PathBuf },
    #[error("{}", mismatch_message(.manifest, .run_results))]
    Mismatched {
        manifest: Box<ArtifactFile>,
        run_results: Box<ArtifactFile>,
    },
    #[error("{path} changed while it was being read ({detail})", path = .path.display())]
    ChangedWhileReading { path: PathBuf, detail: String },
}

impl Failure for ArtifactError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Artifacts
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ArtifactError::Missing { role, .. } => format!(
                "run dbt first (e.g. `dbt build`), or say where dbt wrote its artifacts with --target-dir, \
                 --project-dir or {}",
                role.flag()
            ),
            ArtifactError::NotRegular { role, .. } => format!(
                "point {} (or --target-dir) at the {} file dbt wrote",
                role.flag(),
                role.file_name()
            ),
            ArtifactError::Unreadable { .. } => "check the path and its permissions".into(),
            ArtifactError::Empty { .. }
            | ArtifactError::NotJson { .. }
            | ArtifactError::Truncated { .. }
            | ArtifactError::ChangedWhileReading { .. } => {
                "dbt rewrites artifacts in place; if a dbt command is still running, wait for it to finish \
                 and run again. Otherwise re-run the dbt command that wrote the file"
                    .into()
            }
            ArtifactError::NotDbtArtifact { .. }
            | ArtifactError::WrongKind { .. }
            | ArtifactError::MetadataTooLarge { .. } => {
                "pass the manifest.json and run_results.json that dbt writes side by side in its target folder"
                    .into()
            }
            ArtifactError::NoInvocationId { .. } => {
                "upload artifacts as dbt wrote them; edited or generated files must keep metadata.invocation_id"
                    .into()
            }
            ArtifactError::Mismatched {
                manifest,
                run_results,
            } => mismatch_hint(manifest, run_results),
        })
    }
}

fn mismatch_message(manifest: &ArtifactFile, run_results: &ArtifactFile) -> String {
    let describe = |f: &ArtifactFile| {
        format!(
            "{:<17} invocation {} generated {}",
            f.role.file_name(),
            f.invocation_id(),
            f.metadata.generated_at.as_deref().unwrap_or("(unknown)")
        )
    };
    format!(
        "{} and {} come from different dbt invocations:\n  {}\n  {}",
        manifest.path.display(),
        run_results.path.display(),
        describe(manifest),
        describe(run_results)
    )
}

fn mismatch_hint(manifest: &ArtifactFile, run_results: &ArtifactFile) -> String {
    let stamp = |f: &ArtifactFile| {
        f.metadata
            .generated_at
            .clone()
            .unwrap_or_default()
            .replace("+00:00", "Z")
    };
    if stamp(manifest) > stamp(run_results) {
        "manifest.json is newer: a later `dbt parse`, `dbt ls`, `dbt compile`, `dbt run-operation` or \
         `dbt source freshness` rewrote it after the run, or a dbt run is still in progress (dbt writes \
         manifest.json when it starts and run_results.json when it ends). Upload right after the command \
         whose results you want, or run that command again"
            .into()
    } else {
        "run_results.json is newer than manifest.json: the manifest may come from a cache or an earlier \
         build. Upload the pair written by one dbt command"
            .into()
    }
}

/// Decodes a raw JSON string body (escapes included) into text.
pub fn unescape(raw: &[u8]) -> String {
    let mut text = String::new();
    unescape_into(raw, &mut text);
    text
}

/// Like [`unescape`], into `out` (cleared first), reusing its allocation.
pub fn unescape_into(raw: &[u8], out: &mut String) {
    out.clear();
    if !raw.contains(&b'\\')
        && let Ok(text) = std::str::from_utf8(raw)
    {
        out.push_str(text);
        return;
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    out.push_str(
        &serde_json::from_slice::<String>(&quoted)
            .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()),
    );
}
