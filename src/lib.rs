//! dbt-secoda: gets dbt Core runs into the Secoda data catalog.
//!
//! After a dbt run it checks that `target/manifest.json` and `target/run_results.json` come from
//! one dbt invocation, streams them to Secoda's `upload_artifacts` endpoint, triggers the dbt
//! sync, waits for Secoda's failing-tests answer, reports, and exits non-zero when tests fail.
//!
//! Imports flow one way (docs/architecture.md): [`cli`] → `commands` → `pipeline` → `api`,
//! [`artifacts`], `report`, `settle` → `config` → the leaves (`units`, `style`, `env_vars`,
//! `exit`, `entities`, `files`, `blocking`, `signals`, `logging`). The `simulator` is a peer the
//! client never imports. Only [`artifacts`] is public beyond [`main`]: the examples and the fuzz
//! targets use it (with the `fuzzing` feature, the other parsers too).

mod api;
pub mod artifacts;
mod blocking;
mod cli;
mod commands;
mod config;
mod entities;
mod env_vars;
mod exit;
mod files;
mod imports;
mod logging;
mod manual;
mod pipeline;
mod report;
mod settle;
mod signals;
mod simulator;
mod style;
mod units;
mod watch;

/// The parsers that read untrusted bytes, for the fuzz targets in `fuzz/` (`cargo fuzz`): the
/// CSV and JSONL import validators and the simulator's multipart parser (the artifact readers
/// are in [`artifacts`]). Built only with the `fuzzing` feature; not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::imports::{Problems, csv, jsonl};
    pub use crate::simulator::multipart;
}

/// Parses the command line, runs the command, and exits with the code [`exit`] decided.
pub fn main() -> std::process::ExitCode {
    cli::main()
}
