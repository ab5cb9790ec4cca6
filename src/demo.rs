//! `dbt-secoda demo`: the whole upload pipeline, end to end, on this machine.
//!
//! Starts the simulator in-process on a free loopback port, writes the bundled artifacts of the
//! fixture project's `dbt build` (3 failing tests, 1 erroring, 2 warning) to a temporary target
//! folder, and runs the real pipeline against it: upload, a 409 waited out, the slow sync settled,
//! the real report. Nothing leaves the machine.

use std::time::Duration;

use crate::api::{Client, RetryPolicy};
use crate::cli::{DemoArgs, FailOn, OnApiError};
use crate::config::{ApiKey, ArtifactPaths, KeySource};
use crate::exit::ExitCode;
use crate::pipeline::{self, Settings, Wait};
use crate::report::Report;
use crate::simulator::{DEFAULT_DBT_INTEGRATION, Options, Simulator};

const MANIFEST: &[u8] = include_bytes!("../demo/artifacts/build-with-failures/manifest.json");
const RUN_RESULTS: &[u8] = include_bytes!("../demo/artifacts/build-with-failures/run_results.json");

pub async fn command(args: DemoArgs, quiet: bool) -> ExitCode {
    match run(args, quiet).await {
        Ok(code) => code,
        Err(e) => {
            crate::logging::print_stderr(&format!("error: the demo could not start: {e}\n"));
            ExitCode::Usage
        }
    }
}

async fn run(args: DemoArgs, quiet: bool) -> std::io::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("target");
    std::fs::create_dir(&target)?;
    std::fs::write(target.join("manifest.json"), MANIFEST)?;
    std::fs::write(target.join("run_results.json"), RUN_RESULTS)?;

    let secret = format!("demo-{}", std::process::id());
    let simulator = Simulator::start(
        "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
        Options {
            api_key: secret.clone(),
            dbt_integrations: vec![DEFAULT_DBT_INTEGRATION.into()],
            sync: Duration::from_millis(1500),
            conflicts: 1,
            fail_requests: 0,
            fail_status: 503,
            fail_path: None,
            fixed_answer: None,
            upload_bytes_per_second: None,
            rate_limit: None,
            reset_uploads: 0,
            latency: Duration::ZERO,
            page_size: 50,
            self_hosted_links: false,
        },
    )
    .await?;
    tracing::info!(
        "demo: a Secoda simulator is listening on {} (its first trigger answers 409, its syncs take 1.5s)",
        simulator.url()
    );
    tracing::info!(
        "demo: uploading the fixture project's `dbt build` artifacts from {}",
        target.display()
    );

    let to_config = |e: crate::config::ConfigError| std::io::Error::other(e.to_string());
    let (root, _) = crate::config::api_root(&crate::cli::ConnectionArgs {
        api_url: Some(simulator.url()),
        region: crate::cli::Region::Us,
        api_key: None,
        api_key_file: None,
        ca_cert: None,
        allow_insecure_http: false,
        retry_timeout: Duration::from_secs(30),
        stall_timeout: Duration::from_secs(120),
    })
    .map_err(to_config)?;
    let key = ApiKey::new(secret, KeySource::Flag).map_err(to_config)?;
    let settings = Settings {
        client: Client::new(
            root,
            &key,
            None,
            RetryPolicy::requests(Duration::from_secs(30)),
        )
        .map_err(to_config)?,
        integration: DEFAULT_DBT_INTEGRATION.into(),
        paths: ArtifactPaths {
            manifest: target.join("manifest.json"),
            run_results: target.join("run_results.json"),
            target_dir: target,
        },
        fail_on: FailOn::Error,
        on_api_error: OnApiError::Fail,
        wait: Some(Wait {
            timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
        }),
        trigger_timeout: Duration::from_secs(60),
        dry_run: false,
        progress: crate::logging::progress_allowed(quiet),
    };
    let mut report = Report::default();
    let error = crate::interruptible(pipeline::run(&settings, &mut report))
        .await
        .err();
    let code = pipeline::conclude(&mut report, error, settings.fail_on, settings.on_api_error);
    pipeline::emit(&report, args.output);
    Ok(match code {
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
            ExitCode::Success
        }
        other => other,
    })
}
