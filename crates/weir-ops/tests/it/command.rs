//! `command`: the run's context reaches the program, exit codes become outcomes, output lands in
//! the try's log.

use serde_json::json;
use weir_core::TaskState;
use weir_ops::{Command, task};

use crate::{World, ts};

fn sh(script: &str) -> Command {
    Command::new("sh").args(["-c", script])
}

#[tokio::test]
async fn the_program_sees_the_run_in_its_environment_and_its_output_is_logged() {
    let script = "echo \"$WEIR_DAG_ID $WEIR_TASK_ID $WEIR_DATA_INTERVAL_START $WEIR_DATA_INTERVAL_END $WEIR_TRY_NUMBER $WEIR_PARAM_REGION\"; echo warned >&2";
    let w = World::new(vec![task("shell", sh(script))]).await;
    let ran = w
        .run(ts("2026-03-08T10:00:00Z"), json!({"region": "EU"}), "shell")
        .await;
    assert_eq!(ran.ti.state, TaskState::Success, "{:?}", ran.ti.error);
    // The run is the UTC day containing the instant.
    let line = "ops shell 2026-03-08T00:00:00Z 2026-03-09T00:00:00Z 1 EU";
    assert_eq!(
        ran.output.unwrap(),
        json!({"exit_code": 0, "stdout_tail": [line]})
    );
}

#[tokio::test]
async fn a_failing_program_is_retried_and_a_fatal_code_is_not() {
    let w = World::new(vec![
        task("flaky", sh("exit 3"))
            .retries(2)
            .retry_delay(jiff::SignedDuration::ZERO),
        task("bad_input", sh("exit 2").fatal_exit_codes([2]))
            .retries(2)
            .retry_delay(jiff::SignedDuration::ZERO),
        task("nothing_to_do", sh("exit 99")),
    ])
    .await;
    let day = ts("2026-03-08T00:00:00Z");
    let ran = w.run(day, json!({}), "flaky").await;
    ran.assert_failed_on_try(3, "exited with 3");
    let ran = w.run(day, json!({}), "bad_input").await;
    ran.assert_failed_on_try(1, "exited with 2, which fatal_exit_codes says");
    let ran = w.run(day, json!({}), "nothing_to_do").await;
    assert_eq!(ran.ti.state, TaskState::Skipped);
}

#[tokio::test]
async fn a_program_that_does_not_exist_or_a_bad_config_fails_at_once() {
    let w = World::new(vec![
        task("missing", Command::new("no-such-program-weir")).retries(3),
        task("empty", Command::new(" ")).retries(3),
    ])
    .await;
    let day = ts("2026-03-08T00:00:00Z");
    w.run(day, json!({}), "missing")
        .await
        .assert_failed_on_try(1, "cannot start `no-such-program-weir`");
    w.run(day, json!({}), "empty")
        .await
        .assert_failed_on_try(1, "invalid command config: `program` is empty");
}
