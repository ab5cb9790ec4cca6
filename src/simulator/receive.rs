//! The upload receiver: `upload_artifacts/` read as it arrives, in constant memory.
//!
//! Each file part is hashed and counted on the way in and handed, chunk by chunk, to a thread
//! that parses it with the simulator's own reading ([`super::reading`]). As Django REST Framework
//! does, a body without a Content-Length (chunked) reaches the view empty and a part without a
//! filename is a form field, not a file: both leave the file fields "No file was submitted.".
//! An upload is recorded only when it arrived whole, with both files complete JSON.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Shared;
use super::http::{
    Dropped, Reply, bad_multipart, content_type, declared_length, detail, discard, reply,
};
use super::multipart::{self, Event};
use super::naming;
use super::reading::{self, ChannelReader, Manifest, RunResults};
use super::state::{self, Upload};

/// The file fields of `upload_artifacts/`.
const FIELDS: [&str; 2] = ["run_results", "manifest"];

/// One file part on its way in: hashed and counted here, parsed on a thread of its own.
struct Receiving<T> {
    sha: Sha256,
    bytes: u64,
    tx: Option<mpsc::Sender<Bytes>>,
    parse: JoinHandle<Result<T, String>>,
}

impl<T: serde::de::DeserializeOwned + Send + 'static> Receiving<T> {
    fn start() -> Receiving<T> {
        let (tx, rx) = mpsc::channel(8);
        Receiving {
            sha: Sha256::new(),
            bytes: 0,
            tx: Some(tx),
            parse: tokio::task::spawn_blocking(move || reading::parse(ChannelReader::new(rx))),
        }
    }

    async fn feed(&mut self, chunk: Bytes) {
        self.sha.update(&chunk);
        self.bytes += chunk.len() as u64;
        if let Some(tx) = &self.tx
            && tx.send(chunk).await.is_err()
        {
            // The parser stopped at an error; the rest is only hashed.
            self.tx = None;
        }
    }

    async fn finish(mut self) -> Received<T> {
        self.tx = None;
        let parsed = match self.parse.await {
            Ok(parsed) => parsed,
            Err(join) => Err(format!("the reader failed: {join}")),
        };
        Received {
            sha256: format!("{:x}", self.sha.finalize()),
            bytes: self.bytes,
            parsed,
        }
    }
}

/// A file part that arrived whole.
struct Received<T> {
    sha256: String,
    bytes: u64,
    parsed: Result<T, String>,
}

/// The part being read.
enum Current {
    RunResults(Receiving<RunResults>),
    Manifest(Receiving<Manifest>),
    /// A form field or a part nobody asked for.
    Ignored,
}

/// The multipart body, event by event.
struct Form {
    parser: multipart::Parser,
    events: Vec<Event>,
    malformed: bool,
    current: Option<Current>,
    run_results: Option<Received<RunResults>>,
    manifest: Option<Received<Manifest>>,
    parts: Vec<state::Part>,
}

impl Form {
    fn new(boundary: &str) -> Form {
        Form {
            parser: multipart::Parser::new(boundary),
            events: Vec::new(),
            malformed: false,
            current: None,
            run_results: None,
            manifest: None,
            parts: Vec::new(),
        }
    }

    async fn push(&mut self, data: &[u8]) {
        if self.malformed || self.parser.push(data, &mut self.events).is_err() {
            self.malformed = true;
            return;
        }
        let events = std::mem::take(&mut self.events);
        for event in events {
            match event {
                Event::Start {
                    name,
                    file_name,
                    content_type,
                } => {
                    self.current = Some(match (name.as_str(), &file_name) {
                        ("run_results", Some(_)) => Current::RunResults(Receiving::start()),
                        ("manifest", Some(_)) => Current::Manifest(Receiving::start()),
                        _ => Current::Ignored,
                    });
                    self.parts.push(state::Part {
                        name,
                        file_name,
                        content_type,
                    });
                }
                Event::Data(chunk) => match &mut self.current {
                    Some(Current::RunResults(r)) => r.feed(chunk).await,
                    Some(Current::Manifest(r)) => r.feed(chunk).await,
                    _ => {}
                },
                Event::End => self.end_part().await,
            }
        }
    }

