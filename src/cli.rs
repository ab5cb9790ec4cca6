//! The command line: every flag, its environment variable and its help text, and the turn from
//! parsed arguments to the plain inputs the commands take.
//!
//! Owns the clap definitions (the value enums they use derive `ValueEnum` where they live:
//! `FailOn` in the pipeline's gate, `OnApiError` in `exit`, `OutputFormat` in `report`,
//! `LogFormat` in `logging`, `Region` in `config`), which key options came from the environment
//! (the commands are given the candidates in order), the async runtime, and which command runs.
//! Nothing below imports this module.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands::{self, demo, doctor, health, integrations, slack, upload, watch};
use crate::config::{ArtifactInput, ConnectionInput, Id, KeyInput, Region, Secret};
use crate::entities::Entities;
use crate::env_vars as env;
use crate::exit::{self, ExitCode, OnApiError};
use crate::logging::{self, LogFormat};
use crate::pipeline::{FailOn, Wait};
use crate::report::OutputFormat;
use crate::simulator::{self, Naming};
use crate::units::{parse_duration, parse_duration_at_least};

/// Upload dbt Core artifacts to Secoda, run the dbt sync, and fail CI when tests fail.
///
/// A flag given twice takes its last value, so wrappers can append overrides.
#[derive(Debug, Parser)]
#[command(name = "dbt-secoda", version, args_override_self = true, after_help = exit::help_short(), after_long_help = exit::help(), max_term_width = 100)]
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
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = env::LOG_FORMAT, hide_env_values = true, global = true, help_heading = "Global options")]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload target/manifest.json and target/run_results.json, trigger the dbt sync, wait for
    /// Secoda's failing-tests answer and report.
    #[command(after_help = exit::help_short(), after_long_help = exit::help())]
    Upload(UploadArgs),
    /// List, show, create and delete integrations; import metadata from CSV or JSONL.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// Slack: the conversations and channels Secoda can post to.
    #[command(subcommand)]
    Slack(SlackCommand),
    /// Watch the target folder and upload each fresh pair a dbt command writes (a sidecar, or
    /// while you work): every option of upload, plus how to watch.
    #[command(after_help = exit::help_short(), after_long_help = exit::help())]
    Watch(WatchArgs),
    /// Probe a URL (e.g. a watcher's /healthz) for a container health check: exit 0 when it
    /// answers 2xx, 1 otherwise. Needs no shell or curl in the image.
    Health(HealthArgs),
    /// Check the setup, one line a check: API reachable, key accepted, integration, proxy and CA,
    /// artifacts in the target folder.
    #[command(after_help = exit::help_short(), after_long_help = exit::help())]
    Doctor(DoctorArgs),
    /// Run a local Secoda API simulator (the Integrations API, in memory, with fault injection).
    Simulator(SimulatorArgs),
    /// Run the whole upload pipeline over bundled example artifacts against the built-in simulator.
    Demo(DemoArgs),
    /// Print a shell completion script, e.g. `source <(dbt-secoda completions bash)`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `dbt-secoda man > dbt-secoda.1; man -l dbt-secoda.1`.
    Man {
        /// Write every page instead (dbt-secoda.1, dbt-secoda-upload.1, ...) into this folder,
        /// e.g. /usr/local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The completion script for `shell`, from the same definitions as `--help`.
fn completion_script(shell: clap_complete::Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    if shell == clap_complete::Shell::Bash {
        // clap_complete names the state of a subcommand `dbt__secoda__subcmd__upload` where it
        // sets it but `dbt__subcmd__secoda__subcmd__upload` where it matches it, when the binary's
        // name has a hyphen (clap-rs/clap#6421), so options after a subcommand never complete.
        script.replace("dbt__subcmd__secoda", "dbt__secoda")
    } else {
        script
    }
}

/// The binary's name, as shells know it.
const BIN: &str = "dbt-secoda";

/// Where Secoda is and how to prove who we are.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// Secoda API root, e.g. https://api.secoda.co or https://secoda.example.com/api/v1 for a
    /// self-hosted install. A bare host gets /api/v1 appended. Overrides --region.
    #[arg(long, env = env::API_URL, hide_env_values = true, value_name = "URL")]
    pub api_url: Option<String>,

    /// Secoda cloud region, used when no --api-url is given.
    #[arg(long, value_enum, default_value_t = Region::Us, env = env::REGION, hide_env_values = true)]
    pub region: Region,

    /// Secoda API key. Prefer the environment variable or --api-key-file: a flag is visible to
    /// other users in the process list.
    #[arg(long, env = env::API_KEY, hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<Secret>,

    /// Read the Secoda API key from this file (surrounding whitespace is ignored). A flag beats
    /// an environment variable: --api-key-file is used over SECODA_API_KEY.
    #[arg(long, env = env::API_KEY_FILE, hide_env_values = true, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Also trust the CA certificates in this PEM file (for TLS-inspecting proxies). The system
    /// store, SSL_CERT_FILE and SSL_CERT_DIR are used as well; HTTPS_PROXY and NO_PROXY are honoured.
    #[arg(long, env = env::CA_CERT, hide_env_values = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Present this client certificate (PEM, with its chain) when the server asks for one
    /// (mutual TLS, e.g. a gateway in front of a self-hosted install).
    #[arg(long, env = env::CLIENT_CERT, hide_env_values = true, value_name = "FILE")]
    pub client_cert: Option<PathBuf>,

    /// The client certificate's private key (unencrypted PEM), unless --client-cert's file
    /// holds it too.
    #[arg(long, env = env::CLIENT_KEY, hide_env_values = true, value_name = "FILE")]
    pub client_key: Option<PathBuf>,

    /// Allow plain http:// to a host that is not loopback (the key would travel unencrypted).
    #[arg(long, env = env::ALLOW_INSECURE_HTTP, hide_env_values = true, value_parser = BoolishValueParser::new())]
    pub allow_insecure_http: bool,

    /// How long to keep retrying one request that fails with a transient error (connection
    /// errors, timeouts, 408, 429, 500, 502, 503, 504).
    #[arg(long, default_value = "5m", value_parser = parse_duration, env = env::RETRY_TIMEOUT, hide_env_values = true, value_name = "DURATION")]
    pub retry_timeout: Duration,

    /// How long one request may go without progress (no bytes taken by the connection, or no
    /// answer once everything was sent) before it is abandoned and retried. An upload that keeps
    /// moving is never cut, however long it takes.
    #[arg(long, default_value = "2m", value_parser = positive_duration, env = env::STALL_TIMEOUT, hide_env_values = true, value_name = "DURATION")]
    pub stall_timeout: Duration,

    /// How many times a request that carries files (an upload, an import) is sent at most,
    /// retries included, within --retry-timeout.
    #[arg(long, default_value_t = crate::config::DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=100), env = env::MAX_ATTEMPTS, hide_env_values = true, value_name = "N")]
    pub max_attempts: u32,
}

