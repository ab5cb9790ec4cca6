//! The shell around the decision core: one loop on the async thread that turns messages into the
//! core's observations and performs the commands it returns.
//!
//! Every file-system operation runs on a blocking thread (`JoinSet::spawn_blocking`): the survey
//! of folders and globs, each look, each copy; the state file is written by its own thread. The
//! async thread only waits, so SIGTERM and `/healthz` are answered while a target's reads hang,
//! and a folder whose look has not returned is reported by `/readyz`, not waited for. One look
//! or copy per folder is in flight at a time (the core says when), so a hung mount holds one
//! thread, not one a scan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::{Id as TaskId, JoinSet};
use tokio::time::Instant;

use super::decide::{
    Board, Command, Copied, NotAPair, Note, Now, Observed, Outcome, Presence, Settings, Skip,
};
use super::events::{Events, Hint};
use super::folders::{self, Survey, Targets};
use super::health::{self, Health, Proof};
use super::order::Processed;
use super::snapshot::{self, Snapshot};
use super::state::{self, Entry, StateFile, Written};
use super::stop::{Step, StopRequests};
use super::{Options, PARALLEL_UPLOADS, RETRY_AFTER};
use crate::api::{ApiError, Client};
use crate::config::{ArtifactPaths, Id};
use crate::exit::{self, ExitCode, Failure, OnApiError};
use crate::pipeline::{self, Cancel, Job};
use crate::report::{Event, Report, Sink, print_error};
use crate::signals::Signals;
use crate::units::{count, format_duration};

/// How long the start-up proof of the key may take before the watcher counts Secoda as
/// unavailable and goes on (an outage must not hold dbt back).
const PROOF_TIMEOUT: Duration = Duration::from_secs(20);

/// What the loop hears from the threads and tasks around it.
enum Message {
    Hint(Hint),
    Triggered(PathBuf, String),
    Written(Written),
    Checked(String, Result<(), ApiError>),
}

/// A blocking operation's result.
enum Done {
    Surveyed(Survey),
    Looked(PathBuf, Observed),
    Copied(PathBuf, Copied, Option<Snapshot>),
}

/// A target folder being watched.
struct Folder {
    paths: ArtifactPaths,
    named: bool,
    /// A look at it has returned before.
    looked: bool,
    /// The project of its last copy, for metrics.
    project: Option<String>,
}

/// An upload in flight.
struct Upload {
    folder: PathBuf,
    id: String,
    project: String,
    cancel: Cancel,
    snapshot: Snapshot,
}

/// Passes a run's events and report on, and tells the loop when its sync was triggered (the
/// core records the run in the state file then, so a crash after it does not upload it again).
struct RunSink {
    inner: Arc<dyn Sink + Send + Sync>,
    tx: mpsc::UnboundedSender<Message>,
    folder: PathBuf,
    id: String,
}

impl Sink for RunSink {
    fn event(&self, event: Event<'_>) {
        if matches!(event, Event::Triggered) {
            let _ = self
                .tx
                .send(Message::Triggered(self.folder.clone(), self.id.clone()));
        }
        self.inner.event(event);
    }

    fn report(&self, report: &Report) {
        self.inner.report(report);
    }
}

fn now() -> Now {
    Now {
        mono: std::time::Instant::now(),
        wall: SystemTime::now(),
    }
}

struct Shell {
    client: Client,
    template: Job,
    options: Options,
    sink: Arc<dyn Sink + Send + Sync>,
    health: Arc<Health>,
    board: Board,
    folders: BTreeMap<PathBuf, Folder>,
    /// Every folder's last run and earlier ids, from the state file and since.
    known: BTreeMap<String, (Option<Processed>, Vec<String>)>,
    /// Copies waiting for a lane, a folder each.
    held: HashMap<PathBuf, Snapshot>,
    ops: JoinSet<Done>,
    uploads: JoinSet<(Report, ExitCode)>,
    running: HashMap<TaskId, Upload>,
    surveying: bool,
    surveyed_once: bool,
    /// A survey can find something new (globs, or folders not watched yet): one every scan.
    survey_due: bool,
    tx: mpsc::UnboundedSender<Message>,
    writer: state::Writer,
    events: Option<Arc<Mutex<Events>>>,
    snapshots: PathBuf,
    integrations: BTreeMap<String, Id>,
    said: BTreeSet<String>,
    draining: bool,
    last_code: Option<ExitCode>,
    /// Stop with this code: a named target that is not a folder; with --once, a key or an
    /// integration the start-up proof found refused.
    fatal: Option<ExitCode>,
}

