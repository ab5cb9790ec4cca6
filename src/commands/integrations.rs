//! `dbt-secoda integrations ...`: list, get, create and delete integrations, and import metadata
//! from CSV or JSONL files (checked first; nothing is sent when a file is invalid). One function
//! a subcommand.

use std::fmt::Write;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Error, Output, UsageError, connect, finish, interruptible};
use crate::api::Client;
use crate::api::multipart::{PartHead, UploadError};
use crate::config::{ConnectionInput, Id};
use crate::exit::ExitCode;
use crate::files::{self, OpenError};
use crate::imports::{self, ImportError};
use crate::report::OutputFormat;
use crate::report::table::{cell, table};
use crate::style::Paint;
use crate::units::count;

/// Which subcommand, with its own arguments.
#[derive(Debug, Clone)]
pub enum Input {
    List {
        kind: Option<String>,
    },
    Get {
        id: Id,
    },
    Create {
        name: String,
        kind: String,
        teams: Vec<String>,
    },
    Delete {
        id: Id,
        yes: bool,
    },
    ImportCsv {
        id: Id,
        file: PathBuf,
        dry_run: bool,
    },
    ImportJsonl {
        id: Id,
        resources: PathBuf,
        lineages: Option<PathBuf>,
        external_parents: Vec<String>,
        dry_run: bool,
    },
}

const COLUMNS: [&str; 4] = ["ID", "TYPE", "NAME", "TEAMS"];

pub async fn run(input: Input, connection: ConnectionInput, output: OutputFormat) -> ExitCode {
    let work = async {
        match input {
            Input::List { kind } => list(&connection, kind.as_deref()).await,
            Input::Get { id } => get(&connection, &id).await,
            Input::Create { name, kind, teams } => create(&connection, &name, &kind, &teams).await,
            Input::Delete { id, yes } => delete(&connection, &id, yes).await,
            Input::ImportCsv { id, file, dry_run } => {
                import_csv(&connection, &id, &file, dry_run).await
            }
            Input::ImportJsonl {
                id,
                resources,
                lineages,
                external_parents,
                dry_run,
            } => {
                let files = JsonlFiles {
                    resources,
                    lineages,
                    external_parents,
                };
                import_jsonl(&connection, &id, &files, dry_run).await
            }
        }
    };
    finish(interruptible(work).await, output)
}

fn client(connection: &ConnectionInput) -> Result<Client, Error> {
    connect(connection).map(|(client, _, _)| client)
}

fn row(integration: &Value) -> Vec<String> {
    ["id", "type", "name", "teams"]
        .iter()
        .map(|k| cell(integration.get(*k)))
        .collect()
}

async fn list(connection: &ConnectionInput, kind: Option<&str>) -> Result<Output, Error> {
    let listing = client(connection)?.list_integrations(kind).await?;
    let rows: Vec<Vec<String>> = listing.items.iter().map(row).collect();
    let mut text = table(&COLUMNS, &rows, Paint::stdout());
    let _ = writeln!(
        text,
        "{} ({})",
        count(rows.len() as u64, "integration"),
        count(listing.pages, "page")
    );
    Ok(Output {
        json: Value::Array(listing.items),
        text,
    })
}

async fn get(connection: &ConnectionInput, id: &Id) -> Result<Output, Error> {
    let integration = client(connection)?.get_integration(id).await?;
    let mut text = String::new();
    if let Some(fields) = integration.as_object() {
        let width = fields.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in fields {
            let _ = writeln!(text, "{key:<width$}  {}", cell(Some(value)));
        }
    }
    Ok(Output {
        text,
        json: integration,
    })
}

async fn create(
    connection: &ConnectionInput,
    name: &str,
    kind: &str,
    teams: &[String],
) -> Result<Output, Error> {
    let created = client(connection)?
        .create_integration(name, kind, teams)
        .await?;
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

async fn delete(connection: &ConnectionInput, id: &Id, yes: bool) -> Result<Output, Error> {
    if !yes && !std::io::stdin().is_terminal() {
        return Err(UsageError {
            message: format!(
                "refusing to delete integration {id} without --yes: there is no terminal to ask on"
            ),
            hint: Some("pass --yes to confirm in scripts and CI".into()),
        }
        .into());
    }
    let client = client(connection)?;
    if !yes {
        confirm_delete(&client, id).await?;
    }
    client.delete_integration(id).await?;
    Ok(Output {
        json: json!({ "deleted": id.as_str() }),
        text: format!("deleted integration {id} and its resources\n"),
    })
}

/// Shows what would be deleted and asks on the terminal.
async fn confirm_delete(client: &Client, id: &Id) -> Result<(), Error> {
    let integration = client.get_integration(id).await?;
    crate::logging::print_stderr(&format!(
        "Delete the {} integration {:?} ({id}) and every resource it brought in? This cannot be undone. [y/N] ",
        cell(integration.get("type")),
        cell(integration.get("name"))
    ));
    let answer = crate::blocking::run(|| {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map(|_| line)
            .unwrap_or_default()
    })
    .await;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(UsageError {
            message: "not confirmed: nothing was deleted".into(),
            hint: None,
        }
        .into())
    }
}

