//! Resolved settings: plain values (from the command line, the environment, or code) turned into
//! checked types.
//!
//! Owns the API root (region, bare hosts, known wrong hosts, the plain-http rule), the API key
//! (which never leaves [`ApiKey`] except as an HTTP header, and whose source is named in messages
//! without showing it), ids safe in a URL path ([`Id`]), and where the artifacts are (target
//! folder, `dbt_project.yml`'s `target-path`, single-file overrides). [`ConnectionInput`] becomes
//! a [`Connection`], which is all the HTTP client needs. Which flag came from the environment is
//! the command line's business; this module is given the candidates in order.
//! It does not read artifacts or talk to Secoda.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

use crate::env_vars;
use crate::exit::{ExitCode, Failure};
use crate::files::{self, OpenError};

/// A configuration problem (exit 2). `hint` says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no Secoda API key was given")]
    MissingKey,
    #[error("both --api-key and --api-key-file were given")]
    TwoKeys,
    #[error("cannot read the API key file {path}: {reason}", path = .path.display())]
    KeyFile { path: PathBuf, reason: String },
    #[error("the API key {source_desc} is empty")]
    EmptyKey { source_desc: String },
    #[error("the API key {source_desc} contains characters an HTTP header cannot carry")]
    InvalidKey { source_desc: String },
    #[error("--client-key was given without --client-cert")]
    KeyWithoutCert,
    #[error("no dbt integration id was given")]
    MissingIntegration,
    #[error("the API URL {url:?} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "the API URL {url:?} has a user name or password in it: refused, since it would replace the API key and show wherever the URL is printed"
    )]
    UrlCredentials { url: String },
    #[error("refusing to send the API key over plain http to {host}")]
    InsecureHttp { host: String },
    #[error(
        "--wait-timeout {wait} leaves no room for two polls every --poll-interval {poll}: the answer could never settle"
    )]
    WaitTooShort { wait: String, poll: String },
    #[error("{path} not found: --project-dir must be a dbt project folder", path = .path.display())]
    NoProjectFile { path: PathBuf },
    #[error("cannot read {path}: {reason}", path = .path.display())]
    ProjectFile { path: PathBuf, reason: String },
    #[error("the JUnit report {path} cannot be written: its folder does not exist", path = .path.display())]
    JunitFolder { path: PathBuf },
}

impl Failure for ConfigError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ConfigError::MissingKey => format!(
                "set {}, or pass --api-key-file FILE (create a key in Secoda under Settings → API)",
                env_vars::API_KEY
            ),
            ConfigError::TwoKeys => "pass the key one way only".into(),
            ConfigError::KeyWithoutCert => format!(
                "pass the certificate too: --client-cert FILE (or {}); a key alone proves nothing",
                env_vars::CLIENT_CERT
            ),
            ConfigError::KeyFile { .. } => format!(
                "check the path given to --api-key-file / {}",
                env_vars::API_KEY_FILE
            ),
            ConfigError::EmptyKey { .. } | ConfigError::InvalidKey { .. } => {
                "copy the key again from Secoda (Settings → API); it is one line of printable characters".into()
            }
            ConfigError::MissingIntegration => format!(
                "pass --integration-id or set {}: the UUID in the dbt Core integration's URL in Secoda",
                env_vars::INTEGRATION_ID
            ),
            ConfigError::InvalidUrl { .. } => {
                "use e.g. https://api.secoda.co, https://eapi.secoda.co or https://secoda.example.com/api/v1".into()
            }
            ConfigError::UrlCredentials { .. } => format!(
                "Secoda authenticates with the API key alone: remove USER:PASSWORD@ from --api-url / {} and \
                 pass the key with {} or --api-key-file (a proxy's login goes in HTTPS_PROXY)",
                env_vars::API_URL,
                env_vars::API_KEY
            ),
            ConfigError::InsecureHttp { .. } => {
                "use https://, or pass --allow-insecure-http if this host is on a network you trust".into()
            }
            ConfigError::WaitTooShort { .. } => {
                "raise --wait-timeout to at least two poll intervals (an answer counts once two polls agree), or lower --poll-interval".into()
            }
            ConfigError::NoProjectFile { .. } | ConfigError::ProjectFile { .. } => format!(
                "point --project-dir (or {}) at the folder holding dbt_project.yml",
                env_vars::PROJECT_DIR
            ),
            ConfigError::JunitFolder { .. } => format!(
                "create the folder first, or point --junit (or {}) into an existing one",
                env_vars::JUNIT
            ),
        })
    }
}

