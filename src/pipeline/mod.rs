//! The upload pipeline: check the pair, upload it, trigger the sync, wait for the answer, report.
//!
//! Owns the order of the steps and what each failure leaves in the [`Report`]: when Secoda fails,
//! the local test results are still read so the report (and `--on-api-error warn`) can use them.
//! The `upload` command, the demo and (later) `watch` all run [`run`]. It does not parse flags,
//! build HTTP requests or pick exit codes: it hands the outcome to [`crate::exit::decide`].

pub mod settle;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::Error;
use crate::api::multipart::{BodySender, Form, PartHead, channel_body};
use crate::api::multipart::{ProducerError, UploadAttempt, UploadError};
use crate::api::{ApiError, Client};
use crate::artifacts::{self, ArtifactError, Pair, Piece, ReadError, RunOutcome};
use crate::cli::{FailOn, OnApiError, OutputFormat, UploadArgs, format_duration};
use crate::config::{self, ArtifactPaths, ConfigError};
use crate::exit::{self, ExitCode};
use crate::report::progress::Progress;
use crate::report::{self, ErrorReport, FileReport, Plan, Report, SecodaAnswer, Uploaded};
use settle::{Disagreements, Prediction, Settler};

/// How long to wait for Secoda's answer, and how often to ask.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub timeout: Duration,
    pub poll_interval: Duration,
}

/// Everything one upload needs, checked.
pub struct Settings {
    pub client: Client,
    pub integration: String,
    pub paths: ArtifactPaths,
    pub fail_on: FailOn,
    pub on_api_error: OnApiError,
    /// None with --no-wait.
    pub wait: Option<Wait>,
    pub trigger_timeout: Duration,
    pub dry_run: bool,
    /// Draw a progress bar for slow uploads.
    pub progress: bool,
}

impl Settings {
    /// Checks the upload's flags. Returns warnings worth showing (e.g. a suspicious host).
    pub fn from_args(
        args: &UploadArgs,
        origins: crate::config::KeyOrigins,
        progress: bool,
    ) -> Result<(Settings, Vec<String>), ConfigError> {
        let (client, warnings) = crate::commands::connect_warning(&args.connection, origins)?;
        let integration = config::integration_id(args.integration.integration_id.as_deref())?;
        let paths = config::artifact_paths(&args.artifacts)?;
        let wait = (!args.no_wait).then_some(Wait {
            timeout: args.wait_timeout,
            poll_interval: args.poll_interval,
        });
        let settings = Settings {
            client,
            integration,
            paths,
            fail_on: args.fail_on,
            on_api_error: args.on_api_error,
            wait,
            trigger_timeout: args.trigger_timeout,
            dry_run: args.dry_run,
            progress: progress && args.output == OutputFormat::Text,
        };
        Ok((settings, warnings))
    }
}

/// Runs the pipeline, filling `report`; the error is what stopped it, if anything.
pub async fn run(settings: &Settings, report: &mut Report) -> Result<(), Error> {
    let client = &settings.client;
    let id = settings.integration.as_str();
    report.integration_id = Some(id.to_string());
    report.api_root = Some(client.root().to_string());

    let paths = settings.paths.clone();
    let pair =
        blocking(move || artifacts::inspect_pair(&paths.manifest, &paths.run_results)).await?;
    report.describe_pair(&pair);
    tracing::info!("{} are a pair", pair.describe());

    if settings.dry_run {
        let (run, [run_results_sha, manifest_sha]) = read_locally(&pair, true).await?;
        report.record_run(&run);
        let with_hash = |file, sha: Option<String>| FileReport {
            sha256: sha,
            ..FileReport::of(file)
        };
        report.plan = Some(Plan {
            manifest: with_hash(&pair.manifest, manifest_sha),
            run_results: with_hash(&pair.run_results, run_results_sha),
            upload: client.upload_endpoint(id).to_string(),
            trigger: client.trigger_endpoint(id).to_string(),
            failing_tests: settings
                .wait
                .map(|_| client.failing_tests_endpoint(id).to_string()),
        });
        return Ok(());
    }

    let result = upload_and_sync(settings, &pair, report).await;
    if let Err(Error::Api(_)) = &result
        && report.test_summary.is_none()
    {
        // Secoda failed before the upload read the files: read them here, so the report and
        // --on-api-error warn still have the local test results.
        let (run, _) = read_locally(&pair, false).await?;
        report.record_run(&run);
    }
    result
}

