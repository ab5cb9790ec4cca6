//! `watch`: the loop that finds fresh dbt artifacts and runs the upload pipeline once per pair.
//!
//! Owns detection (file-system events as hints in [`events`], the stat scan as the truth in
//! [`scan`]), the debounce, snapshots of each pair before it is uploaded ([`snapshot`]),
//! latest-wins while an upload runs, the state file ([`state`]), the shutdown drain, and the
//! health endpoints ([`health`]). Uploading, triggering, waiting and reporting are the
//! pipeline's, called with one `Client` and a `Job` per pair; this module copies none of it.
//!
//! A panic inside one pair's pipeline is reported as a bug and the loop goes on (with `--once`
//! it exits 101): one bad pair must not stop a sidecar from uploading the next runs of the day.

pub mod events;
pub mod health;
pub mod scan;
pub mod snapshot;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::api::Client;
use crate::config::ArtifactPaths;
use crate::exit::{self, ExitCode, OnApiError};
use crate::pipeline::{self, Cancel, Job};
use crate::report::{Event, Report, Sink};
use crate::signals::{Signal, Signals};
use crate::units::format_duration;
use events::Events;
use health::Health;
use scan::{Look, PairStamp};
use snapshot::Snapshot;
use state::{Processed, StateFile};

/// The dbt commands uploaded by default: those whose run_results carry what they ran. `compile`,
/// `docs generate`, `show`, `run-operation`, `parse`, `ls` are left out: uploading them would
/// tell Secoda "no failing tests" for a run that tested nothing.
pub const DEFAULT_COMMANDS: &str = "build,test,run,seed,snapshot";

/// How long a pair whose upload failed for want of Secoda waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// How the watcher works.
#[derive(Debug, Clone)]
pub struct Options {
    pub paths: ArtifactPaths,
    /// Exit after the first pair is processed, with its exit code.
    pub once: bool,
    /// How long a complete pair must hold still before it is copied.
    pub debounce: Duration,
    pub state_file: PathBuf,
    /// The periodic stat scan (the source of truth; events only make it come sooner).
    pub scan_interval: Duration,
    /// No file-system events: the scan alone.
    pub polling: bool,
    /// `args.which` values to upload.
    pub commands: Vec<String>,
    pub shutdown_grace: Duration,
    pub health_listen: Option<SocketAddr>,
}

/// A complete pair seen, waiting to hold still for the debounce.
struct Candidate {
    stamp: PairStamp,
    invocation_id: String,
    since: Instant,
}

/// The pipeline in flight.
struct Running {
    invocation_id: String,
    cancel: Cancel,
    task: JoinHandle<(Report, ExitCode)>,
    /// The copies the pipeline reads; removed once it is done.
    _snapshot: Snapshot,
}

/// Passes a run's events and report on, records the pair in the state file as soon as its sync
/// is triggered (so a crash after that does not upload it again), and heads each text report
/// with the pair it is about.
struct RunSink {
    inner: Arc<dyn Sink + Send + Sync>,
    state: Arc<Mutex<StateFile>>,
    processed: Mutex<Option<Processed>>,
    persist: bool,
}

impl Sink for RunSink {
    fn event(&self, event: Event<'_>) {
        if matches!(event, Event::Triggered) && self.persist {
            let taken = self.processed.lock().ok().and_then(|mut p| p.take());
            if let (Some(processed), Ok(mut state)) = (taken, self.state.lock()) {
                let id = processed.invocation_id.clone();
                if let Err(e) = state.record(processed) {
                    tracing::warn!(
                        "cannot write the state file {} ({e}): after a restart, invocation {id} \
                         may be uploaded again",
                        state.path().display()
                    );
                }
            }
        }
        self.inner.event(event);
    }

    fn report(&self, report: &Report) {
        self.inner.report(report);
    }
}

/// What a scan found worth doing.
enum Found {
    Nothing,
    /// A complete, fresh pair held still for the debounce: copy it.
    Ready(String),
}