async fn import_csv(
    connection: &ConnectionInput,
    id: &Id,
    file: &Path,
    dry_run: bool,
) -> Result<Output, Error> {
    let summary = check_file(file, "CSV", imports::csv::validate).await?;
    let mut text = format!(
        "{}: {}, {}: valid\n",
        file.display(),
        count(summary.rows, "row"),
        count(summary.tables, "table")
    );
    if !summary.unknown_columns.is_empty() {
        tracing::warn!(
            "{}: columns Secoda does not read: {}",
            file.display(),
            summary.unknown_columns.join(", ")
        );
    }
    let parts = [part("file", file, "text/csv")?];
    send(
        connection,
        id,
        "import_metadata",
        &parts,
        dry_run,
        &mut text,
    )
    .await?;
    Ok(Output {
        json: json!({ "file": file, "summary": summary, "integration_id": id.as_str(), "sent": !dry_run }),
        text,
    })
}

struct JsonlFiles {
    resources: PathBuf,
    lineages: Option<PathBuf>,
    external_parents: Vec<String>,
}

async fn import_jsonl(
    connection: &ConnectionInput,
    id: &Id,
    files: &JsonlFiles,
    dry_run: bool,
) -> Result<Output, Error> {
    let external = files.external_parents.clone();
    let (summary, known) = check_file(&files.resources, "JSONL resources", move |f| {
        imports::jsonl::validate_resources(f, imports::jsonl::Outside::Declared(&external))
    })
    .await?;
    let types: Vec<String> = summary
        .by_type
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    let mut text = format!(
        "{}: {} ({}): valid\n",
        files.resources.display(),
        count(summary.resources, "resource"),
        types.join(", ")
    );
    let mut parts = vec![part(
        "resources_file",
        &files.resources,
        "application/jsonl",
    )?];
    let mut lineage_count = None;
    if let Some(path) = &files.lineages {
        let known = std::sync::Arc::new(known);
        let lineages = check_file(path, "JSONL lineages", move |f| {
            imports::jsonl::validate_lineages(f, &known)
        })
        .await?;
        let _ = writeln!(
            text,
            "{}: {}: valid",
            path.display(),
            count(lineages, "lineage")
        );
        lineage_count = Some(lineages);
        parts.push(part("lineages_file", path, "application/jsonl")?);
    }
    send(
        connection,
        id,
        "import_jsonl_metadata",
        &parts,
        dry_run,
        &mut text,
    )
    .await?;
    let json = json!({
        "resources": { "file": files.resources, "summary": summary },
        "lineages": files.lineages.as_ref().map(|f| json!({ "file": f, "lineages": lineage_count })),
        "integration_id": id.as_str(),
        "sent": !dry_run,
    });
    Ok(Output { json, text })
}

/// Sends checked files (or says nothing was sent, with --dry-run).
async fn send(
    connection: &ConnectionInput,
    id: &Id,
    action: &str,
    parts: &[(PartHead, PathBuf)],
    dry_run: bool,
    text: &mut String,
) -> Result<(), Error> {
    if dry_run {
        text.push_str("nothing sent (--dry-run)\n");
        return Ok(());
    }
    let result = client(connection)?.import_files(id, action, parts).await;
    match result {
        Ok(()) => {}
        Err(UploadError::Api(e)) => return Err(e.into()),
        Err(UploadError::Source(e)) => {
            return Err(ImportError::ChangedWhileSending {
                detail: e.to_string(),
            }
            .into());
        }
    }
    let _ = writeln!(text, "imported into integration {id}");
    Ok(())
}

/// Checks `path` with `validate` on a blocking thread.
async fn check_file<T: Send + 'static>(
    path: &Path,
    format: &'static str,
    validate: impl FnOnce(std::fs::File) -> Result<T, imports::Problems> + Send + 'static,
) -> Result<T, Error> {
    let path = path.to_path_buf();
    let checked = crate::blocking::run(move || {
        let file = files::open_regular(&path).map_err(|e| unreadable(&path, e))?;
        validate(file).map_err(|problems| ImportError::Invalid {
            path,
            format,
            problems,
        })
    })
    .await?;
    Ok(checked)
}

fn unreadable(path: &Path, e: OpenError) -> ImportError {
    ImportError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn part(name: &str, path: &Path, content_type: &str) -> Result<(PartHead, PathBuf), ImportError> {
    let len = files::regular(path).map_err(|e| unreadable(path, e))?.len();
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
