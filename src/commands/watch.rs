//! `dbt-secoda watch`: the sidecar and local watcher. Builds the client as `upload` does (the
//! same options, the same environment variables), resolves the target folders, globs and routes
//! it serves, then hands them to [`crate::watch`], which runs the pipeline once per fresh pair.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::upload::{self, not_started, prepare_client};
use super::{Error, UsageError};
use crate::config::{ArtifactInput, ArtifactPaths, ConfigError, Id};
use crate::exit::ExitCode;
use crate::report::sink::{JsonLines, Text};
use crate::report::{OutputFormat, Sink};
use crate::watch::{self, Routes, folders, state};

/// What only `watch` takes.
#[derive(Debug, Clone)]
pub struct WatchInput {
    /// Every `--target-dir` given (upload's input holds the last).
    pub target_dirs: Vec<PathBuf>,
    pub globs: Vec<String>,
    /// `--integration-for PROJECT=ID`.
    pub routes: Vec<(String, Id)>,
    pub once: bool,
    pub debounce: Duration,
    pub state_file: Option<PathBuf>,
    pub scan_interval: Duration,
    pub polling: bool,
    pub commands: Vec<String>,
    pub shutdown_grace: Duration,
    pub health_listen: Option<SocketAddr>,
}

/// The named target folders: each `--target-dir` (relative to `--project-dir`), or, with none
/// and no glob, the one dbt would write to.
fn named_folders(input: &upload::Input, watch: &WatchInput) -> Result<Vec<ArtifactPaths>, Error> {
    let artifacts = &input.artifacts;
    let singles = artifacts.manifest.is_some() || artifacts.run_results.is_some();
    if singles && watch.target_dirs.len() + watch.globs.len() > 1 {
        return Err(UsageError {
            message:
                "--manifest and --run-results name one pair; they cannot be used with several \
                      --target-dir or a --target-glob"
                    .into(),
            hint: Some("watch one folder with them, or drop them and name the folders".into()),
        }
        .into());
    }
    if watch.target_dirs.is_empty() {
        if !watch.globs.is_empty() && !singles {
            return Ok(Vec::new());
        }
        return Ok(vec![artifacts.resolve()?]);
    }
    watch
        .target_dirs
        .iter()
        .map(|dir| {
            ArtifactInput {
                target_dir: Some(dir.clone()),
                ..artifacts.clone()
            }
            .resolve()
            .map_err(Error::from)
        })
        .collect()
}

fn routes(input: &upload::Input, watch: &WatchInput) -> Result<Routes, Error> {
    let mut routes = Routes {
        by_project: Default::default(),
        default: input.integration.as_ref().map(Id::to_string),
    };
    for (project, id) in &watch.routes {
        routes.by_project.insert(project.clone(), id.to_string());
    }
    if routes.default.is_none() && routes.by_project.is_empty() {
        return Err(ConfigError::MissingIntegration.into());
    }
    Ok(routes)
}

pub async fn run(input: upload::Input, watch: WatchInput) -> ExitCode {
    // One report a pair: text for people, or one JSON document a line.
    let primary: Box<dyn Sink + Send + Sync> = match input.output {
        OutputFormat::Text => Box::new(Text::new(input.progress)),
        OutputFormat::Json => Box::new(JsonLines),
    };
    let sink: Arc<dyn Sink + Send + Sync> = Arc::from(upload::sinks(&input, primary));
    let prepared = prepare_client(&input).and_then(|(client, warnings)| {
        let named = named_folders(&input, &watch)?;
        let routes = routes(&input, &watch)?;
        for pattern in &watch.globs {
            folders::check(pattern).map_err(|message| UsageError {
                message: format!("--target-glob {message}"),
                hint: Some(
                    "write a glob of folders, e.g. 'target/*' or '/tmp/cosmos-*/target'".into(),
                ),
            })?;
        }
        Ok((client, warnings, named, routes))
    });
    let (client, warnings, named, routes) = match prepared {
        Ok(ready) => ready,
        Err(error) => return not_started(&error, &input.options, &*sink),
    };
    // Replaced for each pair by the integration its project goes to.
    let placeholder = routes
        .default
        .clone()
        .or_else(|| routes.by_project.values().next().cloned())
        .and_then(|id| id.parse::<Id>().ok());
    let Some(integration) = placeholder else {
        return not_started(
            &ConfigError::MissingIntegration.into(),
            &input.options,
            &*sink,
        );
    };
    let first = named.first().cloned();
    let template = upload::job(
        &input,
        integration,
        first
            .clone()
            .unwrap_or_else(|| ArtifactPaths::in_target(&PathBuf::from("target"))),
        warnings,
    );
    let state_file = watch.state_file.clone().unwrap_or_else(|| {
        let dirs: Vec<PathBuf> = named.iter().map(|p| p.target_dir.clone()).collect();
        state::default_path(&dirs, &watch.globs)
    });
    let options = watch::Options {
        targets: folders::Targets {
            named,
            globs: watch.globs,
        },
        routes,
        once: watch.once,
        debounce: watch.debounce,
        state_file,
        scan_interval: watch.scan_interval,
        polling: watch.polling,
        commands: watch.commands,
        shutdown_grace: watch.shutdown_grace,
        health_listen: watch.health_listen,
    };
    watch::run(client, template, options, sink).await
}
