//! Resolved settings: flags and environment turned into checked values.
//!
//! Owns the API root (region, bare hosts, known wrong hosts, the plain-http rule), the API key
//! (which never leaves [`ApiKey`] except as an HTTP header), and where the artifacts are (target
//! folder, `dbt_project.yml`'s `target-path`, single-file overrides). Flag > environment >
//! default is clap's job, except between the two ways to give the key (see [`api_key`]); this
//! module checks and combines.
//! It does not read artifacts or talk to Secoda.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use reqwest::Url;

use crate::cli::{ArtifactArgs, ConnectionArgs, Region};

/// A configuration problem (exit 2). `hint` says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no Secoda API key was given")]
    MissingKey,
    #[error("both --api-key and --api-key-file were given")]
    TwoKeys,
    #[error("cannot read the API key file {path}: {source}", path = .path.display())]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the API key {source_desc} is empty")]
    EmptyKey { source_desc: String },
    #[error("the API key {source_desc} contains characters an HTTP header cannot carry")]
    InvalidKey { source_desc: String },
    #[error("no dbt integration id was given")]
    MissingIntegration,
    #[error("the integration id {0:?} is not usable in a URL path")]
    InvalidIntegration(String),
    #[error("the API URL {url:?} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("refusing to send the API key over plain http to {host}")]
    InsecureHttp { host: String },
    #[error("cannot read the CA certificate file {path}: {reason}", path = .path.display())]
    CaCert { path: PathBuf, reason: String },
    #[error("{path} not found: --project-dir must be a dbt project folder", path = .path.display())]
    NoProjectFile { path: PathBuf },
    #[error("cannot read {path}: {source}", path = .path.display())]
    ProjectFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to {what} without --yes: there is no terminal to ask on")]
    NeedsConfirmation { what: String },
    #[error("not confirmed: nothing was deleted")]
    NotConfirmed,
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ConfigError::MissingKey => {
                "set SECODA_API_KEY, or pass --api-key-file FILE (create a key in Secoda under Settings → API)".into()
            }
            ConfigError::TwoKeys => "pass the key one way only".into(),
            ConfigError::KeyFile { .. } => "check the path given to --api-key-file / SECODA_API_KEY_FILE".into(),
            ConfigError::EmptyKey { .. } | ConfigError::InvalidKey { .. } => {
                "copy the key again from Secoda (Settings → API); it is one line of printable characters".into()
            }
            ConfigError::MissingIntegration => {
                "pass --integration-id or set SECODA_INTEGRATION_ID: the UUID in the dbt Core integration's URL in Secoda"
                    .into()
            }
            ConfigError::InvalidIntegration(_) => "use the integration's UUID as shown in its URL in Secoda".into(),
            ConfigError::InvalidUrl { .. } => {
                "use e.g. https://api.secoda.co, https://eapi.secoda.co or https://secoda.example.com/api/v1".into()
            }
            ConfigError::InsecureHttp { .. } => {
                "use https://, or pass --allow-insecure-http if this host is on a network you trust".into()
            }
            ConfigError::CaCert { .. } => "--ca-cert takes a PEM file with one or more CA certificates".into(),
            ConfigError::NoProjectFile { .. } | ConfigError::ProjectFile { .. } => {
                "point --project-dir (or DBT_PROJECT_DIR) at the folder holding dbt_project.yml".into()
            }
            ConfigError::Listen { .. } => "pick another --listen address or port".into(),
            ConfigError::NeedsConfirmation { .. } => "pass --yes to confirm in scripts and CI".into(),
            ConfigError::NotConfirmed => return None,
        })
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
            KeySource::Env => f.write_str("from SECODA_API_KEY"),
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
    pub fn new(secret: String, source: KeySource) -> Result<ApiKey, ConfigError> {
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

/// Which key options clap took from the environment rather than the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyOrigins {
    /// `--api-key` came from SECODA_API_KEY.
    pub key_from_env: bool,
    /// `--api-key-file` came from SECODA_API_KEY_FILE.
    pub file_from_env: bool,
}

/// The key: a flag beats the environment, and `--api-key` beats `--api-key-file` at the same
/// level (so an organisation-wide SECODA_API_KEY does not stop one step from passing a file).
pub fn api_key(args: &ConnectionArgs, origins: KeyOrigins) -> Result<ApiKey, ConfigError> {
    let from_flag = |key: &str| ApiKey::new(key.to_string(), KeySource::Flag);
    let from_env = |key: &str| ApiKey::new(key.to_string(), KeySource::Env);
    let from_file = |path: &PathBuf| {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::KeyFile {
            path: path.clone(),
            source,
        })?;
        ApiKey::new(text, KeySource::File(path.clone()))
    };
    let key = args.api_key.as_ref().map(crate::cli::Secret::expose);
    let file = args.api_key_file.as_ref();
    match (key, file) {
        (Some(_), Some(_)) if !origins.key_from_env && !origins.file_from_env => {
            Err(ConfigError::TwoKeys)
        }
        (Some(key), _) if !origins.key_from_env => from_flag(key),
        (_, Some(path)) if !origins.file_from_env => from_file(path),
        (Some(key), _) => from_env(key),
        (None, Some(path)) => from_file(path),
        (None, None) => Err(ConfigError::MissingKey),
    }
}

/// The API root, e.g. `https://api.secoda.co/api/v1`, with no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoot(Url);

