//! `dbt-secoda watch`: the sidecar and local watcher. Builds the client and the job template as
//! `upload` does (the same options, the same environment variables), then hands them to
//! [`crate::watch`], which runs the pipeline once per fresh pair.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::upload::{self, not_started, prepare};
use crate::exit::ExitCode;
use crate::report::sink::{JsonLines, Text};
use crate::report::{OutputFormat, Sink};
use crate::watch::{self, state};

/// What only `watch` takes.
#[derive(Debug, Clone)]
pub struct WatchInput {
    pub once: bool,
    pub debounce: Duration,
    pub state_file: Option<PathBuf>,
    pub scan_interval: Duration,
    pub polling: bool,
    pub commands: Vec<String>,
    pub shutdown_grace: Duration,
    pub health_listen: Option<SocketAddr>,
}

pub async fn run(input: upload::Input, watch: WatchInput) -> ExitCode {
    // One report a pair: text for people, or one JSON document a line.
    let primary: Box<dyn Sink + Send + Sync> = match input.output {
        OutputFormat::Text => Box::new(Text::new(input.progress)),
        OutputFormat::Json => Box::new(JsonLines),
    };
    let sink: Arc<dyn Sink + Send + Sync> = Arc::from(upload::sinks(&input, primary));
    let (client, job) = match prepare(&input) {
        Ok(ready) => ready,
        Err(error) => return not_started(&error, &input.options, &*sink),
    };
    let state_file = watch
        .state_file
        .unwrap_or_else(|| state::default_path(&job.paths.target_dir));
    let options = watch::Options {
        paths: job.paths.clone(),
        once: watch.once,
        debounce: watch.debounce,
        state_file,
        scan_interval: watch.scan_interval,
        polling: watch.polling,
        commands: watch.commands,
        shutdown_grace: watch.shutdown_grace,
        health_listen: watch.health_listen,
    };
    watch::run(client, job, options, sink).await
}