/// The watcher's state between two turns of the loop.
struct Watcher {
    client: Client,
    template: Job,
    options: Options,
    sink: Arc<dyn Sink + Send + Sync>,
    state: Arc<Mutex<StateFile>>,
    health: Arc<Health>,
    /// Invocations processed or decided on in this process.
    seen: std::collections::HashSet<String>,
    candidate: Option<Candidate>,
    /// The stamp and verdict of the last look, so an unchanged pair is not read again.
    looked: Option<(PairStamp, Option<String>)>,
    pending: Option<Snapshot>,
    running: Option<Running>,
    /// A pair whose upload failed for want of Secoda, and when to try it again.
    retry: Option<(String, Instant)>,
    draining: bool,
    last_code: Option<ExitCode>,
}

/// Runs the watcher until a signal (or, with `--once`, the first processed pair).
pub async fn run(
    client: Client,
    template: Job,
    options: Options,
    sink: Arc<dyn Sink + Send + Sync>,
) -> ExitCode {
    let health = Arc::new(Health::new(options.scan_interval));
    let _server = match options.health_listen {
        None => None,
        Some(addr) => match health::serve(addr, Arc::clone(&health)).await {
            Ok((bound, task)) => {
                tracing::info!("health endpoints on http://{bound} (/healthz, /readyz, /metrics)");
                Some(task)
            }
            Err(e) => {
                crate::report::print_error(
                    &format!("cannot listen on {addr} for --health-listen: {e}"),
                    Some("pick another address or port"),
                );
                return exit::decide(Some(ExitCode::Usage), false, OnApiError::Fail);
            }
        },
    };
    let state = StateFile::open(&options.state_file, &options.paths.target_dir);
    if let Some(last) = state.last() {
        tracing::info!(
            "last processed: invocation {} (state {})",
            last.invocation_id,
            options.state_file.display()
        );
    }
    let mut events = if options.polling {
        None
    } else {
        match Events::start(&options.paths) {
            Ok(events) => Some(events),
            Err(e) => {
                tracing::warn!("file-system events are not available ({e}): scanning only");
                None
            }
        }
    };
    tracing::info!(
        "watching {} for fresh dbt artifacts ({}; a scan every {}, debounce {})",
        options.paths.target_dir.display(),
        if events.is_some() {
            "file-system events"
        } else {
            "polling"
        },
        format_duration(options.scan_interval),
        format_duration(options.debounce)
    );
    let mut watcher = Watcher {
        client,
        template,
        options,
        sink,
        state: Arc::new(Mutex::new(state)),
        health,
        seen: Default::default(),
        candidate: None,
        looked: None,
        pending: None,
        running: None,
        retry: None,
        draining: false,
        last_code: None,
    };
    watcher.turns(&mut events).await
}

