//! Integration tests of the `weir` binary: run it as a user would and check what it prints,
//! what it exits with, and what it leaves in the home folder.

mod errors;
mod new_user;
mod preview;
mod runs;

use assert_cmd::Command;

/// `weir` with a fresh home.
pub fn weir(home: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("weir").expect("the weir binary is built");
    cmd.env_remove("WEIR_HOME")
        .env_remove("WEIR_STORE_URL")
        .arg("--home")
        .arg(home);
    cmd
}

/// Parses JSON-lines output.
pub fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}
