//! `dbt-secoda upload`: one pair, once. Builds the client and the job from the inputs, runs the
//! pipeline with the sink `--output` names, and stops at once on Ctrl-C or SIGTERM (exit 130).

use std::time::Duration;

use super::{Error, connect, run_pipeline, sink_for};
use crate::api::Client;
use crate::config::{ArtifactInput, ConfigError, ConnectionInput, Id};
use crate::exit::{ExitCode, OnApiError};
use crate::pipeline::{FailOn, Job, Wait, gate};
use crate::report::{OutputFormat, Report, Sink};
use crate::units::format_duration;

/// How a pair is uploaded: the same for `upload` and `watch`.
#[derive(Debug, Clone)]
pub struct Options {
    pub fail_on: FailOn,
    pub on_api_error: OnApiError,
    /// None: --no-wait.
    pub wait: Option<Wait>,
    pub trigger_timeout: Duration,
    pub dry_run: bool,
}

/// What `upload` was asked to do.
#[derive(Debug, Clone)]
pub struct Input {
    pub connection: ConnectionInput,
    pub integration: Option<Id>,
    pub artifacts: ArtifactInput,
    pub options: Options,
    pub output: OutputFormat,
    /// A progress bar may be drawn on stderr.
    pub progress: bool,
}

/// The client and the job for a pair, checked.
pub fn prepare(
    connection: &ConnectionInput,
    integration: Option<&Id>,
    artifacts: &ArtifactInput,
    options: &Options,
) -> Result<(Client, Job), Error> {
    let (client, _, warnings) = connect(connection)?;
    let integration = integration
        .cloned()
        .ok_or(ConfigError::MissingIntegration)?;
    if let Some(wait) = options.wait
        && wait.timeout < wait.poll_interval * 2
    {
        return Err(ConfigError::WaitTooShort {
            wait: format_duration(wait.timeout),
            poll: format_duration(wait.poll_interval),
        }
        .into());
    }
    let paths = artifacts.resolve()?;
    let job = Job {
        integration,
        paths,
        fail_on: options.fail_on,
        on_api_error: options.on_api_error,
        wait: options.wait,
        trigger_timeout: options.trigger_timeout,
        dry_run: options.dry_run,
        warnings,
        origin: None,
    };
    Ok((client, job))
}

/// The report of a run that could not start, with the error that stopped it.
pub fn not_started(error: &Error, options: &Options, sink: &dyn Sink) -> ExitCode {
    let mut report = Report {
        dry_run: options.dry_run,
        ..Report::default()
    };
    let code = gate::conclude(
        &mut report,
        Some(error),
        options.fail_on,
        options.on_api_error,
    );
    sink.report(&report);
    code
}

pub async fn run(input: Input) -> ExitCode {
    let sink = sink_for(input.output, input.progress);
    let (client, job) = match prepare(
        &input.connection,
        input.integration.as_ref(),
        &input.artifacts,
        &input.options,
    ) {
        Ok(ready) => ready,
        Err(error) => return not_started(&error, &input.options, &*sink),
    };
    run_pipeline(&client, &job, &*sink).await.1
}
