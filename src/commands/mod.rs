//! The command entry points, one file a command: each takes plain inputs the command line built,
//! does its work with the layers below, prints its result, and returns the exit code
//! [`crate::exit`] decided.
//!
//! Owns the commands layer's [`Error`] (every error a command can end with), the way the
//! listing commands print a result or an error ([`Output`], [`finish`]), and stopping a command
//! at Ctrl-C or SIGTERM. It does not parse flags ([`crate::cli`]) or talk HTTP ([`crate::api`]).

pub mod demo;
pub mod doctor;
pub mod health;
pub mod integrations;
pub mod simulator;
pub mod slack;
pub mod upload;
pub mod watch;

use std::future::Future;

use serde_json::{Value, json};

use crate::api::{ApiError, Client, SetupError};
use crate::artifacts::ArtifactError;
use crate::config::{ConfigError, Connection, ConnectionInput};
use crate::exit::{self, ExitCode, Failure, OnApiError};
use crate::imports::ImportError;
use crate::logging::print_stdout;
use crate::report::{OutputFormat, print_failure};
use crate::signals::Signals;

/// A problem with how a command was asked for that no lower layer owns (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
    pub hint: Option<String>,
}

/// Everything a command can end with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Import(#[from] ImportError),
    /// Boxed: a Secoda error carries the endpoint, and errors travel by value.
    #[error(transparent)]
    Api(Box<ApiError>),
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error("interrupted")]
    Interrupted,
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(Box::new(e))
    }
}

impl Failure for Error {
    fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(e) => e.exit_code(),
            Error::Setup(e) => e.exit_code(),
            Error::Artifact(e) => e.exit_code(),
            Error::Import(e) => e.exit_code(),
            Error::Api(e) => e.exit_code(),
            Error::Usage(_) => ExitCode::Usage,
            Error::Interrupted => ExitCode::Interrupted,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.hint(),
            Error::Setup(e) => e.hint(),
            Error::Artifact(e) => e.hint(),
            Error::Import(e) => e.hint(),
            Error::Api(e) => e.hint(),
            Error::Usage(e) => e.hint.clone(),
            Error::Interrupted => None,
        }
    }
}

/// A client for the connection, with the host's warnings logged once.
pub fn connect(input: &ConnectionInput) -> Result<(Client, Connection, Vec<String>), Error> {
    connect_after(input, |_| {})
}

/// [`connect`], calling `first` with the resolved connection before anything is printed (a
/// runner is told to mask the key before any log line, even a TLS library's at -vvv).
pub fn connect_after(
    input: &ConnectionInput,
    first: impl FnOnce(&Connection),
) -> Result<(Client, Connection, Vec<String>), Error> {
    let (connection, warnings) = input.resolve()?;
    first(&connection);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let client = Client::new(&connection)?;
    Ok((client, connection, warnings))
}

/// Runs `work` unless Ctrl-C or SIGTERM comes first (then `Error::Interrupted`).
pub async fn interruptible<T>(work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let mut signals = Signals::new();
    tokio::select! {
        result = work => result,
        _ = signals.next() => Err(Error::Interrupted),
    }
}

/// Runs one pipeline; Ctrl-C or SIGTERM stop it at once (exit 130).
pub async fn run_pipeline(
    client: &Client,
    job: &crate::pipeline::Job,
    sink: &dyn crate::report::Sink,
) -> (crate::report::Report, ExitCode) {
    let cancel = crate::pipeline::Cancel::default();
    let mut signals = Signals::new();
    let run = crate::pipeline::run(client, job, sink, &cancel);
    tokio::pin!(run);
    loop {
        tokio::select! {
            finished = &mut run => return finished,
            signal = signals.next() => {
                tracing::info!("{signal}: stopping");
                cancel.abort();
            }
        }
    }
}

/// The sink for one run's report on stdout.
pub fn sink_for(
    output: OutputFormat,
    progress: bool,
) -> Box<dyn crate::report::Sink + Send + Sync> {
    match output {
        OutputFormat::Text => Box::new(crate::report::sink::Text::new(progress)),
        OutputFormat::Json => Box::new(crate::report::sink::JsonDocument),
    }
}

/// What a listing command produced: JSON for `--output json`, and text for people.
pub struct Output {
    pub json: Value,
    pub text: String,
}

/// Prints the result (or the error, with its hint) and returns the exit code.
pub fn finish(result: Result<Output, Error>, output: OutputFormat) -> ExitCode {
    let pretty =
        |value: &Value| serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let failure = result.as_ref().err().map(Failure::exit_code);
    let code = exit::decide(failure, false, OnApiError::Fail);
    match result {
        Ok(out) => match output {
            OutputFormat::Json => print_stdout(&format!("{}\n", pretty(&out.json))),
            OutputFormat::Text => print_stdout(&out.text),
        },
        Err(error) => {
            print_failure(&error);
            if output == OutputFormat::Json {
                let doc = json!({ "exit_code": code.code(), "error": { "message": error.to_string(), "hint": error.hint() } });
                print_stdout(&format!("{}\n", pretty(&doc)));
            }
        }
    }
    code
}
