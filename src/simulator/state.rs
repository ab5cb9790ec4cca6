//! The simulator's in-memory world: integrations, uploads, dbt syncs, faults still to serve, and
//! the counters `GET /_simulator/state` reports.
//!
//! Owns the dbt sync model: a trigger starts a sync lasting the configured time; meanwhile
//! triggers answer 409 and `failing_tests` answers the previous sync's result; when it ends, the
//! answer becomes what the latest upload's files say. It does not speak HTTP.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

use super::Naming;
use crate::entities::Entities;

/// Settings and fault budgets, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub api_key: String,
    pub dbt_integrations: Vec<String>,
    /// How long each sync runs, in turn; the last one repeats.
    pub sync: Vec<Duration>,
    /// How the failing-tests answer names entities.
    pub naming: Naming,
    /// Answers given before the body is read (401, 404) close the connection without reading
    /// it, as gunicorn does with no proxy in front.
    pub early_close: bool,
    /// Requests declaring a larger body get 413 before it is read, as nginx's
    /// `client_max_body_size` does; what is sent anyway is read and thrown away.
    pub max_body_bytes: Option<u64>,
    pub conflicts: u32,
    pub fail_requests: u32,
    pub fail_status: u16,
    /// The `detail` text of those answers.
    pub fail_detail: Option<String>,
    /// Those answers carry no Retry-After, even 429 and 503 (a proxy's own).
    pub fail_without_retry_after: bool,
    /// Only requests whose path contains this count towards `fail_requests`.
    pub fail_path: Option<String>,
    /// Every sync ends with this answer, whatever the upload says.
    pub fixed_answer: Option<Entities>,
    /// Once a sync has ended, failing_tests answers this JSON as it is, whatever its shape.
    pub raw_answer: Option<Value>,
    /// Uploads are read no faster than this (a slow link).
    pub upload_bytes_per_second: Option<u64>,
    pub rate_limit: Option<u32>,
    pub rate_window: Duration,
    pub reset_uploads: u32,
    pub latency: Duration,
    pub page_size: usize,
    /// Next links as a self-hosted install writes them (no /api/v1, internal host, "None").
    pub self_hosted_links: bool,
}

impl Options {
    /// A simulator without faults: syncs of `sync`, no conflicts, entities named by node.
    pub fn without_faults(api_key: String, dbt_integration: &str, sync: Duration) -> Options {
        Options {
            api_key,
            dbt_integrations: vec![dbt_integration.into()],
            sync: vec![sync],
            naming: Naming::Node,
            early_close: false,
            max_body_bytes: None,
            conflicts: 0,
            fail_requests: 0,
            fail_status: 503,
            fail_detail: None,
            fail_without_retry_after: false,
            fail_path: None,
            fixed_answer: None,
            raw_answer: None,
            upload_bytes_per_second: None,
            rate_limit: None,
            rate_window: Duration::from_secs(60),
            reset_uploads: 0,
            latency: Duration::ZERO,
            page_size: 50,
            self_hosted_links: false,
        }
    }
}

/// One accepted upload.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub integration_id: String,
    pub manifest_sha256: String,
    pub manifest_bytes: u64,
    pub run_results_sha256: String,
    pub run_results_bytes: u64,
    /// run_results.json's invocation_id.
    pub invocation_id: Option<String>,
    pub manifest_invocation_id: Option<String>,
    /// What a sync of this upload will answer.
    pub answer: Entities,
    pub received_at: String,
    /// When the first byte of the body arrived, in seconds since 1970 (for latency figures).
    pub first_byte_unix: f64,
    /// When its body's last byte arrived, in seconds since 1970.
    pub last_byte_unix: f64,
    /// The request's Content-Length (None: chunked) and User-Agent.
    pub content_length: Option<u64>,
    pub user_agent: Option<String>,
    /// Each part as sent: name, file name, content type.
    pub parts: Vec<Part>,
}

/// One multipart part's headers, as received.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Integration {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub teams: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Resources imported through CSV or JSONL.
    #[serde(skip)]
    pub resources: Vec<Value>,
}

impl Integration {
    pub fn new(id: String, name: String, kind: String, teams: Vec<String>) -> Integration {
        let now = iso8601(SystemTime::now());
        Integration {
            id,
            name,
            kind,
            teams,
            created_at: now.clone(),
            updated_at: now,
            resources: Vec::new(),
        }
    }

