//! Where a pipeline's progress and finished [`Report`] go: the [`Sink`] trait and its renderings
//! (text for people, one JSON document, JSON Lines for a loop).
//!
//! A pipeline calls [`Sink::event`] as steps start and end, and [`Sink::report`] once, with the
//! finished report. A sink prints the report on stdout and the error, with its hint, on stderr;
//! several sinks can take the same report ([`Tee`]).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use super::progress::Progress;
use super::{Report, human, print_error};
use crate::logging::print_stdout;
use crate::style::Paint;

/// Report format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A report for people.
    Text,
    /// JSON on stdout: one document (`upload`), or one line a report (`watch`).
    Json,
}

/// What a pipeline tells its sink as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// The upload's body starts: `bytes` in all, `sent` counting what the connection has taken
    /// (it goes back to 0 when an attempt is retried).
    Uploading {
        bytes: u64,
        sent: &'a Arc<AtomicU64>,
    },
    /// The upload ended, either way.
    UploadEnded,
    /// Secoda accepted the sync trigger: the pair is uploaded and its sync has started.
    Triggered,
}

/// Takes a pipeline's progress and its finished report.
pub trait Sink: Sync {
    fn event(&self, _event: Event<'_>) {}
    fn report(&self, report: &Report);
}

/// Prints the error of a report, with its hint, on stderr.
fn print_report_error(report: &Report) {
    if let Some(error) = &report.error {
        print_error(&error.message, error.hint.as_deref());
    }
}

/// Text for people, with a progress bar for slow uploads on a terminal.
pub struct Text {
    progress: bool,
    bar: Mutex<Option<Progress>>,
    /// Reports after the first are set apart by a blank line (a loop's reports).
    printed: std::sync::atomic::AtomicBool,
}

impl Text {
    /// `progress`: a bar may be drawn on stderr (a terminal, not CI, not `-q`).
    pub fn new(progress: bool) -> Text {
        Text {
            progress,
            bar: Mutex::new(None),
            printed: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Sink for Text {
    fn event(&self, event: Event<'_>) {
        let Ok(mut bar) = self.bar.lock() else {
            return;
        };
        match event {
            Event::Uploading { bytes, sent } if self.progress => {
                *bar = Some(Progress::start(bytes, Arc::clone(sent)));
            }
            Event::UploadEnded => {
                if let Some(bar) = bar.take() {
                    bar.finish();
                }
            }
            _ => {}
        }
    }

    fn report(&self, report: &Report) {
        print_report_error(report);
        let text = human::render(report, Paint::stdout());
        let before = self
            .printed
            .swap(true, std::sync::atomic::Ordering::Relaxed);
        print_stdout(&if before { format!("\n{text}") } else { text });
    }
}

/// One pretty-printed JSON document on stdout.
pub struct JsonDocument;

impl Sink for JsonDocument {
    fn report(&self, report: &Report) {
        print_report_error(report);
        print_stdout(&format!("{}\n", report.to_json()));
    }
}

/// One JSON document a line on stdout (JSON Lines), for a loop that reports many runs.
pub struct JsonLines;

impl Sink for JsonLines {
    fn report(&self, report: &Report) {
        print_report_error(report);
        print_stdout(&format!("{}\n", report.to_json_line()));
    }
}

/// The same events and report for several sinks, in order.
pub struct Tee(pub Vec<Box<dyn Sink + Send + Sync>>);

impl Sink for Tee {
    fn event(&self, event: Event<'_>) {
        for sink in &self.0 {
            sink.event(match &event {
                Event::Uploading { bytes, sent } => Event::Uploading {
                    bytes: *bytes,
                    sent,
                },
                Event::UploadEnded => Event::UploadEnded,
                Event::Triggered => Event::Triggered,
            });
        }
    }

    fn report(&self, report: &Report) {
        for sink in &self.0 {
            sink.report(report);
        }
    }
}
