//! Declared run params: each DAG says once which `--conf` names it takes, of what type, with what
//! default, bounds or allowed values, and a one-line doc.
//!
//! A run's conf is checked against the declarations when the run is created, so a bad value fails
//! before any task starts, with one sentence naming the param, the value and what is accepted.
//! The checked values are typed JSON (`"8"` from the command line becomes `8`), which task code
//! then reads into serde structs: nothing downstream parses text or falls back to a default.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// What a param holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamKind {
    /// Any text.
    Text,
    /// A path to a file or folder (text; its existence is the task's business).
    Path,
    /// An IANA time zone name such as `Europe/London`.
    Zone,
    /// A whole number in `[min, max]`.
    Integer {
        min: i64,
        max: i64,
    },
    /// A number in `[min, max]`.
    Number {
        min: f64,
        max: f64,
    },
    Boolean,
    /// One of a closed list of words.
    Choice {
        allowed: Vec<String>,
    },
}

impl ParamKind {
    fn accepts(&self) -> String {
        match self {
            ParamKind::Text => "any text".to_owned(),
            ParamKind::Path => "a path".to_owned(),
            ParamKind::Zone => {
                "an IANA time zone name such as UTC, Europe/London or America/New_York".to_owned()
            }
            ParamKind::Integer { min, max } => match (*min == i64::MIN, *max == i64::MAX) {
                (true, true) => "a whole number".to_owned(),
                (true, false) => format!("a whole number up to {max}"),
                (false, true) => format!("a whole number from {min}"),
                (false, false) => format!("a whole number from {min} to {max}"),
            },
            ParamKind::Number { min, max } => match (*min == f64::MIN, *max == f64::MAX) {
                (true, true) => "a number".to_owned(),
                (true, false) => format!("a number up to {max}"),
                (false, true) => format!("a number from {min}"),
                (false, false) => format!("a number from {min} to {max}"),
            },
            ParamKind::Boolean => "true or false".to_owned(),
            ParamKind::Choice { allowed } => format!("one of {}", allowed.join(", ")),
        }
    }

    /// The typed value of `raw` (text from the command line, or JSON), or why it is not one.
    fn check(&self, raw: &Value) -> Result<Value, ()> {
        let text = match raw {
            Value::String(s) => Some(s.trim()),
            _ => None,
        };
        match self {
            ParamKind::Text | ParamKind::Path => match raw {
                Value::String(s) if !s.is_empty() => Ok(Value::String(s.clone())),
                _ => Err(()),
            },
            ParamKind::Zone => {
                let name = text.ok_or(())?;
                jiff::tz::TimeZone::get(name).map_err(|_| ())?;
                Ok(Value::String(name.to_owned()))
            }
            ParamKind::Integer { min, max } => {
                let n = match raw {
                    Value::Number(n) => n.as_i64().ok_or(())?,
                    _ => text.ok_or(())?.replace('_', "").parse().map_err(|_| ())?,
                };
                if n < *min || n > *max {
                    return Err(());
                }
                Ok(Value::from(n))
            }
            ParamKind::Number { min, max } => {
                let n = match raw {
                    Value::Number(n) => n.as_f64().ok_or(())?,
                    _ => text.ok_or(())?.parse::<f64>().map_err(|_| ())?,
                };
                if !n.is_finite() || n < *min || n > *max {
                    return Err(());
                }
                Ok(Value::from(n))
            }
            ParamKind::Boolean => match raw {
                Value::Bool(b) => Ok(Value::Bool(*b)),
                _ => match text.ok_or(())? {
                    "true" | "yes" | "1" => Ok(Value::Bool(true)),
                    "false" | "no" | "0" => Ok(Value::Bool(false)),
                    _ => Err(()),
                },
            },
            ParamKind::Choice { allowed } => {
                let word = text.ok_or(())?;
                if allowed.iter().any(|a| a == word) {
                    Ok(Value::String(word.to_owned()))
                } else {
                    Err(())
                }
            }
        }
    }
}

/// One declared param.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: ParamKind,
    /// The value when the run's conf does not give one; `None` means "not set" (the task decides
    /// what absence means, e.g. the generated sample data for `source`).
    pub default: Option<Value>,
    pub doc: String,
}

impl ParamSpec {
    pub fn new(name: impl Into<String>, kind: ParamKind, doc: impl Into<String>) -> Self {
        ParamSpec {
            name: name.into(),
            kind,
            default: None,
            doc: doc.into(),
        }
    }

    pub fn text(name: impl Into<String>, doc: impl Into<String>) -> Self {
        Self::new(name, ParamKind::Text, doc)
    }

    pub fn path(name: impl Into<String>, doc: impl Into<String>) -> Self {
        Self::new(name, ParamKind::Path, doc)
    }

    pub fn zone(name: impl Into<String>, doc: impl Into<String>) -> Self {
        Self::new(name, ParamKind::Zone, doc)
    }

    pub fn integer(name: impl Into<String>, min: i64, max: i64, doc: impl Into<String>) -> Self {
        Self::new(name, ParamKind::Integer { min, max }, doc)
    }