impl Watcher {
    async fn turns(&mut self, events: &mut Option<Events>) -> ExitCode {
        let mut signals = Signals::new();
        let mut tick = tokio::time::interval(self.options.scan_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut grace_until: Option<Instant> = None;
        loop {
            let wake = self.wake_at();
            tokio::select! {
                biased;
                signal = signals.next() => {
                    if self.draining {
                        tracing::warn!("{signal} again: stopping at once");
                        self.abort_running();
                        return ExitCode::Interrupted;
                    }
                    self.start_drain(signal);
                    grace_until = Some(Instant::now() + self.options.shutdown_grace);
                    // A pair that is already complete is still processed.
                    self.scan(events, true).await;
                }
                finished = wait_for(&mut self.running) => {
                    self.finished(finished);
                    if self.options.once && let Some(code) = self.last_code {
                        return code;
                    }
                    self.start_pending();
                }
                () = sleep_until(grace_until) => {
                    return self.grace_passed();
                }
                _ = recv_hint(events), if !self.draining => {
                    self.scan(events, false).await;
                }
                _ = tick.tick(), if !self.draining => {
                    self.scan(events, false).await;
                }
                () = sleep_until(wake), if !self.draining => {
                    self.scan(events, false).await;
                }
            }
            if self.draining && self.running.is_none() && self.pending.is_none() {
                tracing::info!("shut down cleanly: nothing left to upload");
                return self
                    .last_code
                    .filter(|_| self.options.once)
                    .unwrap_or_else(|| exit::decide(None, false, OnApiError::Fail));
            }
        }
    }

    /// When the loop must look again without an event: the debounce's end, or a retry.
    fn wake_at(&self) -> Option<Instant> {
        let debounce = self
            .candidate
            .as_ref()
            .map(|c| c.since + self.options.debounce);
        let retry = self.retry.as_ref().map(|(_, at)| *at);
        debounce.into_iter().chain(retry).min()
    }

    fn start_drain(&mut self, signal: Signal) {
        self.draining = true;
        let busy = self
            .running
            .as_ref()
            .map(|r| {
                format!(
                    "; the upload of invocation {} finishes first",
                    r.invocation_id
                )
            })
            .unwrap_or_default();
        tracing::info!(
            "{signal}: shutting down within {} (a second signal stops at once){busy}",
            format_duration(self.options.shutdown_grace)
        );
        if let Some(running) = &self.running {
            running.cancel.drain();
        }
    }

    fn abort_running(&mut self) {
        if let Some(running) = &self.running {
            running.cancel.abort();
        }
    }

    /// The grace is over: stop what runs, say what was left, exit 130.
    fn grace_passed(&mut self) -> ExitCode {
        if let Some(running) = self.running.take() {
            running.cancel.abort();
            running.task.abort();
            tracing::warn!(
                "the shutdown grace ({}) passed with invocation {} still being processed; it was \
                 stopped and is uploaded again at the next start",
                format_duration(self.options.shutdown_grace),
                running.invocation_id
            );
        }
        if let Some(pending) = self.pending.take() {
            tracing::warn!(
                "the shutdown grace passed before invocation {} was uploaded; it is uploaded at \
                 the next start if it is still the latest",
                pending.pair.invocation_id()
            );
        }
        ExitCode::Interrupted
    }

    /// One scan. `now`: take a complete fresh pair without waiting for the debounce (shutdown).
    async fn scan(&mut self, events: &mut Option<Events>, now: bool) {
        if let Some(events) = events.as_mut()
            && events.refresh()
        {
            tracing::debug!("watching {:?}", events.watched());
        }
        self.health.scanned(self.readable());
        let Found::Ready(id) = self.look(now) else {
            return;
        };
        let paths = self.options.paths.clone();
        let expected = id.clone();
        let taken = crate::blocking::run(move || snapshot::take(&paths, &expected, None)).await;
        match taken {
            Ok(snapshot) => {
                self.candidate = None;
                self.accept(snapshot);
            }
            Err(not_ready) => {
                // dbt rewrote a file while it was copied: try again once it holds still.
                tracing::debug!("invocation {id} is not ready: {not_ready}");
                if let Some(c) = self.candidate.as_mut() {
                    c.since = Instant::now();
                    c.stamp = PairStamp::of(&self.options.paths);
                }
            }
        }
    }

    /// Whether the target folder (or, before dbt made it, its parent) can be read.
    fn readable(&self) -> Result<(), String> {
        let target = &self.options.paths.target_dir;
        if std::fs::read_dir(target).is_ok() {
            return Ok(());
        }
        let parent = std::path::absolute(target)
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from));
        match parent {
            Some(p) if std::fs::read_dir(&p).is_ok() => Ok(()),
            _ => Err(format!("{} cannot be read", target.display())),
        }
    }

    /// Whether an invocation is worth uploading: not seen, not the last processed, not older.
    fn fresh(&self, pair: &crate::artifacts::Pair) -> Result<(), &'static str> {
        let id = pair.invocation_id();
        if self.seen.contains(id)
            || self.running.as_ref().is_some_and(|r| r.invocation_id == id)
            || self
                .pending
                .as_ref()
                .is_some_and(|p| p.pair.invocation_id() == id)
        {
            return Err("seen");
        }
        if self
            .retry
            .as_ref()
            .is_some_and(|(r, at)| r == id && Instant::now() < *at)
        {
            return Err("retry later");
        }
        let state = self.state.lock().map_err(|_| "state")?;
        let Some(last) = state.last() else {
            return Ok(());
        };
        if last.invocation_id == id {
            return Err("processed");
        }
        let generated = pair.run_results.metadata.generated_at.as_deref();
        match (generated, last.run_results_generated_at.as_deref()) {
            (Some(now), Some(then)) if timestamp(now) < timestamp(then) => Err("older"),
            _ => Ok(()),
        }
    }

    /// Compares what is on disk with the candidate; returns the pair to copy when it is ready.
    fn look(&mut self, now: bool) -> Found {
        let stamp = PairStamp::of(&self.options.paths);
        if let Some(c) = &self.candidate
            && c.stamp == stamp
        {
            let held = c.since.elapsed() >= self.options.debounce;
            return if held || now {
                Found::Ready(c.invocation_id.clone())
            } else {
                Found::Nothing
            };
        }
        self.candidate = None;
        if !stamp.both_present() {
            self.looked = None;
            return Found::Nothing;
        }
        if let Some((seen, _)) = &self.looked
            && *seen == stamp
            && self.retry.is_none()
        {
            return Found::Nothing;
        }
        let pair = match scan::look(&self.options.paths) {
            Look::Pair(pair) => pair,
            Look::NotAPair(why) => {
                if self.looked.as_ref().is_none_or(|(s, _)| *s != stamp) {
                    tracing::debug!("not a pair yet: {why}");
                }
                self.looked = Some((stamp, None));
                return Found::Nothing;
            }
            Look::Missing => return Found::Nothing,
        };
        let id = pair.invocation_id().to_string();
        self.looked = Some((stamp, Some(id.clone())));
        match self.fresh(&pair) {
            Ok(()) => {}
            Err("older") => {
                tracing::info!(
                    "invocation {id} is older than the last one processed: not uploaded"
                );
                self.health
                    .metrics
                    .skipped
                    .with_label_values(&["older"])
                    .inc();
                self.seen.insert(id);
                return Found::Nothing;
            }
            Err(_) => return Found::Nothing,
        }
        tracing::debug!("invocation {id} is complete; copying it once it holds still");
        self.candidate = Some(Candidate {
            stamp,
            invocation_id: id.clone(),
            since: Instant::now(),
        });
        if now {
            Found::Ready(id)
        } else {
            Found::Nothing
        }
    }

    /// A snapshot of a fresh pair: upload it now, or keep it as the one to upload next.
    fn accept(&mut self, snapshot: Snapshot) {
        let id = snapshot.pair.invocation_id().to_string();
        let command = snapshot.command.clone().unwrap_or_default();
        let wanted = self.options.commands.contains(&command);
        if !wanted {
            tracing::info!(
                "invocation {id} is a dbt {}, not one of --commands ({}): not uploaded",
                if command.is_empty() { "?" } else { &command },
                self.options.commands.join(",")
            );
            self.health
                .metrics
                .skipped
                .with_label_values(&["command"])
                .inc();
            self.seen.insert(id);
            return;
        }
        self.health.metrics.pairs_seen.inc();
        if self.running.is_none() {
            self.start(snapshot);
            return;
        }
        if let Some(older) = self.pending.replace(snapshot) {
            tracing::info!(
                "invocation {id} supersedes invocation {}, which was waiting: the latest wins",
                older.pair.invocation_id()
            );
            self.seen.insert(older.pair.invocation_id().to_string());
        } else {
            tracing::info!("invocation {id} waits for the upload in flight to finish");
        }
        self.health.metrics.pending.set(1);
    }

    fn start_pending(&mut self) {
        self.health.metrics.pending.set(0);
        if let Some(snapshot) = self.pending.take() {
            self.start(snapshot);
        }
    }

    fn start(&mut self, snapshot: Snapshot) {
        let id = snapshot.pair.invocation_id().to_string();
        self.seen.insert(id.clone());
        let mut job = self.template.clone();
        job.paths = snapshot.paths.clone();
        job.origin = Some(self.options.paths.clone());
        let processed = Processed {
            invocation_id: id.clone(),
            run_results_generated_at: snapshot.pair.run_results.metadata.generated_at.clone(),
            manifest_sha256: snapshot.manifest_sha256.clone(),
            run_results_sha256: snapshot.run_results_sha256.clone(),
            processed_at: 0,
        };
        let sink = RunSink {
            inner: Arc::clone(&self.sink),
            state: Arc::clone(&self.state),
            processed: Mutex::new(Some(processed)),
            persist: !job.dry_run,
        };
        let cancel = Cancel::default();
        if self.draining {
            cancel.drain();
        }
        let client = self.client.clone();
        let run_cancel = cancel.clone();
        tracing::info!(
            "uploading invocation {id} (dbt {})",
            snapshot.command.as_deref().unwrap_or("?")
        );
        let task =
            tokio::spawn(async move { pipeline::run(&client, &job, &sink, &run_cancel).await });
        self.running = Some(Running {
            invocation_id: id,
            cancel,
            task,
            _snapshot: snapshot,
        });
    }

    /// A pipeline ended (or crashed).
    fn finished(&mut self, outcome: (String, Result<(Report, ExitCode), tokio::task::JoinError>)) {
        let (id, joined) = outcome;
        let metrics = &self.health.metrics;
        match joined {
            Ok((report, code)) => {
                let uploaded = report.trigger.is_some();
                metrics.finished(uploaded, code.code());
                self.last_code = Some(code);
                if !uploaded && code == ExitCode::Unavailable && !self.draining {
                    // Secoda could not take it: the pair is not lost, it is tried again.
                    tracing::warn!(
                        "invocation {id} was not uploaded (Secoda unavailable); trying again in {} \
                         unless a newer run comes first",
                        format_duration(RETRY_AFTER)
                    );
                    self.seen.remove(&id);
                    self.looked = None;
                    self.retry = Some((id, Instant::now() + RETRY_AFTER));
                } else if self.retry.as_ref().is_some_and(|(r, _)| *r == id) {
                    self.retry = None;
                }
            }
            Err(join) => {
                let code = ExitCode::Bug;
                metrics.finished(false, code.code());
                self.last_code = Some(code);
                let what = if join.is_panic() {
                    "crashed"
                } else {
                    "was stopped"
                };
                crate::report::print_error(
                    &format!("processing invocation {id} {what}: this is a bug in dbt-secoda"),
                    Some(
                        "please report it with the log above; the watcher goes on with the next run",
                    ),
                );
            }
        }
    }
}

/// The running pipeline's outcome, once it ends; pending for ever when none runs.
async fn wait_for(
    running: &mut Option<Running>,
) -> (String, Result<(Report, ExitCode), tokio::task::JoinError>) {
    match running.as_mut() {
        Some(r) => {
            let joined = (&mut r.task).await;
            let id = r.invocation_id.clone();
            *running = None;
            (id, joined)
        }
        None => std::future::pending().await,
    }
}

async fn recv_hint(events: &mut Option<Events>) -> Option<()> {
    match events.as_mut() {
        Some(events) => {
            let hint = events.hints.recv().await;
            // A burst of events (a manifest written in 8 KiB pieces) is one hint.
            while events.hints.try_recv().is_ok() {}
            hint
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An ISO 8601 time as comparable text (`Z` and `+00:00` alike).
fn timestamp(text: &str) -> String {
    text.trim().replace("+00:00", "Z")
}