/// Which dbt Core integration.
#[derive(Debug, Clone, Args)]
pub struct IntegrationArg {
    /// The dbt Core integration's id (the UUID in the integration's URL in Secoda).
    #[arg(help_heading = "Connection", long, env = env::INTEGRATION_ID, hide_env_values = true, value_name = "ID")]
    pub integration_id: Option<Id>,
}

/// Where dbt's artifacts are.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Artifacts")]
pub struct ArtifactArgs {
    /// dbt's target folder, relative to --project-dir when that is given [default: target, or
    /// target-path from dbt_project.yml]. watch takes it more than once.
    #[arg(long, env = env::TARGET_PATH, hide_env_values = true, value_name = "DIR", action = clap::ArgAction::Append)]
    pub target_dir: Vec<PathBuf>,

    /// The dbt project folder; its dbt_project.yml's target-path is honoured.
    #[arg(long, env = env::PROJECT_DIR, hide_env_values = true, value_name = "DIR")]
    pub project_dir: Option<PathBuf>,

    /// Use this manifest.json instead of the one in the target folder.
    #[arg(long, env = env::MANIFEST, hide_env_values = true, value_name = "FILE")]
    pub manifest: Option<PathBuf>,

    /// Use this run_results.json instead of the one in the target folder.
    #[arg(long, env = env::RUN_RESULTS, hide_env_values = true, value_name = "FILE")]
    pub run_results: Option<PathBuf>,
}

/// How a pair is uploaded and judged.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Behaviour")]
pub struct BehaviourArgs {
    /// Which tests fail the command (exit 1).
    #[arg(long, value_enum, default_value_t = FailOn::Error, env = env::FAIL_ON, hide_env_values = true)]
    pub fail_on: FailOn,

