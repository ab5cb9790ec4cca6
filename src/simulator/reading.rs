//! The simulator's own reading of uploaded artifacts: plain serde_json over the received bytes.
//!
//! Deliberately independent of the client's readers ([`crate::artifacts`]): a peer that read the
//! files the way the client does would agree with it by construction. Only the fields a catalog
//! needs to name failing entities are kept; everything else is parsed (so invalid JSON is
//! refused) and dropped. The bytes come through a channel from the HTTP body as they arrive.

use std::collections::HashMap;
use std::io::{BufReader, Read};

use bytes::{Buf, Bytes};
use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    invocation_id: Option<String>,
}

/// What run_results.json says: its invocation, and each result's node and status.
#[derive(Debug, Default, Deserialize)]
pub struct RunResults {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    results: Vec<RunResult>,
    #[serde(default, rename = "args")]
    _args: IgnoredAny,
}

#[derive(Debug, Deserialize)]
pub struct RunResult {
    pub unique_id: String,
    pub status: String,
}

impl RunResults {
    pub fn invocation_id(&self) -> Option<&str> {
        self.metadata.invocation_id.as_deref()
    }

    pub fn results(&self) -> &[RunResult] {
        &self.results
    }
}

#[derive(Debug, Default, Deserialize)]
struct DependsOn {
    #[serde(default)]
    nodes: Vec<String>,
}

/// One node of the manifest (model, seed, snapshot, source, test), the fields that name it.
#[derive(Debug, Default, Deserialize)]
pub struct Node {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub relation_name: Option<String>,
    #[serde(default)]
    pub attached_node: Option<String>,
    #[serde(default)]
    depends_on: Option<DependsOn>,
}

impl Node {
    pub fn depends_on(&self) -> &[String] {
        self.depends_on.as_ref().map_or(&[], |d| &d.nodes)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct UnitTest {
    /// The name of the model under test.
    #[serde(default)]
    pub model: Option<String>,
}

/// What manifest.json says of its nodes.
#[derive(Debug, Default, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    pub nodes: HashMap<String, Node>,
    #[serde(default)]
    pub sources: HashMap<String, Node>,
    #[serde(default)]
    pub unit_tests: HashMap<String, UnitTest>,
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