/// Runs the watcher until a signal (or, with `--once`, the first processed pair).
pub async fn run(
    client: Client,
    template: Job,
    options: Options,
    sink: Arc<dyn Sink + Send + Sync>,
) -> ExitCode {
    let usage = || exit::decide(Some(ExitCode::Usage), false, OnApiError::Fail);
    let health = Arc::new(Health::new(options.scan_interval));
    let _server = match options.health_listen {
        None => None,
        Some(addr) => match health::serve(addr, Arc::clone(&health)).await {
            Ok((bound, task)) => {
                tracing::info!("health endpoints on http://{bound} (/healthz, /readyz, /metrics)");
                Some(task)
            }
            Err(e) => {
                print_error(
                    &format!("cannot listen on {addr} for --health-listen: {e}"),
                    Some("pick another address or port"),
                );
                return usage();
            }
        },
    };
    let path = options.state_file.clone();
    let opened = crate::blocking::run(move || {
        let opened = StateFile::open(&path)?;
        let snapshots = snapshot::folder_for(&path);
        let cleared = snapshot::clear_stale(&snapshots);
        Ok::<_, state::StateError>((opened, snapshots, cleared))
    })
    .await;
    let ((state_file, loaded), snapshots, cleared) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            print_error(&e.to_string(), e.hint().as_deref());
            return usage();
        }
    };
    for warning in loaded.warnings.iter().chain(&loaded.lock_warning) {
        tracing::warn!("{warning}");
    }
    match cleared {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            "removed {} a stopped watcher left in {}",
            count(n as u64, "snapshot copy"),
            snapshots.display()
        ),
        Err(e) => tracing::warn!(
            "cannot clear old snapshot copies in {}: {e}",
            snapshots.display()
        ),
    }
    let known = state_file.folders();
    let state_path = state_file.path().to_path_buf();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let written = tx.clone();
    let writer = state_file.into_writer(move |w| {
        let _ = written.send(Message::Written(w));
    });
    let events = if options.polling {
        None
    } else {
        let hints = tx.clone();
        match Events::start(move |hint| {
            let _ = hints.send(Message::Hint(hint));
        }) {
            Ok(events) => Some(Arc::new(Mutex::new(events))),
            Err(e) => {
                tracing::warn!(
                    "file-system events are not available ({}): scanning only",
                    events_error(&e)
                );
                None
            }
        }
    };
    let integrations: BTreeMap<String, Id> = options
        .routes
        .integrations()
        .into_iter()
        .filter_map(|s| s.parse::<Id>().ok().map(|id| (s, id)))
        .collect();
    let settings = Settings {
        debounce: options.debounce,
        retry_after: retry_after(),
        parallel: PARALLEL_UPLOADS,
        commands: options.commands.clone(),
        routes: options.routes.clone(),
    };
    let what = describe_targets(&options.targets);
    tracing::info!(
        "watching {what} for fresh dbt artifacts ({}; a scan every {}, debounce {}; state {})",
        if events.is_some() {
            "file-system events"
        } else {
            "polling"
        },
        format_duration(options.scan_interval),
        format_duration(options.debounce),
        state_path.display()
    );
    health.expect_folders(options.targets.named.iter().map(|p| label(&key_of(p))));
    health.expect_integrations(integrations.keys().cloned());
    let mut shell = Shell {
        client,
        template,
        options,
        sink,
        health,
        board: Board::new(settings),
        folders: BTreeMap::new(),
        known,
        held: HashMap::new(),
        ops: JoinSet::new(),
        uploads: JoinSet::new(),
        running: HashMap::new(),
        surveying: false,
        surveyed_once: false,
        survey_due: true,
        tx,
        writer,
        events,
        snapshots,
        integrations,
        said: BTreeSet::new(),
        draining: false,
        last_code: None,
        fatal: None,
    };
    shell.add_named();
    shell.prove();
    shell.turns(&mut rx).await
}

