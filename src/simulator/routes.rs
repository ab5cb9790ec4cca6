//! What is decided from the request line and headers alone, in the order the real stack decides
//! it: nginx's body-size limit, injected faults, Django's routing (an HTML 404 for unknown paths,
//! a 301 to the path with its trailing slash), the method, DRF's key check and rate limit.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use super::Shared;
use super::http::{Reply, declared_length, detail, html_not_found, html_page, reply};

/// An endpoint: method and path pattern, `{}` standing for one path segment.
pub(super) type Route = &'static str;

/// The routes, as (method, pattern). Patterns end with `/`.
const ROUTES: &[(&str, Route)] = &[
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
fn route(path: &str) -> Option<(Route, Option<String>)> {
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

/// An answer decided before the body is needed.
pub(super) enum Early {
    /// Answered by the application: the body is read first (or, `--early-close`, not at all).
    Answer(Box<Reply>),
    /// Answered by nginx for a body over `--max-body-bytes`: at once, reading and dropping
    /// whatever still comes.
    TooLarge(Box<Reply>),
}

/// The route to dispatch, or the answer given without it.
pub(super) fn gate(shared: &Shared, req: &Request<Incoming>) -> Result<(Route, String), Early> {
    let answer = |r: Reply| Early::Answer(Box::new(r));
    let limit = shared.state().options.max_body_bytes;
    if let (Some(limit), Some(len)) = (limit, declared_length(req))
        && len > limit
    {
        return Err(Early::TooLarge(Box::new(too_large())));
    }
    let path = req.uri().path();
    if let Some(response) = injected_failure(shared, req) {
        return Err(answer(response));
    }
    let Some((pattern, id)) = route(path) else {
        if !path.ends_with('/') && route(&format!("{path}/")).is_some() {
            // Django's APPEND_SLASH: a redirect, which turns a POST into a GET that loses its body.
            let mut response = detail(StatusCode::MOVED_PERMANENTLY, "Moved Permanently");
            let location =
                HeaderValue::from_str(&format!("{path}/")).unwrap_or(HeaderValue::from_static("/"));
            response.headers_mut().insert(header::LOCATION, location);
            return Err(answer(response));
        }
        return Err(answer(html_not_found()));
    };
    let method = req.method();
    if !ROUTES
        .iter()
        .any(|(m, p)| *p == pattern && *m == method.as_str())
    {
        return Err(answer(detail(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Method \"{method}\" not allowed."),
        )));
    }
    if pattern.ends_with("healthcheck/") {
        return Err(answer(reply(StatusCode::OK, json!({ "status": "OK" }))));
    }
    if let Some(response) = check_auth(shared, req) {
        return Err(answer(response));
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
        return Err(answer(response));
    }
    Ok((pattern, id.unwrap_or_default()))
}

/// nginx's own 413 page.
fn too_large() -> Reply {
    let mut response = html_page(
        StatusCode::PAYLOAD_TOO_LARGE,
        "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n\
         <center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n\
         </body>\r\n</html>\r\n",
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn injected_failure(shared: &Shared, req: &Request<Incoming>) -> Option<Reply> {
    let mut state = shared.state();
    if !state.take_failure(req.uri().path()) {
        return None;
    }
    let code = state.options.fail_status;
    let retry_after = !state.options.fail_without_retry_after;
    let text = state
        .options
        .fail_detail
        .clone()
        .unwrap_or_else(|| "Simulated failure (--fail-requests).".into());
    drop(state);
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = detail(status, &text);
    let headers = response.headers_mut();
    if retry_after && matches!(code, 429 | 503) {
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
