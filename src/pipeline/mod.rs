//! The upload pipeline as a library: check the pair, upload it, trigger the sync, wait for the
//! answer, report. `upload`, `watch` (once per pair) and `demo` all call [`run`].
//!
//! A run takes the [`Client`] by reference, a [`Job`] (what to upload and how), a [`Sink`] for
//! progress and the finished report, and a [`Cancel`] checked between steps. It owns the order of
//! the steps and what each failure leaves in the report: when Secoda fails, the local test
//! results are still read so the report (and `--on-api-error warn`) can use them. It does not
//! parse flags or print anything itself, and the exit code comes from [`crate::exit::decide`].

pub mod gate;
mod upload;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, Client};
use crate::artifacts::{self, ArtifactError, ArtifactFile, Pair, Role};
use crate::config::{ArtifactPaths, Id};
use crate::entities::Entities;
use crate::exit::{ExitCode, Failure, OnApiError};
use crate::report::{Event, FileReport, NotWaited, Plan, Report, SecodaAnswer, Sink, Uploaded};
use crate::settle::{Disagreements, Prediction, Settler};
use crate::units::{count, format_duration, human_bytes};
pub use gate::FailOn;

/// What stopped a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("interrupted")]
    Interrupted,
}

impl Failure for Error {
    fn exit_code(&self) -> ExitCode {
        match self {
            Error::Artifact(e) => e.exit_code(),
            Error::Api(e) => e.exit_code(),
            Error::Interrupted => ExitCode::Interrupted,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Artifact(e) => e.hint(),
            Error::Api(e) => e.hint(),
            Error::Interrupted => None,
        }
    }
}

/// How long to wait for Secoda's answer, and how often to ask.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub timeout: Duration,
    pub poll_interval: Duration,
}

/// One run: which pair goes to which integration, and how.
#[derive(Debug, Clone)]
pub struct Job {
    pub integration: Id,
    pub paths: ArtifactPaths,
    pub fail_on: FailOn,
    pub on_api_error: OnApiError,
    /// None: do not wait for Secoda's answer (--no-wait).
    pub wait: Option<Wait>,
    pub trigger_timeout: Duration,
    pub dry_run: bool,
    /// Warnings from the configuration, carried into the report.
    pub warnings: Vec<String>,
    /// Where `paths` were copied from (watch uploads snapshots): the report names these.
    pub origin: Option<ArtifactPaths>,
    /// Keep the tests that passed in the report too (a JUnit report lists every test).
    pub keep_passed: bool,
}

impl Job {
    /// The report's view of a file: its size, and the path the user knows it by.
    fn shown(&self, file: &ArtifactFile) -> FileReport {
        let mut shown = FileReport::of(file);
        if let Some(origin) = &self.origin {
            let path = match file.role {
                Role::Manifest => &origin.manifest,
                Role::RunResults => &origin.run_results,
            };
            shown.path = path.display().to_string();
        }
        shown
    }
}

/// Stopping a run: `drain` lets the step in flight finish and skips what is left (the wait for
/// Secoda's answer), `abort` stops at once.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    drain: CancellationToken,
    abort: CancellationToken,
}

impl Cancel {
    /// Finish the upload and trigger in flight; do not wait for the answer.
    pub fn drain(&self) {
        self.drain.cancel();
    }

