//! The dbt Core endpoints: `upload_artifacts/`, `trigger/` and `failing_tests/`.
//!
//! Owns how each is called: the upload as one streamed multipart request rebuilt for every
//! attempt, the trigger retried while Secoda answers 409 (a sync already running), and a lenient
//! reading of the failing-tests answer. It does not decide when the answer is settled
//! ([`crate::settle`]) or what the upload body holds.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::client::Client;
use super::error::{ApiError, Endpoint, snippet};
use super::multipart::{UploadAttempt, UploadError};
use super::retry::{Attempts, Fault, RetryPolicy, retrying};
use crate::config::Id;
use crate::entities::Entities;

/// Reads Secoda's answer leniently: missing lists are empty, unknown fields are ignored,
/// non-string entries are kept as their JSON text.
fn read_answer(value: &Value) -> Option<Entities> {
    let object = value.as_object()?;
    let list = |key: &str| -> BTreeSet<String> {
        object
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(Entities::new(list("failing"), list("warning")))
}

/// How the trigger went.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TriggerStats {
    /// Trigger requests answered (409s included).
    pub attempts: u32,
    /// 409 answers: a sync was already running.
    pub conflicts: u32,
    #[serde(serialize_with = "crate::units::seconds")]
    pub waited: Duration,
}

impl Client {
    fn dbt_endpoint(&self, method: Method, integration: &Id, action: &str) -> Endpoint {
        self.endpoint(method, &format!("integration/dbt/{integration}/{action}/"))
    }

    pub fn upload_endpoint(&self, integration: &Id) -> Endpoint {
        self.dbt_endpoint(Method::POST, integration, "upload_artifacts")
    }

    pub fn trigger_endpoint(&self, integration: &Id) -> Endpoint {
        self.dbt_endpoint(Method::POST, integration, "trigger")
    }

    pub fn failing_tests_endpoint(&self, integration: &Id) -> Endpoint {
        self.dbt_endpoint(Method::GET, integration, "failing_tests")
    }

    /// GET `failing_tests/`.
    pub async fn failing_tests(&self, integration: &Id) -> Result<Entities, ApiError> {
        let endpoint = self.failing_tests_endpoint(integration);
        let value: Value = self.get_json(&endpoint).await?;
        read_answer(&value).ok_or_else(|| ApiError::BadResponse {
            endpoint,
            detail: format!(
                "expected {{\"failing\": [...], \"warning\": [...]}}, got {}",
                snippet(value.to_string().as_bytes())
            ),
        })
    }

    /// POST `trigger/`, waiting out 409 (a sync already running) for up to `timeout`.
    pub async fn trigger_sync(
        &self,
        integration: &Id,
        timeout: Duration,
    ) -> Result<TriggerStats, ApiError> {
        let endpoint = self.trigger_endpoint(integration);
        let start = Instant::now();
        let policy = RetryPolicy::sync_conflicts(timeout);
        let (result, attempts) = retrying::<_, ApiError, _>(&endpoint, policy, || async {
            match self.send(&endpoint, None, self.retry_policy()).await {
                Ok(_) => Ok(()),
                Err(ApiError::Rejected {
                    status: 409,
                    detail,
                    ..
                }) => Err(Fault::Status {
                    status: StatusCode::CONFLICT,
                    retry_after: None,
                    detail,
                    location: None,
                    challenge: None,
                }),
                Err(other) => Err(Fault::Source(other)),
            }
        })
        .await;
        let conflicts = attempts.count - u32::from(result.is_ok());
        match result {
            Ok(()) => Ok(TriggerStats {
                attempts: attempts.count,
                conflicts,
                waited: start.elapsed(),
            }),
            Err(fault) if fault.is_conflict() => Err(ApiError::SyncBusy {
                endpoint,
                attempts: conflicts,
                waited: start.elapsed(),
            }),
            Err(fault) => Err(self
                .error_for(&endpoint, fault, attempts)
                .unwrap_or_else(|e| e)),
        }
    }

    /// POST `upload_artifacts/` with a body `make` builds afresh for every attempt.
    pub async fn upload_artifacts<T, E>(
        &self,
        integration: &Id,
        make: impl FnMut() -> UploadAttempt<T, E>,
    ) -> Result<(T, Attempts), UploadError<E>> {
        self.post_streamed(&self.upload_endpoint(integration), make)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_tests_answers_are_read_leniently() {
        let answer = read_answer(&serde_json::json!({
            "failing": ["b", "a", "a"], "warning": [3], "extra": true
        }))
        .unwrap();
        assert_eq!(answer.failing, ["a", "b"]);
        assert_eq!(answer.warning, ["3"]);
        assert_eq!(
            read_answer(&serde_json::json!({})),
            Some(Entities::default())
        );
        assert_eq!(read_answer(&serde_json::json!(["x"])), None);
    }
}
