//! The `weir` command line: parses flags, calls the library crates, prints tables, JSON and
//! progress bars. No business logic lives here.
//!
//! A user's own binary is one line: `fn main() -> ExitCode { weir_cli::run(my_registry()) }`.

mod args;
mod checkpoints;
mod checks;
mod commands;
mod datasets;
mod dlq;

use std::process::ExitCode;

use clap::Parser;
use weir_runtime::Registry;

pub use args::Cli;

/// stdout was closed by its reader (`weir runs list --json | head -1`): not a failure.
#[derive(Debug)]
pub(crate) struct ClosedPipe;

impl std::fmt::Display for ClosedPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for ClosedPipe {}

/// A failed write to stdout: [`ClosedPipe`] when the reader went away, else the error itself.
pub(crate) fn pipe_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(ClosedPipe)
    } else {
        anyhow::Error::new(e).context("cannot write to stdout")
    }
}

/// Runs the `weir` CLI over the DAGs in `registry`. Exit code 0 only on success; errors are
/// printed on stderr as one sentence.
pub fn run(mut registry: Registry) -> ExitCode {
    // A bug must still read as one sentence, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error (a bug in weir){place}: {message}; please report it");
    }));
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
    {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let console = tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .with_filter(filter);
        // Each try's log is kept at info whatever the console shows.
        let tries = weir_runtime::TryLogLayer::new(cli.home.join("logs"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
        tracing_subscriber::registry()
            .with(console)
            .with(tries)
            .init();
    }
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
    let files = commands::load_dag_files(&cli, &mut registry);
    match runtime.block_on(commands::dispatch(cli, registry, files)) {
        Ok(code) => code,
        Err(e) if e.is::<ClosedPipe>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
