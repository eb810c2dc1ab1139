//! Schema inference for the text formats, and the small type language explicit schemas are
//! written in.
//!
//! Each column starts as a candidate for every type; each non-null value in the sample rules out
//! the types it does not fit. What is left, in order of preference, is the column's type:
//! `Int64` (no leading zeros: `007` is an identifier, not a number), `Float64` (any decimal
//! number, so an int column widens to float when one value has a fraction), `Boolean`
//! (`true`/`false`, any case), `Date32` (`YYYY-MM-DD`), a UTC timestamp (every value has an
//! offset or `Z`), a timestamp without offset (a UTC instant when a `source_tz` is declared,
//! else a zone-less `Timestamp(µs)`), and `Utf8` when any value really is text. A column with no
//! value in the sample is `Utf8`.

use std::path::Path;

use arrow::datatypes::{DataType, Field, TimeUnit};
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};

use crate::DataError;

/// Which types every non-null value of a column has fitted so far.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seen {
    any: bool,
    int: bool,
    float: bool,
    boolean: bool,
    date: bool,
    instant: bool,
    naive: bool,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            any: false,
            int: true,
            float: true,
            boolean: true,
            date: true,
            instant: true,
            naive: true,
        }
    }
}

impl Seen {
    /// Learns from one non-null text value (`nan_is_null`: `NaN` is a float column's null).
    pub(super) fn text(&mut self, text: &str, nan_is_null: bool) {
        if text == "NaN" {
            if !nan_is_null {
                // The float NaN: a float column's value.
                self.any = true;
            }
            // A float column's null: rules out everything but float.
            self.int = false;
            self.boolean = false;
            self.date = false;
            self.instant = false;
            self.naive = false;
            return;
        }
        self.any = true;
        let numeric = looks_numeric(text);
        let leading_zero = has_leading_zero(text);
        let int = numeric && !leading_zero && text.parse::<i64>().is_ok();
        // All digits but beyond i64: an id, which a float would round.
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        let huge = !int && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        self.int &= int;
        self.float &= numeric && !leading_zero && !huge && text.parse::<f64>().is_ok();
        self.boolean &= text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false");
        let dated = text.len() >= 10 && looks_dated(text.as_bytes());
        self.date &= dated && text.len() == 10 && text.parse::<Date>().is_ok();
        let timed = dated && text.len() > 10 && matches!(text.as_bytes()[10], b'T' | b't' | b' ');
        let instant = timed && text.parse::<Timestamp>().is_ok();
        self.instant &= instant;
        self.naive &= timed && !instant && text.parse::<DateTime>().is_ok();
    }

    /// Learns from a value that is not text (a JSON bool or number, nested JSON).
    pub(super) fn not_text(&mut self, int: bool, float: bool, boolean: bool) {
        self.any = true;
        self.int &= int;
        self.float &= float;
        self.boolean &= boolean;
        self.date = false;
        self.instant = false;
        self.naive = false;
    }

    /// Learns from a JSON string: it may be a date or timestamp, never a number or bool.
    pub(super) fn json_string(&mut self, text: &str) {
        let mut probe = Seen::default();
        probe.text(text, false);
        self.any = true;
        self.int = false;
        self.float = false;
        self.boolean = false;
        self.date &= probe.date;
        self.instant &= probe.instant;
        self.naive &= probe.naive;
    }

    /// The column's type; `zoned_naive`: a timestamp without offset becomes a UTC instant
    /// (read in the declared `source_tz`).
    pub(super) fn data_type(&self, zoned_naive: bool) -> DataType {
        let ts = |zoned: bool| {
            DataType::Timestamp(TimeUnit::Microsecond, zoned.then(|| crate::UTC_TZ.into()))
        };
        if !self.any {
            // Nothing but nulls (and maybe NaN) in the sample.
            return if self.float && !self.int {
                DataType::Float64
            } else {
                DataType::Utf8
            };
        }
        match *self {
            Seen { int: true, .. } => DataType::Int64,
            Seen { float: true, .. } => DataType::Float64,
            Seen { boolean: true, .. } => DataType::Boolean,
            Seen { date: true, .. } => DataType::Date32,
            Seen { instant: true, .. } => ts(true),
            Seen { naive: true, .. } => ts(zoned_naive),
            _ => DataType::Utf8,
        }
    }
}

/// Digits, signs, a point and exponents only, with at least one digit.
pub(super) fn looks_numeric(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && text.bytes().any(|b| b.is_ascii_digit())
}

/// `007` or `-01`: an identifier or code that would lose its zeros as a number.
fn has_leading_zero(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    digits.len() > 1 && digits[0] == b'0' && digits[1].is_ascii_digit()
}

/// Starts with `YYYY-MM-DD`.
fn looks_dated(b: &[u8]) -> bool {
    b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// One column an explicit schema names: its type, and whether it may be null.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnType {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
}

impl ColumnType {
    /// Parses `type` in weir's type language (see [`parse_type`]) for column `name`.
    pub fn parse(name: &str, spec: &str) -> Result<ColumnType, String> {
        let (data_type, nullable) = parse_type(spec)?;
        Ok(ColumnType {
            name: name.to_owned(),
            data_type,
            nullable,
        })
    }

