//! multipart/form-data bodies streamed from a producer thread, with a known Content-Length.
//!
//! Owns the framing (boundary, part headers, the closing boundary) and the channel that carries
//! chunks from a blocking reader to the HTTP body. The closing boundary is the producer's to
//! send, last, so a body whose source failed never ends as a valid form. It does not read files.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use std::path::PathBuf;

use bytes::Bytes;
use reqwest::header;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::{Client, check, transport};
use super::error::{ApiError, Endpoint};
use super::retry::{Attempts, Fault, retrying};
use crate::units::format_duration;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// One attempt's request body and the thread producing it.
pub struct UploadAttempt<T, E> {
    pub body: reqwest::Body,
    pub content_type: String,
    pub content_length: u64,
    pub producer: JoinHandle<Result<T, ProducerError<E>>>,
    /// Bytes the connection has taken so far (the counter given to [`channel_body`]).
    pub progress: Arc<AtomicU64>,
    /// Ends the body early (from [`BodySender::stopper`]).
    pub stop: Stop,
}

/// Ends a body early: the connection stops taking bytes at once and the producer stops reading
/// (a producer blocked on a full channel is woken: the channel closes).
#[derive(Debug, Clone, Default)]
pub struct Stop {
    requested: Arc<AtomicBool>,
    channel: Arc<std::sync::Mutex<Option<Receiver>>>,
}

type Receiver = mpsc::Receiver<io::Result<Bytes>>;

/// Stops a body when dropped.
struct StopOnDrop(Stop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.now();
    }
}

impl Stop {
    pub fn now(&self) {
        self.requested.store(true, Ordering::Relaxed);
        if let Ok(mut channel) = self.channel.lock() {
            channel.take();
        }
    }

    fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }
}

/// Why a body producer stopped.
#[derive(Debug)]
pub enum ProducerError<E> {
    /// The request was abandoned; the producer stopped reading.
    Stopped,
    /// The source itself failed (e.g. a file proved invalid): never retried.
    Failed(E),
}

/// An upload failed because of Secoda, or because of its source.
#[derive(Debug)]
pub enum UploadError<E> {
    Api(ApiError),
    Source(E),
}

impl Client {
    /// POST to `endpoint` a body that `make` builds afresh for every attempt (a streamed body
    /// cannot be replayed, so each retry re-reads its source), retried like any request.
    pub async fn post_streamed<T, E>(
        &self,
        endpoint: &Endpoint,
        mut make: impl FnMut() -> UploadAttempt<T, E>,
    ) -> Result<(T, Attempts), UploadError<E>> {
        let endpoint = endpoint.clone();
        let (result, attempts) = retrying(&endpoint, self.body_policy(), || {
            let attempt = make();
            tracing::debug!(
                "{endpoint}: sending {}",
                crate::units::human_bytes(attempt.content_length)
            );
            let request = self
                .http()
                .post(endpoint.url.clone())
                .header(header::CONTENT_TYPE, attempt.content_type)
                .header(header::CONTENT_LENGTH, attempt.content_length)
                .body(attempt.body);
            let (producer, progress, stop) = (attempt.producer, attempt.progress, attempt.stop);
            let stall = self.stall_timeout();
            let stop_on_stall = stop.clone();
            // An attempt dropped half way (Ctrl-C) stops its producer too, so no reading thread
            // outlives it.
            let stop_on_drop = StopOnDrop(stop.clone());
            let send = async move {
                let _stop_on_drop = stop_on_drop;
                match request.send().await {
                    Ok(response) => {
                        if !response.status().is_success() {
                            // An answer while the body is still going out (413 before reading,
                            // 401): the rest is not sent, and the answer is final.
                            stop.now();
                        }
                        check(response).await?;
                        match joined(producer.await) {
                            Ok(output) => Ok(output),
                            Err(ProducerError::Failed(e)) => Err(Fault::Source(e)),
                            Err(ProducerError::Stopped) => Err(Fault::Transport {
                                message: "the upload ended before its body was complete".into(),
                                unsent: false,
                            }),
                        }
                    }
                    Err(e) => {
                        // The connection is gone (the server or a proxy closed or reset it
                        // before answering): the producer may be blocked on a full channel that
                        // nobody drains any more, so stop it before waiting for it; otherwise the
                        // attempt would end only when the stall watchdog fires. A producer that
                        // failed on its own (an invalid file ended the body) still says so.
                        stop.now();
                        match joined(producer.await) {
                            Err(ProducerError::Failed(source)) => Err(Fault::Source(source)),
                            _ => Err(transport(e)),
                        }
                    }
                }
            };
            let pacer = self.clone();
            async move {
                // Before the stall watchdog starts: waiting for the rate limit is not a stall.
                pacer.paced(&reqwest::Method::POST).await;
                tokio::select! {
                    result = send => result,
                    () = stalled(&progress, stall) => {
                        stop_on_stall.now();
                        Err(Fault::Transport {
                            message: format!(
                                "no progress for {} (no bytes taken, or no answer after the last \
                                 one): the connection stalled",
                                format_duration(stall)
                            ),
                            unsent: false,
                        })
                    }
                }
            }
        })
        .await;
        match result {
            Ok(output) => Ok((output, attempts)),
            Err(failure) => Err(match self.error_for(&endpoint, failure, attempts) {
                Ok(api) => UploadError::Api(api),
                Err(source) => UploadError::Source(source),
            }),
        }
    }
}