    /// What a Secoda error (exit 4 or 5) does.
    #[arg(long, value_enum, default_value_t = OnApiError::Fail, env = env::ON_API_ERROR, hide_env_values = true)]
    pub on_api_error: OnApiError,

    /// Do not wait for Secoda's failing-tests answer; the local run_results alone decide.
    #[arg(long, env = env::NO_WAIT, hide_env_values = true, value_parser = BoolishValueParser::new())]
    pub no_wait: bool,

    /// How long to wait for the sync's failing-tests answer to settle.
    #[arg(long, default_value = "10m", value_parser = positive_duration, env = env::WAIT_TIMEOUT, hide_env_values = true, value_name = "DURATION")]
    pub wait_timeout: Duration,

    /// How often to ask Secoda for the failing-tests answer while waiting (at least 100ms).
    #[arg(long, default_value = "5s", value_parser = poll_interval, env = env::POLL_INTERVAL, hide_env_values = true, value_name = "DURATION")]
    pub poll_interval: Duration,

    /// How long to keep retrying the sync trigger while Secoda says a sync is already running (409).
    #[arg(long, default_value = "10m", value_parser = parse_duration, env = env::TRIGGER_TIMEOUT, hide_env_values = true, value_name = "DURATION")]
    pub trigger_timeout: Duration,

    /// Check everything and print the plan (files, sizes, sha256, endpoints); send nothing.
    #[arg(long, env = env::DRY_RUN, hide_env_values = true, value_parser = BoolishValueParser::new())]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    #[command(flatten)]
    pub integration: IntegrationArg,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[command(flatten)]
    pub artifacts: ArtifactArgs,

    #[command(flatten)]
    pub behaviour: BehaviourArgs,

    /// Report format on stdout.
    #[arg(long, help_heading = "Reports", value_enum, default_value_t = OutputFormat::Text, env = env::OUTPUT, hide_env_values = true)]
    pub output: OutputFormat,

    /// Also report the way GitHub Actions reads it: an annotation on the file of each test that
    /// did not pass, a job summary ($GITHUB_STEP_SUMMARY) and step outputs ($GITHUB_OUTPUT). On by
    /// itself on a runner (GITHUB_ACTIONS=true), where the key is also masked; --github=false
    /// turns it off there.
    #[arg(long, help_heading = "Reports", env = env::GITHUB, hide_env_values = true, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub github: Option<bool>,

    /// Also write the run's tests as a JUnit XML report to this file (GitLab, Jenkins, Azure
    /// DevOps, CircleCI and Buildkite read it).
    #[arg(long, help_heading = "Reports", env = env::JUNIT, hide_env_values = true, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub upload: UploadArgs,

    #[command(flatten)]
    pub watch: WatchOnlyArgs,
}

/// How `watch` watches.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Watching")]
pub struct WatchOnlyArgs {
    /// Also watch every folder that matches this glob, now or later (e.g. 'target/*' for
    /// dagster-dbt's folder a run, '/tmp/cosmos-*/target'); repeatable, comma-separated in the
    /// variable. Folders that disappear are no longer watched.
    #[arg(long, env = env::TARGET_GLOB, hide_env_values = true, value_name = "PATTERN", value_delimiter = ',', action = clap::ArgAction::Append)]
    pub target_glob: Vec<String>,

    /// Send the runs of dbt project PROJECT (the manifest's metadata.project_name) to integration
    /// ID; repeatable, comma-separated in the variable. Other projects go to --integration-id.
    #[arg(long, env = env::INTEGRATION_FOR, hide_env_values = true, value_name = "PROJECT=ID", value_delimiter = ',', value_parser = project_route, action = clap::ArgAction::Append)]
    pub integration_for: Vec<(String, Id)>,

    /// Exit after the first fresh pair is processed, with that upload's exit code.
    #[arg(long, env = env::ONCE, hide_env_values = true, value_parser = BoolishValueParser::new())]
    pub once: bool,

    /// How long a complete pair must hold still before it is copied and uploaded.
    #[arg(long, default_value = "250ms", value_parser = parse_duration, env = env::DEBOUNCE, hide_env_values = true, value_name = "DURATION")]
    pub debounce: Duration,

