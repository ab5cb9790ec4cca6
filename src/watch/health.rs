//! What a watcher says about itself over HTTP (`--health-listen`): `/healthz` (the process is
//! alive), `/readyz` (it is watching: the folder is readable and the last scan is recent) and
//! `/metrics` in the Prometheus text format.
//!
//! The counters live here and the watch loop updates them; nothing here decides anything about
//! pairs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
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

/// The watcher's counters.
pub struct Metrics {
    registry: Registry,
    pub scans: IntCounter,
    pub pairs_seen: IntCounter,
    pub skipped: IntCounterVec,
    pub uploads: IntCounterVec,
    pub last_success: Gauge,
    pub last_exit_code: IntGauge,
    pub pending: IntGauge,
}

/// A metric definition that is fixed in the code: building it cannot fail at run time.
fn defined<T>(metric: prometheus::Result<T>) -> T {
    metric.unwrap_or_else(|e| unreachable!("a metric definition is invalid: {e}"))
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = defined(Registry::new_custom(Some("dbt_secoda_watch".into()), None));
        let opts = |name: &str, help: &str| Opts::new(name, help);
        let add = |metric: Box<dyn prometheus::core::Collector>| {
            defined(registry.register(metric));
        };
        let scans = defined(IntCounter::with_opts(opts(
            "scans_total",
            "Scans of the target folder.",
        )));
        let pairs_seen = defined(IntCounter::with_opts(opts(
            "pairs_seen_total",
            "Fresh complete pairs of manifest.json and run_results.json detected.",
        )));
        let skipped = defined(IntCounterVec::new(
            opts(
                "pairs_skipped_total",
                "Fresh pairs not uploaded, by reason (command: not in --commands; older: older than the last processed).",
            ),
            &["reason"],
        ));
        let uploads = defined(IntCounterVec::new(
            opts(
                "uploads_total",
                "Pairs processed, by result (ok: uploaded and the sync triggered) and exit code.",
            ),
            &["result", "exit_code"],
        ));
        let last_success = defined(Gauge::with_opts(opts(
            "last_success_timestamp_seconds",
            "When a pair was last uploaded and its sync triggered, in seconds since 1970.",
        )));
        let last_exit_code = defined(IntGauge::with_opts(opts(
            "last_exit_code",
            "The exit code of the last processed pair (-1 before the first).",
        )));
        let pending = defined(IntGauge::with_opts(opts(
            "pending_pairs",
            "Fresh pairs waiting for the upload in flight to finish (0 or 1: the latest wins).",
        )));
        add(Box::new(scans.clone()));
        add(Box::new(pairs_seen.clone()));
        add(Box::new(skipped.clone()));
        add(Box::new(uploads.clone()));
        add(Box::new(last_success.clone()));
        add(Box::new(last_exit_code.clone()));
        add(Box::new(pending.clone()));
        last_exit_code.set(-1);
        Metrics {
            registry,
            scans,
            pairs_seen,
            skipped,
            uploads,
            last_success,
            last_exit_code,
            pending,
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn finished(&self, uploaded: bool, code: u8) {
        let result = if uploaded { "ok" } else { "failed" };
        self.uploads
            .with_label_values(&[result, &code.to_string()])
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

/// Liveness, readiness and metrics of one watcher.
pub struct Health {
    pub metrics: Metrics,
    last_scan: Mutex<Option<(Instant, Result<(), String>)>>,
    /// A scan older than this makes the watcher not ready.
    stale_after: Duration,
}

impl Health {
    pub fn new(scan_interval: Duration) -> Health {
        Health {
            metrics: Metrics::new(),
            last_scan: Mutex::new(None),
            stale_after: (scan_interval * 3).max(Duration::from_secs(5)),
        }
    }

    /// Records a scan and whether the folder could be read.
    pub fn scanned(&self, readable: Result<(), String>) {
        self.metrics.scans.inc();
        if let Ok(mut last) = self.last_scan.lock() {
            *last = Some((Instant::now(), readable));
        }
    }

    fn ready(&self) -> Result<(), String> {
        let last = self.last_scan.lock().map_err(|_| "poisoned".to_string())?;
        match &*last {
            None => Err("no scan yet".into()),
            Some((when, _)) if when.elapsed() > self.stale_after => Err(format!(
                "the last scan was {} s ago",
                when.elapsed().as_secs()
            )),
            Some((_, Err(why))) => Err(why.clone()),
            Some((_, Ok(()))) => Ok(()),
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
                format!("not ready: {why}\n"),
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
            let Ok((stream, _)) = listener.accept().await else {
                continue;
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