    /// Stop now: a run in flight ends as interrupted (exit 130).
    pub fn abort(&self) {
        self.drain.cancel();
        self.abort.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    pub async fn aborted(&self) {
        self.abort.cancelled().await;
    }

    async fn draining(&self) {
        self.drain.cancelled().await;
    }
}

/// Runs the pipeline for `job`; the finished report goes to `sink` and is returned with the exit
/// code it records.
pub async fn run(
    client: &Client,
    job: &Job,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> (Report, ExitCode) {
    let mut report = Report {
        dry_run: job.dry_run,
        integration_id: Some(job.integration.to_string()),
        api_root: Some(client.root().to_string()),
        warnings: job.warnings.clone(),
        ..Report::default()
    };
    let error = tokio::select! {
        biased;
        () = cancel.aborted() => {
            // The upload may have been cut mid-body: its progress display ends too.
            sink.event(Event::UploadEnded);
            Some(Error::Interrupted)
        }
        result = steps(client, job, sink, cancel, &mut report) => result.err(),
    };
    let code = gate::conclude(
        &mut report,
        error.as_ref().map(|e| e as &dyn Failure),
        job.fail_on,
        job.on_api_error,
    );
    sink.report(&report);
    (report, code)
}

async fn steps(
    client: &Client,
    job: &Job,
    sink: &dyn Sink,
    cancel: &Cancel,
    report: &mut Report,
) -> Result<(), Error> {
    let paths = job.paths.clone();
    let pair =
        crate::blocking::run(move || artifacts::inspect_pair(&paths.manifest, &paths.run_results))
            .await?;
    report.describe_pair(&pair);
    if job.origin.is_none() {
        tracing::info!("{} are a pair", pair.describe());
    }

    if job.dry_run {
        let (run, [run_results_sha, manifest_sha]) =
            upload::read_locally(&pair, true, job.keep_passed).await?;
        report.record_run(&run);
        let with_hash = |file, sha: Option<String>| FileReport {
            sha256: sha,
            ..job.shown(file)
        };
        let id = &job.integration;
        report.plan = Some(Plan {
            manifest: with_hash(&pair.manifest, manifest_sha),
            run_results: with_hash(&pair.run_results, run_results_sha),
            upload: client.upload_endpoint(id).to_string(),
            trigger: client.trigger_endpoint(id).to_string(),
            failing_tests: client.failing_tests_endpoint(id).to_string(),
            waits: job.wait.is_some(),
        });
        return Ok(());
    }

    let result = upload_and_sync(client, job, sink, cancel, &pair, report).await;
    if let Err(Error::Api(_)) = &result
        && report.test_summary.is_none()
    {
        // Secoda failed before the upload read the files: read them here, so the report and
        // --on-api-error warn still have the local test results.
        let (run, _) = upload::read_locally(&pair, false, job.keep_passed).await?;
        report.record_run(&run);
    }
    result
}

async fn upload_and_sync(
    client: &Client,
    job: &Job,
    sink: &dyn Sink,
    cancel: &Cancel,
    pair: &Pair,
    report: &mut Report,
) -> Result<(), Error> {
    let id = &job.integration;

    // One cheap request proves the key and the integration before any large body is sent: a
    // server that answers 401 and closes while the body is still coming would otherwise cost a
    // whole upload, or several (docs/settle.md).
    let before_upload = client.failing_tests(id).await?;

    let started = Instant::now();
    let (run, attempts) = upload::upload(client, id, pair, job.keep_passed, sink).await?;
    report.record_run(&run);
    report.uploaded = Some(Uploaded {
        endpoint: client.upload_endpoint(id).to_string(),
        manifest: job.shown(&pair.manifest),
        run_results: job.shown(&pair.run_results),
        attempts: attempts.count,
        seconds: started.elapsed(),
    });
    tracing::info!(
        "uploaded {} in {} ({})",
        human_bytes(pair.manifest.len + pair.run_results.len),
        format_duration(started.elapsed()),
        count(attempts.count, "attempt")
    );

    let trigger = client.trigger_sync(id, job.trigger_timeout).await?;
    report.trigger = Some(trigger);
    sink.event(Event::Triggered);
    tracing::info!("dbt sync triggered");

    let not_waited = match job.wait {
        None => Some(NotWaited::NoWait),
        Some(_) if !run.has_test_outcomes() => Some(NotWaited::NoTestOutcomes),
        Some(_) if cancel.is_draining() => Some(NotWaited::ShuttingDown),
        Some(_) => None,
    };
    let Some(wait) = job.wait.filter(|_| not_waited.is_none()) else {
        if let Some(why) = not_waited.filter(|w| *w != NotWaited::NoWait) {
            tracing::info!("Secoda's answer {}", why.explain());
        }
        report.not_waited = not_waited;
        return Ok(());
    };
    // The settle rule's baseline is the answer as this run's sync starts, not as the upload
    // started: a sync that was running then (one the trigger waited out, or one that ended during
    // the upload) has changed the answer to its own result since, and that result is not this
    // run's (docs/settle.md).
    let baseline = client.failing_tests(id).await?;
    if before_upload != baseline {
        tracing::info!(
            "Secoda's answer changed while this run uploaded: another sync ended; its result is \
             the baseline this run's answer must differ from"
        );
    }
    let prediction = Prediction::of(&run);
    let Some(answer) =
        wait_for_answer(client, id, wait, baseline, prediction.clone(), cancel).await?
    else {
        report.not_waited = Some(NotWaited::ShuttingDown);
        return Ok(());
    };
    report.disagreements = prediction.and_then(|p| {
        Disagreements::between(
            &Entities {
                failing: answer.failing.clone(),
                warning: answer.warning.clone(),
            },
            &p,
        )
    });
    report.secoda = Some(answer);
    Ok(())
}

/// Polls until the answer settles; None when a drain stopped the wait.
async fn wait_for_answer(
    client: &Client,
    id: &Id,
    wait: Wait,
    baseline: Entities,
    prediction: Option<Prediction>,
    cancel: &Cancel,
) -> Result<Option<SecodaAnswer>, ApiError> {
    tracing::info!(
        "waiting for the sync: polling failing_tests every {} for up to {}",
        format_duration(wait.poll_interval),
        format_duration(wait.timeout)
    );
    let started = Instant::now();
    let mut settler = Settler::new(baseline.clone(), prediction);
    let mut polls = 0;
    let timeout = |settler: &Settler, polls, reason: Option<&str>| ApiError::WaitTimeout {
        waited: started.elapsed(),
        polls,
        reason: reason.unwrap_or(settler.why_not()).to_string(),
    };
    loop {
        if started.elapsed() + wait.poll_interval > wait.timeout {
            return Err(timeout(&settler, polls, None));
        }
        tokio::select! {
            () = tokio::time::sleep(wait.poll_interval) => {}
            () = cancel.draining() => {
                tracing::info!("shutting down: no longer waiting for Secoda's answer");
                return Ok(None);
            }
        }
        // A poll's own retries stay inside --wait-timeout.
        let left = wait.timeout.saturating_sub(started.elapsed());
        let Ok(answer) = tokio::time::timeout(left, client.failing_tests(id)).await else {
            let reason = "Secoda did not answer the last poll in time";
            return Err(timeout(&settler, polls, Some(reason)));
        };
        let answer = answer?;
        polls += 1;
        if let Some(settled_by) = settler.observe(&answer) {
            tracing::info!(
                "Secoda's answer settled after {}: {}",
                count(polls, "poll"),
                settled_by.explain()
            );
            return Ok(Some(SecodaAnswer {
                failing: answer.failing,
                warning: answer.warning,
                settled_by,
                confidence: settled_by.confidence(),
                before_sync: baseline,
                polls,
                waited: started.elapsed(),
            }));
        }
        tracing::debug!(
            "poll {polls}: not settled yet ({} failing, {} warning)",
            answer.failing.len(),
            answer.warning.len()
        );
    }
}