    /// Where the last processed pair is remembered across restarts [default:
    /// $XDG_STATE_HOME/dbt-secoda/watch-HASH.json, or ~/.local/state/dbt-secoda/..., one file
    /// per target folder]
    #[arg(long, env = env::STATE_FILE, hide_env_values = true, value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    /// How often the target folder is scanned (the source of truth; file-system events only
    /// make a scan come sooner).
    #[arg(long, default_value = "1s", value_parser = poll_interval, env = env::SCAN_INTERVAL, hide_env_values = true, value_name = "DURATION")]
    pub scan_interval: Duration,

    /// Scan only, no file-system events (network file systems, some container mounts).
    #[arg(long, env = env::POLLING, hide_env_values = true, value_parser = BoolishValueParser::new())]
    pub polling: bool,

    /// Which dbt commands (run_results' args.which) are uploaded, comma-separated. compile,
    /// docs generate, show and run-operation are left out by default: they test nothing, and
    /// uploading them would tell Secoda no test fails.
    #[arg(long, default_value = crate::watch::DEFAULT_COMMANDS, value_delimiter = ',', env = env::COMMANDS, hide_env_values = true, value_name = "LIST")]
    pub commands: Vec<String>,

    /// On SIGTERM or Ctrl-C, how long to let the upload in flight (and a pair already
    /// complete) finish before stopping; Kubernetes waits 30 s before it kills.
    #[arg(long, default_value = "25s", value_parser = parse_duration, env = env::SHUTDOWN_GRACE, hide_env_values = true, value_name = "DURATION")]
    pub shutdown_grace: Duration,

    /// Serve /healthz, /readyz and /metrics (Prometheus) on this address, e.g. 0.0.0.0:9090.
    #[arg(long, env = env::HEALTH_LISTEN, hide_env_values = true, value_name = "ADDR")]
    pub health_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The URL to probe, e.g. http://127.0.0.1:9090/readyz.
    pub url: String,

