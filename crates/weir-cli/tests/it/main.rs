//! Integration tests of the `weir` binary: run it as a user would and check what it prints,
//! what it exits with, and what it leaves in the home folder.

mod checkpoints;
mod checks;
mod dag_files;
mod debugging;
mod dlq;
mod errors;
mod fidelity;
mod new_user;
mod preview;
mod runs;
mod shared_datasets;
mod workers;

use assert_cmd::Command;

/// Held by the multi-host test (10,000 tries over three namespaced workers, every core busy
/// for minutes) and by the tests that wait on a live scheduler's real-time progress, so the
/// two never run at once on a 2-core machine.
pub static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`HEAVY`], whatever a test that panicked holding it left.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

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

/// Runs `weir args…` in `home` expecting failure with exactly one line on stderr containing
/// `needle` and no panic; returns stderr.
pub fn fails_with(home: &std::path::Path, args: &[&str], needle: &str) -> String {
    String::from_utf8_lossy(&fails_with_output(home, args, needle).stderr).into_owned()
}

/// [`fails_with`], returning the whole output.
pub fn fails_with_output(
    home: &std::path::Path,
    args: &[&str],
    needle: &str,
) -> std::process::Output {
    let out = weir(home)
        .args(args)
        .assert()
        .failure()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(needle),
        "stderr of {args:?} lacks {needle:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "{args:?} printed more than one line on stderr: {stderr}"
    );
    out
}

/// `weir …` as a child process with stderr piped (its `--log info` events).
pub fn spawn_weir(home: &std::path::Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("weir"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("WEIR_HOME")
        .env_remove("WEIR_STORE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the child's stderr until `count` lines contain every one of `needles`, then kills it
/// with SIGKILL (no chance to clean up) and reaps it.
pub fn kill_after(mut child: std::process::Child, needles: &[&str], count: usize) {
    use std::io::BufRead;
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = 0;
    for line in stderr.lines() {
        let line = line.unwrap();
        if needles.iter().all(|n| line.contains(n)) {
            seen += 1;
            if seen == count {
                break;
            }
        }
    }
    assert_eq!(seen, count, "the process ended before the events awaited");
    let status = std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(!exit.success(), "killed by SIGKILL: {exit:?}");
}

/// Edits the store of `home` with Python's sqlite3 — as a damaged disk, a hand edit or a
/// process killed between two writes would leave it: runs `sql`, then with
/// `rehash_checkpoints` recomputes the checkpoints' checksums, so only the damage under test
/// remains.
pub fn edit_store(home: &std::path::Path, sql: &str, rehash_checkpoints: bool) {
    let script = format!(
        r#"
import hashlib, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute({sql:?})
if {rehash}:
    for (rowid, version, source, seq, state) in db.execute("SELECT rowid, version, source, seq, state FROM checkpoints").fetchall():
        h = hashlib.sha1(f"{{version}}\n{{source}}\n{{seq}}\n".encode() + state.encode()).hexdigest()
        db.execute("UPDATE checkpoints SET checksum = ? WHERE rowid = ?", (h, rowid))
db.commit()
"#,
        rehash = if rehash_checkpoints { "True" } else { "False" },
    );
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(home.join("weir.db"))
        .status()
        .expect("python3 runs (the test edits the store with its sqlite3 module)");
    assert!(status.success(), "the store edit failed: {sql}");
}
