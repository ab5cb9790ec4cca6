//! Metadata import files for custom integrations: CSV and JSONL, checked before they are sent.
//!
//! Owns the formats Secoda documents for `import_metadata/` (CSV of tables and columns) and
//! `import_jsonl_metadata/` (JSONL resources and lineages): every rule, checked in one streaming
//! pass, each problem with its line number. Memory grows with the number of tables or resources
//! (a few bytes each, for uniqueness and references), never with the file's size. The simulator
//! applies the same checks to what it receives. It does not send anything.

pub mod csv;
pub mod jsonl;

use std::fmt;
use std::path::PathBuf;

use crate::exit::{ExitCode, Failure};

/// At most this many problems are listed; the rest are counted.
pub const MAX_PROBLEMS: usize = 20;

/// One problem, at a line of the file (1 = the first line).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: u64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The problems found in one file.
#[derive(Debug, Default, Clone)]
pub struct Problems {
    pub listed: Vec<Problem>,
    pub total: u64,
}

impl Problems {
    pub fn add(&mut self, line: u64, message: impl Into<String>) {
        self.total += 1;
        if self.listed.len() < MAX_PROBLEMS {
            self.listed.push(Problem {
                line,
                message: message.into(),
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The problems as lines `FILE:LINE: message`, with a count of those not listed.
    pub fn render(&self, file: &str) -> String {
        let mut text: Vec<String> = self
            .listed
            .iter()
            .map(|p| format!("  {file}:{}: {}", p.line, p.message))
            .collect();
        if self.total > self.listed.len() as u64 {
            text.push(format!(
                "  … and {} more",
                self.total - self.listed.len() as u64
            ));
        }
        text.join("\n")
    }
}

/// Why an import file cannot be sent (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {reason}", path = .path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} is not a valid {format} import ({}):\n{listed}",
        crate::units::count(.problems.total, "problem"), path = .path.display(),
        listed = .problems.render(&.path.display().to_string()))]
    Invalid {
        path: PathBuf,
        format: &'static str,
        problems: Problems,
    },
    #[error("the import was stopped: {detail}")]
    ChangedWhileSending { detail: String },
}

impl Failure for ImportError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Artifacts
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ImportError::Unreadable { .. } => "check the path and its permissions".into(),
            ImportError::Invalid { format, .. } => format!(
                "fix the lines above and run again (--dry-run checks without sending); the {format} format is \
                 described at {}",
                format_docs(format)
            ),
            ImportError::ChangedWhileSending { .. } => {
                "a file changed after it was checked; nothing half-sent was accepted. Run again once \
                 whatever writes it has finished"
                    .into()
            }
        })
    }
}

/// Where `format` is described: docs/integrations.md of this very version, online, since a
/// binary installed with pip or from a release comes without the repository's docs.
fn format_docs(format: &str) -> String {
    let section = if format.starts_with("CSV") {
        "csv-import-tables-and-columns"
    } else {
        "jsonl-import-resources-and-lineages"
    };
    format!(
        "{}/blob/v{}/docs/integrations.md#{section}",
        env!("CARGO_PKG_REPOSITORY"),
        env!("CARGO_PKG_VERSION")
    )
}

/// A stable 64-bit hash, for remembering names and ids without keeping them.
pub(crate) fn fingerprint(parts: &[&[u8]]) -> u64 {
    // FNV-1a over the parts, separated so ("ab", "c") differs from ("a", "bc").
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Whether the bytes start with a UTF-8 byte-order mark.
pub(crate) fn has_bom(first: &[u8]) -> bool {
    first.starts_with(b"\xef\xbb\xbf")
}

pub(crate) const BOM_MESSAGE: &str = "the file starts with a UTF-8 byte-order mark, which becomes part of the first \
     value when Secoda reads it; save the file as UTF-8 without BOM";
