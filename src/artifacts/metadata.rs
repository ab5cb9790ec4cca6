//! The `metadata` block dbt writes first in every artifact, read from the first bytes of a file.
//!
//! Owns: reading `dbt_schema_version`, `dbt_version`, `generated_at` and `invocation_id` without
//! reading the rest, and telling which artifact kind a schema URL names. It does not decide
//! whether two files belong together (see [`super::inspect_pair`]).

use std::fmt;

use super::scan::{Scanner, Visitor};
use super::unescape;

/// Which artifact a file is, from its `dbt_schema_version`
/// (`https://schemas.getdbt.com/dbt/<kind>/v<N>.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Manifest,
    RunResults,
    Catalog,
    Sources,
    Other(String),
}

impl Kind {
    fn from_schema_url(url: &str) -> Option<(Kind, String)> {
        let rest = &url[url.find("/dbt/")? + 5..];
        let (name, version) = rest.split_once('/')?;
        let version = version.trim_end_matches(".json").to_string();
        let kind = match name {
            "manifest" => Kind::Manifest,
            "run-results" => Kind::RunResults,
            "catalog" => Kind::Catalog,
            "sources" => Kind::Sources,
            other => Kind::Other(other.to_string()),
        };
        Some((kind, version))
    }

    /// The file name dbt gives this kind.
    pub fn file_name(&self) -> &str {
        match self {
            Kind::Manifest => "manifest.json",
            Kind::RunResults => "run_results.json",
            Kind::Catalog => "catalog.json",
            Kind::Sources => "sources.json",
            Kind::Other(name) => name,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Other(name) => write!(f, "a dbt '{name}' artifact"),
            kind => write!(f, "{}", kind.file_name()),
        }
    }
}

/// The fields of an artifact's `metadata` block that dbt-secoda uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub dbt_schema_version: Option<String>,
    pub dbt_version: Option<String>,
    pub generated_at: Option<String>,
    pub invocation_id: Option<String>,
}

impl Metadata {
    /// The artifact kind and schema version (`v12`), when the schema URL is a dbt one.
    pub fn kind(&self) -> Option<(Kind, String)> {
        Kind::from_schema_url(self.dbt_schema_version.as_deref()?)
    }
}

/// What reading the start of a file found.
#[derive(Debug)]
pub enum Prefix {
    /// The metadata block, complete.
    Found(Metadata),
    /// The first key of the top-level object is not `metadata`.
    NotFirst,
    /// The bytes are not JSON, or not a JSON object.
    NotJson(super::scan::SyntaxError),
    /// The file ended before the block closed.
    Incomplete,
    /// The block goes on past [`PREFIX_LIMIT`] bytes (dbt's is under 1 KiB).
    TooLong,
}

#[derive(Debug, Clone, Copy)]
enum Field {
    Schema,
    Version,
    GeneratedAt,
    InvocationId,
}

/// Captures the metadata block's fields; notes whether `metadata` is the first top-level key.
/// Usable on its own (on a file's first bytes) or inside another visitor.
#[derive(Default)]
pub(crate) struct MetadataVisitor {
    pub(crate) metadata: Metadata,
    first_key_seen: bool,
    in_metadata: bool,
    not_first: bool,
    closed: bool,
    pending: Option<Field>,
}

impl Visitor for MetadataVisitor {
    fn key(&mut self, depth: usize, key: &[u8]) -> bool {
        match depth {
            1 => {
                if !self.first_key_seen {
                    self.first_key_seen = true;
                    self.not_first = key != b"metadata";
                }
                self.in_metadata = key == b"metadata";
                false
            }
            2 if self.in_metadata => {
                self.pending = match key {
                    b"dbt_schema_version" => Some(Field::Schema),
                    b"dbt_version" => Some(Field::Version),
                    b"generated_at" => Some(Field::GeneratedAt),
                    b"invocation_id" => Some(Field::InvocationId),
                    _ => None,
                };
                self.pending.is_some()
            }
            _ => false,
        }
    }

    fn string(&mut self, _depth: usize, raw: &[u8]) {
        let value = Some(unescape(raw));
        let m = &mut self.metadata;
        match self.pending.take() {
            Some(Field::Schema) => m.dbt_schema_version = value,
            Some(Field::Version) => m.dbt_version = value,
            Some(Field::GeneratedAt) => m.generated_at = value,
            Some(Field::InvocationId) => m.invocation_id = value,
            None => {}
        }
    }

    fn scalar(&mut self, _depth: usize, _raw: &[u8]) {
        // `"invocation_id": null` and the like: the field stays unknown.
        self.pending = None;
    }

    fn close_object(&mut self, depth: usize) {
        if depth == 2 && self.in_metadata {
            self.closed = true;
        }
    }
}

/// Longest prefix read looking for the metadata block (dbt's is under 1 KiB).
pub const PREFIX_LIMIT: usize = 1024 * 1024;

/// Reads the metadata block from the start of `reader`, reading no further than needed.
pub fn read_prefix(reader: &mut impl std::io::Read) -> std::io::Result<Prefix> {
    let mut scanner = Scanner::new(MetadataVisitor::default());
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < PREFIX_LIMIT {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n;
        if let Err(e) = scanner.feed(&buf[..n]) {
            return Ok(Prefix::NotJson(e));
        }
        let v = scanner.visitor();
        if v.not_first {
            return Ok(Prefix::NotFirst);
        }
        if v.closed {
            return Ok(Prefix::Found(v.metadata.clone()));
        }
    }
    if scanner.is_complete() {
        // A whole, small JSON document with no metadata block (e.g. `{}` or `[]`).
        return Ok(Prefix::NotFirst);
    }
    if total >= PREFIX_LIMIT {
        return Ok(Prefix::TooLong);
    }
    Ok(match scanner.finish() {
        Err(e) if e.kind != super::scan::SyntaxErrorKind::UnexpectedEnd => Prefix::NotJson(e),
        _ => Prefix::Incomplete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(doc: &str) -> Prefix {
        read_prefix(&mut doc.as_bytes()).expect("reading a slice")
    }

    #[test]
    fn reads_the_block_and_the_kind() {
        let doc = r#"{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json", "dbt_version": "1.12.6", "generated_at": "2026-11-28T07:10:58Z", "invocation_id": "87cd", "env": {"a": "b"}}, "results": ["#;
        let Prefix::Found(m) = read(doc) else {
            panic!("not found")
        };
        assert_eq!(m.invocation_id.as_deref(), Some("87cd"));
        assert_eq!(m.dbt_version.as_deref(), Some("1.12.6"));
        assert_eq!(m.kind(), Some((Kind::RunResults, "v6".to_string())));
    }

    #[test]
    fn tells_apart_missing_block_non_json_and_cut_files() {
        assert!(matches!(
            read(r#"{"nodes": {}, "metadata": {}}"#),
            Prefix::NotFirst
        ));
        assert!(matches!(read(r#"[1, 2]"#), Prefix::NotFirst));
        assert!(matches!(
            read(
                "version: 2
models: []"
            ),
            Prefix::NotJson(_)
        ));
        assert!(matches!(
            read(r#"{"metadata": {"invocation_id": "ab"#),
            Prefix::Incomplete
        ));
        assert!(
            matches!(read(" "), Prefix::NotJson(e) if e.kind == crate::artifacts::scan::SyntaxErrorKind::Empty)
        );
        let huge = format!(
            r#"{{"metadata": {{"env": {{"X": "{}"}}, "invocation_id": "ab"}}}}"#,
            "x".repeat(PREFIX_LIMIT)
        );
        assert!(matches!(read(&huge), Prefix::TooLong));
    }
}
