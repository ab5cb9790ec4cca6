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

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::Shared;
use super::http::{Dropped, Reply, answer_early, reply};
use super::routes::{self, Early};

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
