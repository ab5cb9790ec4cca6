//! The command line: every flag, its environment variable and its help text.
//!
//! Owns the clap definitions only. Turning these raw values into checked settings (URLs, the API
//! key, artifact paths) is [`crate::config`]'s job; running anything is the commands' job.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, shown in `--help` and kept in step with [`crate::exit::ExitCode`].
pub const EXIT_CODES: &str = "\
Exit codes:
  0    success (and --on-api-error warn turned a Secoda error into a warning)
  1    tests failed (per --fail-on), in the local run_results or in Secoda's answer
  2    usage or configuration error
  3    artifacts missing, invalid, truncated or from different dbt invocations
  4    Secoda refused the request (400, 401, 403, 404, 413, a redirect, ...)
  5    Secoda unavailable after retries, or timed out waiting for the sync
  130  interrupted (Ctrl-C or SIGTERM)";

/// The same, on one line, for `-h`.
pub const EXIT_CODES_SHORT: &str = "Exit codes: 0 ok, 1 tests failed, 2 usage, 3 artifacts, 4 Secoda refused, 5 Secoda unavailable, 130 interrupted (--help explains)";

/// Upload dbt Core artifacts to Secoda, run the dbt sync, and fail CI when tests fail.
///
/// A flag given twice takes its last value, so wrappers can append overrides.
#[derive(Debug, Parser)]
#[command(name = "dbt-secoda", version, args_override_self = true, after_help = EXIT_CODES_SHORT, after_long_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More detail on stderr: -v debug, -vv trace, -vvv also the HTTP stack's own logs.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,

    /// Only errors on stderr (no progress, no info lines).
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub quiet: bool,

    /// Format of the log lines on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "DBT_SECODA_LOG_FORMAT", hide_env_values = true, global = true, help_heading = "Global options")]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload target/manifest.json and target/run_results.json, trigger the dbt sync, wait for
    /// Secoda's failing-tests answer and report.
    #[command(after_help = EXIT_CODES_SHORT, after_long_help = EXIT_CODES)]
    Upload(UploadArgs),
    /// List, show, create and delete integrations; import metadata from CSV or JSONL.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// Slack: the conversations and channels Secoda can post to.
    #[command(subcommand)]
    Slack(SlackCommand),
    /// Check the setup, one line a check: API reachable, key accepted, integration, proxy and CA,
    /// artifacts in the target folder.
    #[command(after_help = EXIT_CODES_SHORT, after_long_help = EXIT_CODES)]
    Doctor(DoctorArgs),
    /// Run a local Secoda API simulator (the Integrations API, in memory, with fault injection).
    Simulator(SimulatorArgs),
    /// Run the whole upload pipeline over bundled example artifacts against the built-in simulator.
    Demo(DemoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A report for people.
    Text,
    /// One JSON document on stdout.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Region {
    /// api.secoda.co (app.secoda.co workspaces)
    Us,
    /// eapi.secoda.co (eu.secoda.co workspaces)
    Eu,
    /// aapi.secoda.co (apac.secoda.co workspaces)
    Apac,
}

/// Where Secoda is and how to prove who we are.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// Secoda API root, e.g. https://api.secoda.co or https://secoda.example.com/api/v1 for a
    /// self-hosted install. A bare host gets /api/v1 appended. Overrides --region.
    #[arg(
        long,
        env = "SECODA_API_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub api_url: Option<String>,

    /// Secoda cloud region, used when no --api-url is given.
    #[arg(long, value_enum, default_value_t = Region::Us, env = "SECODA_REGION", hide_env_values = true)]
    pub region: Region,

    /// Secoda API key. Prefer the environment variable or --api-key-file: a flag is visible to
    /// other users in the process list.
    #[arg(
        long,
        env = "SECODA_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<Secret>,

    /// Read the Secoda API key from this file (surrounding whitespace is ignored). A flag beats
    /// an environment variable: --api-key-file is used over SECODA_API_KEY.
    #[arg(
        long,
        env = "SECODA_API_KEY_FILE",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub api_key_file: Option<PathBuf>,

    /// Also trust the CA certificates in this PEM file (for TLS-inspecting proxies). The system
    /// store, SSL_CERT_FILE and SSL_CERT_DIR are used as well; HTTPS_PROXY and NO_PROXY are honoured.
    #[arg(
        long,
        env = "SECODA_CA_CERT",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub ca_cert: Option<PathBuf>,

    /// Allow plain http:// to a host that is not loopback (the key would travel unencrypted).
    #[arg(long, env = "SECODA_ALLOW_INSECURE_HTTP", hide_env_values = true, value_parser = BoolishValueParser::new())]
    pub allow_insecure_http: bool,

    /// How long to keep retrying one request that fails with a transient error (connection
    /// errors, timeouts, 408, 429, 500, 502, 503, 504).
    #[arg(long, default_value = "5m", value_parser = parse_duration, env = "DBT_SECODA_RETRY_TIMEOUT", hide_env_values = true, value_name = "DURATION")]
    pub retry_timeout: Duration,

    /// How long one request may go without progress (no bytes taken by the connection, or no
    /// answer once everything was sent) before it is abandoned and retried. An upload that keeps
    /// moving is never cut, however long it takes.
    #[arg(long, default_value = "2m", value_parser = parse_duration, env = "DBT_SECODA_STALL_TIMEOUT", hide_env_values = true, value_name = "DURATION")]
    pub stall_timeout: Duration,
}

