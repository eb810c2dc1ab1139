//! 110.9.4 Debugging checkpoint issues — `110_09_04_debugging_checkpoint_issues`.
//!
//! A checkpointed daily load (as 110.4.4) and an `audit` that checks the output agrees with
//! what the load says it wrote; the tests inject each fault and show it detected and repaired.
//!
//! What it demonstrates:
//! - **Checkpoint corruption**: a checkpoint whose bytes changed (checksum), that is truncated,
//!   of an older format, or that points past the end of its source is named in one sentence —
//!   in the try's log and in the load's output (`checkpoints.passed_over`) — and `weir
//!   checkpoints list` shows its health; the load falls back to the previous good checkpoint
//!   (`--conf on_damage=previous`, the default) or starts over (`start_over`).
//! - **Resume failures**: a checkpoint of a source that changed since (another size or
//!   modification time) is never resumed: the load says so and starts over on the new file.
//! - **State inconsistency**: the output ahead of the checkpoint (the process died after a
//!   chunk's commits, before its checkpoint) is found by the chunk's markers in the partitions:
//!   the chunk is redone only where its marker is missing. `audit` compares the partition's
//!   rows with its manifest and with the load's own count, and fails naming the difference.
//! - **Recovery**: `weir checkpoints show RUN load` prints the state and source of each
//!   checkpoint; `weir checkpoints clear --dag DAG --run RUN` drops them, so the next try
//!   starts over (replacing what the attempt wrote, never adding to it).
//!
//! Run it: `weir dags run 110_09_04_debugging_checkpoint_issues --logical-date 2026-03-05`.

use serde_json::{Value, json};
use weir_core::ParamSpec;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::partitioners::Granularity;
use weir_data::{Dataset, PartitionKey};
use weir_ops::load::{CheckpointConfig, Loaded, dataset_name, window_param_specs, window_params};
use weir_ops::{LoadWindow, Operator, blocking};
use weir_runtime::{DagDef, OnDamage, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_09_04_debugging_checkpoint_issues";
pub const ZONE: &str = "America/New_York";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("A checkpointed load and an audit of its output: checkpoint faults detected and repaired")
        .tags(["110.9", "debugging", "checkpoint", "advanced"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz)
                .expect("valid")
                .timestamp(),
        )
        .params(window_param_specs())
        .param(
            ParamSpec::integer("checkpoint_every", 1, 1_000_000_000, "source records per chunk")
                .default(20_000),
        )
        .param(
            ParamSpec::choice(
                "on_damage",
                ["previous", "start_over"],
                "a damaged newest checkpoint: resume from the previous good one, or start over",
            )
            .default("previous"),
        )
        .task(
            Task::new("load")
                .retries(2)
                .retry_delay(jiff::SignedDuration::from_secs(5))
                .doc("The day in checkpointed chunks")
                .run(load),
        )
        .task(
            Task::new("audit")
                .after(["load"])
                .doc("The partition's rows against its manifest and the load's count")
                .run(audit),
        )
        .build()
        .expect("a valid DAG")
}

async fn load(ctx: TaskContext) -> Result<Value, TaskError> {
    let mut op = LoadWindow::by_date(Granularity::Day);
    op.checkpoint = Some(CheckpointConfig {
        every: ctx.param("checkpoint_every")?,
        on_damage: match ctx.param::<String>("on_damage")?.as_str() {
            "start_over" => OnDamage::StartOver,
            _ => OnDamage::Previous,
        },
        keep: 0,
    });
    op.execute(ctx).await
}

async fn audit(ctx: TaskContext) -> Result<Value, TaskError> {
    let raw: Value = ctx.input("load").await?;
    let loaded: Loaded = serde_json::from_value(raw.clone())
        .map_err(|e| TaskError::fatal(format!("the load's output: {e}")))?;
    let p = window_params(&ctx).await?;
    let ds = ctx
        .logical_date
        .to_zoned(ctx.zone.clone())
        .date()
        .to_string();
    let (output, day) = (p.output.clone(), ds.clone());
    let on_disk = blocking(move || {
        Dataset::open(&output)?.count_rows(&PartitionKey::new([("dt".to_owned(), day)])?)
    })
    .await?;
    let manifests = ctx
        .store()
        .manifests(&dataset_name(&p.output))
        .await
        .map_err(|e| TaskError::from(e).context("reading the manifests"))?;
    let partition = format!("dt={ds}");
    let manifest = manifests
        .iter()
        .find(|m| m.partition == partition)
        .map(|m| m.rows_out);
    let reported = loaded
        .partitions
        .iter()
        .find(|l| l.partition == partition)
        .map(|l| l.rows);
    if manifest != Some(on_disk) || reported != Some(on_disk) {
        return Err(TaskError::fatal(format!(
            "{partition} holds {on_disk} rows but its manifest says {} and the load reported {}: the output and the load's state disagree; clear the checkpoints and the load (weir checkpoints clear --dag {} --run {}; weir tasks clear {} load --downstream)",
            manifest.map_or("nothing".to_owned(), |n| n.to_string()),
            reported.map_or("nothing".to_owned(), |n| n.to_string()),
            ctx.dag_id,
            ctx.run_id,
            ctx.run_id
        )));
    }
    Ok(json!({
        "partition": partition,
        "rows": on_disk,
        "consistent": true,
        // Where the load resumed and what it passed over, for whoever debugs the run.
        "checkpoints": raw["checkpoints"],
    }))
}
