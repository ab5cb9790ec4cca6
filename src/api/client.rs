//! The Secoda HTTP client: auth, TLS, proxies, timeouts, and turning one attempt's outcome into
//! a [`Fault`] the retry policy understands.
//!
//! One [`Client`] per process: bearer key (a sensitive header), `User-Agent`, rustls with the
//! system roots plus `--ca-cert`, proxies from the environment, redirects never followed. A
//! small request's whole attempt is bounded by the stall timeout; streamed bodies have their own
//! watchdog ([`super::multipart`]). Response bodies are read with a cap.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, Response, header};

use super::error::{ApiError, Endpoint, SetupError, TlsRefusal, error_detail, snippet};
use super::pace::Pacer;
use super::retry::{Attempts, Fault, RetryPolicy, parse_retry_after, retrying};
use crate::config::{ApiRoot, ClientIdentity, Connection, KeySource};
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
    /// The client certificate given (mutual TLS), for messages.
    client_cert: Option<PathBuf>,
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
            let pem = crate::files::read_small(path, MAX_PEM_FILE)
                .map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("it holds no PEM certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if let Some(client) = &connection.client {
            builder = builder.identity(identity(client)?);
        }
        register_proxy_logins();
        let http = builder.build().map_err(|e| match &connection.client {
            // The certificate and key parsed, so what rustls refuses now is the pair (a key that
            // does not belong to the certificate, say).
            Some(client) if has_cause::<rustls::Error>(&e) => SetupError::ClientIdentity {
                path: client.cert.clone(),
                reason: causes(&e),
            },
            _ => SetupError::Tls { detail: causes(&e) },
        })?;
        Ok(Client {
            http,
            root: connection.root.clone(),
            key_source: connection.key.source.clone(),
            client_cert: connection.client.as_ref().map(|c| c.cert.clone()),
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
            Fault::Tls { refusal, message } => ApiError::Tls {
                endpoint,
                refusal,
                detail: message,
                client_cert: self.client_cert.clone(),
            },
            Fault::Proxy { message } => ApiError::Proxy {
                endpoint,
                detail: message,
            },
            f @ Fault::Transport { .. } => unavailable(f.describe(), None),
            ref f @ Fault::Status {
                status,
                ref detail,
                ref location,
                ref challenge,
                ..
            } => match status.as_u16() {
                // Secoda's API takes its key as a Bearer token and never asks for a user name
                // and password: a Basic challenge comes from a proxy (tinyproxy answers a wrong
                // login with 401) or a web server in front.
                code @ (401 | 407) if code == 407 || challenge.as_deref().is_some_and(is_basic) => {
                    ApiError::Proxy {
                        endpoint,
                        detail: format!(
                            "{status}, asking for a user name and password ({})",
                            challenge.as_deref().unwrap_or("no challenge given")
                        ),
                    }
                }
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
                        // The attempt's time limit ran out while the body was still coming:
                        // reqwest calls that "error decoding response body".
                        message: if e.is_timeout() {
                            format!(
                                "the answer was still arriving after {} (--stall-timeout): the \
                                 connection is stalled or very slow",
                                format_duration(self.stall)
                            )
                        } else {
                            format!("the answer broke off: {}", causes(&e))
                        },
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

/// The first error of type `T` in the chain of causes.
fn find_cause<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(e);
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
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
    None
}

fn has_cause<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    find_cause::<T>(e).is_some()
}

/// Whether rustls' error means TLS cannot work with this server as configured, whatever the
/// number of attempts: an untrusted certificate, a server speaking plain HTTP, or a server
/// refusing (the lack of) a client certificate.
fn tls_refusal(e: &(dyn std::error::Error + 'static)) -> Option<TlsRefusal> {
    use rustls::AlertDescription as Alert;
    match find_cause::<rustls::Error>(e)? {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::UnsupportedNameType => Some(TlsRefusal::Untrusted),
        // The first bytes back are not a TLS record: "HTTP/1.1 400 Bad Request".
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            Some(TlsRefusal::PlainHttp)
        }
        // Alerts the server sends about the certificate the client showed (or did not).
        rustls::Error::AlertReceived(
            Alert::CertificateRequired
            | Alert::BadCertificate
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::CertificateUnknown
            | Alert::UnknownCA
            | Alert::AccessDenied,
        ) => Some(TlsRefusal::ClientCertificate),
        _ => None,
    }
}

fn is_basic(challenge: &str) -> bool {
    challenge
        .trim_start()
        .get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "))
}

/// Whether a proxy refused to open a tunnel (CONNECT) for an https URL: a 407 (its login), or
/// any other answer than 200 (tinyproxy answers a wrong login with 401; a 403 is its rules).
/// hyper-util keeps its tunnel error type private, so its text is all there is to go on.
fn is_refused_tunnel(message: &str) -> bool {
    message.contains("tunnel error: proxy authorization required")
        || message.contains("tunnel error: unsuccessful")
}

pub(crate) fn transport<E>(e: reqwest::Error) -> Fault<E> {
    let mut message = causes(&e);
    if e.is_timeout() {
        message.push_str(" (timed out)");
    }
    if let Some(refusal) = tls_refusal(&e) {
        return Fault::Tls { refusal, message };
    }
    if is_refused_tunnel(&message) {
        return Fault::Proxy {
            message: format!("it would not open a tunnel (CONNECT) to the API host: {message}"),
        };
    }
    Fault::Transport {
        message,
        unsent: e.is_connect(),
    }
}

/// Proxies come from the environment (reqwest reads them); a login in one becomes a secret
/// here, so neither a log line nor an error can show it.
fn register_proxy_logins() {
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        if let Some(url) = std::env::var(name)
            .ok()
            .and_then(|v| reqwest::Url::parse(&v).ok())
        {
            crate::config::register_login(url.username(), url.password());
        }
    }
}