    /// How long to wait for the answer.
    #[arg(long, default_value = "5s", value_parser = positive_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// How results are printed.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Result format on stdout: a table for people, or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, env = env::OUTPUT, hide_env_values = true)]
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
        id: Id,
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
        id: Id,
        /// Do not ask.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Import tables and columns from a CSV file (checked first; nothing is sent if it is invalid).
    #[command(after_help = exit::help_short(), after_long_help = exit::help())]
    ImportCsv {
        /// The custom integration's id.
        id: Id,
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
    #[command(after_help = exit::help_short(), after_long_help = exit::help())]
    ImportJsonl {
        /// The custom integration's id.
        id: Id,
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
    #[arg(long, env = env::SIMULATOR_API_KEY, hide_env_values = true, value_name = "KEY")]
    pub api_key: Secret,

    /// A dbt Core integration to create at start (repeatable).
    #[arg(long = "dbt-integration", value_name = "ID", default_value = simulator::DEFAULT_DBT_INTEGRATION)]
    pub dbt_integrations: Vec<Id>,

    /// How long a triggered dbt sync runs; meanwhile triggers answer 409 and failing_tests answers
    /// the previous sync's result. A list (0.2,30) gives each sync its own length, in turn; the
    /// last one repeats.
    #[arg(long, default_value = "2", value_parser = sync_seconds, value_delimiter = ',', value_name = "SECONDS")]
    pub sync_seconds: Vec<Duration>,

    /// How the failing-tests answer names entities (Secoda's choice is not documented).
    #[arg(long, value_enum, default_value_t = Naming::Node)]
    pub entity_names: Naming,

    /// Answers given before the body is read (401, 404) close the connection without reading
    /// it, as gunicorn does with no proxy in front; the client sees a reset or a broken pipe.
    #[arg(long)]
    pub early_close: bool,

    /// Answer 413 before reading any request declaring a larger body, as nginx's
    /// client_max_body_size does (its default is 1 MiB); what is sent anyway is read and dropped.
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<u64>,

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

    /// The --fail-requests answers carry no Retry-After, even 429 and 503 (as a proxy's own
    /// answers come).
    #[arg(long)]
    pub fail_without_retry_after: bool,

    /// The status --fail-requests answers (429 and 503 carry Retry-After: 1; 3xx carry a Location).
    #[arg(long, default_value_t = 503, value_name = "CODE")]
    pub fail_status: u16,

    /// The `detail` text of the --fail-requests answers (a server's error text reaches the
    /// client's messages: try one with escape sequences).
    #[arg(long, value_name = "TEXT")]
    pub fail_detail: Option<String>,

    /// Fault: at most this many writes (POST/PUT/PATCH/DELETE) a minute, then 429 with Retry-After.
    #[arg(long, value_name = "PER_MINUTE")]
    pub rate_limit: Option<u32>,

    /// The window --rate-limit counts in (Secoda's is a minute; tests shorten it).
    #[arg(long, default_value = "60s", value_parser = positive_duration, value_name = "DURATION")]
    pub rate_window: Duration,

    /// Fault: the first N uploads are cut off mid-body (the connection is dropped).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub reset_uploads: u32,

    /// Fault: wait this long before answering each request.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency: u64,

    /// Items per page in list answers.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub page_size: u64,

    /// List answers as a self-hosted install gives them: next links without /api/v1 and on an
    /// internal host, and "None" for no link.
    #[arg(long)]
    pub self_hosted_links: bool,

    /// Fault: read uploads no faster than this many bytes a second (a slow link or proxy).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_bytes_per_second: Option<u64>,

    /// Fault: every sync ends with this answer instead of the one the upload's files give, as
    /// JSON: '{"failing": ["model.shop.orders"], "warning": []}'. For trying out how
    /// disagreements between Secoda and the local results are reported.
    #[arg(long, value_name = "JSON")]
    pub fixed_answer: Option<Entities>,

    /// Fault: once a sync has ended, failing_tests answers this JSON as it is, whatever its shape
    /// ('{"failing": "model.shop.orders"}', a renamed key, a list): an API change or a proxy's
    /// page. For trying out how an answer dbt-secoda does not understand is reported.
    #[arg(long, value_name = "JSON", value_parser = json_value)]
    pub raw_answer: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

fn json_value(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    parse_duration_at_least(text, Duration::from_millis(1))
}

fn poll_interval(text: &str) -> Result<Duration, String> {
    parse_duration_at_least(text, Duration::from_millis(100))
}

/// Seconds as a number (fractions allowed), at most a day.
fn sync_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?} must be between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The matches of the subcommand that runs (the deepest one).
fn leaf(matches: &ArgMatches) -> &ArgMatches {
    let mut leaf = matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    leaf
}

/// The connection inputs, with the key's candidates sorted by whether they were typed.
fn connection(args: &ConnectionArgs, leaf: &ArgMatches) -> ConnectionInput {
    let from_env = |id: &str| leaf.value_source(id) == Some(ValueSource::EnvVariable);
    let (typed, env_key) = match (&args.api_key, from_env("api_key")) {
        (Some(key), true) => (None, Some(key.clone())),
        (key, _) => (key.clone(), None),
    };
    let (typed_file, env_file) = match (&args.api_key_file, from_env("api_key_file")) {
        (Some(path), true) => (None, Some(path.clone())),
        (path, _) => (path.clone(), None),
    };
    ConnectionInput {
        api_url: args.api_url.clone(),
        region: args.region,
        key: KeyInput {
            typed,
            typed_file,
            env: env_key,
            env_file,
        },
        ca_cert: args.ca_cert.clone(),
        client_cert: args.client_cert.clone(),
        client_key: args.client_key.clone(),
        allow_insecure_http: args.allow_insecure_http,
        retry_timeout: args.retry_timeout,
        stall_timeout: args.stall_timeout,
        max_attempts: args.max_attempts,
    }
}

fn artifacts(args: &ArtifactArgs) -> ArtifactInput {
    ArtifactInput {
        // A flag given twice takes its last value (watch takes them all).
        target_dir: args.target_dir.last().cloned(),
        project_dir: args.project_dir.clone(),
        manifest: args.manifest.clone(),
        run_results: args.run_results.clone(),
    }
}

fn options(args: &BehaviourArgs) -> upload::Options {
    upload::Options {
        fail_on: args.fail_on,
        on_api_error: args.on_api_error,
        wait: (!args.no_wait).then_some(Wait {
            timeout: args.wait_timeout,
            poll_interval: args.poll_interval,
        }),
        trigger_timeout: args.trigger_timeout,
        dry_run: args.dry_run,
    }
}

fn simulator_options(args: &SimulatorArgs) -> simulator::Options {
    simulator::Options {
        api_key: args.api_key.expose().to_string(),
        dbt_integrations: args.dbt_integrations.iter().map(Id::to_string).collect(),
        sync: args.sync_seconds.clone(),
        naming: args.entity_names,
        early_close: args.early_close,
        max_body_bytes: args.max_body_bytes,
        conflicts: args.conflicts,
        fail_requests: args.fail_requests,
        fail_status: args.fail_status,
        fail_detail: args.fail_detail.clone(),
        fail_without_retry_after: args.fail_without_retry_after,
        fail_path: args.fail_path.clone(),
        upload_bytes_per_second: args.upload_bytes_per_second,
        fixed_answer: args.fixed_answer.clone(),
        raw_answer: args.raw_answer.clone(),
        rate_limit: args.rate_limit,
        rate_window: args.rate_window,
        reset_uploads: args.reset_uploads,
        latency: Duration::from_millis(args.latency),
        page_size: args.page_size as usize,
        self_hosted_links: args.self_hosted_links,
    }
}

/// Parses the command line, runs the command, and returns its exit code.
pub fn main() -> std::process::ExitCode {
    let matches = match without_empty_env(Cli::command()).try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return usage(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            crate::report::print_error(&format!("cannot start the async runtime: {e}"), None);
            return exit::decide(Some(ExitCode::Usage), false, OnApiError::Fail).into();
        }
    };
    let leaf = leaf(&matches);
    let progress = logging::progress_allowed(cli.quiet);
    let code = runtime.block_on(dispatch(cli.command, leaf, progress));
    // A file-reading thread blocked on a hung network mount must not keep the process alive
    // after the answer is decided (dropping the runtime would wait for it forever).
    runtime.shutdown_timeout(Duration::from_secs(1));
    code.into()
}

/// The definitions with every option whose variable is set but empty treated as if the variable
/// were unset: CI systems pass an unset input as `VAR=` (a GitHub Action's `env:` from an empty
/// input), which must mean "the default", not "an empty value".
fn without_empty_env(command: clap::Command) -> clap::Command {
    let empty = |arg: &clap::Arg| {
        arg.get_env()
            .and_then(std::env::var_os)
            .is_some_and(|value| value.is_empty())
    };
    command
        .mut_args(|arg| if empty(&arg) { arg.env(None) } else { arg })
        .mut_subcommands(without_empty_env)
}

/// clap's own errors and `--help`/`--version`: printed by clap, coded here.
fn usage(e: clap::Error) -> std::process::ExitCode {
    let _ = e.print();
    let code = if e.use_stderr() {
        exit::decide(Some(ExitCode::Usage), false, OnApiError::Fail)
    } else {
        exit::decide(None, false, OnApiError::Fail)
    };
    code.into()
}

fn upload_input(args: &UploadArgs, leaf: &ArgMatches, progress: bool) -> upload::Input {
    upload::Input {
        connection: connection(&args.connection, leaf),
        integration: args.integration.integration_id.clone(),
        artifacts: artifacts(&args.artifacts),
        options: options(&args.behaviour),
        output: args.output,
        progress: progress && args.output == OutputFormat::Text,
        github: args.github,
        junit: args.junit.clone(),
    }
}

/// `PROJECT=ID` of `--integration-for`.
fn project_route(given: &str) -> Result<(String, Id), String> {
    let (project, id) = given
        .split_once('=')
        .ok_or_else(|| format!("{given:?} is not PROJECT=ID"))?;
    let project = project.trim();
    if project.is_empty() {
        return Err(format!("{given:?} names no project before '='"));
    }
    Ok((project.to_string(), id.trim().parse::<Id>()?))
}

fn watch_input(args: &WatchArgs) -> watch::WatchInput {
    let target_dirs = args.upload.artifacts.target_dir.clone();
    let args = &args.watch;
    watch::WatchInput {
        target_dirs,
        globs: args
            .target_glob
            .iter()
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty())
            .collect(),
        routes: args.integration_for.clone(),
        once: args.once,
        debounce: args.debounce,
        state_file: args.state_file.clone(),
        scan_interval: args.scan_interval,
        polling: args.polling,
        commands: args
            .commands
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
        shutdown_grace: args.shutdown_grace,
        health_listen: args.health_listen,
    }
}

