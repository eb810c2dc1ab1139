//! `{{ … }}` in DAG files: rendered by minijinja from the run's values, strictly (an unknown
//! variable is an error, never an empty string). A value that is one expression and nothing
//! else (`"{{ params.partitions }}"`) keeps its type, so a number param fills a number field.
//! A `sql` task's `query` is never rendered: run values reach it as bound parameters.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};
use weir_runtime::TaskContext;

/// The variables a template may use.
pub const VARIABLES: &[&str] = &[
    "params",
    "ds",
    "ds_nodash",
    "data_interval_start",
    "data_interval_end",
    "logical_date",
    "run_id",
    "dag_id",
    "task_id",
    "map_index",
    "item",
];

pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Whether `text` holds a template.
pub(crate) fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// The expression of a text that is exactly one `{{ expr }}`.
fn sole_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

/// Every templated text of a config with its key path (`result.path`), the `query` key left out.
pub(crate) fn templated_texts(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) if is_template(s) => out.push((path.to_owned(), s.clone())),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                templated_texts(v, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                if path.is_empty() && k == "query" {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                templated_texts(v, &p, out);
            }
        }
        _ => {}
    }
}

/// `config` with every value that is exactly `{{ params.X }}` replaced by X's default (typed):
/// the config as a run with the defaults would see it, for checking a file before any run.
pub(crate) fn probe(value: &Value, defaults: &std::collections::BTreeMap<String, Value>) -> Value {
    match value {
        Value::String(s) => sole_expression(s)
            .and_then(|e| e.strip_prefix("params."))
            .and_then(|name| defaults.get(name.trim()))
            .cloned()
            .unwrap_or_else(|| value.clone()),
        Value::Array(items) => Value::Array(items.iter().map(|v| probe(v, defaults)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), probe(v, defaults)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `config` with every templated value (the top-level `query` left alone) replaced by `with`.
pub(crate) fn replace_templates(value: &Value, with: &Value, top: bool) -> Value {
    match value {
        Value::String(s) if is_template(s) => with.clone(),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| replace_templates(v, with, false))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if top && k == "query" {
                        v.clone()
                    } else {
                        replace_templates(v, with, false)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Problems of one template: its syntax, and variables it uses that do not exist (`params.X`
/// must be a declared param; `item` only in a mapped task).
pub(crate) fn check(
    env: &Environment<'static>,
    text: &str,
    params: &[String],
    mapped: bool,
) -> Vec<String> {
    let template = match env.template_from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return vec![format!(
                "template {text:?} does not parse: {}",
                e.detail().unwrap_or(&e.to_string())
            )];
        }
    };
    let mut problems = Vec::new();
    let mut used: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    used.sort();
    for name in used {
        let mut parts = name.split('.');
        let top = parts.next().unwrap_or_default();
        if !VARIABLES.contains(&top) {
            problems.push(format!(
                "template {text:?} uses `{top}`, which is not a variable; use one of {}",
                VARIABLES.join(", ")
            ));
        } else if top == "params" {
            if let Some(p) = parts.next()
                && !params.iter().any(|d| d == p)
            {
                problems.push(format!(
                    "template {text:?} uses params.{p}, which [params] does not declare"
                ));
            }
        } else if top == "item" && !mapped {
            problems.push(format!(
                "template {text:?} uses `item`, but the task has no `expand`"
            ));
        }
    }
    problems
}

/// The values templates see for one try of a task.
pub(crate) fn context(ctx: &TaskContext) -> Value {
    let zoned = |t: jiff::Timestamp| {
        t.to_zoned(ctx.zone.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    };
    let ds = ctx.logical_date.to_zoned(ctx.zone.clone()).date();
    let params: Map<String, Value> = ctx
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::json!({
        "params": params,
        "ds": ds.to_string(),
        "ds_nodash": ds.strftime("%Y%m%d").to_string(),
        "data_interval_start": zoned(ctx.data_interval.start),
        "data_interval_end": zoned(ctx.data_interval.end),
        "logical_date": zoned(ctx.logical_date),
        "run_id": ctx.run_id.as_str(),
        "dag_id": ctx.dag_id.as_str(),
        "task_id": ctx.task_id.as_str(),
        "map_index": ctx.map_index.raw(),
        "item": ctx.item.clone().unwrap_or(Value::Null),
    })
}

/// Renders every templated text of `value` (the top-level `query` left alone).
pub(crate) fn render(
    env: &Environment<'static>,
    value: &Value,
    vars: &Value,
    top: bool,
) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) if is_template(s) => render_text(env, s, vars)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render(env, v, vars, false))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if top && k == "query" {
                        v.clone()
                    } else {
                        render(env, v, vars, false)?
                    };
                    Ok((k.clone(), v))
                })
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn render_text(env: &Environment<'static>, text: &str, vars: &Value) -> Result<Value, String> {
    let ctx = minijinja::Value::from_serialize(vars);
    if let Some(expr) = sole_expression(text) {
        let value = env
            .compile_expression(expr)
            .and_then(|e| e.eval(&ctx))
            .map_err(|e| format!("{text:?}: {e}"))?;
        if value.is_undefined() {
            return Err(format!(
                "{text:?}: `{expr}` is undefined (a misspelt field of item or params?)"
            ));
        }
        return serde_json::to_value(&value).map_err(|e| format!("{text:?}: {e}"));
    }
    env.render_str(text, ctx)
        .map(Value::String)
        .map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_sole_expression_keeps_its_type_and_an_undefined_one_is_an_error() {
        let env = environment();
        let vars = json!({"item": {"lo": 3}, "params": {"n": 8}});
        let config = json!({"a": "{{ item.lo }}", "b": "x{{ params.n }}", "query": "{{ kept }}"});
        assert_eq!(
            render(&env, &config, &vars, true).unwrap(),
            json!({"a": 3, "b": "x8", "query": "{{ kept }}"})
        );
        let err = render(&env, &json!({"a": "{{ item.low }}"}), &vars, true).unwrap_err();
        assert!(err.contains("`item.low` is undefined"), "{err}");
        let err = render(&env, &json!({"a": "x{{ nope }}"}), &vars, true).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
    }
}
