//! The Secoda client: one [`Client`] (auth, TLS, proxies, timeouts), the retry policy, what a
//! failed call means ([`ApiError`]), multipart bodies streamed from a producer thread, and the
//! endpoints ([`dbt`], [`integrations`]).
//!
//! Request bodies are built per attempt, so a retried upload re-reads its files. It does not
//! know about the simulator, which is a peer, nor what the bodies hold.

mod client;
pub mod dbt;
mod error;
pub mod integrations;
pub mod multipart;
pub mod pace;
mod retry;

pub use client::Client;
pub use dbt::TriggerStats;
pub use error::{ApiError, SetupError};
pub use retry::{Attempts, scaled};
