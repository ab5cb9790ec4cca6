//! The Secoda HTTP client: auth, TLS, proxies, timeouts, retries, and what an answer means.
//!
//! Owns one [`Client`] (bearer key, `User-Agent`, rustls with the system roots plus `--ca-cert`,
//! proxies from the environment, redirects never followed), the retry policy (transient failures
//! retried with jittered exponential backoff under a deadline, `Retry-After` honoured), and
//! [`ApiError`], which classifies every failure once so callers never look at status codes.
//! Endpoint calls live in submodules ([`dbt`]); request bodies are built per attempt, so a
//! retried upload re-reads its files. It does not know about the simulator, which is a peer.

pub mod dbt;
pub mod integrations;
pub mod multipart;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, Response, StatusCode, Url, header};

use crate::cli::format_duration;
use crate::config::{ApiKey, ApiRoot, ConfigError, KeySource};

pub const USER_AGENT: &str = concat!("dbt-secoda/", env!("CARGO_PKG_VERSION"));

/// How failed requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the first attempt.
    pub deadline: Duration,
    /// The first wait; later waits double, with jitter, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Also retry 409 Conflict (the trigger, while a sync runs).
    pub retry_conflicts: bool,
    /// The request must not run twice (creating something): retry only what surely did not
    /// reach the server (no connection made) or was refused before any work (429).
    pub once: bool,
}

impl RetryPolicy {
    /// The policy for one request: 1 s doubling to 30 s. `DBT_SECODA_RETRY_SCALE` (a factor,
    /// e.g. `0.01`) shrinks every wait for the test suite; it is not a user setting.
    pub fn requests(deadline: Duration) -> Self {
        RetryPolicy {
            deadline,
            first_delay: scaled(Duration::from_secs(1)),
            max_delay: scaled(Duration::from_secs(30)),
            retry_conflicts: false,
            once: false,
        }
    }