    /// The API's IntegrationResponse.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "name": self.name,
            "type": self.kind,
            "credentials": {},
            "workspace_id": "00000000-0000-4000-8000-0000000000ws",
            "ssh_tunnel": null,
            "execute_access": [],
            "scheduled_extractions_hour": null,
            "scheduled_extractions_frequency": null,
            "scheduled_extractions_next_run": null,
            "scheduled_extractions_last_run": null,
            "properties": {},
            "preview_access_users": [],
            "preview_access_roles": [],
            "preview_access_groups": [],
            "teams": self.teams,
        })
    }
}

#[derive(Debug, Default)]
struct Sync {
    running_until: Option<Instant>,
    /// The answer the running sync will leave; None when it has no upload to read (it fails).
    pending: Option<Entities>,
    answer: Entities,
    /// A sync has ended since the simulator started.
    ended: bool,
}

/// Everything the simulator knows.
pub struct State {
    pub options: Options,
    conflicts_left: u32,
    failures_left: u32,
    resets_left: u32,
    writes: VecDeque<Instant>,
    pub integrations: BTreeMap<String, Integration>,
    syncs: HashMap<String, Sync>,
    pub uploads: Vec<Upload>,
    triggers: u64,
    conflicts_served: u64,
    failures_served: u64,
    resets_served: u64,
    rate_limited: u64,
    requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Body bytes read per path, those read only to be thrown away included.
    received_bytes: BTreeMap<String, u64>,
    pub imports: Vec<Value>,
}

impl State {
    pub fn new(options: Options) -> State {
        let integrations = options
            .dbt_integrations
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    Integration::new(id.clone(), "dbt Core".into(), "dbt".into(), Vec::new()),
                )
            })
            .collect();
        State {
            conflicts_left: options.conflicts,
            failures_left: options.fail_requests,
            resets_left: options.reset_uploads,
            options,
            writes: VecDeque::new(),
            integrations,
            syncs: HashMap::new(),
            uploads: Vec::new(),
            triggers: 0,
            conflicts_served: 0,
            failures_served: 0,
            resets_served: 0,
            rate_limited: 0,
            requests: BTreeMap::new(),
            received_bytes: BTreeMap::new(),
            imports: Vec::new(),
        }
    }

    /// Counts a request by path and outcome (a status code, `reset` or `aborted`).
    pub fn count(&mut self, path: &str, outcome: &str) {
        *self
            .requests
            .entry(path.to_string())
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }

    /// Counts body bytes read on `path`.
    pub fn received(&mut self, path: &str, bytes: u64) {
        *self.received_bytes.entry(path.to_string()).or_default() += bytes;
    }

    /// Whether this request gets the injected failure status.
    pub fn take_failure(&mut self, path: &str) -> bool {
        let take = self.failures_left > 0
            && self
                .options
                .fail_path
                .as_deref()
                .is_none_or(|only| path.contains(only));
        if take {
            self.failures_left -= 1;
            self.failures_served += 1;
        }
        take
    }

    /// Whether this upload is cut off mid-body.
    pub fn take_reset(&mut self) -> bool {
        let take = self.resets_left > 0;
        if take {
            self.resets_left -= 1;
            self.resets_served += 1;
        }
        take
    }

    /// For a write: None if allowed, else the seconds until one is (429 Retry-After).
    pub fn throttle(&mut self, now: Instant) -> Option<u64> {
        let limit = self.options.rate_limit? as usize;
        let window = self.options.rate_window;
        while self
            .writes
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.writes.pop_front();
        }
        if self.writes.len() >= limit {
            self.rate_limited += 1;
            let oldest = self.writes.front().copied().unwrap_or(now);
            let wait = window.saturating_sub(now.duration_since(oldest));
            return Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        self.writes.push_back(now);
        None
    }

    fn sync(&mut self, integration: &str, now: Instant) -> &mut Sync {
        let sync = self.syncs.entry(integration.to_string()).or_default();
        if sync.running_until.is_some_and(|until| now >= until) {
            sync.running_until = None;
            sync.ended = true;
            if let Some(answer) = sync.pending.take() {
                sync.answer = answer;
            }
        }
        sync
    }

    /// POST trigger/: true if a sync started, false for 409.
    pub fn trigger(&mut self, integration: &str, now: Instant) -> bool {
        let forced = self.conflicts_left > 0;
        let latest = self
            .uploads
            .iter()
            .rev()
            .find(|u| u.integration_id == integration)
            .map(|u| {
                self.options
                    .fixed_answer
                    .clone()
                    .unwrap_or_else(|| u.answer.clone())
            });
        let started = self.triggers as usize;
        let durations = &self.options.sync;
        let duration = durations
            .get(started)
            .or(durations.last())
            .copied()
            .unwrap_or_default();
        let sync = self.sync(integration, now);
        if forced || sync.running_until.is_some() {
            if forced {
                self.conflicts_left -= 1;
            }
            self.conflicts_served += 1;
            return false;
        }
        sync.running_until = Some(now + duration);
        sync.pending = latest;
        self.triggers += 1;
        true
    }

    /// GET failing_tests/ as sent: the last finished sync's answer, or `--raw-answer` once a
    /// sync has ended.
    pub fn answer_json(&mut self, integration: &str, now: Instant) -> Value {
        let raw = self.options.raw_answer.clone();
        let sync = self.sync(integration, now);
        match raw {
            Some(raw) if sync.ended => raw,
            _ => serde_json::to_value(&sync.answer).unwrap_or_default(),
        }
    }

    /// DELETE an integration and everything it brought in.
    pub fn delete(&mut self, integration: &str) -> bool {
        self.syncs.remove(integration);
        self.uploads.retain(|u| u.integration_id != integration);
        self.integrations.remove(integration).is_some()
    }

    /// The `GET /_simulator/state` document.
    pub fn snapshot(&mut self, now: Instant) -> Value {
        let ids: Vec<String> = self.syncs.keys().cloned().collect();
        let mut syncs = serde_json::Map::new();
        for id in ids {
            let sync = self.sync(&id, now);
            syncs.insert(
                id,
                json!({ "running": sync.running_until.is_some(), "answer": sync.answer }),
            );
        }
        json!({
            "uploads": self.uploads,
            "triggers": self.triggers,
            "conflicts_served": self.conflicts_served,
            "failures_served": self.failures_served,
            "resets_served": self.resets_served,
            "rate_limited": self.rate_limited,
            "requests": self.requests,
            "received_bytes": self.received_bytes,
            "syncs": syncs,
            "integrations": self.integrations.values().map(|i| json!({
                "id": i.id, "type": i.kind, "name": i.name, "resources": i.resources.len()
            })).collect::<Vec<_>>(),
            "imports": self.imports,
        })
    }
}

