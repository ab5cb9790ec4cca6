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
    /// The dbt project's name (manifest.json, dbt 1.6 and later).
    pub project_name: Option<String>,
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
    ProjectName,
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
        if self.closed {
            // The first block is the one: a later "metadata" key (a repeated one) must not
            // change what was read, whether or not its bytes came in the same chunk.
            self.in_metadata = false;
            return false;
        }
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
                    b"project_name" => Some(Field::ProjectName),
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
            Some(Field::ProjectName) => m.project_name = value,
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
        let fed = scanner.feed(&buf[..n]);
        // What was decided before a flaw later in the same chunk stands: the answer must not
        // depend on how many bytes one read returned (a pipe, a network file system).
        let v = scanner.visitor();
        if v.not_first {
            return Ok(Prefix::NotFirst);
        }
        if v.closed {
            return Ok(Prefix::Found(v.metadata.clone()));
        }
        if let Err(e) = fed {
            return Ok(Prefix::NotJson(e));
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
        let doc = r#"{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json", "dbt_version": "1.12.6", "generated_at": "2026-11-28T07:10:58Z", "invocation_id": "87cd", "env": {"a": "b"}, "project_name": "fern\u006ceaf"}, "results": ["#;
        let Prefix::Found(m) = read(doc) else {
            panic!("not found")
        };
        assert_eq!(m.project_name.as_deref(), Some("fernleaf"));
        assert_eq!(m.invocation_id.as_deref(), Some("87cd"));
        assert_eq!(m.dbt_version.as_deref(), Some("1.12.6"));
        assert_eq!(m.kind(), Some((Kind::RunResults, "v6".to_string())));
    }

    /// A reader handing out `step` bytes a call.
    struct Trickle<'a>(&'a [u8], usize);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_answer_does_not_depend_on_how_the_bytes_arrive() {
        // Found by the fuzz target metadata_prefix: read whole, the control character after the
        // first key was reported; read a byte at a time, "metadata is not first" was.
        for doc in [
            &b"{\"a\": \"\x01\"}"[..],
            b"{\"metadata\": {\"invocation_id\": \"x\"}, \"b\": \x01",
            // Also found by it: a repeated metadata block was read into the first when both
            // came in one read.
            b"{\"metadata\": {\"env\": {}}, \"metadata\": {\"invocation_id\": \"c7\"}}",
        ] {
            let whole = format!("{:?}", read_prefix(&mut &doc[..]).unwrap());
            for step in 1..=doc.len() {
                let chunked = format!("{:?}", read_prefix(&mut Trickle(doc, step)).unwrap());
                assert_eq!(whole, chunked, "{step}-byte reads of {doc:?}");
            }
        }
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
