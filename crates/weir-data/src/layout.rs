//! The schema a dataset keeps (`<root>/_dataset.json`): the columns of its part files, its
//! partition columns with their declared types, and whether the files repeat them.
//!
//! It is fixed by the dataset's first commit. Later commits must fit it: a column whose values
//! fit the kept type exactly (an `Int64` batch into a `Float64` column, a column of nulls) is cast
//! to it; a wider type (a `Float64` batch into an `Int64` column) widens the kept type only under
//! [`SchemaEvolution::Widen`] — files already written keep their type and readers cast them —
//! and is otherwise refused with one sentence naming the column and both types.
//!
//! Like Spark's `partitionBy` and DuckDB's `PARTITION_BY`, partition columns are not repeated
//! inside the files unless [`crate::WriteOptions::keep_partition_columns`] asks for it; readers
//! restore them from the path with the declared type: the column's own type when the data had
//! the column (unless it is text), else by name — `dt` is a date, `hr`, `bucket`, `range` and
//! `chunk` are integers (zero-padded in the path), anything else is text. Hive's default
//! partition is a null.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::DataError;
use crate::partition::PartitionKey;

/// The file at a dataset's root that keeps its schema.
pub const DATASET_SCHEMA_FILE: &str = "_dataset.json";

/// What a commit may do to the schema a dataset keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SchemaEvolution {
    /// A column's type may not change, except to values that fit the kept type exactly.
    #[default]
    Strict,
    /// A column's type may also widen: an integer to a wider integer or a float, a decimal to
    /// one with more digits, anything to text.
    Widen,
}

impl std::str::FromStr for SchemaEvolution {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(SchemaEvolution::Strict),
            "widen" => Ok(SchemaEvolution::Widen),
            _ => Err(DataError::InvalidOptions {
                what: "schema evolution",
                reason: format!("{s:?} is not a rule; use strict or widen"),
            }),
        }
    }
}

/// The schema a dataset keeps; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSchema {
    /// The columns of the part files (partition columns excluded, even if the files repeat
    /// them).
    pub columns: SchemaRef,
    /// The partition columns, outermost first, with the types readers give them.
    pub partition_columns: Vec<Field>,
    /// Whether the part files repeat the partition columns.
    pub files_keep_partition_columns: bool,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    columns: Vec<StoredColumn>,
    partition_columns: Vec<StoredColumn>,
    files_keep_partition_columns: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredColumn {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    nullable: bool,
}

impl StoredColumn {
    fn of(f: &Field) -> StoredColumn {
        StoredColumn {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        }
    }

    fn field(&self) -> Result<Field, String> {
        let t = self
            .data_type
            .parse::<DataType>()
            .map_err(|e| format!("column {:?}: {e}", self.name))?;
        Ok(Field::new(&self.name, t, self.nullable))
    }
}

impl DatasetSchema {
    /// The schema a query of the whole dataset sees: the file columns, then the partition
    /// columns.
    pub fn table_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(self.partition_columns.iter().cloned());
        Arc::new(Schema::new(fields))
    }

    /// The partition column names, outermost first.
    pub fn partition_names(&self) -> Vec<String> {
        self.partition_columns
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The JSON kept in `_dataset.json`.
    pub fn to_json(&self) -> Vec<u8> {
        let stored = Stored {
            columns: self
                .columns
                .fields()
                .iter()
                .map(|f| StoredColumn::of(f))
                .collect(),
            partition_columns: self
                .partition_columns
                .iter()
                .map(StoredColumn::of)
                .collect(),
            files_keep_partition_columns: self.files_keep_partition_columns,
        };
        serde_json::to_vec_pretty(&stored).unwrap_or_default()
    }

    /// Parses the JSON of `_dataset.json`.
    pub fn from_json(bytes: &[u8]) -> Result<DatasetSchema, String> {
        let stored: Stored = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let columns = stored
            .columns
            .iter()
            .map(StoredColumn::field)
            .collect::<Result<Vec<_>, _>>()?;
        let partition_columns = stored
            .partition_columns
            .iter()
            .map(StoredColumn::field)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DatasetSchema {
            columns: Arc::new(Schema::new(columns)),
            partition_columns,
            files_keep_partition_columns: stored.files_keep_partition_columns,
        })
    }

    /// Reads the schema kept at `root`, if the dataset has one yet.
    pub fn read(root: &Path) -> Result<Option<DatasetSchema>, DataError> {
        let path = root.join(DATASET_SCHEMA_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => DatasetSchema::from_json(&bytes)
                .map(Some)
                .map_err(|reason| DataError::Corrupt { path, reason }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DataError::io("read", path, e)),
        }
    }

    /// A partition's batch (as read from its files) in the dataset's table schema: columns
    /// cast to the kept types (a file written before a widening), missing ones null, and the
    /// partition columns restored from `key`.
    pub fn restore(
        &self,
        batch: &RecordBatch,
        key: &PartitionKey,
    ) -> Result<RecordBatch, DataError> {
        let table = self.table_schema();
        let rows = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.fields().len());
        for field in self.columns.fields() {
            columns.push(match batch.column_by_name(field.name()) {
                Some(c) if c.data_type() == field.data_type() => c.clone(),
                Some(c) => arrow::compute::cast_with_options(
                    c,
                    field.data_type(),
                    &arrow::compute::CastOptions {
                        safe: false,
                        ..Default::default()
                    },
                )
                .map_err(|e| {
                    DataError::arrow(
                        format!("reading column {:?} as its kept type", field.name()),
                        e,
                    )
                })?,
                None => new_null_array(field.data_type(), rows),
            });
        }
        for field in &self.partition_columns {
            columns.push(partition_value_array(field, key.get(field.name()), rows)?);
        }
        RecordBatch::try_new(table, columns)
            .map_err(|e| DataError::arrow("restoring the partition columns", e))
    }
}

