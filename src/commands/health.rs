//! `dbt-secoda health URL`: a probe for container health checks that needs no shell or curl in
//! the image. Exit 0 when the URL answers 2xx within the timeout, 1 otherwise.

use std::time::Duration;

use crate::exit::{self, ExitCode};
use crate::report::print_error;

pub async fn run(url: &str, timeout: Duration) -> ExitCode {
    // The probe talks to this machine's watcher: never through a proxy.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build();
    let answered = match client {
        Ok(client) => client.get(url).send().await,
        Err(e) => {
            print_error(&format!("cannot probe {url}: {e}"), None);
            return exit::probe(false);
        }
    };
    match answered {
        Ok(response) if response.status().is_success() => exit::probe(true),
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            print_error(&format!("{url} answered {status}: {}", body.trim()), None);
            exit::probe(false)
        }
        Err(e) => {
            print_error(
                &format!("{url} did not answer: {e}"),
                Some("is `dbt-secoda watch --health-listen` running with that address?"),
            );
            exit::probe(false)
        }
    }
}
