//! The log of each try, kept under the home: every event inside a try's `try` span (the task's
//! own `tracing` events and the executor's start and outcome lines) goes to
//! `HOME/logs/DAG/RUN/TASK[/map-N]/try-T.log`, whatever the console's `--log` level, so
//! `weir tasks logs` can show a failed try long after the process that ran it is gone.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The name of the span the executor opens around every try; its fields name the log file.
pub const TRY_SPAN: &str = "try";

/// Where the log of one try is kept under `logs` (the home's `logs/` folder).
pub fn try_log_path(
    logs: &Path,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    map_index: i64,
    clear_number: u32,
    try_number: u32,
) -> PathBuf {
    let mut path = logs.join(dag_id).join(run_id).join(task_id);
    if map_index >= 0 {
        path.push(format!("map-{map_index}"));
    }
    // Tries count from 1 again after a clear: each attempt keeps its own logs.
    if clear_number > 0 {
        path.push(format!("clear-{clear_number}"));
    }
    path.join(format!("try-{try_number}.log"))
}

/// A `tracing` layer that writes the events of each try into that try's log file.
#[derive(Debug, Clone)]
pub struct TryLogLayer {
    logs: PathBuf,
}

impl TryLogLayer {
    /// Logs under `logs` (the home's `logs/` folder).
    pub fn new(logs: impl Into<PathBuf>) -> Self {
        TryLogLayer { logs: logs.into() }
    }
}

/// The open log file of a try, kept in its span's extensions.
struct TryFile(Mutex<std::fs::File>);

#[derive(Default)]
struct TryFields {
    dag_id: String,
    run_id: String,
    task_id: String,
    map_index: i64,
    clear_number: u64,
    try_number: u64,
}

impl Visit for TryFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "map_index" => self.map_index = value,
            "try_number" => self.try_number = value.max(0) as u64,
            "clear_number" => self.clear_number = value.max(0) as u64,
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "map_index" => self.map_index = value as i64,
            "try_number" => self.try_number = value,
            "clear_number" => self.clear_number = value,
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_text(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_text(field, format!("{value:?}"));
    }
}

impl TryFields {
    fn record_text(&mut self, field: &Field, value: String) {
        match field.name() {
            "dag_id" => self.dag_id = value,
            "run_id" => self.run_id = value,
            "task_id" => self.task_id = value,
            _ => {}
        }
    }
}

/// One event as a log line: its message, then `name=value` for every other field.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl<S> Layer<S> for TryLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != TRY_SPAN {
            return;
        }
        let mut fields = TryFields {
            map_index: -1,
            ..TryFields::default()
        };
        attrs.record(&mut fields);
        if fields.dag_id.is_empty() || fields.task_id.is_empty() {
            return;
        }
        let path = try_log_path(
            &self.logs,
            &fields.dag_id,
            &fields.run_id,
            &fields.task_id,
            fields.map_index,
            fields.clear_number as u32,
            fields.try_number as u32,
        );
        // A log that cannot be opened must not fail the try: the console still has the events.
        let file = path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            // Appended: a rescheduled sensor pokes again in the same try, and its pokes add up.
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
            });
        if let (Ok(file), Some(span)) = (file, ctx.span(id)) {
            span.extensions_mut().insert(TryFile(Mutex::new(file)));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            let extensions = span.extensions();
            let Some(TryFile(file)) = extensions.get::<TryFile>() else {
                continue;
            };
            let mut line = Line::default();
            event.record(&mut line);
            let meta = event.metadata();
            let text = format!(
                "{} {:>5} {}: {}{}\n",
                jiff::Timestamp::now(),
                meta.level(),
                meta.target(),
                line.message,
                line.fields
            );
            if let Ok(mut f) = file.lock() {
                let _ = f.write_all(text.as_bytes());
            }
            return;
        }
    }
}
