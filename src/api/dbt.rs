//! The dbt Core endpoints: `upload_artifacts/`, `trigger/` and `failing_tests/`.
//!
//! Owns how each is called: the upload as one streamed multipart request rebuilt for every
//! attempt, the trigger retried while Secoda answers 409 (a sync already running), and a lenient
//! reading of the failing-tests answer. It does not decide when the answer is settled
//! ([`crate::pipeline::settle`]) or what the body holds.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::multipart::{UploadAttempt, UploadError};
use super::{ApiError, Attempts, Client, Endpoint, Failure, RetryPolicy};

/// Secoda's answer to `failing_tests/`: entities with failing and with warning tests, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailingTests {
    pub failing: Vec<String>,
    pub warning: Vec<String>,
}

impl FailingTests {
    /// Reads the answer leniently: missing lists are empty, unknown fields are ignored,
    /// non-string entries are kept as their JSON text.
    pub fn from_json(value: &Value) -> Option<FailingTests> {
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
        Some(FailingTests {
            failing: list("failing").into_iter().collect(),
            warning: list("warning").into_iter().collect(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.failing.is_empty() && self.warning.is_empty()
    }
}

/// How the trigger went.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TriggerStats {
    /// Trigger requests answered (409s included).
    pub attempts: u32,
    /// 409 answers: a sync was already running.
    pub conflicts: u32,
    #[serde(serialize_with = "crate::report::seconds")]
    pub waited: Duration,
}

impl Client {
    fn dbt_endpoint(&self, method: Method, integration: &str, action: &str) -> Endpoint {
        self.endpoint(method, &format!("integration/dbt/{integration}/{action}/"))
    }

    pub fn upload_endpoint(&self, integration: &str) -> Endpoint {
        self.dbt_endpoint(Method::POST, integration, "upload_artifacts")
    }

    pub fn trigger_endpoint(&self, integration: &str) -> Endpoint {
        self.dbt_endpoint(Method::POST, integration, "trigger")
    }

    pub fn failing_tests_endpoint(&self, integration: &str) -> Endpoint {
        self.dbt_endpoint(Method::GET, integration, "failing_tests")
    }

    /// GET `failing_tests/`.
    pub async fn failing_tests(&self, integration: &str) -> Result<FailingTests, ApiError> {
        let endpoint = self.failing_tests_endpoint(integration);
        let value: Value = self.get_json(&endpoint).await?;
        FailingTests::from_json(&value).ok_or_else(|| ApiError::BadResponse {
            endpoint,
            detail: format!(
                "expected {{\"failing\": [...], \"warning\": [...]}}, got {}",
                truncate(&value.to_string())
            ),
        })
    }

    /// POST `trigger/`, waiting out 409 (a sync already running) for up to `timeout`.
    pub async fn trigger_sync(
        &self,
        integration: &str,
        timeout: Duration,
    ) -> Result<TriggerStats, ApiError> {
        let endpoint = self.trigger_endpoint(integration);
        let start = Instant::now();
        let policy = RetryPolicy::sync_conflicts(timeout);
        let (result, attempts) = self
            .retrying::<_, ApiError, _>(&endpoint, policy, || async {
                match self.send(&endpoint, None).await {
                    Ok(_) => Ok(()),
                    Err(ApiError::Rejected {
                        status: 409,
                        detail,
                        ..
                    }) => Err(Failure::Status {
                        status: StatusCode::CONFLICT,
                        retry_after: None,
                        detail,
                        location: None,
                    }),
                    Err(other) => Err(Failure::Source(other)),
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
            Err(Failure::Status {
                status: StatusCode::CONFLICT,
                ..
            }) => Err(ApiError::SyncBusy {
                endpoint,
                attempts: conflicts,
                waited: start.elapsed(),
            }),
            Err(failure) => Err(self
                .error_for(&endpoint, failure, attempts)
                .unwrap_or_else(|e| e)),
        }
    }

    /// POST `upload_artifacts/` with a body `make` builds afresh for every attempt.
    pub async fn upload_artifacts<T, E>(
        &self,
        integration: &str,
        make: impl FnMut() -> UploadAttempt<T, E>,
    ) -> Result<(T, Attempts), UploadError<E>> {
        self.post_streamed(&self.upload_endpoint(integration), make)
            .await
    }
}

fn truncate(text: &str) -> String {
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_tests_answers_are_read_leniently() {
        let answer = FailingTests::from_json(&serde_json::json!({
            "failing": ["b", "a", "a"], "warning": [3], "extra": true
        }))
        .unwrap();
        assert_eq!(answer.failing, ["a", "b"]);
        assert_eq!(answer.warning, ["3"]);
        assert_eq!(
            FailingTests::from_json(&serde_json::json!({})),
            Some(FailingTests::default())
        );
        assert_eq!(FailingTests::from_json(&serde_json::json!(["x"])), None);
    }
}
