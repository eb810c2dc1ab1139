//! The `weir` binary with the 50 reference pattern DAGs registered.

use std::process::ExitCode;

fn main() -> ExitCode {
    weir_cli::run(weir_patterns::registry())
}
