//! What a watcher says about itself over HTTP (`--health-listen`): `/healthz` (the process is
//! alive: its one async thread answers), `/readyz` (it watches what it was asked to, with a key Secoda
//! accepted) and `/metrics` in the Prometheus text format.
//!
//! The shell updates the [`Readiness`] and the [`Metrics`]; answering reads them and touches no
//! file, so a target on a hung mount never stalls an answer. Nothing here decides anything
//! about pairs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The watcher's counters. Per-pair counters carry the dbt project's name as `project` (a label
/// whose values stay few, unlike folders, which dagster-dbt makes one a run).
pub struct Metrics {
    registry: Registry,
    pub scans: IntCounter,
    pub hints: IntCounter,
    pub folders: IntGauge,
    pub pairs_seen: IntCounterVec,
    pub skipped: IntCounterVec,
    pub uploads: IntCounterVec,
    pub snapshots: IntCounterVec,
    pub last_success: Gauge,
    pub last_exit_code: IntGauge,
    pub pending: IntGauge,
    pub retrying: IntGauge,
    pub secoda_up: IntGauge,
    pub state_write_errors: IntCounter,
}

/// A metric definition that is fixed in the code: building it cannot fail at run time.
fn defined<T>(metric: prometheus::Result<T>) -> T {
    metric.unwrap_or_else(|e| unreachable!("a metric definition is invalid: {e}"))
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = defined(Registry::new_custom(Some("dbt_secoda_watch".into()), None));
        let opts = |name: &str, help: &str| Opts::new(name, help);
        let counter = |name: &str, help: &str| {
            let c = defined(IntCounter::with_opts(opts(name, help)));
            defined(registry.register(Box::new(c.clone())));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = defined(IntGauge::with_opts(opts(name, help)));
            defined(registry.register(Box::new(g.clone())));
            g
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let c = defined(IntCounterVec::new(opts(name, help), labels));
            defined(registry.register(Box::new(c.clone())));
            c
        };
        let scans = counter("scans_total", "Looks at a target folder's two files.");
        let hints = counter(
            "hints_total",
            "File-system events about the artifacts or their folders (each makes a look come sooner).",
        );
        let folders = gauge("folders", "Target folders watched.");
        let pairs_seen = counters(
            "pairs_seen_total",
            "Fresh complete pairs of manifest.json and run_results.json copied for upload, by project.",
            &["project"],
        );
        let skipped = counters(
            "pairs_skipped_total",
            "Fresh pairs not uploaded, by project and reason (command: not in --commands; older: \
             older than the newest processed; no-integration: no integration for the project).",
            &["project", "reason"],
        );
        let uploads = counters(
            "uploads_total",
            "Pairs processed, by project, result (ok: uploaded and the sync triggered) and exit code.",
            &["project", "result", "exit_code"],
        );
        let snapshots = counters(
            "snapshots_total",
            "Copies of a pair, by result (taken; changed: a file changed while copied; invalid: \
             held still but not a complete pair; failed: could not be written).",
            &["result"],
        );
        let last_success = defined(Gauge::with_opts(opts(
            "last_success_timestamp_seconds",
            "When a pair was last uploaded and its sync triggered, in seconds since 1970.",
        )));
        defined(registry.register(Box::new(last_success.clone())));
        let last_exit_code = gauge(
            "last_exit_code",
            "The exit code of the last processed pair (-1 before the first).",
        );
        let pending = gauge(
            "pending_pairs",
            "Copies waiting for an upload in flight to their integration (one a folder: the latest wins).",
        );
        let retrying = gauge(
            "retrying_pairs",
            "Pairs waiting to be tried again because Secoda was unavailable.",
        );
        let secoda_up = gauge(
            "secoda_up",
            "1 when the last request to Secoda was answered, 0 when Secoda was unavailable, -1 before any.",
        );
        let state_write_errors = counter(
            "state_write_errors_total",
            "Failed writes of the state file (after a restart, those runs may be uploaded again).",
        );
        last_exit_code.set(-1);
        secoda_up.set(-1);
        Metrics {
            registry,
            scans,
            hints,
            folders,
            pairs_seen,
            skipped,
            uploads,
            snapshots,
            last_success,
            last_exit_code,
            pending,
            retrying,
            secoda_up,
            state_write_errors,
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn finished(&self, project: &str, uploaded: bool, code: u8) {
        let result = if uploaded { "ok" } else { "failed" };
        self.uploads
            .with_label_values(&[project, result, &code.to_string()])
            .inc();
        self.last_exit_code.set(i64::from(code));
        if uploaded {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.last_success.set(now);
        }
    }
}

/// Whether an integration was proven at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Checking,
    Proven,
    /// Secoda did not answer: not a reason to hold dbt back; pairs are tried when it answers.
    Unavailable,
    Refused(String),
}

