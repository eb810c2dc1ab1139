//! 110.4.4 Batch checkpointing — `110_04_04_batch_checkpointing`.
//!
//! What it demonstrates:
//! - **Save progress checkpoints**: the day's load reads its source in chunks of
//!   `--conf checkpoint_every` records (default 50,000); each chunk is committed into the
//!   day's partition and then a checkpoint is saved: the position in the source (byte, line,
//!   record), the rows so far, the partitions written.
//! - **Resume from last checkpoint**: a retry, or the same command after the process was killed
//!   (`kill -9`), resumes after the last checkpoint instead of reading the source again; a chunk
//!   that was half committed is redone only where its marker is missing, so the partition holds
//!   every source row exactly once. The task's output says where it resumed
//!   (`checkpoints.resumed_from`) and what it passed over.
//! - **Handle checkpoint storage**: checkpoints live in the metadata store, keyed by task
//!   instance and the run's clear number (a cleared re-run starts over), with the source's
//!   identity (path, size, modification time), a format version and a checksum; a changed
//!   source, a damaged or old checkpoint is named and never resumed (`weir checkpoints list`
//!   shows each one's health).
//! - **Implement checkpoint cleanup**: while the load runs the last two are kept (one to fall
//!   back to); when it succeeds they are deleted — the partition is committed, so nothing is
//!   left to resume.
//!
//! Run it: `weir dags run 110_04_04_batch_checkpointing --logical-date 2026-03-05 --conf
//! checkpoint_every=20000`; kill it and run the same command again.

use serde_json::Value;
use weir_core::ParamSpec;
use weir_core::timetable::{parse_zone, window_schedule};
use weir_data::partitioners::Granularity;
use weir_ops::load::{CheckpointConfig, window_param_specs};
use weir_ops::{LoadWindow, Operator};
use weir_runtime::{DagDef, OnDamage, Task, TaskContext, TaskError};

pub const DAG_ID: &str = "110_04_04_batch_checkpointing";
pub const ZONE: &str = "America/New_York";

pub fn dag() -> DagDef {
    let tz = parse_zone(ZONE).expect("a known zone");
    DagDef::builder(DAG_ID)
        .description("A long daily load committed in checkpointed chunks: a retry or a restart resumes, every row once")
        .tags(["110.4", "error-handling", "checkpoint", "intermediate"])
        .schedule(window_schedule("@daily", tz.clone()).expect("a valid schedule"))
        .start_date(
            jiff::civil::date(2026, 3, 1)
                .to_zoned(tz)
                .expect("valid")
                .timestamp(),
        )
        .params(window_param_specs())
        .param(
            ParamSpec::integer(
                "checkpoint_every",
                1,
                1_000_000_000,
                "source records per chunk and checkpoint",
            )
            .default(50_000),
        )
        .task(
            Task::new("load")
                .retries(3)
                .retry_delay(jiff::SignedDuration::from_secs(10))
                .doc("Stream the day in checkpointed chunks; resume after the last one")
                .run(load),
        )
        .build()
        .expect("a valid DAG")
}

async fn load(ctx: TaskContext) -> Result<Value, TaskError> {
    let mut op = LoadWindow::by_date(Granularity::Day);
    op.checkpoint = Some(CheckpointConfig {
        every: ctx.param("checkpoint_every")?,
        on_damage: OnDamage::Previous,
        keep: 0,
    });
    op.execute(ctx).await
}
