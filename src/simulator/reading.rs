//! The simulator's own reading of uploaded artifacts: plain serde_json over the received bytes.
//!
//! Deliberately independent of the client's readers ([`crate::artifacts`]): a peer that read the
//! files the way the client does would agree with it by construction. Only the fields a catalog
//! needs to name failing entities are kept; everything else is parsed (so invalid JSON is
//! refused) and dropped. Objects read as Python's `json` reads them: a repeated key takes its
//! last value. The bytes come through a channel from the HTTP body as they arrive.

use std::collections::HashMap;
use std::io::{BufReader, Read};

use bytes::{Buf, Bytes};
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The structs below read objects the way Python's `json` (what Django REST Framework uses)
/// does: a key given twice takes its last value, where serde's derive would refuse the object
/// ("duplicate field"), and keys nobody asked for are skipped unparsed beyond validity. Each
/// field is `required` (an error when absent) or `optional` (its default when absent).
macro_rules! python_objects {
    ($(
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $($kind:ident $field_vis:vis $field:ident: $ty:ty,)* }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug)]
        $vis struct $name { $($field_vis $field: $ty,)* }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Fields;
                impl<'de> Visitor<'de> for Fields {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("an object (", stringify!($name), ")"))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        const NAMES: &[&str] = &[$(stringify!($field)),*];
                        $(let mut $field: Option<$ty> = None;)*
                        while let Some(known) = map.next_key_seed(Key(NAMES))? {
                            match known {
                                $(Some(stringify!($field)) => $field = Some(map.next_value()?),)*
                                _ => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok($name { $($field: python_objects!(@take $kind $field),)* })
                    }
                }
                deserializer.deserialize_map(Fields)
            }
        }
    )*};
    (@take optional $field:ident) => { $field.unwrap_or_default() };
    (@take required $field:ident) => {
        $field.ok_or_else(|| de::Error::missing_field(stringify!($field)))?
    };
}

/// An object key: which of `names` it is (None: one nobody asked for), read without
/// allocating.
struct Key(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|name| **name == key).copied())
    }
}

python_objects! {
    #[derive(Default)]
    struct Metadata {
        optional invocation_id: Option<String>,
    }

    /// What run_results.json says: its invocation, and each result's node and status.
    #[derive(Default)]
    pub struct RunResults {
        optional metadata: Metadata,
        optional results: Vec<RunResult>,
    }

    pub struct RunResult {
        required pub unique_id: String,
        required pub status: String,
    }

    #[derive(Default)]
    struct DependsOn {
        optional nodes: Vec<String>,
    }

    /// One node of the manifest (model, seed, snapshot, source, test), the fields that name it.
    #[derive(Default)]
    pub struct Node {
        optional pub name: Option<String>,
        optional pub relation_name: Option<String>,
        optional pub attached_node: Option<String>,
        optional depends_on: Option<DependsOn>,
    }

    #[derive(Default)]
    pub struct UnitTest {
        optional pub model: Option<String>,
    }

    /// What manifest.json says of its nodes.
    #[derive(Default)]
    pub struct Manifest {
        optional metadata: Metadata,
        optional pub nodes: HashMap<String, Node>,
        optional pub sources: HashMap<String, Node>,
        optional pub unit_tests: HashMap<String, UnitTest>,
    }
}

impl RunResults {
    pub fn invocation_id(&self) -> Option<&str> {
        self.metadata.invocation_id.as_deref()
    }

    pub fn results(&self) -> &[RunResult] {
        &self.results
    }
}

impl Node {
    pub fn depends_on(&self) -> &[String] {
        self.depends_on.as_ref().map_or(&[], |d| &d.nodes)
    }
}

impl Manifest {
    pub fn invocation_id(&self) -> Option<&str> {
        self.metadata.invocation_id.as_deref()
    }

    /// A model, seed, snapshot or source by unique_id.
    pub fn node(&self, unique_id: &str) -> Option<&Node> {
        self.nodes
            .get(unique_id)
            .or_else(|| self.sources.get(unique_id))
    }
}

/// A `Read` over body chunks sent from the async side; ends when the sender is dropped.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Parses one JSON document from `reader`, refusing trailing data: "Upload a valid JSON file".
pub fn parse<T: serde::de::DeserializeOwned>(reader: impl Read) -> Result<T, String> {
    serde_json::from_reader(BufReader::with_capacity(256 * 1024, reader)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_takes_its_last_value_as_pythons_json_does() {
        let run: RunResults = parse(
            &br#"{"metadata": {"invocation_id": "a", "invocation_id": "b"},
                 "results": [{"unique_id": "test.x", "status": "pass", "status": "fail", "extra": [1, {"y": 2}]}],
                 "results": [{"unique_id": "test.y", "status": "warn"}]}"#[..],
        )
        .unwrap();
        assert_eq!(run.invocation_id(), Some("b"));
        assert_eq!(run.results().len(), 1);
        assert_eq!(run.results()[0].unique_id, "test.y");
        let dup: RunResults =
            parse(&br#"{"results": [{"unique_id": "t", "status": "pass", "status": "fail"}]}"#[..])
                .unwrap();
        assert_eq!(dup.results()[0].status, "fail");
        let manifest: Manifest = parse(
            &br#"{"nodes": {"m": {"name": "one", "name": "two", "depends_on": {"nodes": ["a"], "nodes": ["b"]}}, "m": {"name": "three"}}}"#[..],
        )
        .unwrap();
        assert_eq!(manifest.nodes["m"].name.as_deref(), Some("three"));
        assert!(
            parse::<RunResults>(&br#"{"results": [{"status": "pass"}]}"#[..])
                .unwrap_err()
                .contains("missing field `unique_id`")
        );
        assert!(parse::<RunResults>(&br#"{"results": [1]}"#[..]).is_err());
        assert!(parse::<Manifest>(&br#"{"nodes": {}} x"#[..]).is_err());
    }
}