impl ApiRoot {
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

/// The API root from `--api-url` or `--region`, and warnings for hosts known to be wrong.
pub fn api_root(args: &ConnectionArgs) -> Result<(ApiRoot, Vec<String>), ConfigError> {
    let Some(given) = args
        .api_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    else {
        let host = match args.region {
            Region::Us => "api.secoda.co",
            Region::Eu => "eapi.secoda.co",
            Region::Apac => "aapi.secoda.co",
        };
        let url =
            Url::parse(&format!("https://{host}/api/v1")).map_err(|e| ConfigError::InvalidUrl {
                url: host.into(),
                reason: e.to_string(),
            })?;
        return Ok((ApiRoot(url), Vec::new()));
    };
    let with_scheme = if given.contains("://") {
        given.to_string()
    } else {
        format!("https://{given}")
    };
    let invalid = |reason: String| ConfigError::InvalidUrl {
        url: given.to_string(),
        reason,
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
    if url.scheme() == "http" && !is_loopback(&host) && !args.allow_insecure_http {
        return Err(ConfigError::InsecureHttp { host });
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(if path.is_empty() { "/api/v1" } else { &path });
    Ok((ApiRoot(url), host_warnings(&host)))
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

/// An integration id checked to be safe as one URL path segment.
pub fn integration_id(given: Option<&str>) -> Result<String, ConfigError> {
    let id = given
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(ConfigError::MissingIntegration)?;
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::InvalidIntegration(id.to_string()));
    }
    Ok(id.to_string())
}

/// Where the two artifacts are.
#[derive(Debug, Clone)]
pub struct ArtifactPaths {
    pub target_dir: PathBuf,
    pub manifest: PathBuf,
    pub run_results: PathBuf,
}

/// Resolves the target folder as dbt does: `--target-dir`/DBT_TARGET_PATH, else `target-path`
/// from the project's dbt_project.yml, else `target`; relative to the project folder.
pub fn artifact_paths(args: &ArtifactArgs) -> Result<ArtifactPaths, ConfigError> {
    let project = args.project_dir.as_deref();
    let target = match (&args.target_dir, project) {
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
    Ok(ArtifactPaths {
        manifest: args
            .manifest
            .clone()
            .unwrap_or_else(|| target_dir.join("manifest.json")),
        run_results: args
            .run_results
            .clone()
            .unwrap_or_else(|| target_dir.join("run_results.json")),
        target_dir,
    })
}

/// `target-path` from `<project>/dbt_project.yml`: a top-level scalar, the only key read.
fn project_target_path(project: &Path) -> Result<Option<String>, ConfigError> {
    let path = project.join("dbt_project.yml");
    let text = std::fs::read_to_string(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ConfigError::NoProjectFile { path: path.clone() },
        _ => ConfigError::ProjectFile {
            path: path.clone(),
            source,
        },
    })?;
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

    fn connection(url: Option<&str>) -> ConnectionArgs {
        ConnectionArgs {
            api_url: url.map(String::from),
            region: Region::Us,
            api_key: None,
            api_key_file: None,
            ca_cert: None,
            allow_insecure_http: false,
            retry_timeout: std::time::Duration::from_secs(1),
            stall_timeout: std::time::Duration::from_secs(1),
        }
    }

    fn root(url: &str) -> Result<String, ConfigError> {
        api_root(&connection(Some(url))).map(|(r, _)| r.to_string())
    }

    #[test]
    fn api_roots_follow_the_documented_hosts() {
        assert_eq!(
            api_root(&connection(None)).unwrap().0.to_string(),
            "https://api.secoda.co/api/v1"
        );
        let mut eu = connection(None);
        eu.region = Region::Eu;
        assert_eq!(
            api_root(&eu).unwrap().0.to_string(),
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
        let (r, _) = api_root(&connection(Some("https://api.secoda.co"))).unwrap();
        assert_eq!(
            r.join("integration/dbt/abc/trigger/").as_str(),
            "https://api.secoda.co/api/v1/integration/dbt/abc/trigger/"
        );
    }

    #[test]
    fn known_wrong_hosts_warn() {
        for host in [
            "https://apac.secoda.co",
            "https://api.secoda.com",
            "https://app.secoda.co",
        ] {
            let (_, warnings) = api_root(&connection(Some(host))).unwrap();
            assert_eq!(warnings.len(), 1, "{host}");
        }
        assert!(
            api_root(&connection(Some("https://aapi.secoda.co")))
                .unwrap()
                .1
                .is_empty()
        );
    }

    #[test]
    fn the_key_never_shows() {
        let key = ApiKey::new("  sk-very-secret-value\n".into(), KeySource::Env).unwrap();
        assert!(!format!("{key:?} {key}").contains("very-secret"));
        assert!(matches!(
            ApiKey::new(" \n".into(), KeySource::Env),
            Err(ConfigError::EmptyKey { .. })
        ));
        assert!(matches!(
            ApiKey::new("a b".into(), KeySource::Flag),
            Err(ConfigError::InvalidKey { .. })
        ));
    }

    #[test]
    fn target_path_comes_from_dbt_project_yml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dbt_project.yml"),
            "name: x\n  target-path: nested\ntarget-path: \"build/out\"  # moved\n",
        )
        .unwrap();
        let args = ArtifactArgs {
            target_dir: None,
            project_dir: Some(dir.path().into()),
            manifest: None,
            run_results: None,
        };
        let paths = artifact_paths(&args).unwrap();
        assert_eq!(paths.manifest, dir.path().join("build/out/manifest.json"));
        let args = ArtifactArgs {
            target_dir: Some("t2".into()),
            ..args
        };
        assert_eq!(
            artifact_paths(&args).unwrap().run_results,
            dir.path().join("t2/run_results.json")
        );
        let args = ArtifactArgs {
            project_dir: Some(dir.path().join("nope")),
            target_dir: None,
            ..args
        };
        assert!(matches!(
            artifact_paths(&args),
            Err(ConfigError::NoProjectFile { .. })
        ));
    }
}