/// The largest certificate or key file read (a CA bundle of every public root is under 300 KiB).
const MAX_PEM_FILE: u64 = 4 << 20;

/// The client certificate and its key (PEM), from one file or two.
fn identity(client: &ClientIdentity) -> Result<reqwest::Identity, SetupError> {
    let error = |path: &PathBuf, reason: String| SetupError::ClientIdentity {
        path: path.clone(),
        reason,
    };
    let read = |path: &PathBuf| {
        crate::files::read_small(path, MAX_PEM_FILE).map_err(|e| error(path, e.to_string()))
    };
    let mut pem = read(&client.cert)?;
    if let Some(key) = &client.key {
        pem.push(b'\n');
        pem.extend(read(key)?);
    }
    let text = String::from_utf8_lossy(&pem);
    let blame = client.key.as_ref().unwrap_or(&client.cert);
    if let Some(warning) = crate::config::open_to_others(blame, "client key") {
        tracing::warn!("{warning}");
    }
    if text.contains("ENCRYPTED") {
        return Err(error(
            blame,
            "the private key is encrypted; dbt-secoda reads unencrypted PEM keys \
             (`openssl pkey -in KEY -out KEY.pem` writes one)"
                .into(),
        ));
    }
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(error(&client.cert, "it holds no PEM certificate".into()));
    }
    if !text.contains("PRIVATE KEY-----") {
        return Err(error(
            blame,
            "no PEM private key found (pass it with --client-key when it is in a file of its own)"
                .into(),
        ));
    }
    reqwest::Identity::from_pem(&pem).map_err(|e| error(blame, causes(&e)))
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
    let challenge = header(header::PROXY_AUTHENTICATE).or_else(|| header(header::WWW_AUTHENTICATE));
    let body = read_capped(response, MAX_ERROR_BODY)
        .await
        .map(|(body, _)| body)
        .unwrap_or_default();
    Err(Fault::Status {
        status,
        retry_after,
        detail: error_detail(&body),
        location,
        challenge,
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
