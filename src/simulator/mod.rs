//! A local Secoda API simulator: the Integrations API of `openapi.json`, in memory, over real
//! HTTP, behaving like the stack Secoda most likely runs (Django REST Framework under gunicorn
//! behind nginx), including where that stack is unkind.
//!
//! The rooms: [`server`] (the listener and each connection: lingering or abortive closes),
//! [`http`] (answers in DRF's and Django's shapes, bodies read, dropped or left unread),
//! [`routes`] (what is decided from the request line and headers: faults, routing, the key, the
//! rate limit, nginx's body-size limit), [`handlers`] (the endpoints), [`receive`] (the upload
//! receiver), [`reading`] (its own serde_json reading of what arrives), [`naming`] (how its
//! answer names entities), [`state`] (the world and the sync model) and [`multipart`].
//!
//! It is an honest peer: it never uses the client's readers or requests; tests, benchmarks and
//! the demo talk to it over loopback like any Secoda. The client never imports this module.

mod handlers;
mod http;
pub mod multipart;
mod naming;
mod reading;
mod receive;
mod routes;
mod server;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

pub use naming::Naming;
pub use state::Options;
use state::State;

/// The dbt Core integration the simulator creates unless told otherwise.
pub const DEFAULT_DBT_INTEGRATION: &str = "5ec0da00-0000-4000-8000-00000000db70";

/// A running simulator; it serves until dropped.
pub struct Simulator {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// What every connection shares.
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
    /// Binds `addr` and serves in the background.
    pub async fn start(addr: SocketAddr, options: Options) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = std::sync::Arc::new(Shared {
            state: Mutex::new(State::new(options)),
        });
        let task = tokio::spawn(server::serve(listener, shared));
        Ok(Simulator { addr, task })
    }

    /// `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}
