//! The commands beside `upload`: `integrations`, `slack` and `doctor`.
//!
//! Owns what each command does with the client and how its result is printed (a table for
//! people, or JSON), with the same exit-code contract as `upload`: the error decides the code
//! through [`crate::exit`]. It does not talk HTTP itself ([`crate::api`]) or check import files
//! ([`crate::imports`]).

pub mod doctor;
pub mod integrations;

use std::fmt::Write;
use std::io::IsTerminal;

use serde_json::{Value, json};

use crate::Error;
use crate::api::{Client, RetryPolicy};
use crate::cli::{ConnectionArgs, OutputFormat};
use crate::config::{self, ConfigError};
use crate::exit::{self, ExitCode};
use crate::logging::{print_stderr, print_stdout, use_color};

/// A client for the connection flags, and warnings about the host (also logged).
pub fn connect_warning(
    args: &ConnectionArgs,
    origins: crate::config::KeyOrigins,
) -> Result<(Client, Vec<String>), ConfigError> {
    let (root, warnings) = config::api_root(args)?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let key = config::api_key(args, origins)?;
    let client = Client::new(
        root,
        &key,
        args.ca_cert.as_deref(),
        RetryPolicy::requests(args.retry_timeout),
    )?
    .with_stall_timeout(args.stall_timeout);
    Ok((client, warnings))
}

/// A client for the connection flags.
pub fn connect(
    args: &ConnectionArgs,
    origins: crate::config::KeyOrigins,
) -> Result<Client, ConfigError> {
    connect_warning(args, origins).map(|(client, _)| client)
}

/// What a command produced: JSON for `--output json`, and text for people.
pub struct Output {
    pub json: Value,
    pub text: String,
}

/// Prints the result (or the error, with its hint) and returns the exit code.
pub fn finish(result: Result<Output, Error>, output: OutputFormat) -> ExitCode {
    match result {
        Ok(out) => {
            match output {
                OutputFormat::Json => print_stdout(&format!("{}\n", pretty(&out.json))),
                OutputFormat::Text => print_stdout(&out.text),
            }
            ExitCode::Success
        }
        Err(error) => {
            let code = exit::for_error(&error);
            let hint = error.hint();
            let mut text = format!("error: {error}\n");
            if let Some(hint) = &hint {
                let _ = writeln!(text, "hint: {hint}");
            }
            print_stderr(&text);
            if output == OutputFormat::Json {
                let doc = json!({ "exit_code": code.code(), "error": { "message": error.to_string(), "hint": hint } });
                print_stdout(&format!("{}\n", pretty(&doc)));
            }
            code
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A plain table: a header row, then rows, columns padded to their widest cell (at most 60).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    const MAX: usize = 60;
    let clip = |cell: &str| -> String {
        let one_line = cell.replace(['\n', '\r'], " ");
        if one_line.chars().count() > MAX {
            format!("{}…", one_line.chars().take(MAX - 1).collect::<String>())
        } else {
            one_line
        }
    };
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clip(c)).collect())
        .collect();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let bold = use_color(std::io::stdout().is_terminal());
    let mut out = String::new();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let head = line(&head);
    let _ = writeln!(
        out,
        "{}",
        if bold {
            format!("\x1b[1m{head}\x1b[0m")
        } else {
            head
        }
    );
    for row in &cells {
        let _ = writeln!(out, "{}", line(row));
    }
    out
}

/// A JSON value as a table cell: strings bare, lists joined, null empty.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| cell(Some(i)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up_and_clip() {
        let rows = vec![
            vec!["a".into(), "x".repeat(70)],
            vec!["long name".into(), "y".into()],
        ];
        let text = table(&["NAME", "VALUE"], &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME       VALUE");
        assert!(lines[1].starts_with("a          xxx") && lines[1].ends_with('…'));
        assert_eq!(lines[2], "long name  y");
        assert_eq!(cell(Some(&json!(["a", "b"]))), "a, b");
    }
}
