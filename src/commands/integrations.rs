//! `dbt-secoda integrations ...` and `dbt-secoda slack conversations`.

use std::fmt::Write;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Output, cell, connect, finish, table};
use crate::Error;
use crate::api::multipart::PartHead;
use crate::cli::{IntegrationsCommand, SlackCommand};
use crate::config::ConfigError;
use crate::exit::ExitCode;
use crate::imports::{self, ImportError};

const COLUMNS: [&str; 4] = ["ID", "TYPE", "NAME", "TEAMS"];

fn row(integration: &Value) -> Vec<String> {
    ["id", "type", "name", "teams"]
        .iter()
        .map(|k| cell(integration.get(*k)))
        .collect()
}

fn details(integration: &Value) -> String {
    let mut text = String::new();
    if let Some(fields) = integration.as_object() {
        let width = fields.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in fields {
            let _ = writeln!(text, "{key:<width$}  {}", cell(Some(value)));
        }
    }
    text
}

/// Runs an `integrations` subcommand.
pub async fn command(cmd: IntegrationsCommand, origins: crate::config::KeyOrigins) -> ExitCode {
    let output = match &cmd {
        IntegrationsCommand::List { output, .. }
        | IntegrationsCommand::Get { output, .. }
        | IntegrationsCommand::Create { output, .. }
        | IntegrationsCommand::Delete { output, .. }
        | IntegrationsCommand::ImportCsv { output, .. }
        | IntegrationsCommand::ImportJsonl { output, .. } => output.output,
    };
    finish(crate::interruptible(run(cmd, origins)).await, output)
}

async fn run(
    cmd: IntegrationsCommand,
    origins: crate::config::KeyOrigins,
) -> Result<Output, Error> {
    match cmd {
        IntegrationsCommand::List {
            kind, connection, ..
        } => {
            let client = connect(&connection, origins)?;
            let listing = client.list_integrations(kind.as_deref()).await?;
            let rows: Vec<Vec<String>> = listing.items.iter().map(row).collect();
            let mut text = table(&COLUMNS, &rows);
            let _ = writeln!(
                text,
                "{} integration{} ({} page{})",
                rows.len(),
                s(rows.len()),
                listing.pages,
                s(listing.pages as usize)
            );
            Ok(Output {
                json: Value::Array(listing.items),
                text,
            })
        }
        IntegrationsCommand::Get { id, connection, .. } => {
            let client = connect(&connection, origins)?;
            let integration = client.get_integration(&id).await?;
            Ok(Output {
                text: details(&integration),
                json: integration,
            })
        }
        IntegrationsCommand::Create {
            name,
            kind,
            teams,
            connection,
            ..
        } => {
            let client = connect(&connection, origins)?;
            let created = client.create_integration(&name, &kind, &teams).await?;
            let text = format!(
                "created {} integration {:?}: {}\n",
                cell(created.get("type")),
                name,
                cell(created.get("id"))
            );
            Ok(Output {
                json: created,
                text,
            })
        }
        IntegrationsCommand::Delete {
            id,
            yes,
            connection,
            ..
        } => {
            let client = connect(&connection, origins)?;
            if !yes {
                confirm_delete(&client, &id).await?;
            }
            client.delete_integration(&id).await?;
            Ok(Output {
                json: json!({ "deleted": id }),
                text: format!("deleted integration {id} and its resources\n"),
            })
        }
        IntegrationsCommand::ImportCsv {
            id,
            file,
            dry_run,
            connection,
            ..
        } => {
            let summary = check_file(&file, "CSV", imports::csv::validate).await?;
            let mut text = format!(
                "{}: {} row{}, {} table{}: valid\n",
                file.display(),
                summary.rows,
                s(summary.rows as usize),
                summary.tables,
                s(summary.tables as usize)
            );
            if !summary.unknown_columns.is_empty() {
                tracing::warn!(
                    "{}: columns Secoda does not read: {}",
                    file.display(),
                    summary.unknown_columns.join(", ")
                );
            }
            if !dry_run {
                let client = connect(&connection, origins)?;
                let parts = [part("file", &file, "text/csv")?];
                client.import_files(&id, "import_metadata", &parts).await?;
                let _ = writeln!(text, "imported into integration {id}");
            } else {
                text.push_str("nothing sent (--dry-run)\n");
            }
            Ok(Output {
                json: json!({ "file": file, "summary": summary, "integration_id": id, "sent": !dry_run }),
                text,
            })
        }
        IntegrationsCommand::ImportJsonl {
            id,
            resources,
            lineages,
            external_parents,
            dry_run,
            connection,
            ..
        } => {
            let external = external_parents.clone();
            let (summary, known) = check_file(&resources, "JSONL resources", move |f| {
                imports::jsonl::validate_resources(f, &external)
            })
            .await?;
            let types: Vec<String> = summary
                .by_type
                .iter()
                .map(|(t, n)| format!("{n} {t}"))
                .collect();
            let mut text = format!(
                "{}: {} resources ({}): valid\n",
                resources.display(),
                summary.resources,
                types.join(", ")
            );
            let mut lineage_count = None;
            if let Some(path) = &lineages {
                let known = std::sync::Arc::new(known);
                let count = check_file(path, "JSONL lineages", move |f| {
                    imports::jsonl::validate_lineages(f, &known)
                })
                .await?;
                let _ = writeln!(text, "{}: {count} lineages: valid", path.display());
                lineage_count = Some(count);
            }
            if !dry_run {
                let client = connect(&connection, origins)?;
                let mut parts = vec![part("resources_file", &resources, "application/jsonl")?];
                if let Some(path) = &lineages {
                    parts.push(part("lineages_file", path, "application/jsonl")?);
                }
                client
                    .import_files(&id, "import_jsonl_metadata", &parts)
                    .await?;
                let _ = writeln!(text, "imported into integration {id}");
            } else {
                text.push_str("nothing sent (--dry-run)\n");
            }
            let json = json!({
                "resources": { "file": resources, "summary": summary },
                "lineages": lineages.map(|f| json!({ "file": f, "lineages": lineage_count })),
                "integration_id": id,
                "sent": !dry_run,
            });
            Ok(Output { json, text })
        }
    }
}

