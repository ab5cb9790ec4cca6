//! The Integrations endpoints: list (every page), get, create, delete, CSV and JSONL imports,
//! and Slack conversations.
//!
//! Owns pagination as the service really does it (`links.next` may be null, "" or the string
//! "None", or sit at the top level; a self-hosted next link may lack `/api/v1` or name an
//! internal host, so it is re-rooted on the configured root; a page cap and a seen-set stop
//! loops) and which requests may be repeated (a create is retried only when it surely did not
//! reach Secoda). It does not validate import files ([`crate::imports`]) or print anything.

use std::collections::HashSet;
use std::path::PathBuf;

use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::client::Client;
use super::error::{ApiError, Endpoint, snippet};
use super::multipart::{PartHead, UploadError, files_attempt};
use super::retry::RetryPolicy;
use crate::config::Id;

/// More pages than this is taken for a loop in the next links.
const MAX_PAGES: u32 = 10_000;

/// Every item of a list, and how many pages it took.
#[derive(Debug, Clone)]
pub struct Listing {
    pub items: Vec<Value>,
    pub pages: u32,
}

/// The next page's link, if the answer has one.
fn next_link(page: &Value) -> Option<&str> {
    let link = page
        .pointer("/links/next")
        .or_else(|| page.get("next"))?
        .as_str()?;
    let link = link.trim();
    (!link.is_empty() && link != "None" && link != "null").then_some(link)
}

impl Client {
    fn integrations(&self, method: Method, rest: &str) -> Endpoint {
        self.endpoint(method, &format!("integration/integrations/{rest}"))
    }

    /// `link` as a URL on the configured root: same scheme, host and port, and the root's path
    /// prefix (`/api/v1`) when the link lacks it.
    fn reroot(&self, current: &Url, link: &str) -> Option<Url> {
        let next = current.join(link).ok()?;
        let root = self.root().url();
        let mut url = root.clone();
        let prefix = root.path().trim_end_matches('/');
        let path = if next.path().starts_with(prefix) {
            next.path().to_string()
        } else {
            format!("{prefix}{}", next.path())
        };
        url.set_path(&path);
        url.set_query(next.query());
        Some(url)
    }