/// Which dbt Core integration.
#[derive(Debug, Clone, Args)]
pub struct IntegrationArg {
    /// The dbt Core integration's id (the UUID in the integration's URL in Secoda).
    #[arg(
        help_heading = "Connection",
        long,
        env = "SECODA_INTEGRATION_ID",
        hide_env_values = true,
        value_name = "ID"
    )]
    pub integration_id: Option<String>,
}

/// Where dbt's artifacts are.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Artifacts")]
pub struct ArtifactArgs {
    /// dbt's target folder, relative to --project-dir when that is given [default: target, or
    /// target-path from dbt_project.yml]
    #[arg(
        long,
        env = "DBT_TARGET_PATH",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub target_dir: Option<PathBuf>,

    /// The dbt project folder; its dbt_project.yml's target-path is honoured.
    #[arg(
        long,
        env = "DBT_PROJECT_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub project_dir: Option<PathBuf>,

    /// Use this manifest.json instead of the one in the target folder.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,

    /// Use this run_results.json instead of the one in the target folder.
    #[arg(long, value_name = "FILE")]
    pub run_results: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Tests that failed or errored.
    Error,
    /// Also tests that warned.
    Warn,
    /// Never fail because of tests (still report them).
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnApiError {
    /// Exit 4 or 5.
    Fail,
    /// Print a loud warning and let the test gate decide the exit code.
    Warn,
}

#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    #[command(flatten)]
    pub integration: IntegrationArg,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(flatten)]
    pub artifacts: ArtifactArgs,

    /// Which tests fail the command (exit 1).
    #[arg(long, help_heading = "Behaviour", value_enum, default_value_t = FailOn::Error, env = "DBT_SECODA_FAIL_ON", hide_env_values = true)]
    pub fail_on: FailOn,

    /// What a Secoda error (exit 4 or 5) does.
    #[arg(long, help_heading = "Behaviour", value_enum, default_value_t = OnApiError::Fail, env = "DBT_SECODA_ON_API_ERROR", hide_env_values = true)]
    pub on_api_error: OnApiError,

    /// Do not wait for Secoda's failing-tests answer; the local run_results alone decide.
    #[arg(
        long,
        help_heading = "Behaviour",
        env = "DBT_SECODA_NO_WAIT",
        hide_env_values = true,
        value_parser = BoolishValueParser::new()
    )]
    pub no_wait: bool,

    /// How long to wait for the sync's failing-tests answer to settle.
    #[arg(long, help_heading = "Behaviour", default_value = "10m", value_parser = parse_duration, env = "DBT_SECODA_WAIT_TIMEOUT", hide_env_values = true, value_name = "DURATION")]
    pub wait_timeout: Duration,

    /// How often to ask Secoda for the failing-tests answer while waiting.
    #[arg(long, help_heading = "Behaviour", default_value = "5s", value_parser = parse_duration, env = "DBT_SECODA_POLL_INTERVAL", hide_env_values = true, value_name = "DURATION")]
    pub poll_interval: Duration,

    /// How long to keep retrying the sync trigger while Secoda says a sync is already running (409).
    #[arg(long, help_heading = "Behaviour", default_value = "10m", value_parser = parse_duration, env = "DBT_SECODA_TRIGGER_TIMEOUT", hide_env_values = true, value_name = "DURATION")]
    pub trigger_timeout: Duration,

    /// Report format on stdout.
    #[arg(long, help_heading = "Behaviour", value_enum, default_value_t = OutputFormat::Text, env = "DBT_SECODA_OUTPUT", hide_env_values = true)]
    pub output: OutputFormat,

    /// Check everything and print the plan (files, sizes, sha256, endpoints); send nothing.
    #[arg(
        long,
        help_heading = "Behaviour",
        env = "DBT_SECODA_DRY_RUN",
        hide_env_values = true,
        value_parser = BoolishValueParser::new()
    )]
    pub dry_run: bool,
}

