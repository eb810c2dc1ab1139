//! [`GeoPartitioner`]: splits batches by a region or country string column into `COLUMN=VALUE`
//! partitions, runs per-region logic on each part, and counts rows per region.
//!
//! Values become [`PartitionKey`] values, so any string is safe as a folder name (`EU/West` is
//! escaped to `EU%2FWest`). A null region and an empty one both go to Hive's default partition
//! (`__HIVE_DEFAULT_PARTITION__`), as Hive and Spark do. Per-region logic — a region's own
//! currency conversion, retention rule or privacy filter — is a [`RegionHook`] registered for that
//! region, with an optional fallback for all others; a hook may drop or rewrite rows. The
//! [`RegionCounts`] helper is the cross-region aggregate: rows per region and their total.
//!
//! The column may be `Utf8`, `LargeUtf8`, `Utf8View` or a dictionary of any of them (how Parquet
//! readers often hand back low-cardinality columns such as regions); each gives the same parts.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

use super::{column, split_by_assignment, wrong_type};
use crate::{DataError, PartitionKey};

/// Per-region logic: takes one region's rows, returns the rows to keep (possibly rewritten).
pub type RegionHook =
    Box<dyn Fn(&RecordBatch) -> Result<RecordBatch, DataError> + Send + Sync + 'static>;

/// Splits by the value of a region column, applying per-region hooks.
pub struct GeoPartitioner {
    column: String,
    hooks: HashMap<String, RegionHook>,
    fallback: Option<RegionHook>,
}

impl std::fmt::Debug for GeoPartitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut regions: Vec<&String> = self.hooks.keys().collect();
        regions.sort();
        f.debug_struct("GeoPartitioner")
            .field("column", &self.column)
            .field("hooked_regions", &regions)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl GeoPartitioner {
    /// A partitioner over the string column `column`, which also names the partition level, so it
    /// must be a valid partition name (`[A-Za-z][A-Za-z0-9_]*`).
    pub fn new(column: impl Into<String>) -> Result<Self, DataError> {
        let column = column.into();
        PartitionKey::default().with(column.as_str(), "")?;
        Ok(GeoPartitioner {
            column,
            hooks: HashMap::new(),
            fallback: None,
        })
    }

    /// Runs `hook` on the rows of `region` (replacing any hook registered for it).
    pub fn with_hook(
        mut self,
        region: impl Into<String>,
        hook: impl Fn(&RecordBatch) -> Result<RecordBatch, DataError> + Send + Sync + 'static,
    ) -> Self {
        self.hooks.insert(region.into(), Box::new(hook));
        self
    }

    /// Runs `hook` on the rows of every region without a hook of its own.
    pub fn with_fallback_hook(
        mut self,
        hook: impl Fn(&RecordBatch) -> Result<RecordBatch, DataError> + Send + Sync + 'static,
    ) -> Self {
        self.fallback = Some(Box::new(hook));
        self
    }

    /// The region column.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// The partition key of a region value.
    pub fn key_of(&self, region: &str) -> Result<PartitionKey, DataError> {
        PartitionKey::default().with(self.column.as_str(), region)
    }

    /// Splits `batch` into `(region value, rows)` per region, in region order, without hooks.
    pub fn split_raw(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, DataError> {
        let array = column(batch, &self.column)?;
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut names: Vec<&str> = Vec::new();
        let mut assignment = Vec::with_capacity(array.len());
        for_each_str(&self.column, array, &mut |region| {
            let next = names.len() as u32;
            let id = *ids.entry(region).or_insert_with(|| {
                names.push(region);
                next
            });
            assignment.push(id);
        })?;
        let mut parts: Vec<(String, RecordBatch)> =
            split_by_assignment(batch, &assignment, names.len())?
                .into_iter()
                .map(|(id, rows)| (names[id].to_owned(), rows))
                .collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(parts)
    }

    /// Splits `batch` by region and runs each region's hook (or the fallback) on its rows.
    pub fn split(
        &self,
        batch: &RecordBatch,
    ) -> Result<Vec<(PartitionKey, RecordBatch)>, DataError> {
        self.split_raw(batch)?
            .into_iter()
            .map(|(region, rows)| {
                let rows = match self.hooks.get(&region).or(self.fallback.as_ref()) {
                    Some(hook) => hook(&rows)?,
                    None => rows,
                };
                Ok((self.key_of(&region)?, rows))
            })
            .collect()
    }

    /// Rows per region of `batches`, read straight from the column (no split, no hooks).
    pub fn count_regions<'a>(
        &self,
        batches: impl IntoIterator<Item = &'a RecordBatch>,
    ) -> Result<RegionCounts, DataError> {
        let mut counts = RegionCounts::default();
        for batch in batches {
            let mut local: HashMap<&str, u64> = HashMap::new();
            for_each_str(&self.column, column(batch, &self.column)?, &mut |r| {
                *local.entry(r).or_default() += 1;
            })?;
            for (region, rows) in local {
                counts.add(region, rows);
            }
        }
        Ok(counts)
    }
}