    pub(super) fn field(&self) -> Field {
        Field::new(&self.name, self.data_type.clone(), self.nullable)
    }
}

/// The type names explicit schemas are written with, for error messages.
pub const TYPE_NAMES: &str = "int (bigint, int64), int32 (integer), float (double), \
    decimal(P,S), bool, string (text), date, timestamp (a UTC instant), \
    timestamp_naive (no zone); add `not null` to make a value required";

/// Parses a column type: `int`, `bigint`, `int64`, `int32`, `integer`, `float`, `double`,
/// `decimal(P,S)`, `bool`, `boolean`, `string`, `text`, `utf8`, `date`, `timestamp` (a UTC
/// instant; values without an offset are read in the source's zone), `timestamp_naive`, any of
/// them followed by `not null`. Also accepts Arrow's own names (`Int64`, `Decimal128(18, 2)`,
/// `Timestamp(Microsecond, Some("UTC"))`). Returns the type and whether it is nullable.
pub fn parse_type(spec: &str) -> Result<(DataType, bool), String> {
    let trimmed = spec.trim();
    let lower = trimmed.to_ascii_lowercase();
    let (base, nullable) = match lower.strip_suffix("not null") {
        Some(rest) => (rest.trim_end(), false),
        None => (lower.as_str(), true),
    };
    let data_type = match base {
        "int" | "bigint" | "int64" | "long" => DataType::Int64,
        "int32" | "integer" => DataType::Int32,
        "float" | "double" | "float64" | "real" => DataType::Float64,
        "bool" | "boolean" => DataType::Boolean,
        "string" | "text" | "utf8" | "varchar" | "str" => DataType::Utf8,
        "date" => DataType::Date32,
        "timestamp" | "timestamptz" | "instant" => crate::utc_micros_type(),
        "timestamp_naive" | "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        other => {
            if let Some(args) = other
                .strip_prefix("decimal(")
                .or_else(|| other.strip_prefix("numeric("))
                .and_then(|a| a.strip_suffix(')'))
            {
                decimal(args).ok_or_else(|| {
                    format!(
                        "{spec:?} is not a decimal type: write decimal(P,S) with a precision of \
                         1 to 38 and a scale of 0 to P"
                    )
                })?
            } else {
                // Arrow's own spelling, as kept in weir's schema files.
                let original = &trimmed[..base.len()];
                original.parse::<DataType>().map_err(|_| {
                    format!("{spec:?} is not a column type; use one of {TYPE_NAMES}")
                })?
            }
        }
    };
    Ok((data_type, nullable))
}

fn decimal(args: &str) -> Option<DataType> {
    let (p, s) = args.split_once(',')?;
    let p: u8 = p.trim().parse().ok()?;
    let s: i8 = s.trim().parse().ok()?;
    ((1..=38).contains(&p) && s >= 0 && s as u8 <= p).then_some(DataType::Decimal128(p, s))
}

/// Reads a schema file: one column per line, `name: type` or `name = "type"` (so a TOML table
/// of strings reads too), `#` comments and blank lines ignored. Columns it does not name are
/// inferred.
pub fn read_schema_file(path: &Path) -> Result<Vec<ColumnType>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io("read", path, e))?;
    parse_schema_text(&text).map_err(|(line, reason)| DataError::InvalidOptions {
        what: "schema file",
        reason: format!("{}:{line}: {reason}", path.display()),
    })
}

/// Parses the text of a schema file; an error gives the 1-based line and the reason.
pub fn parse_schema_text(text: &str) -> Result<Vec<ColumnType>, (usize, String)> {
    let mut columns: Vec<ColumnType> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('[') {
            continue;
        }
        let Some((name, spec)) = line.split_once([':', '=']) else {
            return Err((
                i + 1,
                format!("{line:?} is not `name: type`; write e.g. `arr_delay: float`"),
            ));
        };
        let name = name.trim().trim_matches('"');
        let spec = spec.trim().trim_matches('"');
        if name.is_empty() {
            return Err((i + 1, "the column name is empty".into()));
        }
        if columns.iter().any(|c| c.name == name) {
            return Err((i + 1, format!("column {name:?} is named twice")));
        }
        columns.push(ColumnType::parse(name, spec).map_err(|e| (i + 1, e))?);
    }
    Ok(columns)
}

/// `inferred` with the types of `opts.column_types` put in; naming a column the file does not
/// have is an error (a typo would otherwise be ignored).
pub(super) fn with_column_types(
    path: &Path,
    inferred: arrow::datatypes::Schema,
    opts: &super::ReadOptions,
) -> Result<arrow::datatypes::Schema, DataError> {
    if opts.column_types.is_empty() {
        return Ok(inferred);
    }
    let mut fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for column in &opts.column_types {
        let Some(field) = fields.iter_mut().find(|f| f.name() == &column.name) else {
            return Err(DataError::MissingColumn {
                column: column.name.clone(),
                place: format!("{} (named by the schema)", path.display()),
                available: fields.iter().map(|f| f.name().clone()).collect(),
            });
        };
        *field = column.field();
    }
    Ok(arrow::datatypes::Schema::new(fields))
}
