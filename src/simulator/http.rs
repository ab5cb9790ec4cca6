//! The HTTP pieces every room of the simulator uses: answers in DRF's and Django's shapes, a body
//! read and thrown away (what nginx in front does), or not read at all (gunicorn alone).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::Shared;

pub(super) type Reply = Response<Full<Bytes>>;

/// A request that ends by dropping the connection instead of answering.
#[derive(Debug)]
pub(super) struct Dropped(pub &'static str);

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Dropped {}

pub(super) fn reply(status: StatusCode, body: Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// DRF's error shape: `{"detail": "..."}`.
pub(super) fn detail(status: StatusCode, text: &str) -> Reply {
    reply(status, json!({ "detail": text }))
}

/// An HTML page, as Django or nginx write their own error pages.
pub(super) fn html_page(status: StatusCode, body: &str) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Django's own 404 page, for paths no view serves (DEBUG off).
pub(super) fn html_not_found() -> Reply {
    html_page(
        StatusCode::NOT_FOUND,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  \
         <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n",
    )
}

/// Answers before the request's body is needed: behind nginx the body is read and thrown away
/// first; with `--early-close` the connection is closed without reading it.
pub(super) async fn answer_early(
    shared: &Shared,
    req: Request<Incoming>,
    mut answer: Reply,
    close: &Notify,
) -> Result<Reply, Dropped> {
    let has_body = declared_length(&req).is_some_and(|len| len > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if shared.state().options.early_close && has_body {
        answer
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        close.notify_one();
        return Ok(answer);
    }
    discard(shared, req).await?;
    Ok(answer)
}

/// Reads a request's body to its end, counting and dropping it.
pub(super) async fn discard(shared: &Shared, req: Request<Incoming>) -> Result<(), Dropped> {
    let path = req.uri().path().to_string();
    let mut body = req.into_body();
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => {
                shared.state().received(&path, read);
                return Err(Dropped("aborted"));
            }
        }
    }
    shared.state().received(&path, read);
    Ok(())
}

/// The request's Content-Length, if it declares one.
pub(super) fn declared_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

pub(super) fn content_type(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

pub(super) fn bad_multipart() -> Reply {
    detail(
        StatusCode::BAD_REQUEST,
        "Multipart form parse error - Invalid boundary in multipart: None",
    )
}
