//! `watch`: finds fresh dbt artifacts in one or many target folders and runs the upload pipeline
//! once per pair.
//!
//! Two halves. [`decide`] is the decision core: a state machine over plain data (stamps, ids,
//! outcomes, the time), with no I/O and no tokio, proven by unit tests and by the model tests in
//! `model`. [`shell`] performs what it decides: it runs every file-system operation (the survey
//! of folders and globs in [`folders`], the looks in [`scan`], the copies in [`snapshot`], the
//! state file's writes in [`state`]) on blocking threads, never on the one async thread that
//! answers signals and `/healthz`; it starts pipelines, and it words what the core notes as logs
//! and metrics ([`health`]). Events ([`events`]) only make a look come sooner. Which run is the
//! newer is [`order`]'s rule; what a stop signal means, [`stop`]'s.
//!
//! Uploading, triggering, waiting and reporting are the pipeline's, called with one `Client` and
//! a `Job` per pair; this module copies none of it. A panic inside one pair's pipeline is
//! reported as a bug and the watcher goes on (with `--once` it exits 101): one bad pair must not
//! stop a sidecar from uploading the next runs of the day.

pub mod decide;
pub mod events;
pub mod folders;
pub mod health;
#[cfg(test)]
mod model;
pub mod order;
pub mod scan;
mod shell;
pub mod snapshot;
pub mod state;
pub mod stop;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use decide::Routes;
pub use shell::run;

/// The dbt commands uploaded by default: those whose run_results carry what they ran. `compile`,
/// `docs generate`, `show`, `run-operation`, `parse`, `ls` are left out: uploading them would
/// tell Secoda "no failing tests" for a run that tested nothing.
pub const DEFAULT_COMMANDS: &str = "build,test,run,seed,snapshot";

/// How long a pair whose upload failed for want of Secoda waits before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Uploads running at once, to different integrations (one integration takes one at a time).
pub const PARALLEL_UPLOADS: usize = 3;

/// How the watcher works.
#[derive(Debug, Clone)]
pub struct Options {
    pub targets: folders::Targets,
    pub routes: Routes,
    /// Exit after the first pair is processed, with its exit code.
    pub once: bool,
    /// How long a complete pair must hold still before it is copied.
    pub debounce: Duration,
    pub state_file: PathBuf,
    /// The periodic scan (the source of truth; events only make it come sooner).
    pub scan_interval: Duration,
    /// No file-system events: the scan alone.
    pub polling: bool,
    /// `args.which` values to upload.
    pub commands: Vec<String>,
    pub shutdown_grace: Duration,
    pub health_listen: Option<SocketAddr>,
}
