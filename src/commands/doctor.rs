//! `dbt-secoda doctor`: is everything in place for an upload? One line a check, with a hint when
//! one fails. The exit code is the usual one for the first problem by precedence (configuration,
//! artifacts, Secoda refusing, Secoda unavailable).

use std::fmt::Write;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use super::{Output, connect};
use crate::Error;
use crate::api::ApiError;
use crate::artifacts;
use crate::cli::{DoctorArgs, OutputFormat};
use crate::config;
use crate::exit::{self, ExitCode};
use crate::logging::{print_stdout, use_color};

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
    error: Option<Error>,
}

impl Check {
    fn ok(name: &'static str, detail: String) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail,
            hint: None,
            error: None,
        }
    }
    fn info(name: &'static str, detail: String) -> Check {
        Check {
            name,
            status: Status::Info,
            detail,
            hint: None,
            error: None,
        }
    }
    fn skipped(name: &'static str, detail: &str) -> Check {
        Check {
            name,
            status: Status::Skipped,
            detail: detail.into(),
            hint: None,
            error: None,
        }
    }
    fn failed(name: &'static str, error: Error) -> Check {
        Check {
            name,
            status: Status::Failed,
            detail: error.to_string(),
            hint: error.hint(),
            error: Some(error),
        }
    }
}

/// `scheme://user:password@host` → `scheme://***@host`.
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| std::env::var(name.to_lowercase()).ok())
        .filter(|v| !v.is_empty())
}

pub async fn command(args: DoctorArgs, origins: crate::config::KeyOrigins) -> ExitCode {
    let checks = match crate::interruptible(async { Ok(run(&args, origins).await) }).await {
        Ok(checks) => checks,
        Err(e) => return super::finish(Err(e), args.output.output),
    };
    // The first problem by the usual precedence decides the code.
    let code = checks
        .iter()
        .filter_map(|c| c.error.as_ref())
        .map(exit::for_error)
        .min_by_key(|code| match code {
            ExitCode::Interrupted => 0,
            ExitCode::Usage => 1,
            ExitCode::Artifacts => 2,
            ExitCode::Refused => 3,
            _ => 4,
        })
        .unwrap_or(ExitCode::Success);
    let output = render(&checks, code);
    match args.output.output {
        OutputFormat::Json => print_stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&output.json).unwrap_or_default()
        )),
        OutputFormat::Text => print_stdout(&output.text),
    }
    code
}