async fn upload_and_sync(
    settings: &Settings,
    pair: &Pair,
    report: &mut Report,
) -> Result<(), Error> {
    let client = &settings.client;
    let id = settings.integration.as_str();

    // A cheap check of the key and the integration before a large body is sent.
    let before_upload = match settings.wait {
        Some(_) => Some(client.failing_tests(id).await?),
        None => None,
    };

    let started = Instant::now();
    let (run, attempts) = upload(settings, pair).await?;
    report.record_run(&run);
    report.uploaded = Some(Uploaded {
        endpoint: client.upload_endpoint(id).to_string(),
        manifest: FileReport::of(&pair.manifest),
        run_results: FileReport::of(&pair.run_results),
        attempts: attempts.count,
        seconds: started.elapsed(),
    });
    tracing::info!(
        "uploaded {} in {} ({} attempt{})",
        report::human_bytes(pair.manifest.len + pair.run_results.len),
        format_duration(started.elapsed()),
        attempts.count,
        if attempts.count == 1 { "" } else { "s" }
    );

    let trigger = client.trigger_sync(id, settings.trigger_timeout).await?;
    report.trigger = Some(trigger);
    tracing::info!("dbt sync triggered");

    let Some(wait) = settings.wait else {
        return Ok(());
    };
    // The settle rule's baseline is the answer as this run's sync starts, not as the upload
    // started: a sync that was running then (one the trigger waited out, or one that ended during
    // the upload) has changed the answer to its own result since, and that result is not this
    // run's (docs/settle.md).
    let baseline = client.failing_tests(id).await?;
    if before_upload.is_some_and(|before| before != baseline) {
        tracing::info!(
            "Secoda's answer changed while this run uploaded: another sync ended; its result is \
             the baseline this run's answer must differ from"
        );
    }
    let prediction = Prediction::of(&run);
    let answer = wait_for_answer(client, id, wait, baseline, prediction.clone()).await?;
    report.disagreements = prediction.and_then(|p| Disagreements::between(&answer_of(&answer), &p));
    report.secoda = Some(answer);
    Ok(())
}

fn answer_of(answer: &SecodaAnswer) -> crate::api::dbt::FailingTests {
    crate::api::dbt::FailingTests {
        failing: answer.failing.clone(),
        warning: answer.warning.clone(),
    }
}

async fn wait_for_answer(
    client: &Client,
    id: &str,
    wait: Wait,
    baseline: crate::api::dbt::FailingTests,
    prediction: Option<Prediction>,
) -> Result<SecodaAnswer, ApiError> {
    tracing::info!(
        "waiting for the sync: polling failing_tests every {} for up to {}",
        format_duration(wait.poll_interval),
        format_duration(wait.timeout)
    );
    let started = Instant::now();
    let mut settler = Settler::new(baseline.clone(), prediction);
    let mut polls = 0;
    loop {
        if started.elapsed() + wait.poll_interval > wait.timeout {
            let reason = if settler.unchanged() {
                "the answer is still the one from before this run's sync".to_string()
            } else {
                "the answer kept changing".to_string()
            };
            return Err(ApiError::WaitTimeout {
                waited: started.elapsed(),
                polls,
                reason,
            });
        }
        tokio::time::sleep(wait.poll_interval).await;
        // A poll's own retries stay inside --wait-timeout.
        let left = wait.timeout.saturating_sub(started.elapsed());
        let Ok(answer) = tokio::time::timeout(left, client.failing_tests(id)).await else {
            return Err(ApiError::WaitTimeout {
                waited: started.elapsed(),
                polls,
                reason: "Secoda did not answer the last poll in time".to_string(),
            });
        };
        let answer = answer?;
        polls += 1;
        if let Some(settled_by) = settler.observe(&answer) {
            tracing::info!(
                "Secoda's answer settled after {polls} polls: {}",
                settled_by.explain()
            );
            return Ok(SecodaAnswer {
                failing: answer.failing,
                warning: answer.warning,
                settled_by,
                before_sync: baseline,
                polls,
                waited: started.elapsed(),
            });
        }
        tracing::debug!(
            "poll {polls}: not settled yet ({} failing, {} warning)",
            answer.failing.len(),
            answer.warning.len()
        );
    }
}

/// Uploads the pair, validating it as it streams; returns the run's test outcomes.
async fn upload(
    settings: &Settings,
    pair: &Pair,
) -> Result<(RunOutcome, crate::api::Attempts), Error> {
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
    let progress = Progress::start(form.content_length(), Arc::clone(&sent), settings.progress);
    let result = settings
        .client
        .upload_artifacts(&settings.integration, || {
            sent.store(0, std::sync::atomic::Ordering::Relaxed);
            let (body, sender) = channel_body(2, Arc::clone(&sent));
            let (pair, form_for_thread) = (pair.clone(), form.clone());
            let producer =
                tokio::task::spawn_blocking(move || produce(&pair, &form_for_thread, &sender));
            UploadAttempt {
                body,
                content_type: form.content_type(),
                content_length: form.content_length(),
                producer,
                progress: Arc::clone(&sent),
            }
        })
        .await;
    progress.finish().await;
    result.map_err(|e| match e {
        UploadError::Api(api) => Error::Api(api),
        UploadError::Source(artifact) => Error::Artifact(artifact),
    })
}