    async fn end_part(&mut self) {
        match self.current.take() {
            Some(Current::RunResults(r)) => self.run_results = Some(r.finish().await),
            Some(Current::Manifest(r)) => self.manifest = Some(r.finish().await),
            _ => {}
        }
    }
}

/// DRF's answer when file fields are missing.
fn no_file(fields: &[&str]) -> Reply {
    let errors: serde_json::Map<String, Value> = fields
        .iter()
        .map(|f| (f.to_string(), json!(["No file was submitted."])))
        .collect();
    reply(StatusCode::BAD_REQUEST, Value::Object(errors))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub(super) async fn upload_artifacts(
    shared: &Shared,
    req: Request<Incoming>,
    id: &str,
) -> Result<Reply, Dropped> {
    let Some(boundary) = content_type(&req)
        .as_deref()
        .and_then(multipart::Parser::boundary)
    else {
        return discard(shared, req).await.map(|()| bad_multipart());
    };
    let Some(declared) = declared_length(&req) else {
        // Chunked: Django reads a body only as long as its Content-Length, so the view sees none.
        discard(shared, req).await?;
        return Ok(no_file(&FIELDS));
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let path = req.uri().path().to_string();
    let cut_at = shared.state().take_reset().then_some(declared / 2);
    let read_rate = shared.state().options.upload_bytes_per_second;
    let mut form = Form::new(&boundary);
    let mut body = req.into_body();
    let mut received = 0u64;
    let mut first_byte_unix = None;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(Dropped("aborted"));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        first_byte_unix.get_or_insert_with(unix_now);
        received += data.len() as u64;
        // Counted as it arrives, so /_simulator/state shows an upload in progress.
        shared.state().received(&path, data.len() as u64);
        if cut_at.is_some_and(|cut| received > cut) {
            return Err(Dropped("reset"));
        }
        if let Some(rate) = read_rate {
            // A slow link: this frame's bytes take their time before the next is read.
            tokio::time::sleep(Duration::from_secs_f64(data.len() as f64 / rate as f64)).await;
        }
        form.push(&data).await;
    }
    let last_byte_unix = unix_now();
    if form.malformed || !form.parser.is_done() {
        form.end_part().await;
        return Ok(bad_multipart());
    }
    let missing: Vec<&str> = FIELDS
        .iter()
        .zip([form.run_results.is_none(), form.manifest.is_none()])
        .filter(|(_, missing)| *missing)
        .map(|(f, _)| *f)
        .collect();
    let (Some(run_results), Some(manifest)) = (form.run_results.take(), form.manifest.take())
    else {
        return Ok(no_file(&missing));
    };
    let invalid = |part: &str, e: &str| {
        reply(
            StatusCode::BAD_REQUEST,
            json!({ part: [format!("Upload a valid JSON file: {e}.")] }),
        )
    };
    let rr = match &run_results.parsed {
        Ok(rr) => rr,
        Err(e) => return Ok(invalid("run_results", e)),
    };
    let m = match &manifest.parsed {
        Ok(m) => m,
        Err(e) => return Ok(invalid("manifest", e)),
    };
    let naming = shared.state().options.naming;
    let upload = Upload {
        integration_id: id.to_string(),
        manifest_sha256: manifest.sha256.clone(),
        manifest_bytes: manifest.bytes,
        run_results_sha256: run_results.sha256.clone(),
        run_results_bytes: run_results.bytes,
        invocation_id: rr.invocation_id().map(String::from),
        manifest_invocation_id: m.invocation_id().map(String::from),
        answer: naming::answer(naming, rr, m),
        received_at: state::iso8601(SystemTime::now()),
        first_byte_unix: first_byte_unix.unwrap_or_else(unix_now),
        last_byte_unix,
        content_length: Some(declared),
        user_agent,
        parts: form.parts,
    };
    shared.state().uploads.push(upload);
    Ok(detail(StatusCode::OK, "Artifacts uploaded successfully."))
}
