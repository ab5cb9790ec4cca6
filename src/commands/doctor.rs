//! `dbt-secoda doctor`: is everything in place for an upload? One line a check, with a hint when
//! one fails. The exit code is the usual one for the worst problem found (configuration,
//! artifacts, Secoda refusing, Secoda unavailable). A doctor answers in seconds: requests are
//! not retried, and each has a short timeout.

use std::fmt::Write;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::{Error, Output, connect, finish, interruptible};
use crate::api::{ApiError, Client};
use crate::artifacts;
use crate::config::{ArtifactInput, ConnectionInput, Id, without_userinfo};
use crate::exit::{self, ExitCode, Failure, OnApiError};
use crate::logging::print_stdout;
use crate::report::OutputFormat;
use crate::report::table::cell;
use crate::style::Paint;
use crate::units::count;

/// How long one of doctor's requests may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What `doctor` was asked to check.
#[derive(Debug, Clone)]
pub struct Input {
    pub connection: ConnectionInput,
    pub integration: Option<Id>,
    pub artifacts: ArtifactInput,
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Ok,
    Failed,
    Skipped,
    Info,
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    status: Status,
    detail: String,
    hint: Option<String>,
    #[serde(skip)]
    code: Option<ExitCode>,
}

impl Check {
    fn new(name: &'static str, status: Status, detail: String) -> Check {
        Check {
            name,
            status,
            detail,
            hint: None,
            code: None,
        }
    }
    fn failed(name: &'static str, error: &dyn Failure) -> Check {
        Check {
            name,
            status: Status::Failed,
            detail: error.to_string(),
            hint: error.hint(),
            code: Some(error.exit_code()),
        }
    }
}

/// The integration exists but is not a dbt Core one: uploads to it would be refused.
#[derive(Debug, thiserror::Error)]
#[error("integration {id} is of type {kind:?}, not dbt: uploads need a dbt Core integration")]
struct NotDbt {
    id: Id,
    kind: String,
}

impl Failure for NotDbt {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Refused
    }
    fn hint(&self) -> Option<String> {
        Some(
            "use the id of a dbt Core integration (Integrations → dbt Core in Secoda; the UUID in its URL)"
                .into(),
        )
    }
}

pub async fn run(input: Input) -> ExitCode {
    let checks = match interruptible(async { Ok(checks(&input).await) }).await {
        Ok(checks) => checks,
        Err(e) => return finish(Err(e), input.output),
    };
    let worst = checks
        .iter()
        .filter_map(|c| c.code)
        .reduce(|a, b| exit::worst([a, b]));
    let code = exit::decide(worst, false, OnApiError::Fail);
    let output = render(&checks, code);
    match input.output {
        OutputFormat::Json => print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&output.json).unwrap_or_default()
        )),
        OutputFormat::Text => print_stdout(&output.text),
    }
    code
}

fn render(checks: &[Check], code: ExitCode) -> Output {
    let p = Paint::stdout();
    let tag = |status: Status| match status {
        Status::Ok => p.green("ok  "),
        Status::Failed => p.red("FAIL"),
        Status::Skipped => p.dim("skip"),
        Status::Info => p.cyan("info"),
    };
    let mut text = String::new();
    for check in checks {
        let _ = writeln!(
            text,
            "{}  {:<20} {}",
            tag(check.status),
            check.name,
            check.detail.replace('\n', "\n      ")
        );
        if let Some(hint) = &check.hint {
            let _ = writeln!(text, "      hint: {hint}");
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Failed).count() as u64;
    if failed == 0 {
        text.push_str("everything checked is in order\n");
    } else {
        let _ = writeln!(text, "{} (exit {})", count(failed, "problem"), code.code());
    }
    Output {
        json: json!({ "exit_code": code.code(), "checks": checks }),
        text,
    }
}

/// `scheme://user:password@host` → `scheme://***@host`.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| std::env::var(name.to_lowercase()).ok())
        .filter(|v| !v.is_empty())
}

async fn checks(input: &Input) -> Vec<Check> {
    let mut checks = vec![proxy(), certificates(&input.connection)];
    // A doctor reports what it sees: no retries, and short timeouts.
    let mut connection = input.connection.clone();
    connection.retry_timeout = Duration::ZERO;
    connection.stall_timeout = connection.stall_timeout.min(REQUEST_TIMEOUT);
    match connect(&connection) {
        Ok((client, resolved, _)) => {
            checks.push(Check::new(
                "configuration",
                Status::Ok,
                format!("API root {}", resolved.root),
            ));
            let reached = reachable(&client).await;
            let unreachable = reached.code == Some(ExitCode::Unavailable);
            checks.push(reached);
            if unreachable {
                // Every other request would fail the same way, each after its own timeout.
                for name in ["API key accepted", "dbt integration"] {
                    checks.push(Check::new(
                        name,
                        Status::Skipped,
                        "the API is not reachable".into(),
                    ));
                }
            } else {
                let (key, refused) = key_accepted(&client).await;
                checks.push(key);
                if refused {
                    // The integration's GET would be refused for the same key, with the same
                    // answer: one line says it.
                    checks.push(Check::new(
                        "dbt integration",
                        Status::Skipped,
                        "the API key was not accepted".into(),
                    ));
                } else {
                    checks.push(dbt_integration(&client, input.integration.as_ref()).await);
                }
            }
        }
        Err(e) => {
            checks.push(Check::failed("configuration", &e));
            for name in ["API reachable", "API key accepted", "dbt integration"] {
                checks.push(Check::new(
                    name,
                    Status::Skipped,
                    "the configuration is incomplete".into(),
                ));
            }
        }
    }
    checks.push(check_artifacts(&input.artifacts).await);
    checks
}

