//! The environment variables dbt-secoda reads: one table used by the clap definitions, the
//! hints in error messages and the documentation test that holds the README to it.
//!
//! A leaf. It only names variables; reading them is clap's job (flags) or the owner's (e.g.
//! `NO_COLOR` in [`crate::style`]).

// Connection.
pub const API_URL: &str = "SECODA_API_URL";
pub const REGION: &str = "SECODA_REGION";
pub const API_KEY: &str = "SECODA_API_KEY";
pub const API_KEY_FILE: &str = "SECODA_API_KEY_FILE";
pub const CA_CERT: &str = "SECODA_CA_CERT";
pub const CLIENT_CERT: &str = "SECODA_CLIENT_CERT";
pub const CLIENT_KEY: &str = "SECODA_CLIENT_KEY";
pub const ALLOW_INSECURE_HTTP: &str = "SECODA_ALLOW_INSECURE_HTTP";
pub const RETRY_TIMEOUT: &str = "DBT_SECODA_RETRY_TIMEOUT";
pub const STALL_TIMEOUT: &str = "DBT_SECODA_STALL_TIMEOUT";
pub const MAX_ATTEMPTS: &str = "DBT_SECODA_MAX_ATTEMPTS";
pub const INTEGRATION_ID: &str = "SECODA_INTEGRATION_ID";

// Artifacts.
pub const TARGET_PATH: &str = "DBT_TARGET_PATH";
pub const PROJECT_DIR: &str = "DBT_PROJECT_DIR";
pub const MANIFEST: &str = "DBT_SECODA_MANIFEST";
pub const RUN_RESULTS: &str = "DBT_SECODA_RUN_RESULTS";

// Behaviour of an upload.
pub const FAIL_ON: &str = "DBT_SECODA_FAIL_ON";
pub const ON_API_ERROR: &str = "DBT_SECODA_ON_API_ERROR";
pub const NO_WAIT: &str = "DBT_SECODA_NO_WAIT";
pub const WAIT_TIMEOUT: &str = "DBT_SECODA_WAIT_TIMEOUT";
pub const POLL_INTERVAL: &str = "DBT_SECODA_POLL_INTERVAL";
pub const TRIGGER_TIMEOUT: &str = "DBT_SECODA_TRIGGER_TIMEOUT";
pub const OUTPUT: &str = "DBT_SECODA_OUTPUT";
pub const DRY_RUN: &str = "DBT_SECODA_DRY_RUN";

// Reports beside stdout's.
pub const GITHUB: &str = "DBT_SECODA_GITHUB";
pub const JUNIT: &str = "DBT_SECODA_JUNIT";

// Watching.
pub const TARGET_GLOB: &str = "DBT_SECODA_TARGET_GLOB";
pub const INTEGRATION_FOR: &str = "DBT_SECODA_INTEGRATION_FOR";
pub const ONCE: &str = "DBT_SECODA_ONCE";
pub const DEBOUNCE: &str = "DBT_SECODA_DEBOUNCE";
pub const STATE_FILE: &str = "DBT_SECODA_STATE_FILE";
pub const SCAN_INTERVAL: &str = "DBT_SECODA_SCAN_INTERVAL";
pub const POLLING: &str = "DBT_SECODA_POLLING";
pub const COMMANDS: &str = "DBT_SECODA_COMMANDS";
pub const SHUTDOWN_GRACE: &str = "DBT_SECODA_SHUTDOWN_GRACE";
pub const HEALTH_LISTEN: &str = "DBT_SECODA_HEALTH_LISTEN";

// Logging.
pub const LOG_FORMAT: &str = "DBT_SECODA_LOG_FORMAT";
pub const RUST_LOG: &str = "RUST_LOG";
pub const NO_COLOR: &str = "NO_COLOR";

// The simulator.
pub const SIMULATOR_API_KEY: &str = "SECODA_SIMULATOR_API_KEY";

/// Shrinks every retry wait by a factor, for the test suite. Not a user setting.
pub const RETRY_SCALE: &str = "DBT_SECODA_RETRY_SCALE";

/// Every variable a user may set, in the order the README's table lists them.
#[cfg_attr(not(test), allow(dead_code))]
pub const USER_FACING: &[&str] = &[
    INTEGRATION_ID,
    API_KEY,
    API_KEY_FILE,
    API_URL,
    REGION,
    CA_CERT,
    CLIENT_CERT,
    CLIENT_KEY,
    ALLOW_INSECURE_HTTP,
    RETRY_TIMEOUT,
    STALL_TIMEOUT,
    MAX_ATTEMPTS,
    TARGET_PATH,
    PROJECT_DIR,
    MANIFEST,
    RUN_RESULTS,
    FAIL_ON,
    ON_API_ERROR,
    NO_WAIT,
    WAIT_TIMEOUT,
    POLL_INTERVAL,
    TRIGGER_TIMEOUT,
    OUTPUT,
    DRY_RUN,
    GITHUB,
    JUNIT,
    TARGET_GLOB,
    INTEGRATION_FOR,
    ONCE,
    DEBOUNCE,
    STATE_FILE,
    SCAN_INTERVAL,
    POLLING,
    COMMANDS,
    SHUTDOWN_GRACE,
    HEALTH_LISTEN,
    RUST_LOG,
    LOG_FORMAT,
    NO_COLOR,
];

#[cfg(test)]
mod tests {
    /// The README's configuration table names every variable, so the docs cannot drift.
    #[test]
    fn the_readme_names_every_variable() {
        let readme = include_str!("../README.md");
        for name in super::USER_FACING {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README.md does not mention `{name}`"
            );
        }
    }
}
