//! What a Secoda call that did not succeed means: [`ApiError`] (exit 4 or 5), classified once so
//! callers never look at status codes, and [`SetupError`] for a client that cannot be built.
//!
//! Also owns how an error body becomes a message: DRF's `{"detail": ...}`, field errors, or the
//! text, with the key masked before anything is cut.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, Url};

use crate::config::KeySource;
use crate::env_vars;
use crate::exit::{ExitCode, Failure};
use crate::units::{clip, count, format_duration, one_line, printable};

/// A method and URL, as shown in messages.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: Method,
    pub url: Url,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)
    }
}

/// A Secoda call that did not succeed. Exit 4 (refused) or 5 (unavailable).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{endpoint} answered {status}: Secoda did not accept the API key {key_source}{}", detail_suffix(.detail))]
    Auth {
        endpoint: Endpoint,
        status: u16,
        key_source: KeySource,
        detail: String,
    },
    #[error("{endpoint} answered 404 Not Found{}", detail_suffix(.detail))]
    NotFound { endpoint: Endpoint, detail: String },
    #[error("{endpoint} answered {status}{}", detail_suffix(.detail))]
    Rejected {
        endpoint: Endpoint,
        status: u16,
        detail: String,
    },
    #[error("{endpoint} answered {status} redirecting to {location}; redirects are not followed")]
    Redirect {
        endpoint: Endpoint,
        status: u16,
        location: String,
    },
    #[error("{endpoint}: {}: {detail}", tls_refusal(*.refusal))]
    Tls {
        endpoint: Endpoint,
        refusal: TlsRefusal,
        detail: String,
        /// The client certificate given, if any.
        client_cert: Option<PathBuf>,
    },
    #[error("{endpoint}: a proxy refused the request: {detail}")]
    Proxy { endpoint: Endpoint, detail: String },
    #[error("{endpoint} answered something that is not what the API documents: {detail}")]
    BadResponse { endpoint: Endpoint, detail: String },
    #[error("Secoda unavailable: {endpoint} still failed after {} over {}: {last}", count(*.attempts, "attempt"), format_duration(*.elapsed))]
    Unavailable {
        endpoint: Endpoint,
        attempts: u32,
        elapsed: Duration,
        last: String,
        status: Option<u16>,
    },
    #[error("a dbt sync was still running after {}: {endpoint} answered 409 Conflict {}", format_duration(*.waited), count(*.attempts, "time"))]
    SyncBusy {
        endpoint: Endpoint,
        attempts: u32,
        waited: Duration,
    },
    #[error("Secoda's failing-tests answer did not settle within {} ({}): {reason}", format_duration(*.waited), count(*.polls, "poll"))]
    WaitTimeout {
        waited: Duration,
        polls: u32,
        reason: String,
    },
}

/// Why a TLS connection cannot be made, whatever the number of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRefusal {
    /// The server's certificate is not trusted.
    Untrusted,
    /// The server speaks plain HTTP where TLS was expected (`https://` to an `http://` port,
    /// or a URL without a scheme, which is taken as https).
    PlainHttp,
    /// The server asks for a client certificate, or did not accept the one given.
    ClientCertificate,
}

