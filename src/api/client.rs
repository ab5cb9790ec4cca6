//! The Secoda HTTP client: auth, TLS, proxies, timeouts, and turning one attempt's outcome into
//! a [`Fault`] the retry policy understands.
//!
//! One [`Client`] per process: bearer key (a sensitive header), `User-Agent`, rustls with the
//! system roots plus `--ca-cert`, proxies from the environment, redirects never followed. A
//! small request's whole attempt is bounded by the stall timeout; streamed bodies have their own
//! watchdog ([`super::multipart`]). Response bodies are read with a cap.

use std::time::Duration;

use reqwest::{Method, Response, header};

use super::error::{ApiError, Endpoint, SetupError, error_detail, snippet};
use super::pace::Pacer;
use super::retry::{Attempts, Fault, RetryPolicy, parse_retry_after, retrying};
use crate::config::{ApiRoot, Connection, KeySource};
use crate::units::format_duration;

pub const USER_AGENT: &str = concat!("dbt-secoda/", env!("CARGO_PKG_VERSION"));

/// The largest JSON answer read (failing_tests of a very large project is a few MiB).
const MAX_ANSWER: usize = 64 << 20;
/// Error bodies are read this far: enough for any message, not for a runaway proxy page.
const MAX_ERROR_BODY: usize = 64 << 10;

/// The Secoda client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    root: ApiRoot,
    key_source: KeySource,
    retry: RetryPolicy,
    /// How many attempts a request that carries a body gets.
    max_attempts: u32,
    /// How long an attempt may make no progress before it is abandoned (and retried). Not
    /// reqwest's read timeout: that one runs from the moment a request is sent, so it would cut
    /// every upload longer than itself.
    stall: Duration,
    /// Every write request of the process goes through it (Secoda's 30 a minute).
    pacer: std::sync::Arc<Pacer>,
}

