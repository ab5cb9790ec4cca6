//! A local Secoda API simulator: the Integrations API of `openapi.json`, in memory, over real HTTP.
//!
//! Owns the server (hyper, HTTP/1.1), routing as the real service does it (trailing-slash
//! redirects, DRF-style errors, bearer-key check), the endpoints' behaviour, and fault injection
//! (conflicts, failure statuses, rate limits, cut uploads, latency). Uploads are read as they
//! arrive: sha256, length, JSON validity and test outcomes, with the same artifact readers the
//! client uses, so memory stays flat whatever the upload's size. The client never imports this
//! module; tests, benchmarks and the demo talk to it over loopback like any Secoda.

pub mod multipart;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::artifacts::Level;
use crate::artifacts::outcomes::{ManifestVisitor, RunResultsVisitor, Wanted};
use crate::artifacts::scan::{Scanner, SyntaxError};
use crate::cli::SimulatorArgs;
use crate::exit::ExitCode;
pub use state::Options;
use state::{Answer, Integration, State, Upload};

/// The dbt Core integration the simulator creates unless told otherwise.
pub const DEFAULT_DBT_INTEGRATION: &str = "5ec0da00-0000-4000-8000-00000000db70";

/// The Slack conversations the simulator lists.
const SLACK_CONVERSATIONS: [(&str, &str); 3] = [
    ("C0DATA0001", "data-alerts"),
    ("C0DATA0002", "analytics-eng"),
    ("C0DATA0003", "dbt-runs"),
];