    pub fn number(name: impl Into<String>, min: f64, max: f64, doc: impl Into<String>) -> Self {
        Self::new(name, ParamKind::Number { min, max }, doc)
    }

    pub fn boolean(name: impl Into<String>, doc: impl Into<String>) -> Self {
        Self::new(name, ParamKind::Boolean, doc)
    }

    pub fn choice<I, S>(name: impl Into<String>, allowed: I, doc: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let allowed = allowed.into_iter().map(Into::into).collect();
        Self::new(name, ParamKind::Choice { allowed }, doc)
    }

    /// The value used when the conf does not set this param.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// What the command line accepts, for `weir dags show` and error messages.
    pub fn accepts(&self) -> String {
        self.kind.accepts()
    }

    /// The typed value of `raw`, or the error naming this param, the value and what is accepted.
    pub fn check(&self, raw: &Value) -> Result<Value, ParamError> {
        self.kind.check(raw).map_err(|()| ParamError::Invalid {
            name: self.name.clone(),
            value: match raw {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
            accepts: self.accepts(),
        })
    }
}

/// A conf that does not fit a DAG's declared params.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("--conf {name}={value} is invalid: `{name}` takes {accepts}")]
    Invalid {
        name: String,
        value: String,
        accepts: String,
    },
    #[error(
        "--conf {name} is not a param of DAG `{dag}`; it takes {known} (`weir dags show {dag}` lists them)"
    )]
    Unknown {
        dag: String,
        name: String,
        known: String,
    },
    #[error("the conf of a run must be an object of NAME=VALUE pairs, not {0}")]
    NotAnObject(String),
}

/// The declared params of a DAG, in declaration order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ParamSpecs(Vec<ParamSpec>);

impl ParamSpecs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a declaration; a later one of the same name replaces the earlier.
    pub fn push(&mut self, spec: ParamSpec) {
        match self.0.iter_mut().find(|s| s.name == spec.name) {
            Some(slot) => *slot = spec,
            None => self.0.push(spec),
        }
    }

    pub fn get(&self, name: &str) -> Option<&ParamSpec> {
        self.0.iter().find(|s| s.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ParamSpec> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The run's params: every declared default, overridden by the conf's values, each checked.
    /// Names the conf gives that are not declared are an error (a typo would otherwise be
    /// ignored and the default used without a word). Reports the first problem.
    pub fn resolve(&self, dag: &str, conf: &Value) -> Result<BTreeMap<String, Value>, ParamError> {
        let conf = match conf {
            Value::Null => &serde_json::Map::new(),
            Value::Object(map) => map,
            other => return Err(ParamError::NotAnObject(other.to_string())),
        };
        let mut out = BTreeMap::new();
        for spec in &self.0 {
            if let Some(default) = &spec.default {
                out.insert(spec.name.clone(), default.clone());
            }
        }
        for (name, raw) in conf {
            let spec = self.get(name).ok_or_else(|| ParamError::Unknown {
                dag: dag.to_owned(),
                name: name.clone(),
                known: if self.0.is_empty() {
                    "no params".to_owned()
                } else {
                    self.0
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })?;
            out.insert(name.clone(), spec.check(raw)?);
        }
        Ok(out)
    }
}

impl fmt::Display for ParamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.accepts())?;
        if let Some(d) = &self.default {
            match d {
                Value::String(s) => write!(f, " = {s}")?,
                other => write!(f, " = {other}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn specs() -> ParamSpecs {
        let mut s = ParamSpecs::new();
        s.push(ParamSpec::integer("partitions", 1, 4096, "buckets").default(8));
        s.push(ParamSpec::zone("tz", "zone"));
        s.push(ParamSpec::choice("format", ["parquet", "csv"], "format").default("parquet"));
        s.push(ParamSpec::number("max_skew", 1.0, 100.0, "skew").default(3.0));
        s
    }

    #[test]
    fn defaults_are_overridden_and_text_becomes_typed() {
        let p = specs()
            .resolve("d", &json!({"partitions": "16", "tz": "Europe/Paris"}))
            .unwrap();
        assert_eq!(p["partitions"], json!(16));
        assert_eq!(p["tz"], json!("Europe/Paris"));
        assert_eq!(p["format"], json!("parquet"));
        assert_eq!(p["max_skew"], json!(3.0));
    }

    #[test]
    fn out_of_bounds_unknown_and_bad_values_name_the_param() {
        let e = specs()
            .resolve("d", &json!({"partitions": "100000000"}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--conf partitions=100000000 is invalid: `partitions` takes a whole number from 1 to 4096"
        );
        let e = specs().resolve("d", &json!({"partiton": "3"})).unwrap_err();
        assert!(e.to_string().starts_with("--conf partiton is not a param of DAG `d`; it takes partitions, tz, format, max_skew"), "{e}");
        let e = specs()
            .resolve("d", &json!({"tz": "Mars/Base"}))
            .unwrap_err();
        assert!(
            e.to_string().contains("`tz` takes an IANA time zone name"),
            "{e}"
        );
        let e = specs()
            .resolve("d", &json!({"format": "xlsx"}))
            .unwrap_err();
        assert!(e.to_string().ends_with("takes one of parquet, csv"), "{e}");
    }
}