    /// The policy for waiting out a running sync (409): 2 s doubling to 30 s.
    pub fn sync_conflicts(deadline: Duration) -> Self {
        RetryPolicy {
            deadline,
            first_delay: scaled(Duration::from_secs(2)),
            max_delay: scaled(Duration::from_secs(30)),
            retry_conflicts: true,
            once: false,
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
    }
}

fn scaled(d: Duration) -> Duration {
    let factor = std::env::var("DBT_SECODA_RETRY_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok());
    match factor {
        Some(f) if f.is_finite() && f >= 0.0 => d.mul_f64(f),
        _ => d,
    }
}

/// A method and URL, as shown in messages.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: Method,
    pub url: Url,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

/// A Secoda call that did not succeed. Exit 4 ([`ApiError::is_refusal`]) or 5.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{endpoint} answered {status}: Secoda did not accept the API key {key_source}{}", detail_suffix(.detail))]
    Auth {
        endpoint: Endpoint,
        status: u16,
        key_source: KeySource,
        detail: String,
    },
    #[error("{endpoint} answered 404 Not Found{}", detail_suffix(.detail))]
    NotFound { endpoint: Endpoint, detail: String },
    #[error("{endpoint} answered {status}{}", detail_suffix(.detail))]
    Rejected {
        endpoint: Endpoint,
        status: u16,
        detail: String,
    },
    #[error("{endpoint} answered {status} redirecting to {location}; redirects are not followed")]
    Redirect {
        endpoint: Endpoint,
        status: u16,
        location: String,
    },
    #[error("{endpoint}: the server's TLS certificate is not trusted: {detail}")]
    Untrusted { endpoint: Endpoint, detail: String },
    #[error("{endpoint} answered something that is not what the API documents: {detail}")]
    BadResponse { endpoint: Endpoint, detail: String },
    #[error("Secoda unavailable: {endpoint} still failed after {attempts} attempts over {}: {last}", format_duration(*.elapsed))]
    Unavailable {
        endpoint: Endpoint,
        attempts: u32,
        elapsed: Duration,
        last: String,
        status: Option<u16>,
    },
    #[error("a dbt sync was still running after {}: {endpoint} answered 409 Conflict {attempts} times", format_duration(*.waited))]
    SyncBusy {
        endpoint: Endpoint,
        attempts: u32,
        waited: Duration,
    },
    #[error("Secoda's failing-tests answer did not settle within {} ({polls} polls): {reason}", format_duration(*.waited))]
    WaitTimeout {
        waited: Duration,
        polls: u32,
        reason: String,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl ApiError {
    /// True for "Secoda refused" (exit 4), false for "Secoda unavailable" (exit 5).
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            ApiError::Unavailable { .. } | ApiError::SyncBusy { .. } | ApiError::WaitTimeout { .. }
        )
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ApiError::Auth { status: 403, key_source, .. } => format!(
                "the key {key_source} was recognised but may not do this: a key has the permissions of the user \
                 who created it; use a key of a user with access to this integration"
            ),
            ApiError::Auth { key_source, .. } => format!(
                "check the key {key_source}: it must be current (Secoda → Settings → API) and belong to the \
                 workspace behind this API URL (US, EU, APAC and self-hosted keys are not interchangeable)"
            ),
            ApiError::NotFound { .. } => "check the integration id (the UUID in the integration's URL in Secoda; \
                 --integration-id for uploads) and that --api-url / --region point at the workspace that has it"
                .into(),
            ApiError::Rejected { status: 413, .. } => "the request is larger than a proxy in front of Secoda \
                 accepts; self-hosted installs behind the bundled nginx keep its 1 MiB default \
                 (client_max_body_size): raise it, e.g. `client_max_body_size 2g;`"
                .into(),
            ApiError::Rejected { .. } => return None,
            ApiError::Redirect { .. } => "wrong base URL or missing trailing slash: check --api-url (the API host, \
                 e.g. https://api.secoda.co, not the web app; https, not http; self-hosted: https://HOST/api/v1). \
                 A redirected POST would lose its files, so dbt-secoda stops instead"
                .into(),
            ApiError::Untrusted { .. } => "if a proxy inspects TLS on this network, pass its CA certificate \
                 with --ca-cert FILE or SSL_CERT_FILE; otherwise check that --api-url names the API host"
                .into(),
            ApiError::BadResponse { .. } => "is --api-url the API root? An HTML answer usually means the web app \
                 or a login page answered instead of the API"
                .into(),
            ApiError::Unavailable { status: Some(504), .. } => "a proxy gave up waiting for Secoda; self-hosted \
                 installs behind the bundled nginx keep its 60 s proxy_read_timeout, too short for large \
                 manifests: raise it (proxy_read_timeout / proxy_send_timeout)"
                .into(),
            ApiError::Unavailable { status: None, .. } => "check the API URL, the network, and proxy settings \
                 (HTTPS_PROXY, NO_PROXY); --retry-timeout sets how long to keep trying"
                .into(),
            ApiError::Unavailable { .. } => "Secoda kept failing; try again later, or raise --retry-timeout".into(),
            ApiError::SyncBusy { .. } => "another sync of this integration kept running; raise --trigger-timeout, \
                 or check the integration's sync in the Secoda web app"
                .into(),
            ApiError::WaitTimeout { .. } => "the sync may still be running (see the integration in the Secoda web \
                 app); raise --wait-timeout, or pass --no-wait to let the local results decide"
                .into(),
        })
    }
}

/// What went wrong in one attempt.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        detail: String,
        location: Option<String>,
    },
    Transport {
        message: String,
        /// The connection was never made: nothing reached the server.
        unsent: bool,
    },
    /// The server's certificate is not trusted: retrying cannot help.
    Untrusted { message: String },
    /// The request body's source failed; never retried.
    Source(E),
}

impl<E> Failure<E> {
    fn is_transient(&self) -> bool {
        match self {
            Failure::Status { status, .. } => {
                matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
            }
            Failure::Transport { .. } => true,
            Failure::Untrusted { .. } | Failure::Source(_) => false,
        }
    }

    /// Whether the server surely did not act on the request.
    fn surely_not_done(&self) -> bool {
        match self {
            Failure::Status { status, .. } => *status == StatusCode::TOO_MANY_REQUESTS,
            Failure::Transport { unsent, .. } => *unsent,
            _ => false,
        }
    }

    fn is_conflict(&self) -> bool {
        matches!(self, Failure::Status { status, .. } if *status == StatusCode::CONFLICT)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Failure::Status { status, detail, .. } => format!("{status}{}", detail_suffix(detail)),
            Failure::Transport { message, .. } | Failure::Untrusted { message } => message.clone(),
            Failure::Source(_) => "the request body could not be produced".into(),
        }
    }
}

/// Counts of one call's attempts.
#[derive(Debug, Clone, Copy)]
pub struct Attempts {
    pub count: u32,
    pub elapsed: Duration,
}