async fn dispatch(command: Command, leaf: &ArgMatches, progress: bool) -> ExitCode {
    match command {
        Command::Upload(args) => upload::run(upload_input(&args, leaf, progress)).await,
        Command::Watch(args) => {
            watch::run(
                upload_input(&args.upload, leaf, progress),
                watch_input(&args),
            )
            .await
        }
        Command::Health(args) => health::run(&args.url, args.timeout).await,
        Command::Integrations(cmd) => {
            let (input, connection_args, output) = integrations_input(cmd);
            integrations::run(input, connection(&connection_args, leaf), output).await
        }
        Command::Slack(SlackCommand::Conversations {
            connection: c,
            output,
        }) => slack::conversations(connection(&c, leaf), output.output).await,
        Command::Doctor(args) => {
            doctor::run(doctor::Input {
                connection: connection(&args.connection, leaf),
                integration: args.integration.integration_id.clone(),
                artifacts: artifacts(&args.artifacts),
                output: args.output.output,
            })
            .await
        }
        Command::Simulator(args) => {
            commands::simulator::run(args.listen, simulator_options(&args)).await
        }
        Command::Demo(args) => {
            demo::run(args.output, progress && args.output == OutputFormat::Text).await
        }
        Command::Completions { shell } => {
            logging::print_stdout(&completion_script(shell));
            exit::decide(None, false, OnApiError::Fail)
        }
        Command::Man { dir: None } => {
            let mut page = Vec::new();
            let rendered = crate::manual::render(Cli::command(), &mut page);
            match rendered {
                Ok(()) => {
                    logging::print_stdout(&String::from_utf8_lossy(&page));
                    exit::decide(None, false, OnApiError::Fail)
                }
                Err(e) => {
                    crate::report::print_error(&format!("cannot render the man page: {e}"), None);
                    exit::decide(Some(ExitCode::Bug), false, OnApiError::Fail)
                }
            }
        }
        Command::Man { dir: Some(dir) } => match crate::manual::write_all(Cli::command(), &dir) {
            Ok(()) => {
                tracing::info!("man pages written to {}", dir.display());
                exit::decide(None, false, OnApiError::Fail)
            }
            Err(e) => {
                crate::report::print_error(
                    &format!("cannot write the man pages into {}: {e}", dir.display()),
                    Some("give --dir an existing, writable folder"),
                );
                exit::decide(Some(ExitCode::Usage), false, OnApiError::Fail)
            }
        },
    }
}

