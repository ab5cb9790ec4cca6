//! The watcher's decisions, as a state machine over plain data: no I/O, no tokio, no clock of
//! its own.
//!
//! The shell ([`super::shell`]) feeds it what it observed (a folder's file stamps and what the
//! cheap checks read, a snapshot's outcome, a sync triggered, an upload finished, the time) and
//! performs the [`Command`]s it returns (look at a folder, copy a pair, start an upload, record
//! a run in the state file, say something). Everything the watcher promises is decided here, so
//! it is proven here: by unit tests, and by the model tests in [`super::model`], which drive
//! this machine through thousands of random interleavings of dbt-like writes, restarts, failing
//! uploads and clock jumps.
//!
//! The rules, per target folder ([`Folder`]):
//! - A pair is **fresh** when both files look complete, carry one invocation id, and that id is
//!   neither decided in this process, nor the last processed, nor older than the newest run
//!   processed or on its way ([`super::order`]).
//! - A fresh pair is copied once it has **held still** (the same stamps) for the debounce. A
//!   copy that saw a file change is dropped and the folder looked at again; a pair that held
//!   still but is not valid is not copied again until its files change.
//! - A stamp is trusted to mean "unchanged" only after a look made [`RACY`] after the newest
//!   write: a file system with coarse modification times can rewrite a file with the same size
//!   and time, and only reading tells.
//! - Per folder, the latest copy wins: a newer pair replaces one still waiting for a lane.
//! - Uploads to one integration run one at a time (Secoda answers 409 to a second sync);
//!   different integrations run side by side, at most [`Settings::parallel`] at once.
//! - A pair that Secoda could not take (unavailable before its sync was triggered) is tried
//!   again after [`Settings::retry_after`], unless a newer one comes first.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::order::{self, Placed, Processed, Verdict};

/// A look made less than this after a file's modification time may have missed a rewrite of
/// the same size within the same tick of a coarse clock (FAT and some NFS servers keep 2 s).
pub const RACY: Duration = Duration::from_secs(2);

/// How many decided invocation ids a folder remembers (older ones are refused by their time).
const REMEMBERED: usize = 256;

/// The time, read once by the shell for each step (or chosen by a test).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

/// What `stat` says of a file: enough to notice a rewrite (with the caveat of [`RACY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub inode: u64,
}

/// Both files' stamps (None: the file is not there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PairStamp {
    pub manifest: Option<Stamp>,
    pub run_results: Option<Stamp>,
}

impl PairStamp {
    /// The newest modification time, when both files have one.
    fn newest_write(&self) -> Option<SystemTime> {
        let m = self.manifest?.modified?;
        let r = self.run_results?.modified?;
        Some(m.max(r))
    }
}

/// Whether the folder itself is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Present,
    Missing,
    /// What is there instead ("a regular file").
    NotAFolder(&'static str),
    Unreadable(String),
}

/// Why two files there are no pair (yet). For logs only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAPair {
    /// The files name different invocations: a dbt run in progress (dbt Core writes the
    /// manifest first, dbt Fusion run_results first), or a command that wrote one file alone.
    Mismatched {
        manifest: String,
        run_results: String,
    },
    /// A file is not a finished dbt artifact: empty, cut short, not JSON, another kind.
    Unfinished(String),
}

/// What the cheap checks (first and last bytes) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// One file or both are not there.
    Missing,
    NotAPair(NotAPair),
    /// Both look complete and carry one invocation id.
    Pair {
        id: String,
        /// run_results.json's `metadata.generated_at`.
        generated_at: Option<String>,
    },
}

/// One look at a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The watcher's clock when the look started: a run is never placed later than this.
    pub at: SystemTime,
    pub presence: Presence,
    /// The stamps before the files were read.
    pub stamp: PairStamp,
    /// None: not read, because the stamps were the ones the command said to trust.
    pub look: Option<Look>,
    /// The stamps after reading equal `stamp`: nothing was written meanwhile.
    pub settled: bool,
}

/// What a snapshot read of a run, from the copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: String,
    pub generated_at: Option<String>,
    /// `args.which`.
    pub command: Option<String>,
    /// The dbt project's name, for routing (`--integration-for`).
    pub project: Option<String>,
}

/// How a snapshot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    Taken(Run),
    /// A file changed while it was copied.
    Changed,
    /// The pair held still but is not a complete pair from one invocation.
    Invalid(String),
    /// Reading or writing failed (a full temporary folder, a vanished file system).
    Failed(String),
}

/// How an upload ended, as far as the watcher cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Processed: triggered, or refused for good (a 4xx, bad artifacts). Not tried again.
    Done,
    /// Secoda was unavailable before the sync was triggered: try again later.
    Unavailable,
    /// Stopped by the shutdown (or its grace) before the sync was triggered.
    Stopped,
    /// The pipeline crashed: a bug. Not tried again, so one bad pair cannot crash-loop.
    Crashed,
}

/// Why a fresh pair is not uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Older than the newest run processed or on its way.
    Older,
    /// Its dbt command is not one of `--commands`.
    Command(Option<String>),
    /// No `--integration-for` names its project and there is no `--integration-id`.
    NoIntegration(Option<String>),
}

impl Skip {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Skip::Older => "older",
            Skip::Command(_) => "command",
            Skip::NoIntegration(_) => "no-integration",
        }
    }
}

