//! `dbt-secoda simulator`: a local Secoda API until Ctrl-C or SIGTERM. The first line on stdout
//! says where it listens.

use std::net::SocketAddr;

use super::{Error, UsageError};
use crate::exit::ExitCode;
use crate::exit::{self, OnApiError};
use crate::report::print_failure;
use crate::signals::Signals;
use crate::simulator::{Options, Simulator};

pub async fn run(listen: SocketAddr, options: Options) -> ExitCode {
    // Request logs carry the Authorization header at trace level.
    crate::logging::register_secret(&options.api_key);
    let integrations = options.dbt_integrations.clone();
    let simulator = match Simulator::start(listen, options).await {
        Ok(s) => s,
        Err(e) => {
            let error = Error::Usage(UsageError {
                message: format!("cannot listen on {listen}: {e}"),
                hint: Some("pick another --listen address or port".into()),
            });
            print_failure(&error);
            return exit::decide(
                Some(exit::Failure::exit_code(&error)),
                false,
                OnApiError::Fail,
            );
        }
    };
    crate::logging::print_stdout(&format!("listening on {}\n", simulator.url()));
    for id in &integrations {
        tracing::info!("dbt Core integration {id}");
    }
    let signal = Signals::new().next().await;
    tracing::info!("{signal}: simulator stopped");
    exit::decide(None, false, OnApiError::Fail)
}