fn tls_refusal(refusal: TlsRefusal) -> &'static str {
    match refusal {
        TlsRefusal::Untrusted => "the server's TLS certificate is not trusted",
        TlsRefusal::PlainHttp => "the server answered in plain HTTP, not HTTPS",
        TlsRefusal::ClientCertificate => {
            "the server refused the TLS connection: it wants a client certificate it trusts"
        }
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl Failure for ApiError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ApiError::Unavailable { .. }
            | ApiError::SyncBusy { .. }
            | ApiError::WaitTimeout { .. } => ExitCode::Unavailable,
            _ => ExitCode::Refused,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ApiError::Auth { status: 403, key_source, .. } => format!(
                "the key {key_source} was recognised but may not do this: a key has the permissions of the user \
                 who created it; use a key of a user with access to this integration"
            ),
            ApiError::Auth { key_source, .. } => format!(
                "check the key {key_source}: it must be current (Secoda → Settings → API) and belong to the \
                 workspace behind this API URL (US, EU, APAC and self-hosted keys are not interchangeable)"
            ),
            ApiError::NotFound { .. } => "check the integration id (the UUID in the integration's URL in Secoda; \
                 --integration-id for uploads) and that --api-url / --region point at the workspace that has it"
                .into(),
            ApiError::Rejected { status: 413, .. } => "the request is larger than a proxy in front of Secoda \
                 accepts; self-hosted installs behind the bundled nginx keep its 1 MiB default \
                 (client_max_body_size): raise it, e.g. `client_max_body_size 2g;`"
                .into(),
            ApiError::Proxy { .. } => PROXY_LOGIN_HINT.into(),
            ApiError::Rejected { .. } => return None,
            ApiError::Redirect { .. } => "wrong base URL or missing trailing slash: check --api-url (the API host, \
                 e.g. https://api.secoda.co, not the web app; https, not http; self-hosted: https://HOST/api/v1). \
                 A redirected POST would lose its files, so dbt-secoda stops instead"
                .into(),
            ApiError::Tls {
                refusal: TlsRefusal::Untrusted,
                ..
            } => "if a proxy inspects TLS on this network, pass its CA certificate \
                 with --ca-cert FILE or SSL_CERT_FILE; otherwise check that --api-url names the API host"
                .into(),
            ApiError::Tls {
                refusal: TlsRefusal::PlainHttp,
                endpoint,
                ..
            } => format!(
                "a URL without a scheme is taken as https://; if this server speaks plain HTTP (a \
                 local simulator, say), write --api-url http://{}{}",
                endpoint.url.host_str().unwrap_or("HOST"),
                endpoint.url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            ApiError::Tls {
                refusal: TlsRefusal::ClientCertificate,
                client_cert: None,
                ..
            } => format!(
                "pass the client certificate and its key (PEM) with --client-cert and --client-key, \
                 or {} and {}",
                env_vars::CLIENT_CERT,
                env_vars::CLIENT_KEY
            ),
            ApiError::Tls {
                refusal: TlsRefusal::ClientCertificate,
                client_cert: Some(path),
                ..
            } => format!(
                "the server did not accept the client certificate {}: check that it was issued by a \
                 CA the server trusts, has not expired, and is meant for client authentication",
                path.display()
            ),
            ApiError::BadResponse { .. } => "is --api-url the API root? An HTML answer usually means the web app \
                 or a login page answered instead of the API"
                .into(),
            ApiError::Unavailable { status: Some(504), .. } => "a proxy gave up waiting for Secoda; self-hosted \
                 installs behind the bundled nginx keep its 60 s proxy_read_timeout, too short for large \
                 manifests: raise it (proxy_read_timeout / proxy_send_timeout)"
                .into(),
            ApiError::Unavailable { status: None, .. } => "check the API URL, the network, and proxy settings \
                 (HTTPS_PROXY, NO_PROXY); --retry-timeout sets how long to keep trying"
                .into(),
            ApiError::Unavailable { .. } => {
                "Secoda kept failing; try again later, or raise --retry-timeout / --max-attempts".into()
            }
            ApiError::SyncBusy { .. } => "another sync of this integration kept running; raise --trigger-timeout, \
                 or check the integration's sync in the Secoda web app"
                .into(),
            ApiError::WaitTimeout { .. } => "the sync may still be running, or Secoda's answer disagrees with this \
                 run's results (see the integration in the Secoda web app); raise --wait-timeout, or pass \
                 --no-wait to let the local results decide"
                .into(),
        })
    }
}

/// What to do when a proxy refuses: a 407, a Basic challenge, or a refused CONNECT.
const PROXY_LOGIN_HINT: &str = "a proxy between here and Secoda wants a login: give it in the \
     proxy's URL, HTTPS_PROXY=http://USER:PASSWORD@HOST:PORT (HTTP_PROXY for plain http://), and \
     check it (characters such as @ : / % in it need percent-encoding); if the login is right, ask \
     whoever runs the proxy to allow this host and port";

/// The HTTP client could not be built (exit 2): a CA file, or TLS set-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read the CA certificate file {path}: {reason}", path = .path.display())]
    CaCert { path: PathBuf, reason: String },
    #[error("cannot use the client certificate {path}: {reason}", path = .path.display())]
    ClientIdentity { path: PathBuf, reason: String },
    #[error("cannot set up the HTTPS client: {detail}")]
    Tls { detail: String },
}

