//! The upload step: the pair streamed as one multipart body, validated as it goes, with its
//! progress told to the sink; and the local read a dry run (or a failed upload) makes instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::Error;
use crate::api::multipart::{
    BodySender, Form, PartHead, ProducerError, UploadAttempt, UploadError, channel_body,
};
use crate::api::{Attempts, Client};
use crate::artifacts::{self, ArtifactError, Pair, Piece, ReadError, Role, RunOutcome, Stopped};
use crate::config::Id;
use crate::report::{Event, Sink};

/// Uploads the pair, validating it as it streams; returns the run's test outcomes.
pub(super) async fn upload(
    client: &Client,
    integration: &Id,
    pair: &Pair,
    keep_passed: bool,
    sink: &dyn Sink,
) -> Result<(RunOutcome, Attempts), Error> {
    let form = Form::new(
        pair.files()
            .iter()
            .map(|f| PartHead {
                name: f.role.part_name().into(),
                file_name: f.role.file_name().into(),
                content_type: "application/json".into(),
                len: f.len,
            })
            .collect(),
    );
    let sent = Arc::new(AtomicU64::new(0));
    sink.event(Event::Uploading {
        bytes: form.content_length(),
        sent: &sent,
    });
    let result = client
        .upload_artifacts(integration, || {
            sent.store(0, Ordering::Relaxed);
            let (body, sender) = channel_body(2, Arc::clone(&sent));
            let stop = sender.stopper();
            let (pair, form_for_thread) = (pair.clone(), form.clone());
            let producer = tokio::task::spawn_blocking(move || {
                produce(&pair, &form_for_thread, keep_passed, &sender)
            });
            UploadAttempt {
                body,
                content_type: form.content_type(),
                content_length: form.content_length(),
                producer,
                progress: Arc::clone(&sent),
                stop,
            }
        })
        .await;
    sink.event(Event::UploadEnded);
    result.map_err(|e| match e {
        UploadError::Api(api) => Error::Api(api),
        UploadError::Source(artifact) => Error::Artifact(artifact),
    })
}

/// Feeds one attempt's body: each file's part, validated as it goes, then the closing boundary.
fn produce(
    pair: &Pair,
    form: &Form,
    keep_passed: bool,
    sender: &BodySender,
) -> Result<RunOutcome, ProducerError<ArtifactError>> {
    let mut part = 0;
    let result = artifacts::read_pair(pair, keep_passed, &mut |piece| match piece {
        Piece::Start(_) => {
            part += 1;
            sender.send(form.head(part - 1)).map_err(|_| Stopped)
        }
        Piece::Data(chunk) => sender.send(chunk).map_err(|_| Stopped),
        Piece::End => Ok(()),
    });
    match result {
        Ok(run) => sender
            .send(form.tail())
            .map(|_| run)
            .map_err(|_| ProducerError::Stopped),
        Err(ReadError::Stopped) => Err(ProducerError::Stopped),
        Err(ReadError::Artifact(e)) => {
            sender.abort(e.to_string());
            Err(ProducerError::Failed(e))
        }
    }
}

/// Reads the pair without sending it; with `hash`, also the sha256 of each file
/// (run_results.json first, as read).
pub(super) async fn read_locally(
    pair: &Pair,
    hash: bool,
    keep_passed: bool,
) -> Result<(RunOutcome, [Option<String>; 2]), Error> {
    let pair = pair.clone();
    let read = crate::blocking::run(move || {
        let mut hashers = [Sha256::new(), Sha256::new()];
        let mut current = 0;
        let run = artifacts::read_pair_locally(&pair, keep_passed, |piece| match piece {
            Piece::Start(role) => current = usize::from(*role == Role::Manifest),
            Piece::Data(chunk) if hash => hashers[current].update(chunk),
            _ => {}
        })?;
        let hex = |h: Sha256| hash.then(|| format!("{:x}", h.finalize()));
        let [a, b] = hashers;
        Ok::<_, ArtifactError>((run, [hex(a), hex(b)]))
    })
    .await?;
    Ok(read)
}
