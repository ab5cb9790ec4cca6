//! Man pages, rendered from the clap definitions by clap_mangen, except for two sections it gets
//! wrong for a reader of `man`: the SYNOPSIS, where it drops every option's value
//! (`[--integration-id]`), and the exit codes, which it prints as the `--help` epilogue's running
//! text, so groff fills the last row and the sentence after it into one line. Both are written
//! here, the exit codes as an EXIT STATUS section from [`ExitCode`]. Owns neither the
//! definitions (`cli`) nor the codes (`exit`).

use std::io::{self, Write};
use std::path::Path;

use clap::{Arg, ArgAction, Command};
use clap_mangen::Man;
use roff::{Inline, Roff, bold, italic, roman};

use crate::exit::{ExitCode, PRECEDENCE};

/// Renders `cmd`'s page.
pub fn render(mut cmd: Command, w: &mut dyn Write) -> io::Result<()> {
    // Built: bin names, value names and arities filled in (building again is a no-op).
    cmd.build();
    let man = Man::new(cmd.clone()).source(concat!("dbt-secoda ", env!("CARGO_PKG_VERSION")));
    man.render_title(w)?;
    man.render_name_section(w)?;
    synopsis(&cmd).to_writer(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w)?;
    }
    if cmd.get_after_long_help().is_some() {
        exit_status().to_writer(w)?;
    }
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// Writes a page for `cmd` and one for each of its subcommands, nested ones included, into
/// `dir`: `dbt-secoda.1`, `dbt-secoda-upload.1`, ...
pub fn write_all(cmd: Command, dir: &Path) -> io::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    write_tree(cmd, dir)
}

fn write_tree(cmd: Command, dir: &Path) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub.clone(), dir)?;
    }
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let mut page = Vec::new();
    render(cmd, &mut page)?;
    std::fs::write(dir.join(format!("{name}.1")), page)
}

/// `dbt-secoda upload [--integration-id ID] [--api-url URL] ... [-v|--verbose]...`
fn synopsis(cmd: &Command) -> Roff {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    let mut line = vec![bold(name)];
    for arg in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
    {
        line.push(roman(" "));
        line.extend(option(arg));
    }
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let (open, close) = if arg.is_required_set() {
            ("", "")
        } else {
            ("[", "]")
        };
        line.push(roman(format!(" {open}")));
        line.push(italic(value_name(arg)));
        line.push(roman(close));
        if repeats(arg) {
            line.push(roman("..."));
        }
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        line.push(roman(" "));
        line.push(italic("COMMAND"));
    }
    let mut roff = Roff::default();
    roff.control("SH", ["SYNOPSIS"]);
    // No hyphenation: an option cut in two (`--mani-fest`) reads as a different option.
    roff.control("nh", []);
    roff.text(line);
    roff.control("hy", []);
    roff
}

/// One option: `[--fail-on LEVEL]`, `[-q|--quiet]`, `[--github [BOOL]]`, `[-v|--verbose]...`.
fn option(arg: &Arg) -> Vec<Inline> {
    let mut out = vec![roman(if arg.is_required_set() { "" } else { "[" })];
    match (arg.get_short(), arg.get_long()) {
        (Some(short), Some(long)) => {
            out.push(bold(format!("-{short}")));
            out.push(roman("|"));
            out.push(bold(format!("--{long}")));
        }
        (Some(short), None) => out.push(bold(format!("-{short}"))),
        (None, Some(long)) => out.push(bold(format!("--{long}"))),
        (None, None) => {}
    }
    if let Some(range) = arg.get_num_args()
        && range.takes_values()
    {
        if range.min_values() == 0 {
            out.push(roman(" ["));
            out.push(italic(value_name(arg)));
            out.push(roman("]"));
        } else {
            out.push(roman(" "));
            out.push(italic(value_name(arg)));
        }
    }
    out.push(roman(if arg.is_required_set() { "" } else { "]" }));
    if repeats(arg) {
        out.push(roman("..."));
    }
    out
}

/// The value's choices (`error|warn|never`) when it has a few, else its name.
fn value_name(arg: &Arg) -> String {
    let choices: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if (2..=6).contains(&choices.len()) {
        return choices.join("|");
    }
    match arg.get_value_names() {
        Some(names) => names
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        None => arg.get_id().as_str().to_uppercase(),
    }
}

fn repeats(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Count | ArgAction::Append)
}

/// The exit-code table as a list groff keeps apart, then which code wins.
fn exit_status() -> Roff {
    let mut roff = Roff::default();
    roff.control("SH", ["EXIT STATUS"]);
    for code in ExitCode::ALL {
        roff.control("TP", []);
        roff.text([bold(code.code().to_string())]);
        roff.text([roman(code.meaning())]);
    }
    roff.control("PP", []);
    roff.text([roman(PRECEDENCE)]);
    roff
}