/// How results are printed.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Result format on stdout: a table for people, or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, env = "DBT_SECODA_OUTPUT", hide_env_values = true)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum IntegrationsCommand {
    /// List the workspace's integrations (every page).
    List {
        /// Only integrations of this type (e.g. dbt, custom, snowflake).
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one integration.
    Get {
        /// The integration's id.
        id: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Create an integration (a custom one unless --type says otherwise).
    Create {
        /// Its name in Secoda.
        #[arg(long)]
        name: String,
        /// Its type.
        #[arg(long = "type", default_value = "custom", value_name = "TYPE")]
        kind: String,
        /// A team id that may use it (repeatable).
        #[arg(long = "team", value_name = "ID")]
        teams: Vec<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete an integration and every resource it brought in. Asks first on a terminal;
    /// elsewhere needs --yes.
    Delete {
        /// The integration's id.
        id: String,
        /// Do not ask.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Import tables and columns from a CSV file (checked first; nothing is sent if it is invalid).
    #[command(after_help = EXIT_CODES_SHORT, after_long_help = EXIT_CODES)]
    ImportCsv {
        /// The custom integration's id.
        id: String,
        /// The CSV file.
        file: PathBuf,
        /// Check the file only; send nothing (no key needed).
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Import resources (and lineages) from JSONL files (checked first; nothing is sent if a
    /// file is invalid).
    #[command(after_help = EXIT_CODES_SHORT, after_long_help = EXIT_CODES)]
    ImportJsonl {
        /// The custom integration's id.
        id: String,
        /// The resources file: one JSON object a line.
        #[arg(long, value_name = "FILE")]
        resources: PathBuf,
        /// The lineages file: one JSON object a line.
        #[arg(long, value_name = "FILE")]
        lineages: Option<PathBuf>,
        /// A parent_databuilder_id that lives outside the file (repeatable).
        #[arg(long = "external-parent", value_name = "ID")]
        external_parents: Vec<String>,
        /// Check the files only; send nothing (no key needed).
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SlackCommand {
    /// List the Slack conversations and channels.
    Conversations {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub integration: IntegrationArg,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub artifacts: ArtifactArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SimulatorArgs {
    /// Address to listen on; port 0 picks a free port. The first line on stdout says where.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,

    /// The API key clients must send as `Authorization: Bearer KEY`.
    #[arg(
        long,
        env = "SECODA_SIMULATOR_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Secret,

    /// A dbt Core integration to create at start (repeatable).
    #[arg(long = "dbt-integration", value_name = "ID", default_value = crate::simulator::DEFAULT_DBT_INTEGRATION)]
    pub dbt_integrations: Vec<String>,

    /// How long a triggered dbt sync runs; meanwhile triggers answer 409 and failing_tests answers
    /// the previous sync's result.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub sync_seconds: f64,

    /// Fault: the first N trigger requests answer 409 (a sync already running).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub conflicts: u32,

    /// Fault: the first N requests of any kind answer --fail-status.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub fail_requests: u32,

    /// Only requests whose path contains this text count towards --fail-requests (e.g.
    /// upload_artifacts, trigger).
    #[arg(long, value_name = "TEXT")]
    pub fail_path: Option<String>,

    /// The status --fail-requests answers (429 and 503 carry Retry-After: 1; 3xx carry a Location).
    #[arg(long, default_value_t = 503, value_name = "CODE")]
    pub fail_status: u16,

    /// Fault: at most this many writes (POST/PUT/PATCH/DELETE) a minute, then 429 with Retry-After.
    #[arg(long, value_name = "PER_MINUTE")]
    pub rate_limit: Option<u32>,

    /// Fault: the first N uploads are cut off mid-body (the connection is dropped).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub reset_uploads: u32,

    /// Fault: wait this long before answering each request.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency: u64,

    /// Items per page in list answers.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub page_size: usize,

    /// List answers as a self-hosted install gives them: next links without /api/v1 and on an
    /// internal host, and "None" for no link.
    #[arg(long)]
    pub self_hosted_links: bool,

    /// Fault: read uploads no faster than this many bytes a second (a slow link or proxy).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_bytes_per_second: Option<u64>,

    /// Fault: every sync ends with this answer instead of the one the upload's run_results give,
    /// as JSON: '{"failing": ["model.shop.orders"], "warning": []}'. For trying out how
    /// disagreements between Secoda and the local results are reported.
    #[arg(long, value_name = "JSON", value_parser = parse_fixed_answer)]
    pub fixed_answer: Option<FixedAnswer>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Parses `500ms`, `30s`, `10m`, `1h` or a bare number of seconds.
/// The simulator's `--fixed-answer`: entities with failing and warning tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedAnswer {
    pub failing: Vec<String>,
    pub warning: Vec<String>,
}

fn parse_fixed_answer(text: &str) -> Result<FixedAnswer, String> {
    serde_json::from_str(text).map_err(|e| {
        format!("expected {{\"failing\": [...], \"warning\": [...]}} with entity names: {e}")
    })
}

/// A key as given on the command line or in the environment. Its `Debug` does not show it, so
/// the parsed arguments can be logged or printed in a panic without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret(text.to_string()))
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 500ms, 30s, 10m or 1h"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

/// Shows a duration the way it is typed on the command line.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_as_typed() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn parsed_arguments_never_show_a_key() {
        use clap::Parser;
        let key = "sk-live-0123456789abcdef";
        for argv in [
            vec!["dbt-secoda", "upload", "--api-key", key],
            vec!["dbt-secoda", "doctor", "--api-key", key],
            vec!["dbt-secoda", "integrations", "list", "--api-key", key],
            vec!["dbt-secoda", "simulator", "--api-key", key],
        ] {
            let cli = Cli::try_parse_from(&argv).unwrap();
            let shown = format!("{cli:?} {cli:#?}");
            assert!(!shown.contains(key), "{argv:?}: {shown}");
            assert!(shown.contains("Secret(***)"), "{shown}");
        }
    }
}