    /// GET `integration/integrations/` (optionally `?type=`), following every page.
    pub async fn list_integrations(&self, kind: Option<&str>) -> Result<Listing, ApiError> {
        let mut endpoint = self.integrations(Method::GET, "");
        if let Some(kind) = kind {
            endpoint.url.query_pairs_mut().append_pair("type", kind);
        }
        let first = endpoint.url.clone();
        let mut seen = HashSet::new();
        let mut items = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            let page: Value = self.get_json(&endpoint).await?;
            let Some(results) = page.get("results").and_then(Value::as_array) else {
                return Err(ApiError::BadResponse {
                    endpoint,
                    detail: "a list answer without a \"results\" list".into(),
                });
            };
            items.extend(results.iter().cloned());
            let next = match next_link(&page) {
                Some(link) => self.reroot(&endpoint.url, link),
                // Some answers give only the page number.
                None => page
                    .pointer("/meta/next_page")
                    .and_then(Value::as_u64)
                    .map(|n| {
                        let mut url = first.clone();
                        let kept: Vec<(String, String)> = url
                            .query_pairs()
                            .filter(|(k, _)| k != "page")
                            .map(|(k, v)| (k.into(), v.into()))
                            .collect();
                        url.query_pairs_mut()
                            .clear()
                            .extend_pairs(kept)
                            .append_pair("page", &n.to_string());
                        url
                    }),
            };
            let Some(next) = next else { break };
            if pages >= MAX_PAGES || !seen.insert(next.to_string()) {
                return Err(ApiError::BadResponse {
                    endpoint,
                    detail: format!(
                        "the next links go round in circles (stopped after {pages} pages at {next})"
                    ),
                });
            }
            tracing::debug!("next page: {next}");
            endpoint.url = next;
        }
        Ok(Listing { items, pages })
    }

    /// GET one page of `integration/integrations/`: needs a valid key and nothing else.
    pub async fn integrations_page(&self) -> Result<Value, ApiError> {
        self.get_json(&self.integrations(Method::GET, "")).await
    }

    /// GET `integration/integrations/{id}/`.
    pub async fn get_integration(&self, id: &Id) -> Result<Value, ApiError> {
        self.get_json(&self.integrations(Method::GET, &format!("{id}/")))
            .await
    }

    /// POST `integration/integrations/`. Retried only when the request surely did not reach
    /// Secoda, so a lost answer never makes two integrations.
    pub async fn create_integration(
        &self,
        name: &str,
        kind: &str,
        teams: &[String],
    ) -> Result<Value, ApiError> {
        let endpoint = self.integrations(Method::POST, "");
        let body = json!({ "name": name, "type": kind, "teams": teams, "credentials": {} });
        let policy = RetryPolicy {
            once: true,
            ..self.retry_policy()
        };
        let (response, _) = self
            .send(&endpoint, Some(body.to_string().as_bytes()), policy)
            .await?;
        let bytes = response.bytes().await.unwrap_or_default();
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadResponse {
            endpoint,
            detail: e.to_string(),
        })
    }

    /// DELETE `integration/integrations/{id}/`: the integration and every resource it brought in.
    pub async fn delete_integration(&self, id: &Id) -> Result<(), ApiError> {
        let policy = RetryPolicy {
            once: true,
            ..self.retry_policy()
        };
        self.send(
            &self.integrations(Method::DELETE, &format!("{id}/")),
            None,
            policy,
        )
        .await
        .map(|_| ())
    }

    /// POST a metadata file (or two) as multipart to `import_metadata/` or
    /// `import_jsonl_metadata/`, streamed from disk and re-read on every attempt. A file that
    /// changed size since it was checked stops the upload (`UploadError::Source`).
    pub async fn import_files(
        &self,
        id: &Id,
        action: &str,
        files: &[(PartHead, PathBuf)],
    ) -> Result<(), UploadError<std::io::Error>> {
        let endpoint = self.integrations(Method::POST, &format!("{id}/{action}/"));
        self.post_streamed(&endpoint, || files_attempt(files))
            .await
            .map(|((), _)| ())
    }

    /// GET the Slack conversations (`/api/v2/integration_v2/slack/conversations/list/`).
    pub async fn slack_conversations(&self) -> Result<Vec<Value>, ApiError> {
        let mut url = self.root().url().clone();
        // The v2 API lives beside v1 on the same host: /api/v1 → /api/v2.
        let root = url.path().trim_end_matches('/');
        let v2 = match root.strip_suffix("/v1") {
            Some(base) => format!("{base}/v2"),
            None => format!("{root}/../v2"),
        };
        url.set_path(&format!("{v2}/integration_v2/slack/conversations/list/"));
        let endpoint = Endpoint {
            method: Method::GET,
            url,
        };
        let list: Value = self.get_json(&endpoint).await?;
        match list {
            Value::Array(items) => Ok(items),
            other => Err(ApiError::BadResponse {
                endpoint,
                detail: format!(
                    "expected a list, got {}",
                    snippet(other.to_string().as_bytes())
                ),
            }),
        }
    }

    /// GET `/healthcheck/` on the API's host (beside `/api/v1`).
    pub async fn healthcheck(&self) -> Result<Value, ApiError> {
        let mut url = self.root().url().clone();
        let root = url.path().trim_end_matches('/').to_string();
        let base = root.strip_suffix("/api/v1").unwrap_or(&root);
        url.set_path(&format!("{base}/healthcheck/"));
        self.get_json(&Endpoint {
            method: Method::GET,
            url,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_in_every_shape() {
        assert_eq!(
            next_link(&json!({"links": {"next": "http://x/a?page=2"}})),
            Some("http://x/a?page=2")
        );
        for none in [
            json!({"links": {"next": null}}),
            json!({"links": {"next": ""}}),
            json!({"links": {"next": "None"}}),
            json!({}),
        ] {
            assert_eq!(next_link(&none), None, "{none}");
        }
        assert_eq!(
            next_link(&json!({"next": "/api/v1/x/?page=3"})),
            Some("/api/v1/x/?page=3")
        );
    }
}