/// Secoda's cloud regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Region {
    /// api.secoda.co (app.secoda.co workspaces)
    Us,
    /// eapi.secoda.co (eu.secoda.co workspaces)
    Eu,
    /// aapi.secoda.co (apac.secoda.co workspaces)
    Apac,
}

impl Region {
    fn api_host(self) -> &'static str {
        match self {
            Region::Us => "api.secoda.co",
            Region::Eu => "eapi.secoda.co",
            Region::Apac => "aapi.secoda.co",
        }
    }
}

/// A key as given on the command line or in the environment. Its `Debug` does not show it, so
/// parsed arguments can be logged or printed in a panic without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret(text.to_string()))
    }
}

/// Where the key came from, for messages that must not show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Flag,
    Env,
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Flag => f.write_str("from --api-key"),
            KeySource::Env => write!(f, "from {}", env_vars::API_KEY),
            KeySource::File(path) => write!(f, "from the file {}", path.display()),
        }
    }
}

/// The Secoda API key. Its `Debug` and `Display` never show it; only the HTTP client reads it.
#[derive(Clone)]
pub struct ApiKey {
    secret: String,
    pub source: KeySource,
}

impl ApiKey {
    pub fn new(secret: &str, source: KeySource) -> Result<ApiKey, ConfigError> {
        let secret = secret.trim().to_string();
        if secret.is_empty() {
            return Err(ConfigError::EmptyKey {
                source_desc: source.to_string(),
            });
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::InvalidKey {
                source_desc: source.to_string(),
            });
        }
        crate::logging::register_secret(&secret);
        Ok(ApiKey { secret, source })
    }

    /// The key itself, for the one consumer that must see it to hide it: a GitHub Actions
    /// runner's `::add-mask::` command. Nothing else may call this.
    pub fn reveal_to_runner(&self) -> &str {
        &self.secret
    }

    /// The `Authorization` header value, marked sensitive so no debug output shows it.
    pub fn header(&self) -> reqwest::header::HeaderValue {
        let mut value = reqwest::header::HeaderValue::try_from(format!("Bearer {}", self.secret))
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("Bearer"));
        value.set_sensitive(true);
        value
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey(*** {})", self.source)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "*** ({})", self.source)
    }
}

/// The ways a key was given, each as typed or from the environment.
#[derive(Debug, Clone, Default)]
pub struct KeyInput {
    /// `--api-key` typed on the command line.
    pub typed: Option<Secret>,
    /// `--api-key-file` typed on the command line.
    pub typed_file: Option<PathBuf>,
    /// SECODA_API_KEY.
    pub env: Option<Secret>,
    /// SECODA_API_KEY_FILE.
    pub env_file: Option<PathBuf>,
}