/// A running simulator.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Simulator {
    /// Binds `addr` and serves in the background until dropped.
    pub async fn start(addr: SocketAddr, options: Options) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(options)),
        });
        let serving = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Simulator { addr, shared, task })
    }

    /// `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `GET /_simulator/state` document.
    pub fn state(&self) -> Value {
        self.shared.state().snapshot(Instant::now())
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl From<&SimulatorArgs> for Options {
    fn from(args: &SimulatorArgs) -> Options {
        Options {
            api_key: args.api_key.expose().to_string(),
            dbt_integrations: args.dbt_integrations.clone(),
            sync: Duration::from_secs_f64(args.sync_seconds.max(0.0)),
            conflicts: args.conflicts,
            fail_requests: args.fail_requests,
            fail_status: args.fail_status,
            fail_path: args.fail_path.clone(),
            upload_bytes_per_second: args.upload_bytes_per_second,
            fixed_answer: args.fixed_answer.clone().map(|a| Answer {
                failing: a.failing,
                warning: a.warning,
            }),
            rate_limit: args.rate_limit,
            reset_uploads: args.reset_uploads,
            latency: Duration::from_millis(args.latency),
            page_size: args.page_size.max(1),
            self_hosted_links: args.self_hosted_links,
        }
    }
}

/// `dbt-secoda simulator`: serves until Ctrl-C or SIGTERM.
pub async fn command(args: SimulatorArgs) -> ExitCode {
    // Request logs carry the Authorization header at trace level.
    crate::logging::register_secret(args.api_key.expose());
    let simulator = match Simulator::start(args.listen, Options::from(&args)).await {
        Ok(s) => s,
        Err(source) => {
            let e = crate::config::ConfigError::Listen {
                addr: args.listen,
                source,
            };
            crate::logging::print_stderr(&format!(
                "error: {e}\nhint: {}\n",
                e.hint().unwrap_or_default()
            ));
            return ExitCode::Usage;
        }
    };
    crate::logging::print_stdout(&format!("listening on {}\n", simulator.url()));
    for id in &args.dbt_integrations {
        tracing::info!("dbt Core integration {id}");
    }
    let _ = crate::interruptible(std::future::pending::<Result<(), crate::Error>>()).await;
    tracing::info!("simulator stopped");
    ExitCode::Success
}

type Reply = Response<Full<Bytes>>;

/// A request that ends by dropping the connection instead of answering.
#[derive(Debug)]
struct Dropped(&'static str);

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Dropped {}

fn reply(status: StatusCode, body: Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn detail(status: StatusCode, text: &str) -> Reply {
    reply(status, json!({ "detail": text }))
}

/// The routes, as (method, pattern) with `{}` for one path segment. Patterns end with `/`.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthcheck/"),
    ("GET", "/api/v1/healthcheck/"),
    ("GET", "/api/v1/integration/integrations/"),
    ("POST", "/api/v1/integration/integrations/"),
    ("GET", "/api/v1/integration/integrations/{}/"),
    ("DELETE", "/api/v1/integration/integrations/{}/"),
    (
        "POST",
        "/api/v1/integration/integrations/{}/import_metadata/",
    ),
    (
        "POST",
        "/api/v1/integration/integrations/{}/import_jsonl_metadata/",
    ),
    ("POST", "/api/v1/integration/dbt/{}/upload_artifacts/"),
    ("POST", "/api/v1/integration/dbt/{}/trigger/"),
    ("GET", "/api/v1/integration/dbt/{}/failing_tests/"),
    ("GET", "/api/v2/integration_v2/slack/conversations/list/"),
];

/// The matching route's pattern and the `{}` segment, if any.
fn route(path: &str) -> Option<(&'static str, Option<String>)> {
    ROUTES.iter().find_map(|(_, pattern)| {
        let (p, s) = (
            pattern.split('/').collect::<Vec<_>>(),
            path.split('/').collect::<Vec<_>>(),
        );
        if p.len() != s.len() {
            return None;
        }
        let mut id = None;
        for (want, got) in p.iter().zip(&s) {
            if *want == "{}" && !got.is_empty() {
                id = Some(got.to_string());
            } else if want != got {
                return None;
            }
        }
        Some((*pattern, id))
    })
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, Dropped> {
    let path = req.uri().path().to_string();
    let result = respond(&shared, req).await;
    let outcome = match &result {
        Ok(response) => response.status().as_u16().to_string(),
        Err(Dropped(what)) => what.to_string(),
    };
    shared.state().count(&path, &outcome);
    result
}

async fn respond(shared: &Shared, req: Request<Incoming>) -> Result<Reply, Dropped> {
    let path = req.uri().path().to_string();
    if path == "/_simulator/state" || path == "/_simulator/state/" {
        return Ok(reply(
            StatusCode::OK,
            shared.state().snapshot(Instant::now()),
        ));
    }
    let latency = shared.state().options.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match gate(shared, &req) {
        Ok((pattern, id)) => dispatch(shared, req, pattern, id).await,
        Err(answer) => early(req, *answer).await,
    }
}

/// Answers before the request's body is read: reads and discards the body first, as a server
/// with a lingering close does, so a client still sending sees the answer instead of a broken
/// pipe.
async fn early(req: Request<Incoming>, answer: Reply) -> Result<Reply, Dropped> {
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return Err(Dropped("aborted"));
        }
    }
    Ok(answer)
}

/// What is decided from the request line and headers alone: injected faults, routing, the
/// method, the key and the rate limit. Err is the answer; Ok is the route to dispatch.
fn gate(shared: &Shared, req: &Request<Incoming>) -> Result<(&'static str, String), Box<Reply>> {
    let path = req.uri().path();
    let method = req.method();
    if let Some(response) = injected_failure(shared, req) {
        return Err(Box::new(response));
    }
    let Some((pattern, id)) = route(path) else {
        if !path.ends_with('/') && route(&format!("{path}/")).is_some() {
            // Django's APPEND_SLASH: a redirect, which turns a POST into a GET that loses its body.
            let mut response = detail(StatusCode::MOVED_PERMANENTLY, "Moved Permanently");
            let location =
                HeaderValue::from_str(&format!("{path}/")).unwrap_or(HeaderValue::from_static("/"));
            response.headers_mut().insert(header::LOCATION, location);
            return Err(Box::new(response));
        }
        return Err(Box::new(detail(StatusCode::NOT_FOUND, "Not found.")));
    };
    if !ROUTES
        .iter()
        .any(|(m, p)| *p == pattern && *m == method.as_str())
    {
        return Err(Box::new(detail(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Method \"{method}\" not allowed."),
        )));
    }
    if pattern.ends_with("healthcheck/") {
        return Err(Box::new(reply(StatusCode::OK, json!({ "status": "OK" }))));
    }
    if let Some(response) = check_auth(shared, req) {
        return Err(Box::new(response));
    }
    let is_write = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if is_write && let Some(wait) = shared.state().throttle(Instant::now()) {
        let mut response = detail(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Request was throttled. Expected available in {wait} seconds."),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Err(Box::new(response));
    }
    Ok((pattern, id.unwrap_or_default()))
}

/// Runs the endpoint.
async fn dispatch(
    shared: &Shared,
    req: Request<Incoming>,
    pattern: &'static str,
    id: String,
) -> Result<Reply, Dropped> {
    let method = req.method().clone();
    let now = Instant::now();
    match (method.as_str(), pattern) {
        ("GET", "/api/v1/integration/integrations/") => Ok(list_integrations(shared, &req)),
        ("POST", "/api/v1/integration/integrations/") => create_integration(shared, req).await,
        ("GET", "/api/v1/integration/integrations/{}/") => {
            Ok(match shared.state().integrations.get(&id) {
                Some(integration) => reply(StatusCode::OK, integration.to_json()),
                None => detail(StatusCode::NOT_FOUND, "Not found."),
            })
        }
        ("DELETE", "/api/v1/integration/integrations/{}/") => Ok(if shared.state().delete(&id) {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        } else {
            detail(StatusCode::NOT_FOUND, "Not found.")
        }),
        ("POST", p) if p.ends_with("import_metadata/") || p.ends_with("import_jsonl_metadata/") => {
            import(shared, req, &id, p.ends_with("import_jsonl_metadata/")).await
        }
        ("GET", "/api/v2/integration_v2/slack/conversations/list/") => Ok(reply(
            StatusCode::OK,
            Value::Array(
                SLACK_CONVERSATIONS
                    .iter()
                    .map(|(id, name)| json!({"id": id, "name": name}))
                    .collect(),
            ),
        )),
        (_, p) if p.starts_with("/api/v1/integration/dbt/") => {
            if let Some(response) = check_dbt_integration(shared, &id) {
                return early(req, response).await;
            }
            match p.rsplit('/').nth(1) {
                Some("upload_artifacts") => upload_artifacts(shared, req, &id).await,
                Some("trigger") => Ok(if shared.state().trigger(&id, now) {
                    detail(StatusCode::OK, "Integration sync triggered successfully.")
                } else {
                    detail(
                        StatusCode::CONFLICT,
                        "Integration sync already in progress.",
                    )
                }),
                _ => Ok(reply(
                    StatusCode::OK,
                    serde_json::to_value(shared.state().answer(&id, now)).unwrap_or_default(),
                )),
            }
        }
        _ => Ok(detail(StatusCode::NOT_FOUND, "Not found.")),
    }
}

fn injected_failure(shared: &Shared, req: &Request<Incoming>) -> Option<Reply> {
    let mut state = shared.state();
    if !state.take_failure(req.uri().path()) {
        return None;
    }
    let code = state.options.fail_status;
    drop(state);
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = detail(status, "Simulated failure (--fail-requests).");
    let headers = response.headers_mut();
    if matches!(code, 429 | 503) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if status.is_redirection() {
        // As a host move or an http→https redirect would: the same path elsewhere.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let target = format!("https://{host}{}", req.uri().path());
        headers.insert(
            header::LOCATION,
            HeaderValue::from_str(&target).unwrap_or(HeaderValue::from_static("/")),
        );
    }
    Some(response)
}

fn check_auth(shared: &Shared, req: &Request<Incoming>) -> Option<Reply> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let problem = match given.and_then(|v| v.strip_prefix("Bearer ")) {
        None => "Authentication credentials were not provided.",
        Some(key) if key == shared.state().options.api_key => return None,
        Some(_) => "Invalid token.",
    };
    let mut response = detail(StatusCode::UNAUTHORIZED, problem);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

fn check_dbt_integration(shared: &Shared, id: &str) -> Option<Reply> {
    match shared.state().integrations.get(id) {
        None => Some(detail(StatusCode::NOT_FOUND, "Not found.")),
        Some(i) if i.kind != "dbt" => Some(detail(
            StatusCode::BAD_REQUEST,
            &format!(
                "Integration {id} is a {} integration, not dbt Core.",
                i.kind
            ),
        )),
        Some(_) => None,
    }
}

fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn list_integrations(shared: &Shared, req: &Request<Incoming>) -> Reply {
    let state = shared.state();
    let kind = query_param(req, "type");
    let items: Vec<Value> = state
        .integrations
        .values()
        .filter(|i| kind.as_deref().is_none_or(|k| i.kind == k))
        .map(Integration::to_json)
        .collect();
    let size = state.options.page_size;
    let pages = items.len().div_ceil(size).max(1);
    let page = query_param(req, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1);
    if page == 0 || page > pages {
        return detail(StatusCode::NOT_FOUND, "Invalid page.");
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let self_hosted = state.options.self_hosted_links;
    let link = |p: usize| {
        let filter = kind
            .as_deref()
            .map(|k| format!("&type={k}"))
            .unwrap_or_default();
        Value::String(if self_hosted {
            // Behind the bundled nginx the backend sees neither the public host nor /api/v1.
            format!("http://backend:8000/integration/integrations/?page={p}{filter}")
        } else {
            format!("http://{host}/api/v1/integration/integrations/?page={p}{filter}")
        })
    };
    let none = || {
        if self_hosted {
            Value::String("None".into())
        } else {
            Value::Null
        }
    };
    let results: Vec<Value> = items
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .cloned()
        .collect();
    reply(
        StatusCode::OK,
        json!({
            "links": {
                "next": if page < pages { link(page + 1) } else { none() },
                "previous": if page > 1 { link(page - 1) } else { none() },
            },
            "meta": {
                "page": page,
                "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
                "next_page": if page < pages { json!(page + 1) } else { Value::Null },
            },
            "count": items.len(),
            "total_pages": pages,
            "results": results,
        }),
    )
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Dropped> {
    let body = http_body_util::Limited::new(req.into_body(), limit);
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| Dropped("aborted"))
}

async fn create_integration(shared: &Shared, req: Request<Incoming>) -> Result<Reply, Dropped> {
    let body = read_body(req, 1 << 20).await?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return Ok(detail(
            StatusCode::BAD_REQUEST,
            "JSON parse error - expected an object.",
        ));
    };
    let Some(name) = fields
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
    else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            json!({ "name": ["This field is required."] }),
        ));
    };
    let kind = fields
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("custom");
    let teams = match fields.get("teams") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        Some(_) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                json!({ "teams": ["Expected a list of items."] }),
            ));
        }
    };
    let integration = Integration::new(new_id(), name.to_string(), kind.to_string(), teams);
    let body = integration.to_json();
    shared
        .state()
        .integrations
        .insert(integration.id.clone(), integration);
    Ok(reply(StatusCode::CREATED, body))
}