/// What `/readyz` is made of.
#[derive(Debug, Default)]
struct State {
    /// Static folders, and whether a look at each has returned (and what it found, if bad).
    folders: BTreeMap<String, Option<Result<(), String>>>,
    surveyed: bool,
    integrations: BTreeMap<String, Proof>,
    /// Looks in flight, since when.
    looking: BTreeMap<String, Instant>,
    last_turn: Option<Instant>,
    state_error: Option<String>,
}

/// Liveness, readiness and metrics of one watcher.
pub struct Health {
    pub metrics: Metrics,
    state: Mutex<State>,
    /// A loop turn or a look older than this makes the watcher not ready.
    stale_after: Duration,
}

impl Health {
    pub fn new(scan_interval: Duration) -> Health {
        Health {
            metrics: Metrics::new(),
            state: Mutex::new(State::default()),
            stale_after: (scan_interval * 3).max(Duration::from_secs(5)),
        }
    }

    fn with(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut state) = self.state.lock() {
            f(&mut state);
        }
    }

    /// The folders given by name, each to be looked at before the watcher is ready.
    pub fn expect_folders(&self, folders: impl IntoIterator<Item = String>) {
        self.with(|s| {
            for f in folders {
                s.folders.insert(f, None);
            }
        });
    }

    pub fn expect_integrations(&self, ids: impl IntoIterator<Item = String>) {
        self.with(|s| {
            for id in ids {
                s.integrations.insert(id, Proof::Checking);
            }
        });
    }

    pub fn proof(&self, integration: &str, proof: Proof) {
        self.with(|s| {
            s.integrations.insert(integration.to_string(), proof);
        });
    }

    pub fn turned(&self) {
        self.with(|s| s.last_turn = Some(Instant::now()));
    }

    pub fn surveyed(&self) {
        self.with(|s| s.surveyed = true);
    }

    pub fn look_started(&self, folder: &str) {
        self.metrics.scans.inc();
        self.with(|s| {
            s.looking
                .entry(folder.to_string())
                .or_insert_with(Instant::now);
        });
    }

    /// A look returned; `problem` is why the folder cannot be watched, if it cannot.
    pub fn look_returned(&self, folder: &str, problem: Option<String>) {
        self.with(|s| {
            s.looking.remove(folder);
            if let Some(slot) = s.folders.get_mut(folder) {
                *slot = Some(problem.map_or(Ok(()), Err));
            }
        });
    }

    pub fn state_written(&self, error: Option<String>) {
        if error.is_some() {
            self.metrics.state_write_errors.inc();
        }
        self.with(|s| s.state_error = error);
    }

    fn ready(&self) -> Result<(), String> {
        let s = self.state.lock().map_err(|_| "poisoned".to_string())?;
        let mut why = Vec::new();
        match s.last_turn {
            None => why.push("not started".to_string()),
            Some(t) if t.elapsed() > self.stale_after => {
                why.push(format!(
                    "the watch loop last turned {} s ago",
                    t.elapsed().as_secs()
                ));
            }
            Some(_) => {}
        }
        if !s.surveyed {
            why.push("the target folders are not surveyed yet".into());
        }
        for (folder, state) in &s.folders {
            match state {
                None => why.push(format!("{folder} not looked at yet")),
                Some(Err(problem)) => why.push(problem.clone()),
                Some(Ok(())) => {}
            }
        }
        for (folder, since) in &s.looking {
            if since.elapsed() > self.stale_after {
                why.push(format!(
                    "reading {folder} has not returned for {} s (a hung mount?)",
                    since.elapsed().as_secs()
                ));
            }
        }
        for (id, proof) in &s.integrations {
            match proof {
                Proof::Checking => why.push(format!("proving the key with integration {id}")),
                Proof::Refused(reason) => why.push(format!("integration {id}: {reason}")),
                Proof::Proven | Proof::Unavailable => {}
            }
        }
        if let Some(error) = &s.state_error {
            why.push(format!("the state file cannot be written: {error}"));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn answer(health: &Health, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" => match health.ready() {
            Ok(()) => text(StatusCode::OK, "ready\n".into(), PLAIN),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                crate::logging::redact(&format!("not ready: {why}\n")),
                PLAIN,
            ),
        },
        "/metrics" => text(
            StatusCode::OK,
            health.metrics.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), PLAIN),
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `addr` until the task is dropped; returns the
/// address bound (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors, say: wait before the next accept, do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let health = Arc::clone(&health);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let response = answer(&health, &req);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((bound, task))
}