fn render(checks: &[Check], code: ExitCode) -> Output {
    use std::io::IsTerminal;
    let color = use_color(std::io::stdout().is_terminal());
    let paint = |status: Status| {
        let (text, code) = match status {
            Status::Ok => ("ok  ", "32"),
            Status::Failed => ("FAIL", "1;31"),
            Status::Skipped => ("skip", "2"),
            Status::Info => ("info", "36"),
        };
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let mut text = String::new();
    for check in checks {
        let _ = writeln!(
            text,
            "{}  {:<20} {}",
            paint(check.status),
            check.name,
            check.detail.replace('\n', "\n      ")
        );
        if let Some(hint) = &check.hint {
            let _ = writeln!(text, "      hint: {hint}");
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Failed).count();
    let _ = writeln!(
        text,
        "{}",
        if failed == 0 {
            "everything checked is in order".to_string()
        } else {
            format!(
                "{failed} problem{} (exit {})",
                if failed == 1 { "" } else { "s" },
                code.code()
            )
        }
    );
    Output {
        json: json!({ "exit_code": code.code(), "checks": checks }),
        text,
    }
}

async fn run(args: &DoctorArgs, origins: crate::config::KeyOrigins) -> Vec<Check> {
    let mut checks = Vec::new();
    let connection = &args.connection;

    // Where the requests go, and through what.
    let proxies: Vec<String> = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"]
        .iter()
        .filter_map(|name| env(name).map(|v| format!("{name}={}", without_credentials(&v))))
        .collect();
    checks.push(Check::info(
        "proxy",
        if proxies.is_empty() {
            "none: connecting directly".into()
        } else {
            proxies.join(", ")
        },
    ));
    let ca = match (
        &connection.ca_cert,
        env("SSL_CERT_FILE"),
        env("SSL_CERT_DIR"),
    ) {
        (Some(path), _, _) => format!("the system store and {} (--ca-cert)", path.display()),
        (None, Some(file), _) => format!("{file} (SSL_CERT_FILE)"),
        (None, None, Some(dir)) => format!("{dir} (SSL_CERT_DIR)"),
        (None, None, None) => "the system's certificate store".into(),
    };
    checks.push(Check::info("certificates", ca));

    let client = match connect(connection, origins) {
        Ok(client) => {
            checks.push(Check::ok(
                "configuration",
                format!("API root {}", client.root()),
            ));
            Some(client)
        }
        Err(e) => {
            checks.push(Check::failed("configuration", e.into()));
            None
        }
    };
    match &client {
        Some(client) => {
            let started = Instant::now();
            match client.healthcheck().await {
                Ok(answer) => checks.push(Check::ok(
                    "API reachable",
                    format!(
                        "healthcheck answered {} in {} ms",
                        answer,
                        started.elapsed().as_millis()
                    ),
                )),
                Err(e) => checks.push(Check::failed("API reachable", e.into())),
            }
            // One page of the integration list needs a valid key and nothing else.
            match client
                .get_json::<serde_json::Value>(
                    &client.endpoint(reqwest::Method::GET, "integration/integrations/"),
                )
                .await
            {
                Ok(page) => checks.push(Check::ok(
                    "API key accepted",
                    format!(
                        "{} integration{} visible",
                        page.get("count").map_or("some".into(), |c| c.to_string()),
                        if page.get("count").and_then(|c| c.as_u64()) == Some(1) {
                            ""
                        } else {
                            "s"
                        }
                    ),
                )),
                Err(e) => checks.push(Check::failed("API key accepted", e.into())),
            }
            match config::integration_id(args.integration.integration_id.as_deref()) {
                Err(_) if args.integration.integration_id.is_none() => checks.push(Check::skipped(
                    "dbt integration",
                    "no --integration-id / SECODA_INTEGRATION_ID given",
                )),
                Err(e) => checks.push(Check::failed("dbt integration", e.into())),
                Ok(id) => match client.get_integration(&id).await {
                    Ok(found) if found.get("type").and_then(|t| t.as_str()) == Some("dbt") => {
                        checks.push(Check::ok(
                            "dbt integration",
                            format!(
                                "{id} ({}) is a dbt Core integration",
                                super::cell(found.get("name"))
                            ),
                        ))
                    }
                    Ok(found) => {
                        let error = ApiError::Rejected {
                            endpoint: client.endpoint(
                                reqwest::Method::GET,
                                &format!("integration/integrations/{id}/"),
                            ),
                            status: 200,
                            detail: format!(
                                "integration {id} is of type {:?}, not dbt: uploads need a dbt Core integration",
                                super::cell(found.get("type"))
                            ),
                        };
                        checks.push(Check::failed("dbt integration", error.into()));
                    }
                    Err(e) => checks.push(Check::failed("dbt integration", e.into())),
                },
            }
        }
        None => {
            for name in ["API reachable", "API key accepted", "dbt integration"] {
                checks.push(Check::skipped(name, "the configuration is incomplete"));
            }
        }
    }
    checks.push(check_artifacts(args).await);
    checks
}

async fn check_artifacts(args: &DoctorArgs) -> Check {
    const NAME: &str = "artifacts";
    let paths = match config::artifact_paths(&args.artifacts) {
        Ok(paths) => paths,
        Err(e) => return Check::failed(NAME, e.into()),
    };
    let named = args.artifacts.target_dir.is_some()
        || args.artifacts.project_dir.is_some()
        || args.artifacts.manifest.is_some();
    if !named && !paths.target_dir.exists() {
        return Check::skipped(
            NAME,
            "no target/ folder here (point --target-dir or --project-dir at one)",
        );
    }
    let task = tokio::task::spawn_blocking(move || {
        artifacts::check_pair(&paths.manifest, &paths.run_results)
    });
    match task.await {
        Ok(Ok((pair, run))) => Check::ok(
            NAME,
            format!(
                "{} are a complete pair: dbt {}, {} tests ({} failing)",
                pair.describe(),
                run.command.as_deref().unwrap_or("?"),
                run.test_count(),
                run.count(artifacts::Level::Failing)
            ),
        ),
        Ok(Err(e)) => Check::failed(NAME, e.into()),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_credentials_are_hidden() {
        assert_eq!(
            without_credentials("http://me:s3cret@proxy:3128"),
            "http://***@proxy:3128"
        );
        assert_eq!(
            without_credentials("http://proxy:3128"),
            "http://proxy:3128"
        );
    }
}