fn s(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Checks `path` with `validate` on a blocking thread.
async fn check_file<T: Send + 'static>(
    path: &Path,
    format: &'static str,
    validate: impl FnOnce(std::fs::File) -> Result<T, imports::Problems> + Send + 'static,
) -> Result<T, Error> {
    let path = path.to_path_buf();
    let task = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|source| ImportError::Unreadable {
            path: path.clone(),
            source,
        })?;
        validate(file).map_err(|problems| ImportError::Invalid {
            path,
            format,
            problems,
        })
    });
    match task.await {
        Ok(result) => result.map_err(Error::Import),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

fn part(name: &str, path: &Path, content_type: &str) -> Result<(PartHead, PathBuf), ImportError> {
    let len = std::fs::metadata(path)
        .map_err(|source| ImportError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let file_name = path
        .file_name()
        .map_or_else(|| name.to_string(), |f| f.to_string_lossy().into_owned());
    Ok((
        PartHead {
            name: name.into(),
            file_name,
            content_type: content_type.into(),
            len,
        },
        path.to_path_buf(),
    ))
}

/// On a terminal, shows what would be deleted and asks; elsewhere refuses without --yes.
async fn confirm_delete(client: &crate::api::Client, id: &str) -> Result<(), Error> {
    if !std::io::stdin().is_terminal() {
        return Err(ConfigError::NeedsConfirmation {
            what: format!("deleting integration {id}"),
        }
        .into());
    }
    let integration = client.get_integration(id).await?;
    crate::logging::print_stderr(&format!(
        "Delete the {} integration {:?} ({id}) and every resource it brought in? This cannot be undone. [y/N] ",
        cell(integration.get("type")),
        cell(integration.get("name"))
    ));
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(ConfigError::NotConfirmed.into())
    }
}

/// Runs a `slack` subcommand.
pub async fn slack(cmd: SlackCommand, origins: crate::config::KeyOrigins) -> ExitCode {
    let SlackCommand::Conversations { connection, output } = cmd;
    let result = crate::interruptible(async {
        let client = connect(&connection, origins)?;
        let conversations = client.slack_conversations().await?;
        let rows: Vec<Vec<String>> = conversations
            .iter()
            .map(|c| vec![cell(c.get("id")), cell(c.get("name"))])
            .collect();
        Ok(Output {
            text: table(&["ID", "NAME"], &rows),
            json: Value::Array(conversations),
        })
    })
    .await;
    finish(result, output.output)
}