/// Rows per region and their total (always the sum of the per-region counts).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionCounts {
    per_region: BTreeMap<String, u64>,
    total: u64,
}

impl RegionCounts {
    /// Counts the rows of split parts by the value of their `column` level (parts of one region
    /// from several batches add up).
    pub fn from_parts(column: &str, parts: &[(PartitionKey, RecordBatch)]) -> Self {
        let mut counts = RegionCounts::default();
        for (key, rows) in parts {
            counts.add(key.get(column).unwrap_or(""), rows.num_rows() as u64);
        }
        counts
    }

    /// Adds `rows` to `region`.
    pub fn add(&mut self, region: &str, rows: u64) {
        match self.per_region.get_mut(region) {
            Some(n) => *n += rows,
            None => {
                self.per_region.insert(region.to_owned(), rows);
            }
        }
        self.total += rows;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &RegionCounts) {
        for (region, &rows) in &other.per_region {
            self.add(region, rows);
        }
    }

    /// Rows per region, by region (null and empty regions under `""`).
    pub fn per_region(&self) -> &BTreeMap<String, u64> {
        &self.per_region
    }

    /// The rows of one region (0 if absent).
    pub fn rows(&self, region: &str) -> u64 {
        self.per_region.get(region).copied().unwrap_or(0)
    }

    /// Rows over all regions.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// The column types [`GeoPartitioner`] reads.
const REGION_TYPES: &str =
    "a string type (Utf8, LargeUtf8, Utf8View) or a Dictionary with string values";

/// Calls `f` with every value of a string or string-dictionary column in row order; null is `""`.
fn for_each_str<'a>(
    name: &str,
    array: &'a ArrayRef,
    f: &mut impl FnMut(&'a str),
) -> Result<(), DataError> {
    let DataType::Dictionary(_, value_type) = array.data_type() else {
        return for_each_plain_str(name, array, f);
    };
    if !matches!(
        value_type.as_ref(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Err(wrong_type(name, array, REGION_TYPES));
    }
    let dict = array.as_any_dictionary();
    let values = dict.values();
    if values.is_empty() {
        // No values: every row is null.
        (0..array.len()).for_each(|_| f(""));
        return Ok(());
    }
    // Each distinct value is read once; rows look theirs up by key.
    let mut strs: Vec<&'a str> = Vec::with_capacity(values.len());
    for_each_plain_str(name, values, &mut |s| strs.push(s))?;
    let key_nulls = array.nulls().filter(|n| n.null_count() > 0);
    for (row, key) in dict.normalized_keys().into_iter().enumerate() {
        f(if key_nulls.is_some_and(|n| n.is_null(row)) {
            ""
        } else {
            strs[key]
        });
    }
    Ok(())
}

/// [`for_each_str`] of a column that is not a dictionary.
fn for_each_plain_str<'a>(
    name: &str,
    array: &'a ArrayRef,
    f: &mut impl FnMut(&'a str),
) -> Result<(), DataError> {
    let has_nulls = array.null_count() > 0;
    macro_rules! each {
        ($a:expr) => {{
            let a = $a;
            for i in 0..a.len() {
                f(if has_nulls && a.is_null(i) {
                    ""
                } else {
                    a.value(i)
                });
            }
        }};
    }
    match array.data_type() {
        DataType::Utf8 => each!(array.as_string::<i32>()),
        DataType::LargeUtf8 => each!(array.as_string::<i64>()),
        DataType::Utf8View => each!(array.as_string_view()),
        _ => return Err(wrong_type(name, array, REGION_TYPES)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::StringArray;
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn regions(values: Vec<Option<&str>>) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("region", DataType::Utf8, true)]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(StringArray::from(values))]).unwrap()
    }

    #[test]
    fn values_are_escaped_and_nulls_go_to_the_default_partition() {
        let geo = GeoPartitioner::new("region").unwrap();
        let parts = geo
            .split(&regions(vec![
                Some("EU/West"),
                None,
                Some("US"),
                Some("US"),
            ]))
            .unwrap();
        let paths: Vec<(String, usize)> = parts
            .iter()
            .map(|(k, b)| (k.to_path_string(), b.num_rows()))
            .collect();
        assert_eq!(
            paths,
            [
                ("region=__HIVE_DEFAULT_PARTITION__".to_owned(), 1),
                ("region=EU%2FWest".to_owned(), 1),
                ("region=US".to_owned(), 2),
            ]
        );
    }

    #[test]
    fn a_column_that_is_not_a_partition_name_is_rejected() {
        assert!(GeoPartitioner::new("_region").is_err());
    }
}
