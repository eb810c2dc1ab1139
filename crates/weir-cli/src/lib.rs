//! The `weir` command line: parses flags, calls the library crates, prints tables, JSON and
//! progress bars. No business logic lives here.
//!
//! A user's own binary is one line: `fn main() -> ExitCode { weir_cli::run(my_registry()) }`.

mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use weir_runtime::Registry;

pub use args::Cli;

/// Runs the `weir` CLI over the DAGs in `registry`. Exit code 0 only on success; errors are
/// printed on stderr as one sentence.
pub fn run(registry: Registry) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::dispatch(cli, registry)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