impl Failure for SetupError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            SetupError::CaCert { .. } => {
                "--ca-cert takes a PEM file with one or more CA certificates".into()
            }
            SetupError::ClientIdentity { .. } => format!(
                "--client-cert ({}) takes a PEM file with the certificate (and its chain); \
                 --client-key ({}) the unencrypted PEM key that belongs to it, unless the \
                 certificate's file holds it too",
                env_vars::CLIENT_CERT,
                env_vars::CLIENT_KEY
            ),
            SetupError::Tls { .. } => {
                "the system's CA certificates could not be loaded: install them \
                 (e.g. the ca-certificates package), or point SSL_CERT_FILE at a PEM bundle"
                    .into()
            }
        })
    }
}

/// Characters of a server's error message kept for the report.
pub(super) const MAX_DETAIL: usize = 2000;

/// The useful part of an error body (DRF's `{"detail": ...}`, field errors, or the text), with
/// the key masked before anything is cut (a cut must not leave part of it) and kept short.
pub(super) fn error_detail(body: &[u8]) -> String {
    clip(
        &printable(&crate::logging::redact(&raw_error_detail(body))),
        MAX_DETAIL,
    )
}

fn raw_error_detail(body: &[u8]) -> String {
    let value = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => value,
        Err(_) => return html_title(body).unwrap_or_else(|| snippet(body)),
    };
    if let Some(detail) = value.get("detail").and_then(|d| d.as_str()) {
        return detail.to_string();
    }
    let Some(fields) = value.as_object() else {
        return snippet(body);
    };
    let text = |v: &serde_json::Value| v.as_str().map(String::from).unwrap_or(v.to_string());
    fields
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::Array(items) => format!(
                "{k}: {}",
                items.iter().map(text).collect::<Vec<_>>().join(" ")
            ),
            other => format!("{k}: {}", text(other)),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The `<title>` of an HTML error page (a proxy's or the web app's), which says what its 20
/// lines of markup say.
fn html_title(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    let title = one_line(text[start..end].trim(), 200);
    (!title.is_empty()).then(|| format!("{title} (an HTML page)"))
}

/// The start of a body, on one line, for messages; the key is masked before the cut.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = one_line(
        &printable(&crate::logging::redact(&String::from_utf8_lossy(body))),
        300,
    );
    if text.is_empty() {
        "(empty)".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_is_masked_before_it_is_cut_and_kept_short() {
        let key = "sk-unit-test-mask-0123456789";
        crate::logging::register_secret(key);
        // The key straddles the 300th character: no part of it may survive the cut.
        let mut body = "x".repeat(290);
        body.push_str(&format!(" token={key} "));
        body.push_str(&"y".repeat(100));
        let cut = snippet(body.as_bytes());
        assert!(!cut.contains("sk-unit"), "{cut}");
        assert!(cut.ends_with('…'));
        let detail =
            error_detail(format!("{{\"detail\": \"{}{key}\"}}", "z".repeat(5000)).as_bytes());
        assert!(!detail.contains("sk-unit"));
        assert_eq!(
            detail.chars().count(),
            MAX_DETAIL + 1,
            "clipped, with an ellipsis"
        );
    }

    #[test]
    fn error_bodies_read_like_drf() {
        assert_eq!(
            error_detail(br#"{"detail": "Invalid token."}"#),
            "Invalid token."
        );
        assert_eq!(
            error_detail(br#"{"manifest": ["This field is required."]}"#),
            "manifest: This field is required."
        );
        assert_eq!(
            error_detail(b"<html>\n<h1>Bad Gateway</h1></html>"),
            "<html> <h1>Bad Gateway</h1></html>"
        );
        assert_eq!(
            error_detail(b"<html>\r\n<head><title>413 Request Entity Too Large</title></head><body>...</body></html>"),
            "413 Request Entity Too Large (an HTML page)"
        );
        assert_eq!(error_detail(b""), "(empty)");
        assert_eq!(
            error_detail(b"{\"detail\": \"\\u001b[2Jgone\\u0007\"}"),
            "\\u{1b}[2Jgone\\u{7}"
        );
    }
}