/// Something worth saying (a log line, a metric); the shell words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The folder is not there: at start, or after `dbt clean`.
    FolderMissing {
        before: bool,
    },
    FolderBack,
    NotAFolder(&'static str),
    Unreadable(String),
    /// Two files that are no pair yet (said when this changes).
    Waiting(NotAPair),
    /// A fresh pair, waiting to hold still.
    Fresh {
        id: String,
    },
    Skipped {
        id: String,
        project: Option<String>,
        reason: Skip,
    },
    /// A snapshot taken for the upload.
    Copied {
        id: String,
    },
    /// The copy saw a file change: looked at again.
    CopyChanged {
        id: String,
    },
    /// Held still, not valid: not copied again until a file changes.
    Invalid {
        id: String,
        detail: String,
    },
    CopyFailed {
        id: String,
        detail: String,
    },
    /// Waits for the upload in flight (to its integration, or any, past the parallel limit).
    Queued {
        id: String,
    },
    Superseded {
        old: String,
        new: String,
    },
    Retrying {
        id: String,
        after: Duration,
    },
    SkewedClock {
        id: String,
        ahead: Duration,
    },
    ClockWentBack {
        id: String,
        by: Duration,
    },
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Stat the folder's files; read them unless their stamps equal `trust`.
    Look {
        folder: PathBuf,
        trust: Option<PairStamp>,
    },
    /// Copy the pair away and read it whole.
    Copy {
        folder: PathBuf,
        id: String,
    },
    /// Start the upload of the folder's copy.
    Upload {
        folder: PathBuf,
        id: String,
        integration: String,
    },
    /// Drop the folder's copy of `id` (superseded, or skipped after it was taken).
    Discard {
        folder: PathBuf,
        id: String,
    },
    /// Keep `processed` as the folder's last run in the state file.
    Record {
        folder: PathBuf,
        processed: Processed,
    },
    Say {
        folder: PathBuf,
        note: Note,
    },
}

/// Which integration a project's runs go to.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub by_project: BTreeMap<String, String>,
    pub default: Option<String>,
}

impl Routes {
    pub fn integration_for(&self, project: Option<&str>) -> Option<&str> {
        project
            .and_then(|p| self.by_project.get(p))
            .or(self.default.as_ref())
            .map(String::as_str)
    }

    /// Every integration a run may go to.
    pub fn integrations(&self) -> Vec<String> {
        let mut all: Vec<String> = self.default.iter().cloned().collect();
        for id in self.by_project.values() {
            if !all.contains(id) {
                all.push(id.clone());
            }
        }
        all
    }
}

/// The rules' settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub debounce: Duration,
    pub retry_after: Duration,
    /// Uploads running at once (to different integrations).
    pub parallel: usize,
    /// `args.which` values uploaded.
    pub commands: Vec<String>,
    pub routes: Routes,
}

