//! A progress bar on stderr for uploads that take longer than a second.
//!
//! Drawn only when allowed (a terminal, not CI, not `-q`, not `--output json`: the caller
//! decides); cleared when the upload ends. It reads a byte counter the upload body updates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::human_bytes;
use crate::logging::print_stderr;

/// Uploads quicker than this show no bar.
const SHOW_AFTER: Duration = Duration::from_secs(1);
const WIDTH: usize = 30;

/// A running bar; [`Progress::finish`] removes it.
pub struct Progress {
    task: Option<JoinHandle<()>>,
    drawn: Arc<AtomicBool>,
}

impl Progress {
    pub fn start(total: u64, sent: Arc<AtomicU64>, enabled: bool) -> Progress {
        let drawn = Arc::new(AtomicBool::new(false));
        if !enabled || total == 0 {
            return Progress { task: None, drawn };
        }
        let drawn_by_task = Arc::clone(&drawn);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            tokio::time::sleep(SHOW_AFTER).await;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
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
        }
    }

    pub async fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
            let _ = task.await;
            if self.drawn.load(Ordering::Relaxed) {
                print_stderr("\r\x1b[2K");
            }
        }
    }
}
