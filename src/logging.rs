//! Logs on stderr, colour rules, and the last line of defence for the API key.
//!
//! Owns the tracing subscriber (levels from `-v`/`-q` or `RUST_LOG`, text or JSON lines), whether
//! live progress may be drawn, and [`redact`]: every byte written to stderr or stdout by
//! dbt-secoda, and every panic message, passes through it, so a key that slipped into a message
//! (say, echoed back by a server) is still never printed. A leaf beside [`crate::style`].
//! It does not decide what to log.

use std::io::{self, IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::style::use_color;

/// Format of the log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Secrets shorter than this are not searched for (they would match ordinary words).
const MIN_SECRET_LEN: usize = 6;

/// Registers a value that must never be printed.
pub fn register_secret(secret: &str) {
    if secret.len() >= MIN_SECRET_LEN
        && let Ok(mut secrets) = SECRETS.lock()
        && !secrets.iter().any(|s| s == secret)
    {
        secrets.push(secret.to_string());
    }
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let Ok(secrets) = SECRETS.lock() else {
        return text.to_string();
    };
    secrets
        .iter()
        .fold(text.to_string(), |acc, s| acc.replace(s.as_str(), "***"))
}

/// Whether live progress may be drawn on stderr: a terminal, not a CI log, not `-q`.
pub fn progress_allowed(quiet: bool) -> bool {
    !quiet
        && io::stderr().is_terminal()
        && std::env::var_os("CI").is_none()
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// Whether this process runs on a GitHub Actions runner, which reads workflow commands in what
/// it prints.
pub fn on_github_runner() -> bool {
    static ON_RUNNER: OnceLock<bool> = OnceLock::new();
    *ON_RUNNER.get_or_init(|| std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"))
}

/// On a runner, a printed line that starts with `::` (after spaces) is a workflow command. Text
/// that came from dbt or Secoda (a test's message, an entity name, a response body) must not
/// forge annotations or stop the runner reading commands, so such a line gets a zero-width space
/// in front: it reads the same, and the runner takes it for text.
fn defang(text: String) -> String {
    if on_github_runner() && text.contains("::") {
        defang_lines(&text)
    } else {
        text
    }
}

fn defang_lines(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            if line.trim_start().starts_with("::") {
                format!("\u{200b}{line}")
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// Writes `text` to stdout, redacted (and defanged on a runner).
pub fn print_stdout(text: &str) {
    write_all(io::stdout().lock(), &defang(redact(text)));
}

/// Writes `text` to stderr, redacted (and defanged on a runner).
pub fn print_stderr(text: &str) {
    write_all(io::stderr().lock(), &defang(redact(text)));
}

/// Writes workflow commands dbt-secoda made itself (their data escaped by the caller) to stderr,
/// redacted but not defanged.
pub fn print_workflow_commands(commands: &str) {
    write_all(io::stderr().lock(), &redact(commands));
}

fn write_all(mut out: impl Write, text: &str) {
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// stderr behind redaction: each log event is one `write` call from tracing-subscriber.
struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        print_stderr(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for RedactingStderrMaker {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

struct RedactingStderrMaker;

static INIT: OnceLock<()> = OnceLock::new();

/// Sets up logging once. `RUST_LOG`, when set, overrides the levels `-v`/`-q` pick.
pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    INIT.get_or_init(|| {
        let ours = match (quiet, verbose) {
            (true, _) => "error",
            (false, 0) => "info",
            (false, 1) => "debug",
            (false, _) => "trace",
        };
        let theirs = match (quiet, verbose) {
            (true, _) => "error",
            (false, 0..=1) => "warn",
            (false, 2) => "debug",
            (false, _) => "trace",
        };
        // notify logs every inotify event it reads at trace: with -vvv and the log written beside
        // a watched folder, each log line would be an event, logged again, without end.
        let filter = EnvFilter::try_from_env(crate::env_vars::RUST_LOG).unwrap_or_else(|_| {
            EnvFilter::new(format!("{theirs},notify=error,dbt_secoda={ours}"))
        });
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(RedactingStderrMaker)
            .with_target(verbose > 0);
        let result = match format {
            LogFormat::Json => builder.json().with_current_span(false).try_init(),
            LogFormat::Text => builder
                .with_ansi(use_color(io::stderr().is_terminal()))
                .without_time()
                .with_level(true)
                .try_init(),
        };
        drop(result);
        // The default hook would print the message unredacted; this one says the same, redacted.
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            print_stderr(&format!(
                "error: dbt-secoda crashed{place}: {message}\nhint: this is a bug; please report it with the command you ran\n"
            ));
        }));
    });
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_line_that_would_be_a_workflow_command_is_defanged() {
        let text = "Got 1 result\n  ::error title=forged::x\nkeeps a::b inside\n::stop-commands::t";
        let out = defang_lines(text);
        assert_eq!(
            out,
            "Got 1 result\n\u{200b}  ::error title=forged::x\nkeeps a::b inside\n\u{200b}::stop-commands::t"
        );
    }

    use super::*;

    #[test]
    fn registered_secrets_are_replaced_and_short_ones_ignored() {
        register_secret("s3cr3t-token-value");
        register_secret("abc");
        assert_eq!(
            redact("Bearer s3cr3t-token-value sent; abc"),
            "Bearer *** sent; abc"
        );
    }
}
