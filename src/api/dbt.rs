//! The dbt Core endpoints: `upload_artifacts/`, `trigger/` and `failing_tests/`.
//!
//! Owns how each is called: the upload as one streamed multipart request rebuilt for every
//! attempt, the trigger retried while Secoda answers 409 (a sync already running), and a lenient
//! reading of the failing-tests answer. It does not decide when the answer is settled
//! ([`crate::settle`]) or what the upload body holds.

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
use crate::units::printable;

/// Reads Secoda's answer: `failing` and `warning` must both be lists of entity names, as the
/// API documents (`DBTTestResultsOut`); other fields are ignored. Anything else (a string for a
/// list, a renamed key, numbers for names) is an answer not understood: reading it as "no
/// entity fails" would pass a gate Secoda meant to fail.
fn read_answer(value: &Value) -> Result<Entities, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("an object, got {}", json_kind(value)))?;
    let list = |key: &str| -> Result<Vec<String>, String> {
        let items = match object.get(key) {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(format!("\"{key}\" as a list, got {}", json_kind(other)));
            }
            None => {
                let keys: Vec<&str> = object.keys().map(String::as_str).collect();
                return Err(format!(
                    "a \"{key}\" list, got the keys {}",
                    if keys.is_empty() {
                        "(none)".to_string()
                    } else {
                        keys.join(", ")
                    }
                ));
            }
        };
        items
            .iter()
            .map(|item| {
                // A name that would drive the terminal is shown, never obeyed.
                item.as_str()
                    .map(printable)
                    .ok_or_else(|| format!("entity names in \"{key}\", got {}", json_kind(item)))
            })
            .collect()
    };
    Ok(Entities::new(list("failing")?, list("warning")?))
}

/// What a JSON value is, for messages.
fn json_kind(value: &Value) -> String {
    let what = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    format!("{what} ({})", snippet(value.to_string().as_bytes()))
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
        read_answer(&value).map_err(|expected| ApiError::BadResponse {
            endpoint,
            detail: format!(
                "expected {{\"failing\": [...], \"warning\": [...]}} with entity names: \
                 {expected}"
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
    fn failing_tests_answers_are_read_as_documented_and_nothing_else() {
        let answer = read_answer(&serde_json::json!({
            "failing": ["b", "a", "a"], "warning": ["c"], "extra": true
        }))
        .unwrap();
        assert_eq!(answer.failing, ["a", "b"]);
        assert_eq!(answer.warning, ["c"]);
        for (wrong, says) in [
            (serde_json::json!(["x"]), "an object, got a list"),
            (
                serde_json::json!({}),
                "a \"failing\" list, got the keys (none)",
            ),
            (
                serde_json::json!({"failing": "model.x", "warning": []}),
                "\"failing\" as a list, got a string",
            ),
            (
                serde_json::json!({"failing": {"model.x": 1}, "warning": []}),
                "got an object",
            ),
            (
                serde_json::json!({"failed": ["model.x"], "warning": []}),
                "got the keys failed, warning",
            ),
            (
                serde_json::json!({"failing": [], "warning": null}),
                "\"warning\" as a list, got null",
            ),
            (
                serde_json::json!({"failing": [3], "warning": []}),
                "entity names in \"failing\", got a number (3)",
            ),
        ] {
            let error = read_answer(&wrong).unwrap_err();
            assert!(error.contains(says), "{wrong}: {error}");
        }
    }
}