/// `rows` copies of a partition's value for `field`, typed (Hive's default partition is null).
fn partition_value_array(
    field: &Field,
    value: Option<&str>,
    rows: usize,
) -> Result<ArrayRef, DataError> {
    // The default partition's key value is empty (a literal `__HIVE_DEFAULT_PARTITION__` value
    // is escaped in the path and stays a value).
    let value = value.filter(|v| !v.is_empty());
    let Some(value) = value else {
        return Ok(new_null_array(field.data_type(), rows));
    };
    let one: ArrayRef = Arc::new(StringArray::from(vec![value]));
    let typed = arrow::compute::cast_with_options(
        &one,
        field.data_type(),
        &arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        },
    )
    .map_err(|e| {
        DataError::arrow(
            format!("reading partition value {value:?} of {:?}", field.name()),
            e,
        )
    })?;
    let indices = arrow::array::UInt32Array::from(vec![0u32; rows]);
    arrow::compute::take(&typed, &indices, None)
        .map_err(|e| DataError::arrow("repeating a partition value", e))
}

/// The type a partition column is declared with when the data does not have the column.
pub fn conventional_type(name: &str, value: &str) -> DataType {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    match name {
        "dt" if value.parse::<jiff::civil::Date>().is_ok() && value.len() == 10 => DataType::Date32,
        "hr" | "bucket" | "range" | "chunk" if digits && value.len() <= 9 => DataType::Int32,
        _ => DataType::Utf8,
    }
}

/// What a writer does with one file column to fit the kept schema.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ColumnPlan {
    /// The type is the kept one.
    Keep,
    /// Cast to the kept type: every value fits it exactly.
    Cast(DataType),
    /// The batch's type does not fit the kept one, but a column of nulls does: checked per
    /// batch.
    NullsOnly(DataType),
    /// Written as is; the kept type widens to it at commit.
    Widen,
}

/// Whether every value of `from` is a value of `to` (the cast loses nothing that matters).
fn fits(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (a, b) if a == b => true,
        (Null, _) => true,
        (Int8 | Int16 | Int32, Int64) | (Int8 | Int16, Int32) => true,
        // Int64 into Float64 is exact only up to 2^53: checked per batch (`apply`).
        (Int8 | Int16 | Int32 | Int64, Float64) | (Float32, Float64) => true,
        (Int8 | Int16 | Int32 | Int64, Decimal128(p, s)) => (*p as i16 - *s as i16) >= 19,
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            s2 >= s1 && (*p2 as i16 - *s2 as i16) >= (*p1 as i16 - *s1 as i16)
        }
        (Date32, Timestamp(_, None)) => true,
        _ => false,
    }
}

/// Whether a kept `from` may widen to `to` under [`SchemaEvolution::Widen`].
fn widens(from: &DataType, to: &DataType) -> bool {
    fits(from, to) || matches!(to, DataType::Utf8 | DataType::LargeUtf8)
}