fn integrations_input(
    cmd: IntegrationsCommand,
) -> (integrations::Input, ConnectionArgs, OutputFormat) {
    use integrations::Input;
    match cmd {
        IntegrationsCommand::List {
            kind,
            connection,
            output,
        } => (Input::List { kind }, connection, output.output),
        IntegrationsCommand::Get {
            id,
            connection,
            output,
        } => (Input::Get { id }, connection, output.output),
        IntegrationsCommand::Create {
            name,
            kind,
            teams,
            connection,
            output,
        } => (
            Input::Create { name, kind, teams },
            connection,
            output.output,
        ),
        IntegrationsCommand::Delete {
            id,
            yes,
            connection,
            output,
        } => (Input::Delete { id, yes }, connection, output.output),
        IntegrationsCommand::ImportCsv {
            id,
            file,
            dry_run,
            connection,
            output,
        } => (
            Input::ImportCsv { id, file, dry_run },
            connection,
            output.output,
        ),
        IntegrationsCommand::ImportJsonl {
            id,
            resources,
            lineages,
            external_parents,
            dry_run,
            connection,
            output,
        } => (
            Input::ImportJsonl {
                id,
                resources,
                lineages,
                external_parents,
                dry_run,
            },
            connection,
            output.output,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parsed_arguments_never_show_a_key() {
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

    #[test]
    fn durations_and_ids_are_checked_where_they_are_typed() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|_| ());
        assert!(parse(&["dbt-secoda", "upload", "--poll-interval", "0"]).is_err());
        assert!(parse(&["dbt-secoda", "upload", "--poll-interval", "100ms"]).is_ok());
        assert!(
            parse(&[
                "dbt-secoda",
                "simulator",
                "--api-key",
                "k",
                "--sync-seconds",
                "inf"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "dbt-secoda",
                "integrations",
                "get",
                "../dbt/x/failing_tests"
            ])
            .is_err()
        );
    }
}
