//! A progress bar on stderr for uploads that take longer than a second.
//!
//! Drawn only when the caller allows it (a terminal, not CI, not `-q`, not `--output json`);
//! cleared when the upload ends. It reads a byte counter the upload body updates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::logging::print_stderr;
use crate::units::human_bytes;

/// Uploads quicker than this show no bar.
const SHOW_AFTER: Duration = Duration::from_secs(1);
const WIDTH: usize = 30;

/// A running bar; [`Progress::finish`] removes it.
pub struct Progress {
    task: Option<JoinHandle<()>>,
    drawn: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

impl Progress {
    pub fn start(total: u64, sent: Arc<AtomicU64>) -> Progress {
        let drawn = Arc::new(AtomicBool::new(false));
        let stopped = Arc::new(AtomicBool::new(false));
        if total == 0 {
            return Progress {
                task: None,
                drawn,
                stopped,
            };
        }
        let (drawn_by_task, stopped_for_task) = (Arc::clone(&drawn), Arc::clone(&stopped));
        let task = tokio::spawn(async move {
            let started = Instant::now();
            tokio::time::sleep(SHOW_AFTER).await;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if stopped_for_task.load(Ordering::Relaxed) {
                    return;
                }
                drawn_by_task.store(true, Ordering::Relaxed);
                let done = sent.load(Ordering::Relaxed).min(total);
                let fraction = done as f64 / total as f64;
                let filled = (fraction * WIDTH as f64) as usize;
                let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                print_stderr(&format!(
                    "\r\x1b[2KUploading [{}{}] {:>3.0}%  {} / {}  {}/s",
                    "#".repeat(filled),
                    ".".repeat(WIDTH - filled),
                    fraction * 100.0,
                    human_bytes(done),
                    human_bytes(total),
                    human_bytes(rate as u64)
                ));
            }
        });
        Progress {
            task: Some(task),
            drawn,
            stopped,
        }
    }

    /// Stops the bar and clears its line.
    pub fn finish(self) {
        self.stopped.store(true, Ordering::Relaxed);
        if let Some(task) = self.task {
            task.abort();
        }
        if self.drawn.load(Ordering::Relaxed) {
            print_stderr("\r\x1b[2K");
        }
    }
}
