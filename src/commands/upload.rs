//! `dbt-secoda upload`: one pair, once. Builds the client and the job from the inputs, runs the
//! pipeline with the sink `--output` names, and stops at once on Ctrl-C or SIGTERM (exit 130).

use std::time::Duration;

use super::{Error, connect_after, run_pipeline, sink_for};
use crate::api::Client;
use crate::config::{ArtifactInput, ArtifactPaths, ConfigError, ConnectionInput, Id};
use crate::exit::{ExitCode, OnApiError};
use crate::pipeline::{FailOn, Job, Wait, gate};
use std::path::PathBuf;

use crate::logging::on_github_runner;
use crate::report::github::{self, GitHub};
use crate::report::junit::Junit;
use crate::report::sink::Tee;
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
    /// Also report as GitHub Actions reads it (annotations, job summary, step outputs): `Some`
    /// when asked (`--github`, `--github=false`), else on by itself on a runner.
    pub github: Option<bool>,
    /// Also write a JUnit XML report here.
    pub junit: Option<PathBuf>,
}

/// The report's sinks: `primary` (text or JSON on stdout), then GitHub's and JUnit's renderings
/// of the same report when asked for.
pub fn sinks(input: &Input, primary: Box<dyn Sink + Send + Sync>) -> Box<dyn Sink + Send + Sync> {
    let mut sinks = vec![primary];
    if input.github.unwrap_or_else(on_github_runner) {
        sinks.push(Box::new(GitHub::from_env(
            input.artifacts.project_dir.as_deref(),
        )));
    }
    if let Some(path) = &input.junit {
        sinks.push(Box::new(Junit {
            path: path.clone(),
            warnings_fail: input.options.fail_on == FailOn::Warn,
        }));
    }
    Box::new(Tee(sinks))
}

/// The client, and the checks every pipeline needs before anything is sent. On a GitHub runner
/// the key is masked first, before anything else is printed. Returns the connection's warnings.
pub fn prepare_client(input: &Input) -> Result<(Client, Vec<String>), Error> {
    let (client, _, warnings) = connect_after(&input.connection, |resolved| {
        if on_github_runner() {
            github::mask(&resolved.key);
        }
    })?;
    // Found out before anything is sent, not after the upload a CI job wanted reported.
    if let Some(path) = &input.junit {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        if folder.is_some_and(|f| !f.is_dir()) {
            return Err(ConfigError::JunitFolder { path: path.clone() }.into());
        }
    }
    if let Some(wait) = input.options.wait
        && wait.timeout < wait.poll_interval * 2
    {
        return Err(ConfigError::WaitTooShort {
            wait: format_duration(wait.timeout),
            poll: format_duration(wait.poll_interval),
        }
        .into());
    }
    Ok((client, warnings))
}

/// The job for one pair: which integration, which files, and how.
pub fn job(input: &Input, integration: Id, paths: ArtifactPaths, warnings: Vec<String>) -> Job {
    let options = &input.options;
    Job {
        integration,
        paths,
        fail_on: options.fail_on,
        on_api_error: options.on_api_error,
        wait: options.wait,
        trigger_timeout: options.trigger_timeout,
        dry_run: options.dry_run,
        warnings,
        origin: None,
        keep_passed: input.junit.is_some(),
    }
}

/// The client and the job for a pair, checked.
pub fn prepare(input: &Input) -> Result<(Client, Job), Error> {
    let (client, warnings) = prepare_client(input)?;
    let integration = input
        .integration
        .clone()
        .ok_or(ConfigError::MissingIntegration)?;
    let paths = input.artifacts.resolve()?;
    Ok((client, job(input, integration, paths, warnings)))
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
    let sink = sinks(&input, sink_for(input.output, input.progress));
    let (client, job) = match prepare(&input) {
        Ok(ready) => ready,
        Err(error) => return not_started(&error, &input.options, &*sink),
    };
    run_pipeline(&client, &job, &*sink).await.1
}
