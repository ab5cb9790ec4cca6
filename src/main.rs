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
    // Whether the key came from SECODA_API_KEY rather than --api-key: messages say which.
    let mut leaf = &matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    let key_from_env = matches!(leaf.try_get_raw("api_key"), Ok(Some(_)))
        && leaf.value_source("api_key") == Some(ValueSource::EnvVariable);
    dbt_secoda::logging::init(cli.verbose, cli.quiet, cli.log_format);
    dbt_secoda::run(cli, key_from_env).into()
}
