//! A batch that failed after its retries, sent to the dead-letter queue instead of failing the
//! task (see [`crate::Task::dead_letter_on_exhaustion`]).

use serde_json::json;
use weir_store::RejectRecord;

use crate::context::TaskContext;
use crate::definition::{DeadLetterFn, TaskError, TaskResult};

/// Where a batch dead letter is kept: one source per task, one position per run and instance,
/// so the same batch dead-lettered again updates its entry.
pub fn batch_position(ctx: &TaskContext) -> (String, u64) {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(format!("{}\n{}", ctx.run_id, ctx.map_index.raw()).as_bytes());
    let bytes = sha.digest().bytes();
    let line = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")) >> 1;
    (format!("batch:{}/{}", ctx.dag_id, ctx.task_id), line)
}

/// Keeps the batch (its run, task, instance, item, interval, try and error) as a dead letter,
/// runs the task's hook, and succeeds with a warning saying so.
pub(crate) async fn batch(
    ctx: TaskContext,
    hook: Option<DeadLetterFn>,
    e: TaskError,
) -> TaskResult {
    let error = e.message().to_owned();
    let (source, line) = batch_position(&ctx);
    let payload = json!({
        "dag_id": ctx.dag_id.as_str(),
        "run_id": ctx.run_id.as_str(),
        "task_id": ctx.task_id.as_str(),
        "map_index": ctx.map_index.raw(),
        "item": ctx.item,
        "data_interval_start": ctx.data_interval.start.to_string(),
        "data_interval_end": ctx.data_interval.end.to_string(),
        "try_number": ctx.try_number,
    });
    ctx.record_rejects(vec![RejectRecord {
        source,
        line,
        raw: payload.to_string(),
        reason: error.clone(),
        error_class: "batch".to_owned(),
        dag_id: String::new(),
        run_id: String::new(),
        task_id: String::new(),
        map_index: -1,
        try_number: 0,
        rejected_at: jiff::Timestamp::UNIX_EPOCH,
    }])
    .await?;
    let marked = match hook {
        Some(hook) => match hook(ctx.clone(), error.clone()).await {
            Ok(v) => v,
            Err(he) => {
                tracing::warn!("marking the dead-lettered batch failed: {}", he.message());
                json!({"error": he.message()})
            }
        },
        None => serde_json::Value::Null,
    };
    tracing::warn!(
        "try {} failed ({error}) and no try is left: the batch went to the dead-letter queue and the task succeeds incomplete; `weir dlq list --dag {}` shows it, `weir tasks clear {} {}` runs it again",
        ctx.try_number,
        ctx.dag_id,
        ctx.run_id,
        ctx.task_id
    );
    Ok(json!({
        "dead_lettered": true,
        "error": error,
        "tries": ctx.try_number,
        "incomplete": marked,
    }))
}