impl KeyInput {
    /// The key: a flag beats the environment, and `--api-key` beats `--api-key-file` at the same
    /// level (so an organisation-wide SECODA_API_KEY does not stop one step from passing a file).
    /// Also a warning when the key's file is open to other users.
    pub fn resolve(&self) -> Result<(ApiKey, Option<String>), ConfigError> {
        let from_file = |path: &PathBuf| {
            let bytes =
                files::read_small(path, MAX_KEY_FILE).map_err(|e| ConfigError::KeyFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            let key = ApiKey::new(
                &String::from_utf8_lossy(&bytes),
                KeySource::File(path.clone()),
            )?;
            Ok((key, open_to_others(path, "API key")))
        };
        let given = |key: &Secret, source| Ok((ApiKey::new(key.expose(), source)?, None));
        match (&self.typed, &self.typed_file, &self.env, &self.env_file) {
            (Some(_), Some(_), _, _) => Err(ConfigError::TwoKeys),
            (Some(key), None, _, _) => given(key, KeySource::Flag),
            (None, Some(path), _, _) => from_file(path),
            (None, None, Some(key), _) => given(key, KeySource::Env),
            (None, None, None, Some(path)) => from_file(path),
            (None, None, None, None) => Err(ConfigError::MissingKey),
        }
    }
}

/// The largest key file read: a key is one line; anything longer is not a key file (and
/// `/dev/zero` must not be read until memory runs out).
pub const MAX_KEY_FILE: u64 = 64 << 10;

/// A warning when the secret in the regular file `path` can be read or changed by users other
/// than its owner, as ssh gives for a private key (ssh refuses; a CI runner's checkout or a
/// mounted secret is sometimes 0644 for good reasons, so this only warns).
pub fn open_to_others(path: &Path, what: &str) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata = std::fs::metadata(path).ok()?;
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_file() && mode & 0o077 != 0 {
            return Some(format!(
                "the {what} file {} can be read or changed by other users (mode {mode:04o}): \
                 `chmod 600 {}` keeps it to its owner",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    None
}

/// The API root, e.g. `https://api.secoda.co/api/v1`, with no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoot(Url);

impl ApiRoot {
    /// The root of a region's cloud API.
    pub fn of_region(region: Region) -> ApiRoot {
        let url = format!("https://{}/api/v1", region.api_host());
        ApiRoot(Url::parse(&url).unwrap_or_else(|e| unreachable!("{url}: {e}")))
    }

    /// A root as given by `--api-url`: a bare host gets https and `/api/v1`; plain http only to
    /// loopback unless `allow_insecure_http`. Returns warnings for hosts known to be wrong.
    ///
    /// Refused: a user name or password in the URL (they would replace the key with Basic auth
    /// and show up wherever the URL is printed; the message never repeats them), and spaces or
    /// control characters (a URL parser would send them as `%20`, to a path that does not
    /// exist).
    pub fn parse(
        given: &str,
        allow_insecure_http: bool,
    ) -> Result<(ApiRoot, Vec<String>), ConfigError> {
        let given = given.trim();
        let shown = without_userinfo(given);
        let invalid = |reason: String| ConfigError::InvalidUrl {
            url: shown.clone(),
            reason,
        };
        if shown != given {
            register_userinfo(given);
            return Err(ConfigError::UrlCredentials { url: shown });
        }
        if let Some(c) = given.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(format!(
                "it contains {}; a URL has none (was a value pasted with its surroundings?)",
                if c == ' ' {
                    "a space".to_string()
                } else {
                    format!("the character {c:?}")
                }
            )));
        }
        let with_scheme = if given.contains("://") {
            given.to_string()
        } else {
            format!("https://{given}")
        };
        let mut url = Url::parse(&with_scheme).map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "the scheme must be https (or http), not {}",
                url.scheme()
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("an API root has no query or fragment".into()));
        }
        let host = url
            .host_str()
            .ok_or_else(|| invalid("it has no host".into()))?
            .to_ascii_lowercase();
        if url.scheme() == "http" && !is_loopback(&host) && !allow_insecure_http {
            return Err(ConfigError::InsecureHttp { host });
        }
        let path = url.path().trim_end_matches('/').to_string();
        url.set_path(if path.is_empty() { "/api/v1" } else { &path });
        Ok((ApiRoot(url), host_warnings(&host)))
    }

    /// The URL of an endpoint below the root; `path` has no leading slash and ends with `/`,
    /// as every Secoda endpoint does.
    pub fn join(&self, path: &str) -> Url {
        let mut url = self.0.clone();
        url.set_path(&format!("{}/{}", self.0.path().trim_end_matches('/'), path));
        url
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for ApiRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

/// `given` with anything between the scheme and an `@` in its authority replaced by `***`: the
/// form of a URL (the API's, a proxy's) that may be shown.
pub fn without_userinfo(given: &str) -> String {
    let start = given.find("://").map_or(0, |i| i + 3);
    let authority_end = given[start..]
        .find(['/', '?', '#'])
        .map_or(given.len(), |i| start + i);
    match given[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &given[..start], &given[start + at..]),
        None => given.to_string(),
    }
}

/// A user name and password found in a URL become secrets: no log line may show them.
fn register_userinfo(given: &str) {
    let start = given.find("://").map_or(0, |i| i + 3);
    let authority = given[start..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        register_login(user, password);
    }
}