fn proxy() -> Check {
    let proxies: Vec<String> = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"]
        .iter()
        .filter_map(|name| env(name).map(|v| format!("{name}={}", without_userinfo(&v))))
        .collect();
    let detail = if proxies.is_empty() {
        "none: connecting directly".into()
    } else {
        proxies.join(", ")
    };
    Check::new("proxy", Status::Info, detail)
}

fn certificates(connection: &ConnectionInput) -> Check {
    let detail = match (
        &connection.ca_cert,
        env("SSL_CERT_FILE"),
        env("SSL_CERT_DIR"),
    ) {
        (Some(path), _, _) => format!("the system store and {} (--ca-cert)", path.display()),
        (None, Some(file), _) => format!("{file} (SSL_CERT_FILE)"),
        (None, None, Some(dir)) => format!("{dir} (SSL_CERT_DIR)"),
        (None, None, None) => "the system's certificate store".into(),
    };
    let detail = match (&connection.client_cert, &connection.client_key) {
        (Some(cert), Some(key)) => format!(
            "{detail}; client certificate {} with the key {}",
            cert.display(),
            key.display()
        ),
        (Some(cert), None) => format!("{detail}; client certificate {}", cert.display()),
        _ => detail,
    };
    Check::new("certificates", Status::Info, detail)
}

async fn reachable(client: &Client) -> Check {
    const NAME: &str = "API reachable";
    let started = Instant::now();
    match client.healthcheck().await {
        Ok(answer) => Check::new(
            NAME,
            Status::Ok,
            format!(
                "healthcheck answered {answer} in {} ms",
                started.elapsed().as_millis()
            ),
        ),
        Err(e) => Check::failed(NAME, &e),
    }
}

/// One page of the integration list needs a valid key and nothing else. True when Secoda
/// refused the key itself, which every other call would repeat.
async fn key_accepted(client: &Client) -> (Check, bool) {
    const NAME: &str = "API key accepted";
    match client.integrations_page().await {
        Ok(page) => {
            let visible = page.get("count").and_then(|c| c.as_u64());
            let detail = match visible {
                Some(n) => format!("{} visible", count(n, "integration")),
                None => "some integrations visible".into(),
            };
            (Check::new(NAME, Status::Ok, detail), false)
        }
        Err(e) => (Check::failed(NAME, &e), matches!(e, ApiError::Auth { .. })),
    }
}

async fn dbt_integration(client: &Client, id: Option<&Id>) -> Check {
    const NAME: &str = "dbt integration";
    let Some(id) = id else {
        return Check::new(
            NAME,
            Status::Skipped,
            format!(
                "no --integration-id / {} given",
                crate::env_vars::INTEGRATION_ID
            ),
        );
    };
    match client.get_integration(id).await {
        Ok(found) if found.get("type").and_then(|t| t.as_str()) == Some("dbt") => Check::new(
            NAME,
            Status::Ok,
            format!(
                "{id} ({}) is a dbt Core integration",
                cell(found.get("name"))
            ),
        ),
        Ok(found) => Check::failed(
            NAME,
            &NotDbt {
                id: id.clone(),
                kind: cell(found.get("type")),
            },
        ),
        Err(e) => Check::failed(NAME, &e),
    }
}

async fn check_artifacts(input: &ArtifactInput) -> Check {
    const NAME: &str = "artifacts";
    let paths = match input.resolve() {
        Ok(paths) => paths,
        Err(e) => return Check::failed(NAME, &Error::from(e)),
    };
    if !input.is_named() && !paths.target_dir.exists() {
        return Check::new(
            NAME,
            Status::Skipped,
            "no target/ folder here (point --target-dir or --project-dir at one)".into(),
        );
    }
    let checked =
        crate::blocking::run(move || artifacts::check_pair(&paths.manifest, &paths.run_results))
            .await;
    match checked {
        Ok((pair, run)) => Check::new(
            NAME,
            Status::Ok,
            format!(
                "{} are a complete pair: dbt {}, {} ({} failing)",
                pair.describe(),
                run.command.as_deref().unwrap_or("?"),
                count(run.test_count(), "test"),
                run.count(artifacts::Level::Failing)
            ),
        ),
        Err(e) => Check::failed(NAME, &e),
    }
}