/// Feeds one attempt's body: each file's part, validated as it goes, then the closing boundary.
fn produce(
    pair: &Pair,
    form: &Form,
    sender: &BodySender,
) -> Result<RunOutcome, ProducerError<ArtifactError>> {
    let mut part = 0;
    let result = artifacts::read_pair(pair, &mut |piece| match piece {
        Piece::Start(_) => {
            part += 1;
            sender.send(form.head(part - 1))
        }
        Piece::Data(chunk) => sender.send(chunk),
        Piece::End(_) => Ok(()),
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
async fn read_locally(pair: &Pair, hash: bool) -> Result<(RunOutcome, [Option<String>; 2]), Error> {
    let pair = pair.clone();
    blocking(move || {
        let mut hashers = [Sha256::new(), Sha256::new()];
        let mut current = 0;
        let run = artifacts::read_pair_locally(&pair, |piece| match piece {
            Piece::Start(role) => current = usize::from(role == &artifacts::Role::Manifest),
            Piece::Data(chunk) if hash => hashers[current].update(chunk),
            _ => {}
        })?;
        let hex = |h: Sha256| hash.then(|| format!("{:x}", h.finalize()));
        let [a, b] = hashers;
        Ok((run, [hex(a), hex(b)]))
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArtifactError> + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(Error::Artifact),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

/// Whether the tests fail the run under `fail_on`, from the local results and Secoda's answer.
pub fn tests_failed(report: &Report, fail_on: FailOn) -> bool {
    let local = report.test_summary.as_ref().filter(|s| s.has_outcomes);
    let (local_failing, local_warning) = local.map_or((0, 0), |s| (s.failing, s.warning));
    let (secoda_failing, secoda_warning) = report
        .secoda
        .as_ref()
        .map_or((0, 0), |a| (a.failing.len(), a.warning.len()));
    match fail_on {
        FailOn::Never => false,
        FailOn::Error => local_failing > 0 || secoda_failing > 0,
        FailOn::Warn => local_failing + local_warning > 0 || secoda_failing + secoda_warning > 0,
    }
}

/// Records the outcome in the report and returns the exit code.
pub fn conclude(
    report: &mut Report,
    error: Option<Error>,
    fail_on: FailOn,
    on_api_error: OnApiError,
) -> ExitCode {
    // A dry run's exit code says whether the upload could go ahead, not how the tests went.
    let failed = !report.dry_run && tests_failed(report, fail_on);
    let code = exit::decide(error.as_ref(), failed, on_api_error);
    if let Some(error) = &error {
        if matches!(error, Error::Api(_)) && on_api_error == OnApiError::Warn {
            report.warnings.push(format!(
                "Secoda failed ({error}); exiting {} instead of {} because of --on-api-error warn",
                code.code(),
                exit::for_error(error).code()
            ));
        }
        report.error = Some(ErrorReport {
            message: error.to_string(),
            hint: error.hint(),
        });
    }
    report.exit_code = code.code();
    report.result = match (code, report.dry_run) {
        (ExitCode::Success, true) => "dry_run",
        (ExitCode::Success, false) => "success",
        (ExitCode::TestsFailed, _) => "tests_failed",
        _ => "error",
    };
    code
}

/// `dbt-secoda upload`: runs the pipeline, prints the report, returns the exit code.
pub async fn command(
    args: UploadArgs,
    origins: crate::config::KeyOrigins,
    quiet: bool,
) -> ExitCode {
    let mut report = Report {
        dry_run: args.dry_run,
        ..Report::default()
    };
    let error = match Settings::from_args(&args, origins, crate::logging::progress_allowed(quiet)) {
        Err(e) => Some(Error::Config(e)),
        Ok((settings, warnings)) => {
            for warning in &warnings {
                tracing::warn!("{warning}");
            }
            report.warnings.extend(warnings);
            crate::interruptible(run(&settings, &mut report))
                .await
                .err()
        }
    };
    let code = conclude(&mut report, error, args.fail_on, args.on_api_error);
    emit(&report, args.output);
    code
}

/// Prints the report on stdout and any error, with its hint, on stderr.
pub fn emit(report: &Report, output: OutputFormat) {
    use std::io::IsTerminal;
    if let Some(error) = &report.error {
        let mut text = format!("error: {}\n", error.message);
        if let Some(hint) = &error.hint {
            text.push_str(&format!("hint: {hint}\n"));
        }
        crate::logging::print_stderr(&text);
    }
    match output {
        OutputFormat::Json => crate::logging::print_stdout(&format!("{}\n", report.to_json())),
        OutputFormat::Text => {
            let color = crate::logging::use_color(std::io::stdout().is_terminal());
            crate::logging::print_stdout(&report::human::render(report, color));
        }
    }
}
