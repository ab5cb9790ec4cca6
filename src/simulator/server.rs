//! The listener and each connection: HTTP/1.1 through hyper, answers built by [`super::routes`]
//! and [`super::handlers`], and the ways the real stack ends a request early.
//!
//! Behind nginx (the default) a request answered before its body is needed still has its body
//! read and thrown away, so a client that is still sending sees the answer. With
//! `--early-close` the connection is closed without reading, as gunicorn does when nothing is in
//! front of it: the client is left with a broken pipe or a reset. With `--max-body-bytes` the 413
//! comes at once and what the client sends anyway is read and dropped while it keeps sending
//! (nginx's lingering close).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::Shared;
use super::routes::{self, Early};

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

/// Accepts connections until the task is aborted.
pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, Arc::clone(&shared)));
    }
}

/// One connection. `close` is notified by a request whose answer ends the connection.
async fn connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let close = Arc::new(Notify::new());
    let service_close = Arc::clone(&close);
    let service = hyper::service::service_fn(move |req| {
        let (shared, close) = (Arc::clone(&shared), Arc::clone(&service_close));
        async move { handle(shared, req, &close).await }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = &mut conn => return,
        () = close.notified() => {}
    }
    // Let the answer leave, then drop the socket with the request body unread: the kernel answers
    // what the client still sends with a reset, as it does for gunicorn.
    let _ = tokio::time::timeout(Duration::from_millis(50), &mut conn).await;
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    close: &Notify,
) -> Result<Reply, Dropped> {
    let path = req.uri().path().to_string();
    let result = respond(&shared, req, close).await;
    let outcome = match &result {
        Ok(response) => response.status().as_u16().to_string(),
        Err(Dropped(what)) => what.to_string(),
    };
    shared.state().count(&path, &outcome);
    result
}

async fn respond(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    close: &Notify,
) -> Result<Reply, Dropped> {
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
    match routes::gate(shared, &req) {
        Ok((route, id)) => super::handlers::dispatch(shared, req, route, id, close).await,
        Err(Early::TooLarge(answer)) => {
            linger(shared, req);
            Ok(*answer)
        }
        Err(Early::Answer(answer)) => answer_early(shared, req, *answer, close).await,
    }
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

/// nginx after a 413: whatever the client still sends is read and thrown away, for at most
/// 30 s (`lingering_time`), while the answer is already on its way.
fn linger(shared: &Arc<Shared>, req: Request<Incoming>) {
    let shared = Arc::clone(shared);
    let path = req.uri().path().to_string();
    let mut body = req.into_body();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(Ok(frame)) = body.frame().await {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                shared.state().received(&path, n);
            }
        })
        .await;
    });
}