/// `2026-11-28T07:10:47.603Z` for a system time.
pub fn iso8601(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            conflicts: 1,
            rate_limit: Some(2),
            ..Options::without_faults("k".repeat(8), "dbt-1", Duration::from_secs(2))
        }
    }

    fn upload(answer: Entities) -> Upload {
        Upload {
            integration_id: "dbt-1".into(),
            manifest_sha256: String::new(),
            manifest_bytes: 0,
            run_results_sha256: String::new(),
            run_results_bytes: 0,
            invocation_id: None,
            manifest_invocation_id: None,
            answer,
            received_at: String::new(),
            first_byte_unix: 0.0,
            last_byte_unix: 0.0,
            content_length: None,
            user_agent: None,
            parts: Vec::new(),
        }
    }

    #[test]
    fn a_sync_answers_the_previous_result_until_it_ends() {
        let mut state = State::new(options());
        let t0 = Instant::now();
        let failing = Entities::new(["model.p.a".to_string()], []);
        state.uploads.push(upload(failing.clone()));
        assert!(
            !state.trigger("dbt-1", t0),
            "the first trigger is a forced conflict"
        );
        assert!(state.trigger("dbt-1", t0));
        assert!(
            !state.trigger("dbt-1", t0 + Duration::from_secs(1)),
            "409 while running"
        );
        let answer = |state: &mut State, at| {
            serde_json::from_value::<Entities>(state.answer_json("dbt-1", at)).unwrap()
        };
        assert_eq!(
            answer(&mut state, t0 + Duration::from_secs(1)),
            Entities::default()
        );
        assert_eq!(answer(&mut state, t0 + Duration::from_secs(2)), failing);
        assert!(state.trigger("dbt-1", t0 + Duration::from_secs(3)));
    }

    #[test]
    fn writes_are_rate_limited_per_minute() {
        let mut state = State::new(options());
        let t0 = Instant::now();
        assert_eq!(state.throttle(t0), None);
        assert_eq!(state.throttle(t0 + Duration::from_secs(10)), None);
        assert_eq!(state.throttle(t0 + Duration::from_secs(20)), Some(40));
        assert_eq!(state.throttle(t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn dates_are_iso8601() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_849_847_603);
        assert_eq!(iso8601(t), "2026-11-28T07:10:47.603Z");
    }
}
