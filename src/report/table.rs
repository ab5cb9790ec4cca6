//! Plain tables for the listing commands (`integrations list`, `slack conversations`): a header
//! row, then rows, columns padded to their widest cell (at most 60 characters, then clipped).

use std::fmt::Write;

use serde_json::Value;

use crate::style::Paint;
use crate::units::{clip, printable};

/// Widest cell shown; longer ones are clipped with "…".
const MAX_CELL: usize = 60;

/// Renders the table; the header is bold where `paint` allows.
pub fn table(header: &[&str], rows: &[Vec<String>], paint: Paint) -> String {
    let cell = |text: &str| {
        // Names and descriptions come from the server: nothing in them may drive the terminal.
        let one_line = printable(text);
        if one_line.chars().count() > MAX_CELL {
            clip(&one_line, MAX_CELL - 1)
        } else {
            one_line
        }
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    let _ = writeln!(out, "{}", paint.bold(&line(&head)));
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
        let text = table(&["NAME", "VALUE"], &rows, Paint(false));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME       VALUE");
        assert!(lines[1].starts_with("a          xxx") && lines[1].ends_with('…'));
        assert_eq!(lines[1].chars().count(), "a          ".len() + MAX_CELL);
        assert_eq!(lines[2], "long name  y");
        assert_eq!(cell(Some(&serde_json::json!(["a", "b"]))), "a, b");
    }
}