impl Client {
    pub fn new(connection: &Connection) -> Result<Client, SetupError> {
        let mut headers = header::HeaderMap::new();
        headers.insert(header::AUTHORIZATION, connection.key.header());
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10).min(connection.stall_timeout))
            .tcp_nodelay(true);
        if let Some(path) = &connection.ca_cert {
            let ca_error = |reason: String| SetupError::CaCert {
                path: path.clone(),
                reason,
            };
            let pem = crate::files::read_small(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("it holds no PEM certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| SetupError::Tls { detail: causes(&e) })?;
        Ok(Client {
            http,
            root: connection.root.clone(),
            key_source: connection.key.source.clone(),
            retry: RetryPolicy::requests(connection.retry_timeout),
            max_attempts: connection.max_attempts.max(1),
            stall: connection.stall_timeout,
            pacer: std::sync::Arc::new(Pacer::secoda(super::retry::scaled)),
        })
    }

    pub fn root(&self) -> &ApiRoot {
        &self.root
    }

    pub fn endpoint(&self, method: Method, path: &str) -> Endpoint {
        Endpoint {
            method,
            url: self.root.join(path),
        }
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn stall_timeout(&self) -> Duration {
        self.stall
    }

    /// Waits, when the method writes, until Secoda's rate limit lets it go.
    pub(crate) async fn paced(&self, method: &Method) {
        if !matches!(*method, Method::GET | Method::HEAD) {
            self.pacer.ready().await;
        }
    }

    /// The policy for small requests (no body, or a small one).
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The policy for requests that carry a (large) body: the deadline, and a budget.
    pub(crate) fn body_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: Some(self.max_attempts),
            ..self.retry
        }
    }

    /// The final error for a fault that was not retried or ran out of time; a source's own
    /// error comes back as `Err`.
    pub(crate) fn error_for<E>(
        &self,
        endpoint: &Endpoint,
        fault: Fault<E>,
        attempts: Attempts,
    ) -> Result<ApiError, E> {
        let endpoint = endpoint.clone();
        let unavailable = |last: String, status: Option<u16>| ApiError::Unavailable {
            endpoint: endpoint.clone(),
            attempts: attempts.count,
            elapsed: attempts.elapsed,
            last,
            status,
        };
        Ok(match fault {
            Fault::Source(e) => return Err(e),
            Fault::Untrusted { message } => ApiError::Untrusted {
                endpoint,
                detail: message,
            },
            f @ Fault::Transport { .. } => unavailable(f.describe(), None),
            ref f @ Fault::Status {
                status,
                ref detail,
                ref location,
                ..
            } => match status.as_u16() {
                401 | 403 => ApiError::Auth {
                    endpoint,
                    status: status.as_u16(),
                    key_source: self.key_source.clone(),
                    detail: detail.clone(),
                },
                404 => ApiError::NotFound {
                    endpoint,
                    detail: detail.clone(),
                },
                300..=399 => ApiError::Redirect {
                    endpoint,
                    status: status.as_u16(),
                    location: location.clone().unwrap_or_else(|| "(no Location)".into()),
                },
                code if f.is_transient() => unavailable(f.describe(), Some(code)),
                code => ApiError::Rejected {
                    endpoint,
                    status: code,
                    detail: detail.clone(),
                },
            },
        })
    }

    /// A request with no body (or a small one), retried; returns the 2xx answer.
    pub(crate) async fn send(
        &self,
        endpoint: &Endpoint,
        body: Option<&[u8]>,
        policy: RetryPolicy,
    ) -> Result<(Response, Attempts), ApiError> {
        let (result, attempts) =
            retrying::<_, std::convert::Infallible, _>(endpoint, policy, || {
                self.small_request(endpoint, body)
            })
            .await;
        match result {
            Ok(response) => Ok((response, attempts)),
            Err(fault) => Err(self.fatal(endpoint, fault, attempts)),
        }
    }

    fn fatal(
        &self,
        endpoint: &Endpoint,
        fault: Fault<std::convert::Infallible>,
        attempts: Attempts,
    ) -> ApiError {
        self.error_for(endpoint, fault, attempts)
            .unwrap_or_else(|never| match never {})
    }

    /// One attempt of a request with no body or a small JSON one; the 2xx answer.
    async fn small_request<E>(
        &self,
        endpoint: &Endpoint,
        body: Option<&[u8]>,
    ) -> Result<Response, Fault<E>> {
        let mut request = self
            .http
            .request(endpoint.method.clone(), endpoint.url.clone())
            // No progress to watch in a small request: the whole attempt is bounded instead.
            .timeout(self.stall);
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        self.paced(&endpoint.method).await;
        tracing::debug!("{endpoint}");
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() && !e.is_connect() {
                Fault::Transport {
                    message: format!(
                        "no answer within {} (--stall-timeout): the connection stalled",
                        format_duration(self.stall)
                    ),
                    unsent: false,
                }
            } else {
                transport(e)
            }
        })?;
        check(response).await
    }

    /// GET `endpoint`, retried, and decode its JSON answer.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &Endpoint,
    ) -> Result<T, ApiError> {
        // The body is read inside the attempt: an answer that breaks off is retried like any
        // other transient failure.
        let (result, attempts) =
            retrying::<_, std::convert::Infallible, _>(endpoint, self.retry, || async {
                let response = self.small_request(endpoint, None).await?;
                read_capped(response, MAX_ANSWER)
                    .await
                    .map_err(|e| Fault::Transport {
                        message: format!("the answer broke off: {e}"),
                        unsent: false,
                    })
            })
            .await;
        let (bytes, cut) = result.map_err(|fault| self.fatal(endpoint, fault, attempts))?;
        if cut {
            return Err(ApiError::BadResponse {
                endpoint: endpoint.clone(),
                detail: format!(
                    "the answer is larger than {} MiB; it began {}",
                    MAX_ANSWER >> 20,
                    snippet(&bytes[..bytes.len().min(300)])
                ),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadResponse {
            endpoint: endpoint.clone(),
            detail: format!("{e}; it began {}", snippet(&bytes)),
        })
    }
}

/// reqwest's message and its causes, on one line: "error sending request ...: connection refused".
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Whether the failure is rustls refusing the server's certificate, anywhere in the chain.
fn is_untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(cause) = next {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            );
        }
        // An io::Error's source() skips the error it wraps (often another io::Error), so step
        // into the wrapped one instead.
        next = match cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    false
}

pub(crate) fn transport<E>(e: reqwest::Error) -> Fault<E> {
    let mut message = causes(&e);
    if e.is_timeout() {
        message.push_str(" (timed out)");
    }
    if is_untrusted_certificate(&e) {
        return Fault::Untrusted { message };
    }
    Fault::Transport {
        message,
        unsent: e.is_connect(),
    }
}

/// A 2xx answer, or the fault it stands for (with the error body's detail).
pub(crate) async fn check<E>(response: Response) -> Result<Response, Fault<E>> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .map(String::from)
    };
    let retry_after = header(header::RETRY_AFTER).and_then(|v| parse_retry_after(&v));
    let location = header(header::LOCATION);
    let body = read_capped(response, MAX_ERROR_BODY)
        .await
        .map(|(body, _)| body)
        .unwrap_or_default();
    Err(Fault::Status {
        status,
        retry_after,
        detail: error_detail(&body),
        location,
    })
}

/// A body, at most `max` bytes of it; true when it went on beyond that.
async fn read_capped(
    mut response: Response,
    max: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}
