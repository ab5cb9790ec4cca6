//! The `dbt-secoda` binary. Everything lives in the library; this only runs it.

fn main() -> std::process::ExitCode {
    dbt_secoda::main()
}