/// Registers a URL's login as secrets: the password (as written and percent-decoded), or, when
/// there is none, the user name (a token given as `https://TOKEN@host`). A user name beside a
/// password is no secret, and hiding it would blank ordinary words.
pub fn register_login(user: &str, password: Option<&str>) {
    let secret = password.unwrap_or(user);
    if secret.is_empty() {
        return;
    }
    crate::logging::register_secret(secret);
    let decoded = percent_decode(secret);
    crate::logging::register_secret(&decoded);
    if let Some(password) = password {
        crate::logging::register_secret(&format!("{user}:{password}"));
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host.ends_with(".localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn host_warnings(host: &str) -> Vec<String> {
    let advice = match host {
        "app.secoda.co" => {
            Some("app.secoda.co is the web app; the API for US workspaces is https://api.secoda.co")
        }
        "eu.secoda.co" => {
            Some("eu.secoda.co is the web app; the API for EU workspaces is https://eapi.secoda.co")
        }
        "apac.secoda.co" => Some(
            "apac.secoda.co is the web app; the API for APAC workspaces is https://aapi.secoda.co",
        ),
        h if h == "secoda.com" || h.ends_with(".secoda.com") => {
            Some("Secoda's API is on secoda.co, not secoda.com (e.g. https://api.secoda.co)")
        }
        _ => None,
    };
    advice
        .map(|a| vec![format!("{host} looks wrong: {a}")])
        .unwrap_or_default()
}

/// Where Secoda is and how to reach it, as given.
#[derive(Debug, Clone)]
pub struct ConnectionInput {
    pub api_url: Option<String>,
    pub region: Region,
    pub key: KeyInput,
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub allow_insecure_http: bool,
    pub retry_timeout: Duration,
    pub stall_timeout: Duration,
    pub max_attempts: u32,
}

/// A client certificate for TLS (mutual TLS): the certificate file, and the key's file when the
/// key is not in the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert: PathBuf,
    pub key: Option<PathBuf>,
}

/// Where Secoda is and how to reach it, checked: all the HTTP client needs.
#[derive(Debug, Clone)]
pub struct Connection {
    pub root: ApiRoot,
    pub key: ApiKey,
    /// Extra CA certificates (PEM) to trust beside the system's.
    pub ca_cert: Option<PathBuf>,
    /// The client certificate TLS presents, when the server asks for one.
    pub client: Option<ClientIdentity>,
    /// How long one request is retried on transient failures.
    pub retry_timeout: Duration,
    /// How long one attempt may make no progress before it is abandoned.
    pub stall_timeout: Duration,
    /// How many times a request that carries a body (an upload) is sent at most.
    pub max_attempts: u32,
}

/// The defaults the command line documents.
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

impl Connection {
    /// A connection with the documented defaults.
    pub fn new(root: ApiRoot, key: ApiKey) -> Connection {
        Connection {
            root,
            key,
            ca_cert: None,
            client: None,
            retry_timeout: DEFAULT_RETRY_TIMEOUT,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

impl ConnectionInput {
    /// The connection, and warnings about the host worth showing.
    pub fn resolve(&self) -> Result<(Connection, Vec<String>), ConfigError> {
        let (root, warnings) = match self
            .api_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            Some(given) => ApiRoot::parse(given, self.allow_insecure_http)?,
            None => (ApiRoot::of_region(self.region), Vec::new()),
        };
        let (key, key_warning) = self.key.resolve()?;
        let client = match (&self.client_cert, &self.client_key) {
            (None, Some(_)) => return Err(ConfigError::KeyWithoutCert),
            (None, None) => None,
            (Some(cert), key) => Some(ClientIdentity {
                cert: cert.clone(),
                key: key.clone(),
            }),
        };
        let mut warnings = warnings;
        warnings.extend(key_warning);
        let connection = Connection {
            key,
            root,
            ca_cert: self.ca_cert.clone(),
            client,
            retry_timeout: self.retry_timeout,
            stall_timeout: self.stall_timeout,
            max_attempts: self.max_attempts,
        };
        Ok((connection, warnings))
    }
}

/// An id safe as one URL path segment (letters, digits, `-`, `_`): integration ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(String);

impl Id {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Id {
    type Err = String;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let id = given.trim();
        if id.is_empty() {
            return Err("an id cannot be empty".into());
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "{id:?} is not an id: use the UUID shown in the integration's URL in Secoda \
                 (letters, digits and '-' only)"
            ));
        }
        Ok(Id(id.to_string()))
    }
}

/// Where the artifacts are, as given.
#[derive(Debug, Clone, Default)]
pub struct ArtifactInput {
    pub target_dir: Option<PathBuf>,
    pub project_dir: Option<PathBuf>,
    pub manifest: Option<PathBuf>,
    pub run_results: Option<PathBuf>,
}

/// Where the two artifacts are.
#[derive(Debug, Clone)]
pub struct ArtifactPaths {
    pub target_dir: PathBuf,
    pub manifest: PathBuf,
    pub run_results: PathBuf,
}

impl ArtifactPaths {
    /// The pair dbt writes in `target_dir`.
    pub fn in_target(target_dir: &Path) -> ArtifactPaths {
        ArtifactPaths {
            target_dir: target_dir.to_path_buf(),
            manifest: target_dir.join("manifest.json"),
            run_results: target_dir.join("run_results.json"),
        }
    }
}

impl ArtifactInput {
    /// Whether the user said where the artifacts are (rather than relying on `./target`).
    pub fn is_named(&self) -> bool {
        self.target_dir.is_some() || self.project_dir.is_some() || self.manifest.is_some()
    }

    /// Resolves the target folder as dbt does: `--target-dir`/DBT_TARGET_PATH, else `target-path`
    /// from the project's dbt_project.yml, else `target`; relative to the project folder.
    pub fn resolve(&self) -> Result<ArtifactPaths, ConfigError> {
        let project = self.project_dir.as_deref();
        let target = match (&self.target_dir, project) {
            (Some(dir), _) => dir.clone(),
            (None, Some(project)) => {
                PathBuf::from(project_target_path(project)?.unwrap_or_else(|| "target".into()))
            }
            (None, None) => PathBuf::from("target"),
        };
        let target_dir = match project {
            Some(project) if target.is_relative() => project.join(target),
            _ => target,
        };
        let mut paths = ArtifactPaths::in_target(&target_dir);
        if let Some(m) = &self.manifest {
            paths.manifest = m.clone();
        }
        if let Some(r) = &self.run_results {
            paths.run_results = r.clone();
        }
        Ok(paths)
    }
}

/// `target-path` from `<project>/dbt_project.yml`: a top-level scalar, the only key read.
fn project_target_path(project: &Path) -> Result<Option<String>, ConfigError> {
    let path = project.join("dbt_project.yml");
    let bytes = files::read_regular(&path).map_err(|e| match e {
        OpenError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            ConfigError::NoProjectFile { path: path.clone() }
        }
        other => ConfigError::ProjectFile {
            path: path.clone(),
            reason: other.to_string(),
        },
    })?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().find_map(|line| {
        let value = line
            .strip_prefix("target-path")?
            .trim_start()
            .strip_prefix(':')?;
        let value = strip_yaml_comment(value).trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        (!unquoted.is_empty()).then(|| unquoted.to_string())
    }))
}