/// How `incoming` (a batch's file columns) fits the kept `columns`: a plan per kept column, in
/// the kept order, or one sentence saying why it does not.
pub(crate) fn plan(
    kept: &Schema,
    incoming: &Schema,
    evolution: SchemaEvolution,
) -> Result<Vec<(usize, ColumnPlan)>, String> {
    let kept_names: Vec<&String> = kept.fields().iter().map(|f| f.name()).collect();
    let added: Vec<&String> = incoming
        .fields()
        .iter()
        .map(|f| f.name())
        .filter(|n| !kept_names.contains(n))
        .collect();
    let missing: Vec<&&String> = kept_names
        .iter()
        .filter(|n| incoming.field_with_name(n).is_err())
        .collect();
    if !added.is_empty() || !missing.is_empty() {
        let mut parts = Vec::new();
        if !added.is_empty() {
            parts.push(format!("adds {added:?}"));
        }
        if !missing.is_empty() {
            parts.push(format!("lacks {missing:?}"));
        }
        return Err(format!(
            "the data {} but the dataset keeps the columns {kept_names:?}; write the same columns, \
             or write to a new dataset",
            parts.join(" and ")
        ));
    }
    let mut plans = Vec::with_capacity(kept.fields().len());
    for field in kept.fields() {
        let (i, got) = incoming
            .column_with_name(field.name())
            .expect("checked above");
        let (want, have) = (field.data_type(), got.data_type());
        let plan = if want == have {
            ColumnPlan::Keep
        } else if fits(have, want) {
            ColumnPlan::Cast(want.clone())
        } else if matches!(have, DataType::Utf8 | DataType::Null) && !matches!(want, DataType::Utf8)
        {
            // An all-empty column infers as text: fine while it holds nothing (and no reason
            // to widen the kept type to text).
            ColumnPlan::NullsOnly(want.clone())
        } else if evolution == SchemaEvolution::Widen && widens(want, have) {
            ColumnPlan::Widen
        } else {
            return Err(mismatch(field.name(), have, want, evolution));
        };
        plans.push((i, plan));
    }
    Ok(plans)
}

/// The sentence for a column whose type does not fit.
pub(crate) fn mismatch(
    name: &str,
    have: &DataType,
    want: &DataType,
    evolution: SchemaEvolution,
) -> String {
    let hint = if evolution == SchemaEvolution::Strict && widens(want, have) {
        "set schema_evolution=widen to widen the dataset, or declare the column's type"
    } else {
        "declare the column's type (a schema file or the DAG file's schema table), or write to a new dataset"
    };
    format!("column {name:?} is {have} in this data but the dataset keeps {want}; {hint}")
}

/// The kept schema after a commit of `written` under `plans` (widened columns take the written
/// type).
pub(crate) fn widened(kept: &Schema, written: &Schema, plans: &[(usize, ColumnPlan)]) -> Schema {
    let fields: Vec<Field> = kept
        .fields()
        .iter()
        .zip(plans)
        .map(|(f, (_, plan))| match plan {
            ColumnPlan::Widen => written
                .field_with_name(f.name())
                .map(|w| Field::new(f.name(), w.data_type().clone(), true))
                .unwrap_or_else(|_| f.as_ref().clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new(fields)
}

/// Applies a plan's cast to one column of a batch, or says why its values do not fit.
pub(crate) fn apply(name: &str, column: &ArrayRef, plan: &ColumnPlan) -> Result<ArrayRef, String> {
    match plan {
        ColumnPlan::Keep | ColumnPlan::Widen => Ok(column.clone()),
        ColumnPlan::Cast(t) => {
            if column.data_type() == &DataType::Int64 && t == &DataType::Float64 {
                // Exact only within ±2^53.
                let ints = column
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .ok_or_else(|| format!("column {name:?} is not an Int64 array"))?;
                let limit = 1u64 << 53;
                if let Some(v) = ints.iter().flatten().find(|v| v.unsigned_abs() > limit) {
                    return Err(format!(
                        "column {name:?} holds {v}, which a Float64 column cannot hold exactly; \
                         declare the column's type, or write to a new dataset"
                    ));
                }
            }
            arrow::compute::cast(column, t)
                .map_err(|e| format!("column {name:?} cannot be cast to {t}: {e}"))
        }
        ColumnPlan::NullsOnly(t) => {
            if column.null_count() == column.len() {
                Ok(new_null_array(t, column.len()))
            } else {
                Err(mismatch(
                    name,
                    column.data_type(),
                    t,
                    SchemaEvolution::Strict,
                ))
            }
        }
    }
}