/// The last bit of memory a folder keeps about ids: bounded, oldest forgotten first.
#[derive(Debug, Default)]
struct Recent {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Recent {
    fn insert(&mut self, id: &str) {
        if self.set.insert(id.to_string()) {
            self.order.push_back(id.to_string());
            if self.order.len() > REMEMBERED
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    fn remove(&mut self, id: &str) {
        if self.set.remove(id) {
            self.order.retain(|x| x != id);
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Missing,
    NotAPair(NotAPair),
    Pair(String),
}

#[derive(Debug)]
struct Looked {
    stamp: PairStamp,
    wall: SystemTime,
    settled: bool,
    seen: Seen,
}

#[derive(Debug)]
struct Candidate {
    id: String,
    placed: Placed,
    stamp: PairStamp,
    since: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Busy {
    Looking,
    Copying { id: String },
}

/// A pair handed on for upload.
#[derive(Debug, Clone)]
struct Handed {
    id: String,
    placed: Placed,
    integration: String,
    triggered: bool,
}

#[derive(Debug)]
struct Retry {
    id: String,
    at: Instant,
}

/// The state of one target folder.
#[derive(Debug, Default)]
struct Folder {
    /// The newest run triggered (from the state file, then this process).
    last: Option<Processed>,
    looked: Option<Looked>,
    candidate: Option<Candidate>,
    busy: Option<Busy>,
    /// A look was asked for while busy: look once the operation returns.
    look_wanted: bool,
    /// Copied, waiting for a lane.
    queued: Option<Handed>,
    running: Option<Handed>,
    /// A pair that held still and was not valid, at these stamps: not copied again until they
    /// change.
    refused: Option<(PairStamp, String)>,
    retry: Option<Retry>,
    /// A run handed on before and tried again: its order was judged then, and stands.
    approved: Option<String>,
    decided: Recent,
    warned: Recent,
    said_older: Recent,
    presence: Option<Presence>,
    /// The glob no longer matches: forgotten once nothing is in flight.
    gone: bool,
}

impl Folder {
    fn idle(&self) -> bool {
        self.busy.is_none() && self.queued.is_none() && self.running.is_none()
    }

    /// The newest run processed or on its way: fresh pairs must not be older. Each handed on
    /// was newer than the one before it, so the newest is the last handed on.
    fn newest(&self) -> Option<Placed> {
        self.queued
            .as_ref()
            .or(self.running.as_ref())
            .map(|h| h.placed)
            .or_else(|| self.last.as_ref().map(|l| l.placed))
    }

    /// Whether `id` is already decided, on its way, or the last processed.
    fn known(&self, id: &str) -> bool {
        self.decided.contains(id)
            || self.queued.as_ref().is_some_and(|h| h.id == id)
            || self.running.as_ref().is_some_and(|h| h.id == id)
            || self.last.as_ref().is_some_and(|l| l.invocation_id == id)
            || self.retry.as_ref().is_some_and(|r| r.id == id)
    }

    /// The stamps to trust as "unchanged" without reading the files.
    fn trust(&self) -> Option<PairStamp> {
        let looked = self.looked.as_ref()?;
        let newest = looked.stamp.newest_write()?;
        let safe = looked.settled && looked.wall >= newest + RACY;
        safe.then_some(looked.stamp)
    }
}

/// Uploads waiting for a lane, and the integrations busy now.
#[derive(Debug, Default)]
struct Lanes {
    waiting: VecDeque<PathBuf>,
    busy: BTreeMap<String, PathBuf>,
}

/// Every folder's state, the lanes and the settings: the whole decision state of a watcher.
#[derive(Debug)]
pub struct Board {
    settings: Settings,
    folders: BTreeMap<PathBuf, Folder>,
    lanes: Lanes,
    draining: bool,
}

impl Board {
    pub fn new(settings: Settings) -> Board {
        Board {
            settings,
            folders: BTreeMap::new(),
            lanes: Lanes::default(),
            draining: false,
        }
    }

    /// Starts watching `folder`, whose last processed run, and the ids of the runs processed
    /// before it, the state file holds.
    pub fn add(&mut self, folder: PathBuf, last: Option<Processed>, earlier: &[String]) {
        let entry = self.folders.entry(folder).or_default();
        entry.gone = false;
        for id in earlier {
            entry.decided.insert(id);
        }
        if entry.last.is_none() {
            entry.last = last;
        }
    }

    /// The glob no longer matches `folder`: it is forgotten once nothing of it is in flight.
    pub fn remove(&mut self, folder: &PathBuf) {
        if let Some(f) = self.folders.get_mut(folder) {
            f.gone = true;
            f.candidate = None;
            f.retry = None;
            if f.idle() {
                self.folders.remove(folder);
            }
        }
    }

    /// How many copies wait for a lane.
    pub fn queued(&self) -> usize {
        self.folders.values().filter(|f| f.queued.is_some()).count()
    }

    /// How many pairs wait to be tried again (Secoda was unavailable).
    pub fn retrying(&self) -> usize {
        self.folders.values().filter(|f| f.retry.is_some()).count()
    }

    /// The periodic scan: look at every folder (or, when busy, once it is free).
    pub fn tick(&mut self, now: Now) -> Vec<Command> {
        let keys: Vec<PathBuf> = self.folders.keys().cloned().collect();
        let mut out = Vec::new();
        for key in keys {
            out.extend(self.hint(&key, now));
        }
        out
    }

    /// Something changed near `folder`: look at it.
    pub fn hint(&mut self, folder: &PathBuf, _now: Now) -> Vec<Command> {
        if self.draining {
            return Vec::new();
        }
        let Some(f) = self.folders.get_mut(folder) else {
            return Vec::new();
        };
        if f.gone {
            return Vec::new();
        }
        if f.busy.is_some() {
            f.look_wanted = true;
            return Vec::new();
        }
        f.busy = Some(Busy::Looking);
        vec![Command::Look {
            folder: folder.clone(),
            trust: f.trust(),
        }]
    }

    /// When the shell must call [`Board::wake`] without any event: a debounce ending, a retry
    /// falling due. Never a moment the board has already handled: a folder that is busy has
    /// no wake time until its operation returns.
    pub fn wake_at(&self) -> Option<Instant> {
        self.folders
            .values()
            .filter(|f| f.busy.is_none() && !f.gone)
            .flat_map(|f| {
                let debounce = f
                    .candidate
                    .as_ref()
                    .filter(|_| !self.draining)
                    .map(|c| c.since + self.settings.debounce);
                let retry = f.retry.as_ref().map(|r| r.at).filter(|_| !self.draining);
                debounce.into_iter().chain(retry)
            })
            .min()
    }

    /// Time passed: look at folders whose debounce ended or whose retry fell due.
    pub fn wake(&mut self, now: Now) -> Vec<Command> {
        let mut out = Vec::new();
        let debounce = self.settings.debounce;
        let mut due = Vec::new();
        for (key, f) in &mut self.folders {
            if f.busy.is_some() || f.gone || self.draining {
                continue;
            }
            if f.retry.as_ref().is_some_and(|r| r.at <= now.mono) {
                if let Some(r) = f.retry.take() {
                    f.decided.remove(&r.id);
                    f.approved = Some(r.id);
                }
                f.looked = None;
                due.push(key.clone());
            } else if f
                .candidate
                .as_ref()
                .is_some_and(|c| c.since + debounce <= now.mono)
            {
                due.push(key.clone());
            }
        }
        for key in due {
            out.extend(self.hint(&key, now));
        }
        out
    }

    /// The shutdown: no more watching, but a pair already complete is still copied (without the
    /// debounce) and uploaded, as are copies waiting for a lane and pairs waiting for a retry.
    pub fn drain(&mut self, now: Now) -> Vec<Command> {
        self.draining = true;
        let mut out = Vec::new();
        let keys: Vec<PathBuf> = self.folders.keys().cloned().collect();
        for key in keys {
            let Some(f) = self.folders.get_mut(&key) else {
                continue;
            };
            if let Some(r) = f.retry.take() {
                f.decided.remove(&r.id);
                f.approved = Some(r.id);
                f.looked = None;
            }
            if f.gone {
                continue;
            }
            if f.busy.is_some() {
                f.look_wanted = true;
                continue;
            }
            f.busy = Some(Busy::Looking);
            out.push(Command::Look {
                folder: key.clone(),
                trust: None,
            });
        }
        let _ = now;
        out
    }

    /// Draining, and nothing left in flight or waiting.
    pub fn drained(&self) -> bool {
        self.draining && self.folders.values().all(|f| f.idle() && !f.look_wanted)
    }

    /// A look at `folder` returned.
    pub fn looked(&mut self, folder: &PathBuf, observed: Observed, now: Now) -> Vec<Command> {
        let debounce = self.settings.debounce;
        let draining = self.draining;
        let Some(f) = self.folders.get_mut(folder) else {
            return Vec::new();
        };
        f.busy = None;
        let mut notes = Vec::new();
        if f.presence.as_ref() != Some(&observed.presence) {
            let before = f.presence.replace(observed.presence.clone());
            let note = match &observed.presence {
                Presence::Missing => Some(Note::FolderMissing {
                    before: before == Some(Presence::Present),
                }),
                Presence::Present => {
                    matches!(before, Some(Presence::Missing | Presence::Unreadable(_)))
                        .then_some(Note::FolderBack)
                }
                Presence::NotAFolder(what) => Some(Note::NotAFolder(what)),
                Presence::Unreadable(why) => Some(Note::Unreadable(why.clone())),
            };
            notes.extend(note);
        }
        let stamp = observed.stamp;
        if f.candidate.as_ref().is_some_and(|c| c.stamp != stamp) {
            f.candidate = None;
        }
        if let Some(look) = observed.look {
            let seen = match &look {
                Look::Missing => Seen::Missing,
                Look::NotAPair(why) => Seen::NotAPair(why.clone()),
                Look::Pair { id, .. } => Seen::Pair(id.clone()),
            };
            let changed = f.looked.as_ref().is_none_or(|l| l.seen != seen);
            if f.approved
                .as_ref()
                .is_some_and(|a| seen != Seen::Pair(a.clone()))
            {
                // The run tried again is gone from the folder: its standing goes with it.
                f.approved = None;
            }
            f.looked = Some(Looked {
                stamp,
                // When the files were read: a write after it, within the same tick of a coarse
                // clock and at the same size, leaves the stamps unchanged (model seed 24561).
                wall: observed.at,
                settled: observed.settled,
                seen,
            });
            match look {
                Look::Missing => f.candidate = None,
                Look::NotAPair(why) => {
                    f.candidate = None;
                    if changed {
                        notes.push(Note::Waiting(why));
                    }
                }
                Look::Pair { id, generated_at } => {
                    if observed.settled {
                        notes.extend(f.consider(
                            id,
                            generated_at.as_deref(),
                            stamp,
                            observed.at,
                            now,
                        ));
                    } else {
                        // Written while it was read: look again once the writes stop.
                        f.candidate = None;
                        f.look_wanted = true;
                    }
                }
            }
        }
        let mut out: Vec<Command> = notes
            .into_iter()
            .map(|note| Command::Say {
                folder: folder.clone(),
                note,
            })
            .collect();
        if let Some(c) = &f.candidate
            && (draining || c.since + debounce <= now.mono)
        {
            let id = c.id.clone();
            f.busy = Some(Busy::Copying { id: id.clone() });
            out.push(Command::Copy {
                folder: folder.clone(),
                id,
            });
            return out;
        }
        out.extend(self.after_op(folder, now));
        out
    }

    /// A snapshot of `folder` ended.
    pub fn copied(&mut self, folder: &PathBuf, copied: Copied, now: Now) -> Vec<Command> {
        let retry_after = self.settings.retry_after;
        let Some(f) = self.folders.get_mut(folder) else {
            return Vec::new();
        };
        let expected = match f.busy.take() {
            Some(Busy::Copying { id }) => id,
            other => {
                f.busy = other;
                return Vec::new();
            }
        };
        let Some(candidate) = f.candidate.take() else {
            return Vec::new();
        };
        let say = |note| Command::Say {
            folder: folder.clone(),
            note,
        };
        let mut out = Vec::new();
        match copied {
            Copied::Taken(run) if run.id == expected => {
                out.push(say(Note::Copied { id: run.id.clone() }));
                out.extend(self.take(folder, run, candidate.placed, now));
                return out;
            }
            Copied::Taken(_) | Copied::Changed => {
                out.push(say(Note::CopyChanged { id: expected }));
                f.look_wanted = true;
            }
            Copied::Invalid(detail) => {
                f.refused = Some((candidate.stamp, expected.clone()));
                out.push(say(Note::Invalid {
                    id: expected,
                    detail,
                }));
            }
            Copied::Failed(detail) => {
                f.retry = Some(Retry {
                    id: expected.clone(),
                    at: now.mono + retry_after,
                });
                out.push(say(Note::CopyFailed {
                    id: expected,
                    detail,
                }));
            }
        }
        out.extend(self.after_op(folder, now));
        out
    }

    /// A copy taken: skipped, or handed to the lanes.
    fn take(&mut self, folder: &PathBuf, run: Run, placed: Placed, now: Now) -> Vec<Command> {
        let discard = Command::Discard {
            folder: folder.clone(),
            id: run.id.clone(),
        };
        let mut out = Vec::new();
        let skip = |reason| Note::Skipped {
            id: run.id.clone(),
            project: run.project.clone(),
            reason,
        };
        let integration = self
            .settings
            .routes
            .integration_for(run.project.as_deref())
            .map(String::from);
        let wanted = run
            .command
            .as_deref()
            .is_some_and(|c| self.settings.commands.iter().any(|w| w == c));
        let Some(f) = self.folders.get_mut(folder) else {
            return Vec::new();
        };
        let reason = if !wanted {
            Some(Skip::Command(run.command.clone()))
        } else if integration.is_none() {
            Some(Skip::NoIntegration(run.project.clone()))
        } else {
            None
        };
        if let Some(reason) = reason {
            f.decided.insert(&run.id);
            out.push(Command::Say {
                folder: folder.clone(),
                note: skip(reason),
            });
            out.push(discard);
            out.extend(self.after_op(folder, now));
            return out;
        }
        // A run handed on supersedes one waiting to be tried again. Neither is marked decided:
        // should this one fail and vanish, the order alone says whether the other may go.
        f.approved = None;
        f.retry.take_if(|r| r.id != run.id);
        let handed = Handed {
            id: run.id.clone(),
            placed,
            integration: integration.unwrap_or_default(),
            triggered: false,
        };
        if let Some(old) = f.queued.replace(handed) {
            out.push(Command::Say {
                folder: folder.clone(),
                note: Note::Superseded {
                    old: old.id,
                    new: run.id.clone(),
                },
            });
        } else {
            self.lanes.waiting.push_back(folder.clone());
        }
        out.extend(self.schedule());
        if let Some(f) = self.folders.get(folder)
            && f.queued.as_ref().is_some_and(|h| h.id == run.id)
        {
            out.push(Command::Say {
                folder: folder.clone(),
                note: Note::Queued { id: run.id.clone() },
            });
        }
        out.extend(self.after_op(folder, now));
        out
    }

    /// Starts what the lanes allow: one upload an integration, `parallel` in all.
    fn schedule(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.lanes.waiting.len() && self.lanes.busy.len() < self.settings.parallel {
            let key = self.lanes.waiting[i].clone();
            let Some(f) = self.folders.get_mut(&key) else {
                self.lanes.waiting.remove(i);
                continue;
            };
            let Some(queued) = f.queued.as_ref() else {
                self.lanes.waiting.remove(i);
                continue;
            };
            if self.lanes.busy.contains_key(&queued.integration) || f.running.is_some() {
                i += 1;
                continue;
            }
            self.lanes.waiting.remove(i);
            let Some(handed) = f.queued.take() else {
                continue;
            };
            self.lanes
                .busy
                .insert(handed.integration.clone(), key.clone());
            out.push(Command::Upload {
                folder: key.clone(),
                id: handed.id.clone(),
                integration: handed.integration.clone(),
            });
            f.running = Some(handed);
        }
        out
    }

    /// Secoda accepted the sync trigger of `folder`'s upload of `id`: it is the folder's last
    /// processed run, recorded in the state file now.
    pub fn triggered(&mut self, folder: &PathBuf, id: &str, now: Now) -> Vec<Command> {
        let Some(f) = self.folders.get_mut(folder) else {
            return Vec::new();
        };
        let Some(running) = f.running.as_mut().filter(|r| r.id == id) else {
            return Vec::new();
        };
        running.triggered = true;
        let processed = Processed {
            invocation_id: id.to_string(),
            placed: running.placed,
            at: now.wall,
        };
        f.decided.insert(id);
        // Handed on only when newer than the last: the newest triggered.
        f.last = Some(processed.clone());
        vec![Command::Record {
            folder: folder.clone(),
            processed,
        }]
    }

    /// `folder`'s upload of `id` ended.
    pub fn finished(
        &mut self,
        folder: &PathBuf,
        id: &str,
        outcome: Outcome,
        now: Now,
    ) -> Vec<Command> {
        let draining = self.draining;
        let retry_after = self.settings.retry_after;
        let Some(f) = self.folders.get_mut(folder) else {
            return Vec::new();
        };
        let Some(running) = f.running.take_if(|r| r.id == id) else {
            return Vec::new();
        };
        self.lanes.busy.remove(&running.integration);
        let mut out = Vec::new();
        let retry = outcome == Outcome::Unavailable
            && !running.triggered
            && !draining
            && !f.gone
            && f.queued.is_none();
        if retry {
            f.decided.remove(id);
            f.retry = Some(Retry {
                id: id.to_string(),
                at: now.mono + retry_after,
            });
            f.looked = None;
            out.push(Command::Say {
                folder: folder.clone(),
                note: Note::Retrying {
                    id: id.to_string(),
                    after: retry_after,
                },
            });
        } else {
            f.decided.insert(id);
        }
        out.extend(self.schedule());
        out.extend(self.after_op(folder, now));
        let gone: Vec<PathBuf> = self
            .folders
            .iter()
            .filter(|(_, f)| f.gone && f.idle())
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.folders.remove(&key);
        }
        out
    }

    /// After an operation of `folder` returned: the look asked for meanwhile.
    fn after_op(&mut self, folder: &PathBuf, now: Now) -> Vec<Command> {
        let Some(f) = self.folders.get_mut(folder) else {
            return Vec::new();
        };
        if f.busy.is_some() || !f.look_wanted {
            return Vec::new();
        }
        f.look_wanted = false;
        if f.gone {
            return Vec::new();
        }
        f.busy = Some(Busy::Looking);
        let _ = now;
        vec![Command::Look {
            folder: folder.clone(),
            trust: if self.draining { None } else { f.trust() },
        }]
    }
}

impl Folder {
    /// A complete pair seen at `stamp`: whether it is fresh, and if so the candidate to copy.
    fn consider(
        &mut self,
        id: String,
        generated_at: Option<&str>,
        stamp: PairStamp,
        read_at: SystemTime,
        now: Now,
    ) -> Vec<Note> {
        let mut notes = Vec::new();
        if self.known(&id) {
            self.candidate = None;
            return notes;
        }
        if self
            .refused
            .as_ref()
            .is_some_and(|(s, r)| *s == stamp && *r == id)
        {
            self.candidate = None;
            return notes;
        }
        if let Some(c) = &self.candidate
            && c.id == id
            && c.stamp == stamp
        {
            return notes;
        }
        let placed = Placed::new(generated_at, read_at);
        if let Some(ahead) = placed.skew()
            && !self.warned.contains(&id)
        {
            self.warned.insert(&id);
            notes.push(Note::SkewedClock {
                id: id.clone(),
                ahead,
            });
        }
        let approved = self.approved.as_deref() == Some(id.as_str());
        if let Some(newest) = self.newest().filter(|_| !approved) {
            match order::compare(&placed, &newest, now.wall) {
                Verdict::Older => {
                    // Not decided for good: the newest may be one on its way that fails and
                    // vanishes. Said once.
                    self.candidate = None;
                    if !self.said_older.contains(&id) {
                        self.said_older.insert(&id);
                        notes.push(Note::Skipped {
                            id,
                            project: None,
                            reason: Skip::Older,
                        });
                    }
                    return notes;
                }
                Verdict::ClockWentBack { by } => {
                    if !self.warned.contains(&id) {
                        self.warned.insert(&id);
                        notes.push(Note::ClockWentBack { id: id.clone(), by });
                    }
                }
                Verdict::Newer => {}
            }
        }
        notes.push(Note::Fresh { id: id.clone() });
        self.candidate = Some(Candidate {
            id,
            placed,
            stamp,
            since: now.mono,
        });
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            debounce: Duration::from_millis(250),
            retry_after: Duration::from_secs(30),
            parallel: 3,
            commands: vec!["build".into(), "test".into()],
            routes: Routes {
                by_project: BTreeMap::new(),
                default: Some("integ".into()),
            },
        }
    }

    struct Clock {
        mono: Instant,
        wall: SystemTime,
    }

    impl Clock {
        fn new() -> Clock {
            Clock {
                mono: Instant::now(),
                wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            }
        }
        fn now(&self) -> Now {
            Now {
                mono: self.mono,
                wall: self.wall,
            }
        }
        fn pass(&mut self, d: Duration) {
            self.mono += d;
            self.wall += d;
        }
    }

    fn stamp(len: u64, at: SystemTime) -> PairStamp {
        let s = Stamp {
            len,
            modified: Some(at),
            inode: 1,
        };
        PairStamp {
            manifest: Some(s),
            run_results: Some(s),
        }
    }

    fn pair(id: &str, at: &str) -> Look {
        Look::Pair {
            id: id.into(),
            generated_at: Some(at.into()),
        }
    }

    fn observed(stamp: PairStamp, look: Look) -> Observed {
        Observed {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            presence: Presence::Present,
            stamp,
            look: Some(look),
            settled: true,
        }
    }

    fn run(id: &str) -> Run {
        Run {
            id: id.into(),
            generated_at: None,
            command: Some("build".into()),
            project: Some("shop".into()),
        }
    }

    fn has_copy(out: &[Command]) -> bool {
        out.iter().any(|c| matches!(c, Command::Copy { .. }))
    }

    #[test]
    fn a_fresh_pair_is_copied_once_it_held_still_and_uploaded_once() {
        let mut clock = Clock::new();
        let mut board = Board::new(settings());
        let key = PathBuf::from("/t");
        board.add(key.clone(), None, &[]);
        let out = board.tick(clock.now());
        assert!(matches!(&out[..], [Command::Look { trust: None, .. }]));
        let st = stamp(10, clock.wall);
        let out = board.looked(
            &key,
            observed(st, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        assert!(!has_copy(&out), "not before the debounce: {out:?}");
        let wake = board.wake_at().unwrap();
        assert_eq!(wake, clock.mono + Duration::from_millis(250));
        clock.pass(Duration::from_millis(250));
        let out = board.wake(clock.now());
        assert!(matches!(&out[..], [Command::Look { .. }]));
        assert_eq!(
            board.wake_at(),
            None,
            "busy: no wake until the look returns"
        );
        let out = board.looked(
            &key,
            observed(st, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        assert!(has_copy(&out), "{out:?}");
        let out = board.copied(&key, Copied::Taken(run("a")), clock.now());
        assert!(
            out.iter()
                .any(|c| matches!(c, Command::Upload { id, .. } if id == "a")),
            "{out:?}"
        );
        let out = board.triggered(&key, "a", clock.now());
        assert!(matches!(&out[..], [Command::Record { .. }]));
        board.finished(&key, "a", Outcome::Done, clock.now());
        clock.pass(Duration::from_secs(5));
        board.tick(clock.now());
        let out = board.looked(
            &key,
            observed(st, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        assert!(!has_copy(&out) && board.wake_at().is_none(), "{out:?}");
    }

    #[test]
    fn a_copy_that_saw_a_change_is_looked_at_again_not_retried_with_the_old_id() {
        // The lost run of issue 13: the copy of run 48 found run 49 on disk; the old code kept
        // "48" as the candidate with 49's stamps and failed every debounce for ever.
        let mut clock = Clock::new();
        let mut board = Board::new(settings());
        let key = PathBuf::from("/t");
        board.add(key.clone(), None, &[]);
        board.tick(clock.now());
        let st48 = stamp(10, clock.wall);
        board.looked(
            &key,
            observed(st48, pair("48", "2027-01-15T08:00:48Z")),
            clock.now(),
        );
        clock.pass(Duration::from_millis(300));
        board.wake(clock.now());
        let out = board.looked(
            &key,
            observed(st48, pair("48", "2027-01-15T08:00:48Z")),
            clock.now(),
        );
        assert!(has_copy(&out));
        let out = board.copied(&key, Copied::Changed, clock.now());
        assert!(
            matches!(out.last(), Some(Command::Look { trust: None, .. })),
            "{out:?}"
        );
        let st49 = stamp(11, clock.wall);
        board.looked(
            &key,
            observed(st49, pair("49", "2027-01-15T08:00:49Z")),
            clock.now(),
        );
        clock.pass(Duration::from_millis(300));
        board.wake(clock.now());
        let out = board.looked(
            &key,
            observed(st49, pair("49", "2027-01-15T08:00:49Z")),
            clock.now(),
        );
        assert!(
            out.iter()
                .any(|c| matches!(c, Command::Copy { id, .. } if id == "49")),
            "{out:?}"
        );
    }

    #[test]
    fn an_invalid_pair_is_copied_once_until_its_files_change() {
        let mut clock = Clock::new();
        let mut board = Board::new(settings());
        let key = PathBuf::from("/t");
        board.add(key.clone(), None, &[]);
        board.tick(clock.now());
        let st = stamp(10, clock.wall);
        board.looked(
            &key,
            observed(st, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        clock.pass(Duration::from_millis(300));
        board.wake(clock.now());
        board.looked(
            &key,
            observed(st, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        let out = board.copied(&key, Copied::Invalid("bad byte".into()), clock.now());
        assert!(out.iter().any(|c| matches!(
            c,
            Command::Say {
                note: Note::Invalid { .. },
                ..
            }
        )));
        for _ in 0..20 {
            clock.pass(Duration::from_secs(1));
            assert_eq!(board.wake_at(), None);
            let out = board.tick(clock.now());
            let trust = match &out[..] {
                [Command::Look { trust, .. }] => *trust,
                other => panic!("{other:?}"),
            };
            let look = trust.is_none().then(|| pair("a", "2027-01-15T08:00:00Z"));
            let out = board.looked(
                &key,
                Observed {
                    at: clock.wall,
                    presence: Presence::Present,
                    stamp: st,
                    look,
                    settled: true,
                },
                clock.now(),
            );
            assert!(!has_copy(&out), "{out:?}");
        }
        // Fixed by a rewrite: copied again.
        let fixed = stamp(11, clock.wall);
        board.tick(clock.now());
        board.looked(
            &key,
            observed(fixed, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        clock.pass(Duration::from_millis(300));
        board.wake(clock.now());
        let out = board.looked(
            &key,
            observed(fixed, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        assert!(has_copy(&out), "{out:?}");
    }

    #[test]
    fn a_retry_falls_due_once_and_never_spins() {
        let mut clock = Clock::new();
        let mut board = Board::new(settings());
        let key = PathBuf::from("/t");
        board.add(key.clone(), None, &[]);
        board.tick(clock.now());
        let st = stamp(10, clock.wall);
        board.looked(
            &key,
            observed(st, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        clock.pass(Duration::from_millis(300));
        board.wake(clock.now());
        board.looked(
            &key,
            observed(st, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        board.copied(&key, Copied::Taken(run("a")), clock.now());
        let out = board.finished(&key, "a", Outcome::Unavailable, clock.now());
        assert!(out.iter().any(|c| matches!(
            c,
            Command::Say {
                note: Note::Retrying { .. },
                ..
            }
        )));
        let due = clock.mono + Duration::from_secs(30);
        assert_eq!(board.wake_at(), Some(due));
        // Ticks before then do not copy it again.
        clock.pass(Duration::from_secs(1));
        board.tick(clock.now());
        let out = board.looked(
            &key,
            observed(st, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        assert!(!has_copy(&out));
        clock.pass(Duration::from_secs(29));
        let out = board.wake(clock.now());
        assert!(matches!(&out[..], [Command::Look { trust: None, .. }]));
        // Handled: the next wake is in the future (the debounce), never the past instant again.
        board.looked(
            &key,
            observed(st, pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        assert!(board.wake_at().is_some_and(|w| w > clock.mono));
    }

    #[test]
    fn a_run_older_than_the_last_is_skipped_and_a_skewed_one_does_not_poison_the_order() {
        let clock = Clock::new();
        let mut board = Board::new(settings());
        let key = PathBuf::from("/t");
        board.add(
            key.clone(),
            Some(Processed {
                invocation_id: "last".into(),
                placed: Placed::new(Some("2027-01-15T08:00:00Z"), clock.wall),
                at: clock.wall,
            }),
            &[],
        );
        board.tick(clock.now());
        let out = board.looked(
            &key,
            observed(stamp(10, clock.wall), pair("old", "2027-01-14T08:00:00Z")),
            clock.now(),
        );
        assert!(out.iter().any(|c| matches!(
            c,
            Command::Say {
                note: Note::Skipped {
                    reason: Skip::Older,
                    ..
                },
                ..
            }
        )));
        assert!(board.wake_at().is_none());
        // 2099 is placed when it was seen, with a warning.
        board.tick(clock.now());
        let out = board.looked(
            &key,
            observed(
                stamp(11, clock.wall),
                pair("future", "2099-01-01T00:00:00Z"),
            ),
            clock.now(),
        );
        assert!(out.iter().any(|c| matches!(
            c,
            Command::Say {
                note: Note::SkewedClock { .. },
                ..
            }
        )));
    }

    #[test]
    fn one_integration_runs_one_upload_at_a_time_and_others_run_beside_it() {
        let clock = Clock::new();
        let mut s = settings();
        s.parallel = 2;
        s.routes.by_project.insert("a".into(), "A".into());
        s.routes.by_project.insert("b".into(), "B".into());
        s.routes.by_project.insert("c".into(), "C".into());
        let mut board = Board::new(s);
        let keys: Vec<PathBuf> = ["/1", "/2", "/3", "/4"].iter().map(PathBuf::from).collect();
        let projects = ["a", "a", "b", "c"];
        for k in &keys {
            board.add(k.clone(), None, &[]);
        }
        let mut uploads = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let f = board.folders.get_mut(k).unwrap();
            f.busy = Some(Busy::Copying {
                id: format!("r{i}"),
            });
            f.candidate = Some(Candidate {
                id: format!("r{i}"),
                placed: Placed::new(None, clock.wall),
                stamp: PairStamp::default(),
                since: clock.mono,
            });
            let out = board.copied(
                k,
                Copied::Taken(Run {
                    id: format!("r{i}"),
                    generated_at: None,
                    command: Some("build".into()),
                    project: Some(projects[i].into()),
                }),
                clock.now(),
            );
            uploads.extend(out.into_iter().filter_map(|c| match c {
                Command::Upload { integration, .. } => Some(integration),
                _ => None,
            }));
        }
        assert_eq!(uploads, vec!["A".to_string(), "B".to_string()]);
        let out = board.finished(&keys[0], "r0", Outcome::Done, clock.now());
        let started: Vec<_> = out
            .iter()
            .filter_map(|c| match c {
                Command::Upload { integration, .. } => Some(integration.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(started, vec!["A".to_string()], "the second of A, in order");
    }

    #[test]
    fn a_pair_with_no_integration_is_skipped() {
        let clock = Clock::new();
        let mut s = settings();
        s.routes.default = None;
        s.routes.by_project.insert("shop".into(), "S".into());
        let mut board = Board::new(s);
        let key = PathBuf::from("/t");
        board.add(key.clone(), None, &[]);
        let f = board.folders.get_mut(&key).unwrap();
        f.busy = Some(Busy::Copying { id: "x".into() });
        f.candidate = Some(Candidate {
            id: "x".into(),
            placed: Placed::new(None, clock.wall),
            stamp: PairStamp::default(),
            since: clock.mono,
        });
        let mut r = run("x");
        r.project = Some("other".into());
        let out = board.copied(&key, Copied::Taken(r), clock.now());
        assert!(out.iter().any(|c| matches!(
            c,
            Command::Say {
                note: Note::Skipped {
                    reason: Skip::NoIntegration(Some(p)),
                    ..
                },
                ..
            } if p == "other"
        )));
        assert!(out.iter().any(|c| matches!(c, Command::Discard { .. })));
    }

    /// Looks at `key` (its look returns `look` at `st`), then lets the debounce pass and looks
    /// again: the commands of the second look.
    fn held_still(
        board: &mut Board,
        clock: &mut Clock,
        key: &PathBuf,
        st: PairStamp,
        look: Look,
    ) -> Vec<Command> {
        board.hint(key, clock.now());
        board.looked(key, observed_at(st, look.clone(), clock.wall), clock.now());
        clock.pass(Duration::from_millis(300));
        board.wake(clock.now());
        board.looked(key, observed_at(st, look, clock.wall), clock.now())
    }

    fn observed_at(stamp: PairStamp, look: Look, at: SystemTime) -> Observed {
        Observed {
            at,
            ..observed(stamp, look)
        }
    }

    fn uploads(out: &[Command]) -> Vec<String> {
        out.iter()
            .filter_map(|c| match c {
                Command::Upload { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_run_among_the_state_files_earlier_ids_is_not_uploaded_again() {
        // Model seed 1307: a cache restore of a run processed before the last one.
        let mut clock = Clock::new();
        let mut board = Board::new(settings());
        let key = PathBuf::from("/t");
        board.add(key.clone(), None, &["old".to_string()]);
        let st = stamp(10, clock.wall);
        let out = held_still(
            &mut board,
            &mut clock,
            &key,
            st,
            pair("old", "2027-01-15T08:00:00Z"),
        );
        assert!(!has_copy(&out), "{out:?}");
    }

    #[test]
    fn a_retried_run_keeps_its_standing_until_it_leaves_or_a_newer_one_goes() {
        let mut clock = Clock::new();
        let mut board = Board::new(settings());
        let key = PathBuf::from("/t");
        board.add(key.clone(), None, &[]);
        let st = stamp(10, clock.wall);
        let out = held_still(
            &mut board,
            &mut clock,
            &key,
            st,
            pair("a", "2027-01-15T08:00:00Z"),
        );
        assert!(has_copy(&out));
        board.copied(&key, Copied::Taken(run("a")), clock.now());
        board.finished(&key, "a", Outcome::Unavailable, clock.now());
        // Model seed 6063: a newer run handed on drops the retry of the older one.
        let newer = stamp(11, clock.wall);
        let out = held_still(
            &mut board,
            &mut clock,
            &key,
            newer,
            pair("b", "2027-01-15T09:00:00Z"),
        );
        assert!(has_copy(&out));
        board.copied(&key, Copied::Taken(run("b")), clock.now());
        assert_eq!(board.retrying(), 0, "the retry of a went with b");
        // Model seed 5087: b fails too and vanishes; a, restored, may go again (it is newer
        // than anything triggered), since neither was marked decided.
        board.finished(&key, "b", Outcome::Unavailable, clock.now());
        clock.pass(Duration::from_secs(31));
        board.wake(clock.now());
        let back = stamp(12, clock.wall);
        board.looked(
            &key,
            observed_at(back, pair("a", "2027-01-15T08:00:00Z"), clock.wall),
            clock.now(),
        );
        clock.pass(Duration::from_millis(300));
        board.wake(clock.now());
        let out = board.looked(
            &key,
            observed_at(back, pair("a", "2027-01-15T08:00:00Z"), clock.wall),
            clock.now(),
        );
        assert!(has_copy(&out), "{out:?}");
    }

    #[test]
    fn stamps_are_trusted_from_when_the_files_were_read() {
        // Model seed 24561: a coarse clock (2 s) and equal sizes. A look that read the files at
        // 5.9 s and returned at 8.0 s must not be trusted: a write at 7.99 s leaves the stamps.
        let mut clock = Clock::new();
        let mut board = Board::new(settings());
        let key = PathBuf::from("/t");
        board.add(key.clone(), None, &[]);
        let bucket = clock.wall;
        let st = stamp(10, bucket);
        board.hint(&key, clock.now());
        let read_at = bucket + Duration::from_millis(1900);
        clock.pass(Duration::from_millis(2100));
        let mismatched = Look::NotAPair(NotAPair::Mismatched {
            manifest: "b".into(),
            run_results: "a".into(),
        });
        board.looked(
            &key,
            observed_at(st, mismatched.clone(), read_at),
            clock.now(),
        );
        let out = board.tick(clock.now());
        assert!(
            matches!(&out[..], [Command::Look { trust: None, .. }]),
            "read 1.9 s after the tick began: not to be trusted: {out:?}"
        );
        board.looked(&key, observed_at(st, mismatched, clock.wall), clock.now());
        let out = board.tick(clock.now());
        assert!(
            matches!(&out[..], [Command::Look { trust: Some(_), .. }]),
            "read 2.1 s after: trusted: {out:?}"
        );
    }

    #[test]
    fn the_drain_copies_a_complete_pair_at_once_and_ends() {
        let mut clock = Clock::new();
        let mut board = Board::new(settings());
        let key = PathBuf::from("/t");
        board.add(key.clone(), None, &[]);
        let out = board.drain(clock.now());
        assert!(matches!(&out[..], [Command::Look { trust: None, .. }]));
        assert!(!board.drained(), "a look is in flight");
        let out = board.looked(
            &key,
            observed(stamp(10, clock.wall), pair("a", "2027-01-15T08:00:00Z")),
            clock.now(),
        );
        assert!(has_copy(&out), "no debounce when draining: {out:?}");
        let out = board.copied(&key, Copied::Taken(run("a")), clock.now());
        assert_eq!(uploads(&out), ["a"]);
        assert!(board.tick(clock.now()).is_empty(), "no more looks");
        clock.pass(Duration::from_millis(10));
        board.finished(&key, "a", Outcome::Done, clock.now());
        assert!(board.drained());
    }
}