/// A random UUID (version 4 layout).
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let (a, b) = (random(), random());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// CSV and JSONL metadata imports: the integration must exist; the named parts must be present.
async fn import(
    shared: &Shared,
    req: Request<Incoming>,
    id: &str,
    jsonl: bool,
) -> Result<Reply, Dropped> {
    if !shared.state().integrations.contains_key(id) {
        return early(req, detail(StatusCode::NOT_FOUND, "Not found.")).await;
    }
    let parts = match read_form(req).await? {
        Ok(parts) => parts,
        Err(response) => return Ok(response),
    };
    let required = if jsonl { "resources_file" } else { "file" };
    let find = |name: &str| {
        parts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, body)| body.as_slice())
    };
    let Some(body) = find(required) else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            json!({ required: ["No file was submitted."] }),
        ));
    };
    // The same rules the client checks before sending, applied to what arrived.
    let refuse = |part: &str, problems: crate::imports::Problems| {
        let listed: Vec<String> = problems.listed.iter().map(ToString::to_string).collect();
        reply(StatusCode::BAD_REQUEST, json!({ part: listed }))
    };
    let record = if jsonl {
        let (summary, known) = match crate::imports::jsonl::validate_resources(body, &[]) {
            Ok(checked) => checked,
            Err(problems) => return Ok(refuse("resources_file", problems)),
        };
        let lineages = match find("lineages_file") {
            None => 0,
            Some(lineages) => match crate::imports::jsonl::validate_lineages(lineages, &known) {
                Ok(count) => count,
                Err(problems) => return Ok(refuse("lineages_file", problems)),
            },
        };
        json!({ "kind": "jsonl", "resources": summary.resources, "by_type": summary.by_type, "lineages": lineages })
    } else {
        match crate::imports::csv::validate(body) {
            Ok(summary) => json!({ "kind": "csv", "rows": summary.rows, "tables": summary.tables }),
            Err(problems) => return Ok(refuse("file", problems)),
        }
    };
    let mut state = shared.state();
    state
        .imports
        .push(json!({ "integration_id": id, "import": record.clone() }));
    if let Some(integration) = state.integrations.get_mut(id) {
        integration.resources.push(record);
    }
    Ok(detail(
        StatusCode::OK,
        "Integration metadata uploaded successfully.",
    ))
}

