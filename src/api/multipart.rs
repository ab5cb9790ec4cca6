//! multipart/form-data bodies streamed from a producer thread, with a known Content-Length.
//!
//! Owns the framing (boundary, part headers, the closing boundary) and the channel that carries
//! chunks from a blocking reader to the HTTP body. The closing boundary is the producer's to
//! send, last, so a body whose source failed never ends as a valid form. It does not read files.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

/// One file part's header fields and size.
#[derive(Debug, Clone)]
pub struct PartHead {
    pub name: String,
    pub file_name: String,
    pub content_type: String,
    pub len: u64,
}

/// The framing of one form.
#[derive(Debug, Clone)]
pub struct Form {
    boundary: String,
    parts: Vec<PartHead>,
}

impl Form {
    pub fn new(parts: Vec<PartHead>) -> Form {
        // 128 random bits: a collision with file content is not a practical concern.
        let random = |_| RandomState::new().build_hasher().finish();
        let boundary = format!("dbt-secoda-{:016x}{:016x}", random(0), random(1));
        Form { boundary, parts }
    }

    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// Bytes before part `index`'s content.
    pub fn head(&self, index: usize) -> Bytes {
        let part = &self.parts[index];
        let separator = if index == 0 { "" } else { "\r\n" };
        Bytes::from(format!(
            "{separator}--{}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
            self.boundary, part.name, part.file_name, part.content_type
        ))
    }

    /// The closing boundary.
    pub fn tail(&self) -> Bytes {
        Bytes::from(format!("\r\n--{}--\r\n", self.boundary))
    }

    /// The exact body length.
    pub fn content_length(&self) -> u64 {
        let heads: u64 = (0..self.parts.len())
            .map(|i| self.head(i).len() as u64)
            .sum();
        heads + self.parts.iter().map(|p| p.len).sum::<u64>() + self.tail().len() as u64
    }
}

/// The receiving end went away: the request was abandoned.
pub use crate::artifacts::Stopped;

/// Feeds a streaming body from a blocking thread.
pub struct BodySender {
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl BodySender {
    /// Sends a chunk, blocking while the HTTP side is behind.
    pub fn send(&self, chunk: Bytes) -> Result<(), Stopped> {
        self.tx.blocking_send(Ok(chunk)).map_err(|_| Stopped)
    }

    /// Ends the body with an error, so the request is abandoned mid-body.
    pub fn abort(&self, why: String) {
        let _ = self.tx.blocking_send(Err(io::Error::other(why)));
    }
}

/// A body fed by a [`BodySender`]; `sent` counts the bytes handed to the HTTP stack.
pub fn channel_body(buffered_chunks: usize, sent: Arc<AtomicU64>) -> (reqwest::Body, BodySender) {
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(buffered_chunks);
    let counter = sent;
    let stream = futures_util::stream::poll_fn(move |cx| {
        let item = rx.poll_recv(cx);
        if let std::task::Poll::Ready(Some(Ok(chunk))) = &item {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        item
    });
    (reqwest::Body::wrap_stream(stream), BodySender { tx })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_matches_the_framing() {
        let form = Form::new(vec![
            PartHead {
                name: "run_results".into(),
                file_name: "run_results.json".into(),
                content_type: "application/json".into(),
                len: 10,
            },
            PartHead {
                name: "manifest".into(),
                file_name: "manifest.json".into(),
                content_type: "application/json".into(),
                len: 7,
            },
        ]);
        let body = [
            form.head(0).to_vec(),
            vec![b'r'; 10],
            form.head(1).to_vec(),
            vec![b'm'; 7],
            form.tail().to_vec(),
        ]
        .concat();
        assert_eq!(body.len() as u64, form.content_length());
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with("--dbt-secoda-"));
        assert!(text.contains("name=\"manifest\"; filename=\"manifest.json\"\r\nContent-Type: application/json\r\n\r\nmmmmmmm\r\n--"));
        assert!(text.ends_with("--\r\n"));
    }
}
