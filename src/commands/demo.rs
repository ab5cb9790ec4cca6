//! `dbt-secoda demo`: the whole upload pipeline, end to end, on this machine.
//!
//! Starts the simulator in-process on a free loopback port, writes the bundled artifacts of the
//! fixture project's `dbt build` (3 failing tests, 1 erroring, 2 warning) to a temporary target
//! folder, and runs the real pipeline against it: upload, a 409 waited out, the slow sync settled,
//! the real report. Nothing leaves the machine. The demo itself exits 0 when the pipeline did what
//! `upload` would (its exit 1 for failing tests is the point of the demo).

use std::time::Duration;

use super::{Error, UsageError, run_pipeline, sink_for};
use crate::api::Client;
use crate::config::{ApiKey, ApiRoot, ArtifactPaths, Connection, KeySource};
use crate::exit::{self, ExitCode, Failure, OnApiError};
use crate::pipeline::{FailOn, Job, Wait};
use crate::report::{OutputFormat, print_failure};
use crate::simulator::{DEFAULT_DBT_INTEGRATION, Options, Simulator};

const MANIFEST: &[u8] = include_bytes!("../../demo/artifacts/build-with-failures/manifest.json");
const RUN_RESULTS: &[u8] =
    include_bytes!("../../demo/artifacts/build-with-failures/run_results.json");

pub async fn run(output: OutputFormat, progress: bool) -> ExitCode {
    let result = demo(output, progress).await;
    match result {
        Ok(code) => code,
        Err(error) => {
            print_failure(&error);
            exit::decide(Some(error.exit_code()), false, OnApiError::Fail)
        }
    }
}

fn cannot_start(e: impl std::fmt::Display) -> Error {
    Error::Usage(UsageError {
        message: format!("the demo could not start: {e}"),
        hint: None,
    })
}

/// The simulator the demo talks to: its first trigger answers 409, its syncs take 1.5 s.
fn options(api_key: String) -> Options {
    Options {
        conflicts: 1,
        ..Options::without_faults(
            api_key,
            DEFAULT_DBT_INTEGRATION,
            Duration::from_millis(1500),
        )
    }
}

async fn demo(output: OutputFormat, progress: bool) -> Result<ExitCode, Error> {
    let dir = tempfile::tempdir().map_err(cannot_start)?;
    let target = dir.path().join("target");
    std::fs::create_dir(&target).map_err(cannot_start)?;
    std::fs::write(target.join("manifest.json"), MANIFEST).map_err(cannot_start)?;
    std::fs::write(target.join("run_results.json"), RUN_RESULTS).map_err(cannot_start)?;

    let secret = format!("demo-{}", std::process::id());
    let loopback = "127.0.0.1:0".parse().map_err(cannot_start)?;
    let simulator = Simulator::start(loopback, options(secret.clone()))
        .await
        .map_err(cannot_start)?;
    tracing::info!(
        "demo: a Secoda simulator is listening on {} (its first trigger answers 409, its syncs take 1.5s)",
        simulator.url()
    );
    tracing::info!(
        "demo: uploading the fixture project's `dbt build` artifacts from {}",
        target.display()
    );

    let (root, _) = ApiRoot::parse(&simulator.url(), false)?;
    let mut connection = Connection::new(root, ApiKey::new(&secret, KeySource::Flag)?);
    connection.retry_timeout = Duration::from_secs(30);
    let client = Client::new(&connection)?;
    let job = Job {
        integration: DEFAULT_DBT_INTEGRATION.parse().map_err(cannot_start)?,
        paths: ArtifactPaths::in_target(&target),
        fail_on: FailOn::Error,
        on_api_error: OnApiError::Fail,
        wait: Some(Wait {
            timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
        }),
        trigger_timeout: Duration::from_secs(60),
        dry_run: false,
        warnings: Vec::new(),
        origin: None,
        keep_passed: false,
    };
    let sink = sink_for(output, progress);
    let (_, code) = run_pipeline(&client, &job, &*sink).await;
    let failure = match code {
        ExitCode::Success | ExitCode::TestsFailed => {
            tracing::info!(
                "demo: `dbt-secoda upload` would exit {} here ({}); the demo exits 0",
                code.code(),
                if code == ExitCode::TestsFailed {
                    "tests failed"
                } else {
                    "success"
                }
            );
            None
        }
        other => Some(other),
    };
    Ok(exit::decide(failure, false, OnApiError::Fail))
}