/// A whole (small) multipart form in memory, or the 400 answer for a malformed one.
async fn read_form(
    req: Request<Incoming>,
) -> Result<Result<Vec<(String, Vec<u8>)>, Reply>, Dropped> {
    let Some(boundary) = content_type(&req)
        .as_deref()
        .and_then(multipart::Parser::boundary)
    else {
        return early(req, bad_multipart()).await.map(Err);
    };
    let body = read_body(req, 256 << 20).await?;
    let mut parser = multipart::Parser::new(&boundary);
    let mut events = Vec::new();
    if parser.push(&body, &mut events).is_err() || !parser.is_done() {
        return Ok(Err(bad_multipart()));
    }
    let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
    for event in events {
        match event {
            multipart::Event::Start { name, .. } => parts.push((name, Vec::new())),
            multipart::Event::Data(data) => {
                if let Some((_, body)) = parts.last_mut() {
                    body.extend_from_slice(&data);
                }
            }
            multipart::Event::End => {}
        }
    }
    Ok(Ok(parts))
}

fn content_type(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

fn bad_multipart() -> Reply {
    detail(
        StatusCode::BAD_REQUEST,
        "Multipart form parse error - Invalid boundary in multipart: None",
    )
}

/// One artifact part as it arrives: hashed, counted and validated in passing.
struct Receiving<V> {
    sha: Sha256,
    bytes: u64,
    scanner: Option<Scanner<V>>,
    error: Option<SyntaxError>,
}

impl<V: crate::artifacts::scan::Visitor> Receiving<V> {
    fn new(visitor: V) -> Self {
        Receiving {
            sha: Sha256::new(),
            bytes: 0,
            scanner: Some(Scanner::new(visitor)),
            error: None,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.bytes += data.len() as u64;
        if let Some(scanner) = self.scanner.as_mut()
            && let Err(e) = scanner.feed(data)
        {
            self.error = Some(e);
            self.scanner = None;
        }
    }

    /// The visitor if the part was complete JSON, and the hex sha256.
    fn finish(self) -> (Result<V, SyntaxError>, String, u64) {
        let sha = format!("{:x}", self.sha.finalize());
        let result = match (self.error, self.scanner) {
            (Some(e), _) => Err(e),
            (None, Some(scanner)) => scanner.finish(),
            (None, None) => unreachable!("a scanner is dropped only on error"),
        };
        (result, sha, self.bytes)
    }
}

async fn upload_artifacts(
    shared: &Shared,
    req: Request<Incoming>,
    id: &str,
) -> Result<Reply, Dropped> {
    let Some(boundary) = content_type(&req)
        .as_deref()
        .and_then(multipart::Parser::boundary)
    else {
        return early(req, bad_multipart()).await;
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let cut_at = shared
        .state()
        .take_reset()
        .then(|| declared.unwrap_or(0) / 2);
    let read_rate = shared.state().options.upload_bytes_per_second;
    let mut body = req.into_body();
    let mut parser = multipart::Parser::new(&boundary);
    let mut events = Vec::new();
    let mut received = 0u64;
    let mut run_results_digest: Option<(String, u64)> = None;
    let mut run_results: Option<Receiving<RunResultsVisitor>> = None;
    let mut run: Option<Result<crate::artifacts::RunOutcome, SyntaxError>> = None;
    let mut manifest: Option<Receiving<ManifestVisitor>> = None;
    let mut current: Option<&'static str> = None;
    let mut malformed = false;
    let mut parts = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Dropped("aborted"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if cut_at.is_some_and(|cut| received > cut) {
            return Err(Dropped("reset"));
        }
        if let Some(rate) = read_rate {
            // A slow link: this frame's bytes take their time before the next is read.
            tokio::time::sleep(Duration::from_secs_f64(data.len() as f64 / rate as f64)).await;
        }
        if malformed || parser.push(&data, &mut events).is_err() {
            // Read on to the end, then answer: see `early`.
            malformed = true;
            continue;
        }
        for event in events.drain(..) {
            match event {
                multipart::Event::Start {
                    name,
                    file_name,
                    content_type,
                } => {
                    parts.push(state::Part {
                        name: name.clone(),
                        file_name,
                        content_type,
                    });
                    current = match name.as_str() {
                        "run_results" => {
                            run_results = Some(Receiving::new(RunResultsVisitor::new()));
                            Some("run_results")
                        }
                        "manifest" => {
                            // Facts for the tests that did not pass if run_results came first
                            // (dbt-secoda sends it first), else for every test.
                            let wanted = match &run {
                                Some(Ok(run)) => Wanted::Only(run.wanted_nodes()),
                                _ => Wanted::AllTests,
                            };
                            manifest = Some(Receiving::new(ManifestVisitor::new(wanted)));
                            Some("manifest")
                        }
                        _ => None,
                    }
                }
                multipart::Event::Data(chunk) => match current {
                    Some("run_results") => {
                        run_results.as_mut().map(|r| r.feed(&chunk)).unwrap_or(())
                    }
                    Some("manifest") => manifest.as_mut().map(|r| r.feed(&chunk)).unwrap_or(()),
                    _ => {}
                },
                multipart::Event::End => {
                    if current == Some("run_results")
                        && let Some(receiving) = run_results.take()
                    {
                        let (result, sha, bytes) = receiving.finish();
                        run_results_digest = Some((sha, bytes));
                        run = Some(result.map(RunResultsVisitor::finish));
                    }
                    current = None;
                }
            }
        }
    }
    if malformed || !parser.is_done() {
        return Ok(bad_multipart());
    }
    let missing: Vec<&str> = [
        ("run_results", run.is_none()),
        ("manifest", manifest.is_none()),
    ]
    .iter()
    .filter(|(_, missing)| *missing)
    .map(|(name, _)| *name)
    .collect();
    if !missing.is_empty() {
        let fields: serde_json::Map<String, Value> = missing
            .iter()
            .map(|m| (m.to_string(), json!(["No file was submitted."])))
            .collect();
        return Ok(reply(StatusCode::BAD_REQUEST, Value::Object(fields)));
    }
    let (Some(run), Some(manifest), Some((run_results_sha256, run_results_bytes))) =
        (run, manifest, run_results_digest)
    else {
        unreachable!("checked above")
    };
    let (manifest, manifest_sha256, manifest_bytes) = manifest.finish();
    let invalid = |part: &str, e: SyntaxError| {
        reply(
            StatusCode::BAD_REQUEST,
            json!({ part: [format!("Upload a valid JSON file: {e}.")] }),
        )
    };
    let run = match run {
        Ok(run) => run,
        Err(e) => return Ok(invalid("run_results", e)),
    };
    let (manifest_invocation_id, facts) = match manifest {
        Ok(visitor) => visitor.finish(),
        Err(e) => return Ok(invalid("manifest", e)),
    };
    let mut failing = std::collections::BTreeSet::new();
    let mut warning = std::collections::BTreeSet::new();
    if run.has_test_outcomes() {
        for test in &run.not_passed {
            let entity = facts
                .get(&test.unique_id)
                .and_then(|f| f.entity(&test.unique_id))
                .unwrap_or_else(|| test.unique_id.clone());
            match test.level {
                Level::Failing => failing.insert(entity),
                Level::Warning => warning.insert(entity),
                _ => false,
            };
        }
    }
    warning.retain(|e| !failing.contains(e));
    let upload = Upload {
        integration_id: id.to_string(),
        manifest_sha256,
        manifest_bytes,
        run_results_sha256,
        run_results_bytes,
        invocation_id: run.invocation_id,
        manifest_invocation_id,
        answer: Answer {
            failing: failing.into_iter().collect(),
            warning: warning.into_iter().collect(),
        },
        received_at: state::iso8601(SystemTime::now()),
        content_length: declared,
        user_agent,
        parts,
    };
    shared.state().uploads.push(upload);
    Ok(detail(StatusCode::OK, "Artifacts uploaded successfully."))
}
