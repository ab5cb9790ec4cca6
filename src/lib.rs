//! dbt-secoda: gets dbt Core runs into the Secoda data catalog.
//!
//! After a dbt run it checks that `target/manifest.json` and `target/run_results.json` come from
//! one dbt invocation, streams them to Secoda's `upload_artifacts` endpoint, triggers the dbt
//! sync, waits for Secoda's failing-tests answer, reports, and exits non-zero when tests fail.
//!
//! The library is split by responsibility: [`cli`] (flags), [`config`] (checked settings),
//! [`artifacts`] (reading dbt's files), [`api`] (the Secoda client), [`pipeline`] (the upload
//! steps), [`commands`] (integrations, Slack, doctor), [`imports`] (CSV and JSONL metadata files),
//! [`report`] (what is printed), [`exit`] (exit codes), [`simulator`] (a local Secoda API, which
//! the client never imports) and [`demo`].

pub mod api;
pub mod artifacts;
pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod exit;
pub mod imports;
pub mod logging;
pub mod pipeline;
pub mod report;
pub mod simulator;

use std::future::Future;

use cli::{Cli, Command};
use exit::ExitCode;

/// What stopped a command. Each layer has its own error type; [`exit`] maps them to codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Artifact(#[from] artifacts::ArtifactError),
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error(transparent)]
    Import(#[from] imports::ImportError),
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.hint(),
            Error::Artifact(e) => Some(e.hint()),
            Error::Api(e) => e.hint(),
            Error::Import(e) => Some(e.hint()),
            Error::Interrupted => None,
        }
    }
}

/// Runs `future` unless Ctrl-C or SIGTERM comes first.
pub async fn interruptible<T>(future: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::select! {
        result = future => result,
        () = interrupted() => Err(Error::Interrupted),
    }
}

async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs a parsed command line. `origins` says which key options came from the environment.
pub fn run(cli: Cli, origins: crate::config::KeyOrigins) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            logging::print_stderr(&format!("error: cannot start the async runtime: {e}\n"));
            return ExitCode::Usage;
        }
    };
    let quiet = cli.quiet;
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Upload(args) => pipeline::command(args, origins, quiet).await,
            Command::Integrations(cmd) => commands::integrations::command(cmd, origins).await,
            Command::Slack(cmd) => commands::integrations::slack(cmd, origins).await,
            Command::Doctor(args) => commands::doctor::command(args, origins).await,
            Command::Simulator(args) => simulator::command(args).await,
            Command::Demo(args) => demo::command(args, quiet).await,
        }
    });
    // A file-reading thread blocked on a pipe or a hung network mount must not keep the process
    // alive after the answer is decided (dropping the runtime would wait for it forever).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