/// The retry wait, shrunk with the test suite's retry scale.
fn retry_after() -> Duration {
    crate::api::scaled(RETRY_AFTER)
}

/// notify's errors in words (its Display of a missing path is a debug structure).
fn events_error(e: &notify::Error) -> String {
    match &e.kind {
        notify::ErrorKind::Io(io) => io.to_string(),
        notify::ErrorKind::PathNotFound => "a watched folder no longer exists".into(),
        notify::ErrorKind::MaxFilesWatch => {
            "the limit of watched folders is reached (fs.inotify.max_user_watches)".into()
        }
        notify::ErrorKind::Generic(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// A folder's key: its absolute path.
fn key_of(paths: &ArtifactPaths) -> PathBuf {
    std::path::absolute(&paths.target_dir).unwrap_or_else(|_| paths.target_dir.clone())
}

fn label(folder: &std::path::Path) -> String {
    folder.display().to_string()
}

fn describe_targets(targets: &Targets) -> String {
    let mut parts: Vec<String> = targets
        .named
        .iter()
        .map(|p| p.target_dir.display().to_string())
        .collect();
    parts.extend(
        targets
            .globs
            .iter()
            .map(|g| format!("every folder matching {g}")),
    );
    parts.join(", ")
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Shell {
    /// Proves the key and every integration with the request `upload` makes first.
    fn prove(&mut self) {
        for (name, id) in &self.integrations {
            let client = self.client.clone();
            let (name, id, tx) = (name.clone(), id.clone(), self.tx.clone());
            tokio::spawn(async move {
                let result =
                    match tokio::time::timeout(PROOF_TIMEOUT, client.failing_tests(&id)).await {
                        Ok(answer) => answer.map(|_| ()),
                        Err(_) => Err(ApiError::Unavailable {
                            endpoint: client.failing_tests_endpoint(&id),
                            attempts: 0,
                            elapsed: PROOF_TIMEOUT,
                            status: None,
                            last: format!("no answer within {}", format_duration(PROOF_TIMEOUT)),
                        }),
                    };
                let _ = tx.send(Message::Checked(name, result));
            });
        }
    }

    async fn turns(&mut self, rx: &mut mpsc::UnboundedReceiver<Message>) -> ExitCode {
        let mut signals = Signals::new();
        let mut stops = StopRequests::default();
        let mut tick = tokio::time::interval(self.options.scan_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut grace_until: Option<Instant> = None;
        // When a second stop request stops at once (before then, it is the first delivered twice).
        let mut second_stop_from: Option<Instant> = None;
        loop {
            self.health.turned();
            if let Some(code) = self.fatal {
                return code;
            }
            let wake = self.board.wake_at().map(Instant::from_std);
            tokio::select! {
                biased;
                signal = signals.next() => {
                    match stops.signal(std::time::Instant::now()) {
                        Step::Drain => {
                            self.drain(signal);
                            grace_until = Some(Instant::now() + self.options.shutdown_grace);
                            second_stop_from = Some(Instant::now() + super::stop::SAME_REQUEST);
                        }
                        Step::Repeated => {
                            tracing::debug!("{signal} again within a second: the same stop request");
                        }
                        Step::Abort => {
                            tracing::warn!("{signal} again: stopping at once");
                            for upload in self.running.values() {
                                upload.cancel.abort();
                            }
                            return ExitCode::Interrupted;
                        }
                    }
                }
                // Before the uploads: a run's "triggered" is sent before its task ends.
                Some(message) = rx.recv() => self.heard(message),
                Some(joined) = self.uploads.join_next_with_id(), if !self.uploads.is_empty() => {
                    self.finished(joined);
                    if self.options.once && let Some(code) = self.last_code {
                        self.flush(rx).await;
                        return code;
                    }
                }
                () = sleep_until(grace_until) => return self.grace_passed(),
                () = sleep_until(second_stop_from) => {
                    second_stop_from = None;
                    tracing::debug!("a second SIGTERM or Ctrl-C now stops at once");
                }
                Some(done) = self.ops.join_next(), if !self.ops.is_empty() => {
                    match done {
                        Ok(done) => self.done(done),
                        Err(join) => {
                            print_error(
                                &format!("reading a target folder {}: this is a bug in dbt-secoda",
                                    if join.is_panic() { "crashed" } else { "was stopped" }),
                                Some("please report it with the log above"),
                            );
                            return ExitCode::Bug;
                        }
                    }
                }
                _ = tick.tick(), if !self.draining => {
                    self.survey();
                    let commands = self.board.tick(now());
                    self.perform(commands);
                }
                () = sleep_until(wake), if !self.draining => {
                    let commands = self.board.wake(now());
                    self.perform(commands);
                }
            }
            if self.draining && self.board.drained() && self.uploads.is_empty() {
                return self.drained(rx).await;
            }
        }
    }

    /// Starts a survey of the folders and globs, unless one is in flight or none is due.
    fn survey(&mut self) {
        if self.surveying || !self.survey_due {
            return;
        }
        self.surveying = true;
        let targets = self.options.targets.clone();
        let events = self.events.clone();
        self.ops
            .spawn_blocking(move || Done::Surveyed(folders::survey(&targets, events.as_ref())));
    }

    fn done(&mut self, done: Done) {
        match done {
            Done::Surveyed(survey) => self.surveyed(survey),
            Done::Looked(folder, observed) => self.looked(folder, observed),
            Done::Copied(folder, copied, snapshot) => {
                if let Some(snapshot) = snapshot {
                    self.held.insert(folder.clone(), snapshot);
                }
                let commands = self.board.copied(&folder, copied, now());
                self.perform(commands);
            }
        }
    }

    /// The folders named on the command line are watched from the start (the survey finds
    /// those of the globs).
    fn add_named(&mut self) {
        for paths in self.options.targets.named.clone() {
            self.add(paths, true);
        }
        self.health.metrics.folders.set(self.folders.len() as i64);
    }

    /// Starts watching a folder, with what the state file knows of it; returns its key.
    fn add(&mut self, paths: ArtifactPaths, named: bool) -> PathBuf {
        let key = key_of(&paths);
        if self.folders.contains_key(&key) {
            return key;
        }
        let (last, earlier) = self
            .known
            .get(&state::key(&key))
            .cloned()
            .unwrap_or_default();
        self.board.add(key.clone(), last, &earlier);
        self.folders.insert(
            key.clone(),
            Folder {
                paths,
                named,
                looked: false,
                project: None,
            },
        );
        key
    }

    fn surveyed(&mut self, survey: Survey) {
        self.surveying = false;
        self.survey_due = !survey.settled;
        let mut current = BTreeSet::new();
        for paths in survey.folders {
            let key = key_of(&paths);
            current.insert(key.clone());
            if self.folders.contains_key(&key) {
                continue;
            }
            tracing::info!("watching {} (it matches a --target-glob)", key.display());
            let key = self.add(paths, false);
            let commands = self.board.hint(&key, now());
            self.perform(commands);
        }
        let gone: Vec<PathBuf> = self
            .folders
            .iter()
            .filter(|(k, f)| !f.named && !current.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            tracing::info!("{} is gone: no longer watched", key.display());
            self.folders.remove(&key);
            self.board.remove(&key);
            self.held.remove(&key);
        }
        for folder in survey.attached {
            let commands = self.board.hint(&folder, now());
            self.perform(commands);
        }
        if survey.capped {
            self.say_once(format!(
                "the --target-glob patterns match more than {} folders: the rest are not watched",
                folders::MAX_MATCHES
            ));
        }
        for problem in survey.problems {
            self.say_once(format!("surveying the --target-glob folders: {problem}"));
        }
        self.health.metrics.folders.set(self.folders.len() as i64);
        if !self.surveyed_once {
            self.surveyed_once = true;
            self.health.surveyed();
        }
    }

    fn say_once(&mut self, warning: String) {
        if self.said.insert(warning.clone()) {
            tracing::warn!("{warning}");
        }
    }

    fn looked(&mut self, folder: PathBuf, observed: Observed) {
        let name = label(&folder);
        let problem = match &observed.presence {
            Presence::Unreadable(why) => Some(format!("{name} cannot be read ({why})")),
            Presence::NotAFolder(what) => Some(format!("{name} is {what}, not a folder")),
            Presence::Present | Presence::Missing => None,
        };
        self.health.look_returned(&name, problem);
        let Some(f) = self.folders.get_mut(&folder) else {
            return;
        };
        let first = !std::mem::replace(&mut f.looked, true);
        if f.named
            && first
            && let Presence::NotAFolder(what) = &observed.presence
        {
            print_error(
                &format!("the target folder {name} is {what}, not a folder"),
                Some(
                    "point --target-dir (or DBT_TARGET_PATH) at the folder dbt writes its artifacts in",
                ),
            );
            self.fatal = Some(exit::decide(Some(ExitCode::Usage), false, OnApiError::Fail));
            return;
        }
        let commands = self.board.looked(&folder, observed, now());
        self.perform(commands);
    }

    fn heard(&mut self, message: Message) {
        match message {
            Message::Hint(Hint::Folder(folder)) => {
                self.health.metrics.hints.inc();
                if !self.draining {
                    let commands = self.board.hint(&folder, now());
                    self.perform(commands);
                }
            }
            Message::Hint(Hint::Survey) => {
                self.health.metrics.hints.inc();
                self.survey_due = true;
                if !self.draining {
                    self.survey();
                }
            }
            Message::Triggered(folder, id) => {
                self.health.metrics.secoda_up.set(1);
                let commands = self.board.triggered(&folder, &id, now());
                self.perform(commands);
            }
            Message::Written(written) => {
                if let Some(error) = &written.error {
                    tracing::warn!(
                        "cannot write the state file {} ({error}): after a restart, invocation {} \
                         may be uploaded again",
                        written.path.display(),
                        written.invocation_id
                    );
                }
                self.health.state_written(written.error);
            }
            Message::Checked(integration, result) => self.checked(integration, result),
        }
    }

    fn checked(&mut self, integration: String, result: Result<(), ApiError>) {
        match result {
            Ok(()) => {
                self.health.metrics.secoda_up.set(1);
                tracing::info!(
                    "integration {integration}: the key and the integration are accepted"
                );
                self.health.proof(&integration, Proof::Proven);
            }
            Err(e) if e.exit_code() == ExitCode::Refused => {
                print_error(&e.to_string(), e.hint().as_deref());
                self.health
                    .proof(&integration, Proof::Refused(e.to_string()));
                if self.options.once {
                    self.fatal = Some(exit::decide(
                        Some(ExitCode::Refused),
                        false,
                        OnApiError::Fail,
                    ));
                }
            }
            Err(e) => {
                self.health.metrics.secoda_up.set(0);
                tracing::warn!(
                    "integration {integration}: Secoda did not answer the first request ({e}); \
                     watching anyway, runs are uploaded once it answers"
                );
                self.health.proof(&integration, Proof::Unavailable);
            }
        }
    }

    fn drain(&mut self, signal: crate::signals::Signal) {
        self.draining = true;
        let busy = self
            .running
            .values()
            .map(|u| format!("; the upload of invocation {} finishes first", u.id))
            .collect::<String>();
        tracing::info!(
            "{signal}: shutting down within {} (a second signal stops at once){busy}",
            format_duration(self.options.shutdown_grace)
        );
        for upload in self.running.values() {
            upload.cancel.drain();
        }
        let commands = self.board.drain(now());
        self.perform(commands);
    }

    /// Waits (within the grace) until the state file's writes are on disk, and says how they
    /// went.
    async fn flush(&mut self, rx: &mut mpsc::UnboundedReceiver<Message>) {
        let writer = self.writer.clone();
        let grace = self.options.shutdown_grace;
        let flushed = crate::blocking::run(move || writer.flush(grace)).await;
        if !flushed {
            tracing::warn!("the state file's last write did not finish within the grace");
        }
        while let Ok(message) = rx.try_recv() {
            if let Message::Written(_) = message {
                self.heard(message);
            }
        }
    }

    /// Everything is done: the state file's last writes reach the disk, then exit.
    async fn drained(&mut self, rx: &mut mpsc::UnboundedReceiver<Message>) -> ExitCode {
        self.flush(rx).await;
        tracing::info!("shut down cleanly: nothing left to upload");
        self.last_code
            .filter(|_| self.options.once)
            .unwrap_or_else(|| exit::decide(None, false, OnApiError::Fail))
    }

    /// The grace is over: stop what runs, say what was left, exit 130.
    fn grace_passed(&mut self) -> ExitCode {
        for upload in self.running.values() {
            upload.cancel.abort();
            tracing::warn!(
                "the shutdown grace ({}) passed with invocation {} still being processed; it was \
                 stopped and is uploaded again at the next start",
                format_duration(self.options.shutdown_grace),
                upload.id
            );
        }
        self.uploads.abort_all();
        for snapshot in self.held.values() {
            tracing::warn!(
                "the shutdown grace passed before invocation {} was uploaded; it is uploaded at \
                 the next start if it is still the latest",
                snapshot.run.id
            );
        }
        ExitCode::Interrupted
    }

    fn perform(&mut self, commands: Vec<Command>) {
        for command in commands {
            match command {
                Command::Look { folder, trust } => {
                    let Some(paths) = self.folders.get(&folder).map(|f| f.paths.clone()) else {
                        continue;
                    };
                    self.health.look_started(&label(&folder));
                    self.ops.spawn_blocking(move || {
                        let observed = super::scan::look(&paths, trust);
                        Done::Looked(folder, observed)
                    });
                }
                Command::Copy { folder, id } => {
                    let Some(paths) = self.folders.get(&folder).map(|f| f.paths.clone()) else {
                        continue;
                    };
                    let parent = self.snapshots.clone();
                    self.ops.spawn_blocking(move || {
                        let (copied, snapshot) = snapshot::take(&paths, &id, &parent);
                        Done::Copied(folder, copied, snapshot)
                    });
                }
                Command::Upload {
                    folder,
                    id,
                    integration,
                } => self.upload(folder, id, integration),
                Command::Discard { folder, id } => {
                    if self.held.get(&folder).is_some_and(|s| s.run.id == id) {
                        self.held.remove(&folder);
                    }
                }
                Command::Record { folder, processed } => self.record(folder, processed),
                Command::Say { folder, note } => self.say(&folder, note),
            }
        }
        self.health.metrics.pending.set(self.board.queued() as i64);
        self.health
            .metrics
            .retrying
            .set(self.board.retrying() as i64);
    }

    fn record(&mut self, folder: PathBuf, processed: Processed) {
        let Some(upload) = self
            .running
            .values()
            .find(|u| u.folder == folder && u.id == processed.invocation_id)
        else {
            return;
        };
        let entry = Entry::new(
            &processed,
            &upload.snapshot.manifest_sha256,
            &upload.snapshot.run_results_sha256,
        );
        let key = state::key(&folder);
        let known = self.known.entry(key.clone()).or_default();
        if let Some(previous) = known.0.replace(processed) {
            known.1.push(previous.invocation_id);
        }
        self.writer.record(key, entry);
    }

    fn upload(&mut self, folder: PathBuf, id: String, integration: String) {
        let Some(snapshot) = self.held.remove(&folder).filter(|s| s.run.id == id) else {
            // The core hands on only what was copied; a mismatch is a bug, reported as one.
            print_error(
                &format!("no copy of invocation {id} to upload: this is a bug in dbt-secoda"),
                Some("please report it with the log above"),
            );
            let commands = self.board.finished(&folder, &id, Outcome::Crashed, now());
            self.perform(commands);
            return;
        };
        let Some(folder_paths) = self.folders.get(&folder).map(|f| f.paths.clone()) else {
            return;
        };
        let Some(integration_id) = self.integrations.get(&integration).cloned() else {
            return;
        };
        let project = snapshot.run.project.clone().unwrap_or_default();
        if let Some(f) = self.folders.get_mut(&folder) {
            f.project = snapshot.run.project.clone();
        }
        self.health
            .metrics
            .pairs_seen
            .with_label_values(&[&project])
            .inc();
        let mut job = self.template.clone();
        job.integration = integration_id;
        job.paths = snapshot.paths.clone();
        job.origin = Some(folder_paths);
        let run_sink = RunSink {
            inner: Arc::clone(&self.sink),
            tx: self.tx.clone(),
            folder: folder.clone(),
            id: id.clone(),
        };
        let cancel = Cancel::default();
        if self.draining {
            cancel.drain();
        }
        let client = self.client.clone();
        let run_cancel = cancel.clone();
        tracing::info!(
            "uploading invocation {id} (dbt {}{}) to integration {integration}",
            snapshot.run.command.as_deref().unwrap_or("?"),
            if project.is_empty() {
                String::new()
            } else {
                format!(", project {project}")
            }
        );
        let task = self
            .uploads
            .spawn(async move { pipeline::run(&client, &job, &run_sink, &run_cancel).await });
        self.running.insert(
            task.id(),
            Upload {
                folder,
                id,
                project,
                cancel,
                snapshot,
            },
        );
    }

    /// A pipeline ended (or crashed).
    fn finished(&mut self, joined: Result<(TaskId, (Report, ExitCode)), tokio::task::JoinError>) {
        let (task, result) = match joined {
            Ok((task, result)) => (task, Ok(result)),
            Err(join) => (join.id(), Err(join)),
        };
        let Some(upload) = self.running.remove(&task) else {
            return;
        };
        let metrics = &self.health.metrics;
        let outcome = match result {
            Ok((report, code)) => {
                let uploaded = report.trigger.is_some();
                metrics.finished(&upload.project, uploaded, code.code());
                self.last_code = Some(code);
                if code == ExitCode::Unavailable && !uploaded {
                    metrics.secoda_up.set(0);
                }
                match code {
                    _ if uploaded => Outcome::Done,
                    ExitCode::Unavailable => Outcome::Unavailable,
                    ExitCode::Interrupted => Outcome::Stopped,
                    _ => Outcome::Done,
                }
            }
            Err(join) => {
                let code = ExitCode::Bug;
                metrics.finished(&upload.project, false, code.code());
                self.last_code = Some(code);
                let what = if join.is_panic() {
                    "crashed"
                } else {
                    "was stopped"
                };
                print_error(
                    &format!(
                        "processing invocation {} {what}: this is a bug in dbt-secoda",
                        upload.id
                    ),
                    Some(
                        "please report it with the log above; the watcher goes on with the next run",
                    ),
                );
                Outcome::Crashed
            }
        };
        let commands = self
            .board
            .finished(&upload.folder, &upload.id, outcome, now());
        self.perform(commands);
    }

    /// The project to count a folder's notes under.
    fn project_of(&self, folder: &PathBuf, given: Option<&String>) -> String {
        given
            .cloned()
            .or_else(|| self.folders.get(folder).and_then(|f| f.project.clone()))
            .unwrap_or_else(|| "unknown".into())
    }

    /// Words a note of the core, and counts it.
    fn say(&mut self, folder: &PathBuf, note: Note) {
        let name = folder.display();
        if matches!(note, Note::FolderMissing { .. } | Note::FolderBack) {
            // A folder made or removed: its event watch is to be attached again.
            self.survey_due = true;
        }
        let metrics = &self.health.metrics;
        match note {
            Note::FolderMissing { before: false } => {
                tracing::info!("{name} does not exist yet: watching for dbt to make it")
            }
            Note::FolderMissing { before: true } => {
                tracing::info!("{name} was removed (dbt clean?): watching for it to come back")
            }
            Note::FolderBack => tracing::info!("{name} is there now"),
            Note::NotAFolder(what) => tracing::warn!("{name} is {what}, not a folder"),
            Note::Unreadable(why) => tracing::warn!("{name} cannot be read: {why}"),
            Note::Waiting(NotAPair::Mismatched {
                manifest,
                run_results,
            }) => tracing::debug!(
                "{name}: manifest.json is invocation {manifest}, run_results.json {run_results}: a \
                 dbt run in progress or a command that wrote one file"
            ),
            Note::Waiting(NotAPair::Unfinished(why)) => {
                tracing::debug!("{name}: not a pair yet: {why}")
            }
            Note::Fresh { id } => tracing::debug!(
                "invocation {id} in {name} is complete; copying it once it holds still"
            ),
            Note::Skipped {
                id,
                project,
                reason,
            } => {
                let project = self.project_of(folder, project.as_ref());
                self.health
                    .metrics
                    .skipped
                    .with_label_values(&[&project, reason.label()])
                    .inc();
                match reason {
                    Skip::Older => tracing::info!(
                        "invocation {id} in {name} is older than the last one processed: not uploaded"
                    ),
                    Skip::Command(command) => tracing::info!(
                        "invocation {id} in {name} is a dbt {}, not one of --commands ({}): not \
                         uploaded",
                        command.as_deref().unwrap_or("?"),
                        self.options.commands.join(",")
                    ),
                    Skip::NoIntegration(project) => tracing::warn!(
                        "invocation {id} in {name} (project {}) has no integration: no \
                         --integration-for names the project and there is no --integration-id; \
                         not uploaded",
                        project.as_deref().unwrap_or("unknown")
                    ),
                }
            }
            Note::Copied { id } => {
                metrics.snapshots.with_label_values(&["taken"]).inc();
                tracing::debug!("invocation {id} in {name} copied for upload");
            }
            Note::CopyChanged { id } => {
                metrics.snapshots.with_label_values(&["changed"]).inc();
                tracing::debug!("{name} changed while invocation {id} was copied: looking again");
            }
            Note::Invalid { id, detail } => {
                metrics.snapshots.with_label_values(&["invalid"]).inc();
                tracing::warn!(
                    "invocation {id} in {name} held still but is not a complete pair ({detail}); \
                     it is read again when its files change"
                );
            }
            Note::CopyFailed { id, detail } => {
                metrics.snapshots.with_label_values(&["failed"]).inc();
                tracing::warn!(
                    "invocation {id} in {name} could not be copied ({detail}); trying again in {}",
                    format_duration(retry_after())
                );
            }
            Note::Queued { id } => {
                tracing::info!(
                    "invocation {id} in {name} waits for the upload in flight to finish"
                );
            }
            Note::Superseded { old, new } => tracing::info!(
                "invocation {new} in {name} supersedes invocation {old}, which was waiting: the \
                 latest wins"
            ),
            Note::Retrying { id, after } => tracing::warn!(
                "invocation {id} was not uploaded (Secoda unavailable); trying again in {} \
                 unless a newer run comes first",
                format_duration(after)
            ),
            Note::SkewedClock { id, ahead } => tracing::warn!(
                "invocation {id} in {name} says it was generated {} in the future: the clock of \
                 the machine that ran dbt is wrong; it is ordered by when it was read",
                format_duration(ahead)
            ),
            Note::ClockWentBack { id, by } => tracing::warn!(
                "this machine's clock went back {} since the last run was read: invocation {id} \
                 is taken as newer",
                format_duration(by)
            ),
        }
    }
}