/// Returns once `progress` has not moved for `limit`. An upload that keeps moving is never cut;
/// one whose connection stops taking bytes, or whose answer never comes, is.
async fn stalled(progress: &AtomicU64, limit: Duration) {
    let tick = limit.min(Duration::from_secs(1));
    let mut seen = progress.load(Ordering::Relaxed);
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let now = progress.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= limit {
            return;
        }
    }
}

/// A producer's result; a producer that panicked is a bug, never a reason to retry.
fn joined<T, E>(
    result: Result<Result<T, ProducerError<E>>, tokio::task::JoinError>,
) -> Result<T, ProducerError<E>> {
    match result {
        Ok(output) => output,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(ProducerError::Stopped),
    }
}

/// Feeds a streaming body from a blocking thread.
pub struct BodySender {
    tx: mpsc::Sender<io::Result<Bytes>>,
    stop: Stop,
}

impl BodySender {
    /// Sends a chunk, blocking while the HTTP side is behind.
    pub fn send(&self, chunk: Bytes) -> Result<(), Stopped> {
        if self.stop.requested() {
            return Err(Stopped);
        }
        self.tx.blocking_send(Ok(chunk)).map_err(|_| Stopped)
    }

    /// Ends the body with an error, so the request is abandoned mid-body.
    pub fn abort(&self, why: String) {
        let _ = self.tx.blocking_send(Err(io::Error::other(why)));
    }

    /// A handle that ends this body early.
    pub fn stopper(&self) -> Stop {
        self.stop.clone()
    }
}

/// A body fed by a [`BodySender`]; `sent` counts the bytes handed to the HTTP stack.
pub fn channel_body(buffered_chunks: usize, sent: Arc<AtomicU64>) -> (reqwest::Body, BodySender) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(buffered_chunks);
    let stop = Stop {
        requested: Arc::default(),
        channel: Arc::new(std::sync::Mutex::new(Some(rx))),
    };
    let stopped = stop.clone();
    let counter = sent;
    // Counted as the HTTP stack takes each chunk: the progress bar and the stall watchdog
    // follow the connection chunk by chunk (1 MiB for artifacts). Slicing chunks finer cost
    // CPU in the upload benchmark and gained nothing a stall timeout of minutes needs.
    let stream = futures_util::stream::poll_fn(move |cx| {
        let stopped_early = || {
            // Secoda has answered already (or the attempt was dropped): the rest of the body
            // would only be thrown away.
            std::task::Poll::Ready(Some(Err(io::Error::other(
                "the body was stopped: Secoda answered before it was sent",
            ))))
        };
        if stopped.requested() {
            return stopped_early();
        }
        let Ok(mut channel) = stopped.channel.lock() else {
            return stopped_early();
        };
        let Some(rx) = channel.as_mut() else {
            return stopped_early();
        };
        let item = rx.poll_recv(cx);
        if let std::task::Poll::Ready(Some(Ok(chunk))) = &item {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        item
    });
    (reqwest::Body::wrap_stream(stream), BodySender { tx, stop })
}

/// An attempt that sends `files` as a form, re-reading them from disk; each must still have
/// the size it had when checked, so a retried request never carries a partial part.
pub fn files_attempt(files: &[(PartHead, PathBuf)]) -> UploadAttempt<(), std::io::Error> {
    let form = Form::new(files.iter().map(|(head, _)| head.clone()).collect());
    let progress = Arc::new(AtomicU64::new(0));
    let (body, sender) = channel_body(4, Arc::clone(&progress));
    let stop = sender.stopper();
    let paths: Vec<(PathBuf, u64)> = files
        .iter()
        .map(|(head, path)| (path.clone(), head.len))
        .collect();
    let content_type = form.content_type();
    let content_length = form.content_length();
    let producer = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        for (index, (path, expected)) in paths.iter().enumerate() {
            sender
                .send(form.head(index))
                .map_err(|_| ProducerError::Stopped)?;
            let mut file = crate::files::open_regular(path)
                .map_err(|e| ProducerError::Failed(std::io::Error::other(e.to_string())))?;
            let mut sent = 0u64;
            loop {
                let mut chunk = vec![0; 256 * 1024];
                let n = file.read(&mut chunk).map_err(ProducerError::Failed)?;
                if n == 0 {
                    break;
                }
                chunk.truncate(n);
                sent += n as u64;
                if sent > *expected {
                    break;
                }
                sender
                    .send(Bytes::from(chunk))
                    .map_err(|_| ProducerError::Stopped)?;
            }
            if sent != *expected {
                let why = format!(
                    "{} changed size while being sent ({expected} bytes when checked, {sent} now)",
                    path.display()
                );
                sender.abort(why.clone());
                return Err(ProducerError::Failed(std::io::Error::other(why)));
            }
        }
        sender.send(form.tail()).map_err(|_| ProducerError::Stopped)
    });
    UploadAttempt {
        body,
        content_type,
        content_length,
        producer,
        progress,
        stop,
    }
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