fn strip_yaml_comment(value: &str) -> &str {
    let mut quote = None;
    for (i, c) in value.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if i == 0 || value[..i].ends_with(char::is_whitespace) => {
                return &value[..i];
            }
            _ => {}
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(url: &str) -> Result<String, ConfigError> {
        ApiRoot::parse(url, false).map(|(r, _)| r.to_string())
    }

    #[test]
    fn api_roots_follow_the_documented_hosts() {
        assert_eq!(
            ApiRoot::of_region(Region::Us).to_string(),
            "https://api.secoda.co/api/v1"
        );
        assert_eq!(
            ApiRoot::of_region(Region::Eu).to_string(),
            "https://eapi.secoda.co/api/v1"
        );
        assert_eq!(
            root("https://acme.secoda.co").unwrap(),
            "https://acme.secoda.co/api/v1"
        );
        assert_eq!(
            root("acme.secoda.co/").unwrap(),
            "https://acme.secoda.co/api/v1"
        );
        assert_eq!(
            root("https://x.example/secoda/api/v1/").unwrap(),
            "https://x.example/secoda/api/v1"
        );
        assert_eq!(
            root("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/api/v1"
        );
        assert_eq!(
            root("http://[::1]:8080").unwrap(),
            "http://[::1]:8080/api/v1"
        );
        assert!(matches!(
            root("http://secoda.internal"),
            Err(ConfigError::InsecureHttp { .. })
        ));
        assert!(matches!(
            root("ftp://x"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(root("https://api.secoda.co/api/v1 ").is_ok());
        assert!(matches!(
            root("https://api.secoda .co"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        let (r, _) = ApiRoot::parse("https://api.secoda.co", false).unwrap();
        assert_eq!(
            r.join("integration/dbt/abc/trigger/").as_str(),
            "https://api.secoda.co/api/v1/integration/dbt/abc/trigger/"
        );
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_being_repeated() {
        for (given, shown) in [
            (
                "http://user:hunter2-pw@127.0.0.1:8080",
                "http://***@127.0.0.1:8080",
            ),
            (
                "user:hunter2-pw@api.secoda.co/api/v1",
                "***@api.secoda.co/api/v1",
            ),
            ("https://tok-hunter2-pw@h/a@b", "https://***@h/a@b"),
        ] {
            let error = root(given).unwrap_err();
            assert!(
                matches!(&error, ConfigError::UrlCredentials { url } if url == shown),
                "{error:?}"
            );
            let text = format!("{error} {}", error.hint().unwrap_or_default());
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert_eq!(without_userinfo("https://h/p@x"), "https://h/p@x");
        assert_eq!(
            without_userinfo("http://me:s3cret@proxy:3128"),
            "http://***@proxy:3128"
        );
        assert_eq!(without_userinfo("http://proxy:3128"), "http://proxy:3128");
    }

    #[test]
    fn known_wrong_hosts_warn() {
        for host in [
            "https://apac.secoda.co",
            "https://api.secoda.com",
            "https://app.secoda.co",
        ] {
            let (_, warnings) = ApiRoot::parse(host, false).unwrap();
            assert_eq!(warnings.len(), 1, "{host}");
        }
        assert!(
            ApiRoot::parse("https://aapi.secoda.co", false)
                .unwrap()
                .1
                .is_empty()
        );
    }

    #[test]
    fn the_key_never_shows_and_a_typed_flag_wins() {
        let key = ApiKey::new("  sk-very-secret-value\n", KeySource::Env).unwrap();
        assert!(!format!("{key:?} {key}").contains("very-secret"));
        assert!(matches!(
            ApiKey::new(" \n", KeySource::Env),
            Err(ConfigError::EmptyKey { .. })
        ));
        assert!(matches!(
            ApiKey::new("a b", KeySource::Flag),
            Err(ConfigError::InvalidKey { .. })
        ));
        let secret = |s: &str| Some(s.parse::<Secret>().unwrap());
        let input = KeyInput {
            typed: None,
            typed_file: None,
            env: secret("sk-from-the-env"),
            env_file: None,
        };
        assert_eq!(input.resolve().unwrap().0.source, KeySource::Env);
        let both = KeyInput {
            typed: secret("sk-typed-value"),
            typed_file: Some("f".into()),
            ..input
        };
        assert!(matches!(both.resolve(), Err(ConfigError::TwoKeys)));
    }

    #[test]
    fn ids_are_one_path_segment() {
        assert!("5ec0da00-0000-4000-8000-00000000db70".parse::<Id>().is_ok());
        for bad in ["../dbt/x/failing_tests", "a/b", "", "a b", "x?y"] {
            assert!(bad.parse::<Id>().is_err(), "{bad}");
        }
    }

    #[test]
    fn target_path_comes_from_dbt_project_yml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dbt_project.yml"),
            "name: x\n  target-path: nested\ntarget-path: \"build/out\"  # moved\n",
        )
        .unwrap();
        let input = ArtifactInput {
            project_dir: Some(dir.path().into()),
            ..ArtifactInput::default()
        };
        let paths = input.resolve().unwrap();
        assert_eq!(paths.manifest, dir.path().join("build/out/manifest.json"));
        let input = ArtifactInput {
            target_dir: Some("t2".into()),
            ..input
        };
        assert_eq!(
            input.resolve().unwrap().run_results,
            dir.path().join("t2/run_results.json")
        );
        let input = ArtifactInput {
            project_dir: Some(dir.path().join("nope")),
            target_dir: None,
            ..input
        };
        assert!(matches!(
            input.resolve(),
            Err(ConfigError::NoProjectFile { .. })
        ));
    }
}