/// The Secoda client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    root: ApiRoot,
    key_source: KeySource,
    retry: RetryPolicy,
    /// How long an attempt may make no progress before it is abandoned (and retried).
    stall: Duration,
}

impl Client {
    pub fn new(
        root: ApiRoot,
        key: &ApiKey,
        ca_cert: Option<&Path>,
        retry: RetryPolicy,
    ) -> Result<Client, ConfigError> {
        let mut headers = header::HeaderMap::new();
        headers.insert(header::AUTHORIZATION, key.header());
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        if let Some(path) = ca_cert {
            let ca_error = |reason: String| ConfigError::CaCert {
                path: path.to_path_buf(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("it holds no PEM certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| ConfigError::InvalidUrl {
            url: root.to_string(),
            reason: format!("the HTTP client: {e}"),
        })?;
        Ok(Client {
            http,
            root,
            key_source: key.source.clone(),
            retry,
            stall: Duration::from_secs(120),
        })
    }

    /// Sets how long an attempt may make no progress. Not reqwest's read timeout: that one runs
    /// from the moment a request is sent, so it would cut every upload longer than itself.
    pub fn with_stall_timeout(mut self, stall: Duration) -> Client {
        self.stall = stall;
        self
    }

    pub(crate) fn stall_timeout(&self) -> Duration {
        self.stall
    }

    pub fn root(&self) -> &ApiRoot {
        &self.root
    }

    pub fn endpoint(&self, method: Method, path: &str) -> Endpoint {
        Endpoint {
            method,
            url: self.root.join(path),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy's deadline passes.
    pub(crate) async fn retrying<T, E, Fut>(
        &self,
        endpoint: &Endpoint,
        policy: RetryPolicy,
        mut attempt: impl FnMut() -> Fut,
    ) -> (Result<T, Failure<E>>, Attempts)
    where
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        let start = Instant::now();
        let count = AtomicU32::new(0);
        let result = (|| {
            count.fetch_add(1, Ordering::Relaxed);
            attempt()
        })
        .retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(|f| {
            let retry = f.is_transient() || (policy.retry_conflicts && f.is_conflict());
            retry && (!policy.once || f.surely_not_done())
        })
        .adjust(|failure, next| {
            // Retry-After lengthens the wait, never shortens it: "0" must not turn the retries
            // into a busy loop resending a whole upload.
            let asked = failure.retry_after();
            let delay = retry_delay(asked, next)?;
            let fits = start.elapsed() + delay <= policy.deadline;
            if !fits && asked.is_some_and(|a| a == delay) {
                tracing::warn!(
                    "{endpoint}: Secoda asked to retry in {}, past the time left to keep trying",
                    format_duration(delay)
                );
            }
            fits.then_some(delay)
        })
        .notify(|failure, delay| {
            let left = policy.deadline.saturating_sub(start.elapsed());
            if failure.is_conflict() {
                tracing::info!(
                    "a dbt sync is already running (409 Conflict); triggering again in {} (giving up in {})",
                    format_duration(delay),
                    format_duration(left)
                );
                return;
            }
            tracing::warn!(
                "{endpoint}: {}; retrying in {} (attempt {}, giving up in {})",
                failure.describe(),
                format_duration(delay),
                count.load(Ordering::Relaxed) + 1,
                format_duration(left)
            );
        })
        .await;
        (
            result,
            Attempts {
                count: count.load(Ordering::Relaxed),
                elapsed: start.elapsed(),
            },
        )
    }

    /// The final error for a failure that was not retried or ran out of time.
    pub(crate) fn error_for<E>(
        &self,
        endpoint: &Endpoint,
        failure: Failure<E>,
        attempts: Attempts,
    ) -> Result<ApiError, E> {
        let endpoint = endpoint.clone();
        Ok(match failure {
            Failure::Source(e) => return Err(e),
            Failure::Untrusted { message } => ApiError::Untrusted {
                endpoint,
                detail: message,
            },
            f @ Failure::Transport { .. } => ApiError::Unavailable {
                last: f.describe(),
                endpoint,
                attempts: attempts.count,
                elapsed: attempts.elapsed,
                status: None,
            },
            ref f @ Failure::Status {
                status,
                ref detail,
                ref location,
                ..
            } => match status.as_u16() {
                401 | 403 => ApiError::Auth {
                    endpoint,
                    status: status.as_u16(),
                    key_source: self.key_source.clone(),
                    detail: detail.clone(),
                },
                404 => ApiError::NotFound {
                    endpoint,
                    detail: detail.clone(),
                },
                300..=399 => ApiError::Redirect {
                    endpoint,
                    status: status.as_u16(),
                    location: location.clone().unwrap_or_else(|| "(no Location)".into()),
                },
                code if f.is_transient() => ApiError::Unavailable {
                    last: f.describe(),
                    endpoint,
                    attempts: attempts.count,
                    elapsed: attempts.elapsed,
                    status: Some(code),
                },
                code => ApiError::Rejected {
                    endpoint,
                    status: code,
                    detail: detail.clone(),
                },
            },
        })
    }

    /// A request with no body (or a small one built per attempt), retried; returns the 2xx answer.
    pub(crate) async fn send(
        &self,
        endpoint: &Endpoint,
        body: Option<&[u8]>,
    ) -> Result<(Response, Attempts), ApiError> {
        self.send_with(endpoint, body, self.retry).await
    }

    /// Like [`Client::send`], with a retry policy of the caller's.
    pub(crate) async fn send_with(
        &self,
        endpoint: &Endpoint,
        body: Option<&[u8]>,
        policy: RetryPolicy,
    ) -> Result<(Response, Attempts), ApiError> {
        let (result, attempts) = self
            .retrying::<_, std::convert::Infallible, _>(endpoint, policy, || {
                self.small_request(endpoint, body)
            })
            .await;
        match result {
            Ok(response) => Ok((response, attempts)),
            Err(failure) => Err(self
                .error_for(endpoint, failure, attempts)
                .unwrap_or_else(|never| match never {})),
        }
    }

    /// One attempt of a request with no body or a small JSON one; the 2xx answer.
    async fn small_request<E>(
        &self,
        endpoint: &Endpoint,
        body: Option<&[u8]>,
    ) -> Result<Response, Failure<E>> {
        let mut request = self
            .http
            .request(endpoint.method.clone(), endpoint.url.clone())
            // No progress to watch in a small request: the whole attempt is bounded instead.
            .timeout(self.stall);
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        tracing::debug!("{endpoint}");
        check(request.send().await.map_err(transport)?).await
    }

    /// GET `endpoint`, retried, and decode its JSON answer.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
    ) -> Result<T, ApiError> {
        // The body is read inside the attempt: an answer that breaks off is retried like any
        // other transient failure.
        let (result, attempts) = self
            .retrying::<_, std::convert::Infallible, _>(endpoint, self.retry, || async {
                let response = self.small_request(endpoint, None).await?;
                read_capped(response, MAX_ANSWER)
                    .await
                    .map_err(|e| Failure::Transport {
                        message: format!("the answer broke off: {e}"),
                        unsent: false,
                    })
            })
            .await;
        let (bytes, cut) = result.map_err(|failure| {
            self.error_for(endpoint, failure, attempts)
                .unwrap_or_else(|never| match never {})
        })?;
        if cut {
            return Err(ApiError::BadResponse {
                endpoint: endpoint.clone(),
                detail: format!(
                    "the answer is larger than {} MiB; it began {}",
                    MAX_ANSWER >> 20,
                    snippet(&bytes[..bytes.len().min(300)])
                ),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadResponse {
            endpoint: endpoint.clone(),
            detail: format!("{e}; it began {}", snippet(&bytes)),
        })
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

pub(crate) fn transport<E>(e: reqwest::Error) -> Failure<E> {
    // reqwest's message plus its causes: "error sending request ...: connection refused".
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    if e.is_timeout() {
        message.push_str(" (timed out)");
    }
    // rustls: "invalid peer certificate: UnknownIssuer", "... NotValidForName", ...
    if message.contains("certificate") {
        return Failure::Untrusted { message };
    }
    Failure::Transport {
        message,
        unsent: e.is_connect(),
    }
}

/// A 2xx answer, or the failure it stands for (with the error body's detail).
pub(crate) async fn check<E>(response: Response) -> Result<Response, Failure<E>> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = read_capped(response, MAX_ERROR_BODY)
        .await
        .map(|(body, _)| body)
        .unwrap_or_default();
    Err(Failure::Status {
        status,
        retry_after,
        detail: error_detail(&body),
        location,
    })
}

/// The largest JSON answer read (failing_tests of a very large project is a few MiB).
const MAX_ANSWER: usize = 64 << 20;
/// Error bodies are read this far: enough for any message, not for a runaway proxy page.
const MAX_ERROR_BODY: usize = 64 << 10;

/// A body, at most `max` bytes of it; true when it went on beyond that.
async fn read_capped(
    mut response: Response,
    max: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// The wait before the next attempt: the backoff's, or longer when Secoda asks for longer.
fn retry_delay(asked: Option<Duration>, backoff: Option<Duration>) -> Option<Duration> {
    match (asked, backoff) {
        (Some(asked), Some(backoff)) => Some(asked.max(backoff)),
        (asked, backoff) => asked.or(backoff),
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds.max(0.0)).ok();
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The useful part of an error body (DRF's `{"detail": ...}`, field errors, or the text), with
/// the key masked before anything is cut (a cut must not leave part of it) and kept short.
fn error_detail(body: &[u8]) -> String {
    clip(&crate::logging::redact(&raw_error_detail(body)), MAX_DETAIL)
}

/// Characters of a server's error message kept for the report.
const MAX_DETAIL: usize = 2000;

/// `text` cut to `max` characters, with "…" when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn raw_error_detail(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(detail) = value.get("detail").and_then(|d| d.as_str()) {
            return detail.to_string();
        }
        if let Some(fields) = value.as_object() {
            let parts: Vec<String> = fields
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::Array(items) => {
                        format!(
                            "{k}: {}",
                            items
                                .iter()
                                .map(|i| i.as_str().map(String::from).unwrap_or(i.to_string()))
                                .collect::<Vec<_>>()
                                .join(" ")
                        )
                    }
                    other => format!(
                        "{k}: {}",
                        other
                            .as_str()
                            .map(String::from)
                            .unwrap_or(other.to_string())
                    ),
                })
                .collect();
            return parts.join("; ");
        }
    }
    snippet(body)
}

/// The start of a body, on one line, for messages; the key is masked before the cut.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = crate::logging::redact(&String::from_utf8_lossy(body));
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        "(empty)".into()
    } else {
        clip(&one_line, 300)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn retry_after_lengthens_the_backoff_and_never_shortens_it() {
        let s = Duration::from_secs;
        assert_eq!(retry_delay(Some(s(0)), Some(s(2))), Some(s(2)));
        assert_eq!(retry_delay(Some(s(5)), Some(s(2))), Some(s(5)));
        assert_eq!(retry_delay(None, Some(s(2))), Some(s(2)));
        assert_eq!(retry_delay(Some(s(3)), None), Some(s(3)));
        assert_eq!(retry_delay(None, None), None);
        assert_eq!(parse_retry_after("-5"), Some(Duration::ZERO));
    }

    #[test]
    fn error_text_is_masked_before_it_is_cut_and_kept_short() {
        let key = "sk-unit-test-mask-0123456789";
        crate::logging::register_secret(key);
        // The key straddles the 300th character: no part of it may survive the cut.
        let mut body = "x".repeat(290);
        body.push_str(&format!(" token={key} "));
        body.push_str(&"y".repeat(100));
        let cut = snippet(body.as_bytes());
        assert!(!cut.contains("sk-unit"), "{cut}");
        assert!(cut.ends_with('…'));
        let detail =
            error_detail(format!("{{\"detail\": \"{}{key}\"}}", "z".repeat(5000)).as_bytes());
        assert!(!detail.contains("sk-unit"));
        assert_eq!(
            detail.chars().count(),
            MAX_DETAIL + 1,
            "clipped, with an ellipsis"
        );
    }

    #[test]
    fn error_bodies_read_like_drf() {
        assert_eq!(
            error_detail(br#"{"detail": "Invalid token."}"#),
            "Invalid token."
        );
        assert_eq!(
            error_detail(br#"{"manifest": ["This field is required."]}"#),
            "manifest: This field is required."
        );
        assert_eq!(
            error_detail(b"<html>\n<h1>Bad Gateway</h1></html>"),
            "<html> <h1>Bad Gateway</h1></html>"
        );
        assert_eq!(error_detail(b""), "(empty)");
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let status = |code| Failure::<()>::Status {
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: None,
            detail: String::new(),
            location: None,
        };
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(status(code).is_transient(), "{code}");
        }
        for code in [301, 400, 401, 403, 404, 409, 413] {
            assert!(!status(code).is_transient(), "{code}");
        }
    }
}
