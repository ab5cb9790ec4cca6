//! The `dbt-secoda` binary: parse the command line, start logging, run, exit with the code
//! [`dbt_secoda::exit`] decided. Everything else lives in the library.

use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
use dbt_secoda::cli::Cli;

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Which key options came from the environment: a flag beats them, and messages say which.
    let mut leaf = &matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    let from_env = |id: &str| {
        matches!(leaf.try_get_raw(id), Ok(Some(_)))
            && leaf.value_source(id) == Some(ValueSource::EnvVariable)
    };
    let origins = dbt_secoda::config::KeyOrigins {
        key_from_env: from_env("api_key"),
        file_from_env: from_env("api_key_file"),
    };
    dbt_secoda::logging::init(cli.verbose, cli.quiet, cli.log_format);
    dbt_secoda::run(cli, origins).into()
}
