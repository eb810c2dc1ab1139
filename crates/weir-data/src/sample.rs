//! A deterministic, seeded generator of realistic batch data: an `orders` feed with skewed
//! customers, a daily rhythm, late arrivals, long-tailed notes and a share of malformed rows.
//!
//! The same [`SampleSpec`] (seed included) always produces byte-identical files, so tests and
//! benchmarks can rely on it. Rows are generated and written one at a time (CSV) or in small
//! batches (Parquet): a file of any size is written in constant memory.
//!
//! What the data looks like:
//! - `order_id`: increasing, unique, with gaps (as when ids are reserved and not used).
//! - `customer_id`: Zipf-like (density ∝ 1/rank): the top 1% of customers place about half the
//!   orders. Each customer lives in one country, consistent with its `region` and `currency`.
//! - `event_time`: spread uniformly over the days of `[start, start + days)`, with a daily rhythm
//!   (quiet from 03:00 to 09:00 UTC, busiest in the UTC afternoon). The default range covers both
//!   2026 March DST transitions (US on the 8th, EU on the 29th).
//! - `ingested_at`: `event_time` plus 30 s to 30 min, or plus 1 to 3 days for a `late_ratio` share.
//! - `amount`: log-normal, two decimal places. `status`: mostly placed or shipped.
//! - `note`: usually empty or short, sometimes with commas, quotes or non-ASCII text; a long tail up
//!   to 4 KiB.
//! - A `malformed_ratio` share of rows is malformed: an unparseable or empty `event_time`, a
//!   non-numeric `amount`, missing fields or an extra field (CSV). Parquet is typed, so there every
//!   malformed row has an unparseable or null `event_time` (a string column in the Parquet file).
//!
//! [`SampleSummary`] reports what was written so tests can cross-check; tests of downstream code
//! should still count independently.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::DataError;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleSpec {
    /// Rows to write, malformed ones included.
    pub rows: u64,
    /// The first instant of the event-time range.
    pub start: Timestamp,
    /// The length of the event-time range in (24-hour) days.
    pub days: u32,
    /// The PRNG seed: same seed, same bytes.
    pub seed: u64,
    /// The share of malformed rows (default 0.002).
    pub malformed_ratio: f64,
    /// The share of well-formed rows that arrive 1 to 3 days late (default 0.02).
    pub late_ratio: f64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            rows: 100_000,
            start: Timestamp::constant(1_772_323_200, 0), // 2026-03-01T00:00:00Z
            days: 35,
            seed: 42,
            malformed_ratio: 0.002,
            late_ratio: 0.02,
        }
    }
}

/// What a generator run wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SampleSummary {
    /// Rows written, malformed ones included (the CSV header is not a row).
    pub rows: u64,
    /// Malformed rows.
    pub malformed: u64,
    /// Well-formed rows whose `ingested_at` is 1 to 3 days after `event_time`.
    pub late: u64,
    /// Well-formed rows per UTC date of `event_time`.
    pub per_day: BTreeMap<Date, u64>,
    /// Bytes of the file written.
    pub bytes: u64,
}

/// The column names, in file order.
pub const ORDER_COLUMNS: [&str; 10] = [
    "order_id",
    "customer_id",
    "region",
    "country",
    "event_time",
    "ingested_at",
    "amount",
    "currency",
    "status",
    "note",
];

/// The explicit schema to read the generated CSV with (see [`crate::ReadOptions::schema`]):
/// every column required but `note`; times as `Timestamp(µs, "UTC")`; `amount` as
/// `Decimal128(18, 2)`. Reading with it rejects exactly the malformed rows.
pub fn orders_schema() -> SchemaRef {
    let ts = crate::utc_micros_type();
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("event_time", ts.clone(), false),
        Field::new("ingested_at", ts, false),
        Field::new("amount", DataType::Decimal128(18, 2), false),
        Field::new("currency", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// [`orders_schema`] in the type language of schema files (see [`crate::source::parse_type`]).
pub const ORDERS_SCHEMA_TEXT: &str = "\
# The columns of weir's generated orders (weir data generate).
order_id: int not null
customer_id: int not null
region: string not null
country: string not null
event_time: timestamp not null
ingested_at: timestamp not null
amount: decimal(18,2) not null
currency: string not null
status: string not null
note: string
";

/// Writes [`ORDERS_SCHEMA_TEXT`] as the schema file beside a generated CSV (`orders.csv` →
/// `orders.schema`), so loads read it with its declared types.
pub fn write_orders_schema(csv: &Path) -> Result<PathBuf, DataError> {
    let path = crate::source::schema_sidecar(csv);
    std::fs::write(&path, ORDERS_SCHEMA_TEXT).map_err(|e| DataError::io("write", &path, e))?;
    Ok(path)
}

/// The schema of the generated Parquet file: like [`orders_schema`] but `event_time` is a
/// nullable string, as in a raw landing file (it is where the malformed rows are).
pub fn orders_parquet_schema() -> SchemaRef {
    let mut fields: Vec<Field> = orders_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[4] = Field::new("event_time", DataType::Utf8, true);
    Arc::new(Schema::new(fields))
}

/// Writes the orders feed as CSV (with a header row) to `path`, streaming.
pub fn write_orders_csv(spec: &SampleSpec, path: &Path) -> Result<SampleSummary, DataError> {
    let mut generator = Generator::new(spec)?;
    let file = File::create(path).map_err(|e| DataError::io("create", path, e))?;
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(BufWriter::with_capacity(1 << 20, file));
    let write_err = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => DataError::io("write", path, io),
        other => DataError::Internal(format!("CSV writer failed: {other:?}")),
    };
    w.write_record(ORDER_COLUMNS).map_err(write_err)?;
    let mut fields: Vec<String> = Vec::with_capacity(11);
    while let Some(row) = generator.next_row() {
        row.csv_fields(&mut fields);
        w.write_record(&fields).map_err(write_err)?;
    }
    let inner = w
        .into_inner()
        .map_err(|e| DataError::io("write", path, std::io::Error::other(e.to_string())))?;
    let mut file = inner
        .into_inner()
        .map_err(|e| DataError::io("write", path, e.into_error()))?;
    file.flush().map_err(|e| DataError::io("write", path, e))?;
    generator.finish(path)
}

/// Writes the orders feed as a zstd-compressed Parquet file to `path` (schema
/// [`orders_parquet_schema`]), in batches of 8 192 rows.
pub fn write_orders_parquet(spec: &SampleSpec, path: &Path) -> Result<SampleSummary, DataError> {
    const BATCH: usize = 8192;
    let mut generator = Generator::new(spec)?;
    let schema = orders_parquet_schema();
    let file = File::create(path).map_err(|e| DataError::io("create", path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
        .map_err(|e| DataError::parquet(path, e))?;
    let mut cols = ParquetColumns::new(BATCH);
    loop {
        let row = generator.next_row();
        let done = row.is_none();
        if let Some(row) = row {
            cols.push(&row);
        }
        if cols.len >= BATCH || (done && cols.len > 0) {
            let batch = RecordBatch::try_new(schema.clone(), cols.finish())
                .map_err(|e| DataError::arrow("building a sample batch", e))?;
            writer
                .write(&batch)
                .map_err(|e| DataError::parquet(path, e))?;
        }
        if done {
            break;
        }
    }
    writer.close().map_err(|e| DataError::parquet(path, e))?;
    generator.finish(path)
}

// ---------------------------------------------------------------------------------------------

/// SplitMix64: tiny, fast, and good enough for sample data.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// (region, weight, countries with (code, currency, weight)). North America is `NAM`, not
/// `NA`: `NA` is a null token of CSV files (R and pandas write it for a missing value).
type RegionTable = [(
    &'static str,
    u32,
    &'static [(&'static str, &'static str, u32)],
); 4];
const REGIONS: RegionTable = [
    (
        "NAM",
        40,
        &[("US", "USD", 80), ("CA", "CAD", 12), ("MX", "MXN", 8)],
    ),
    (
        "EU",
        30,
        &[("DE", "EUR", 35), ("GB", "GBP", 35), ("FR", "EUR", 30)],
    ),
    (
        "APAC",
        20,
        &[
            ("JP", "JPY", 35),
            ("AU", "AUD", 25),
            ("IN", "INR", 25),
            ("SG", "SGD", 15),
        ],
    ),
    ("LATAM", 10, &[("BR", "BRL", 70), ("AR", "ARS", 30)]),
];

/// Relative order volume per UTC hour.
const HOUR_WEIGHTS: [u32; 24] = [
    6, 5, 4, 3, 2, 2, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 9, 9, 8, 8, 7, 7,
];

const STATUSES: [(&str, u32); 4] = [
    ("placed", 55),
    ("shipped", 35),
    ("cancelled", 6),
    ("returned", 4),
];

const SHORT_NOTES: &[&str] = &[
    "leave at door",
    "gift",
    "call on arrival",
    "leave at door, ring twice",
    "gift wrap \"birthday\"",
    "fragile",
    "café crème, no sugar",
    "Größe M",
    "deliver after 6pm",
    "customer's second order",
    "express",
    "配達は午前中",
];

const WORDS: &[&str] = &[
    "the",
    "customer",
    "asked",
    "for",
    "delivery",
    "to",
    "a",
    "different",
    "address",
    "because",
    "of",
    "travel",
    "and",
    "noted",
    "that",
    "previous",
    "orders",
    "arrived",
    "late",
    "package",
    "box",
    "damaged",
    "refund",
    "requested",
    "warehouse",
    "courier",
    "weekend",
    "invoice",
    "VAT",
    "number",
    "attached",
    "please",
    "confirm",
    "by",
    "email,",
    "thanks!",
];

const BAD_TIMESTAMPS: &[&str] = &[
    "2026-13-45T25:61:00Z",
    "not-a-date",
    "03/08/2026 05:12",
    "2026-03-08 05:12:33",
    "",
];
const BAD_AMOUNTS: &[&str] = &["N/A", "12.34.56", "$19.99", "abc", "1,299.00"];

#[derive(Clone, Copy, Debug)]
enum Malformed {
    BadTimestamp(&'static str),
    BadAmount(&'static str),
    MissingFields(usize),
    ExtraField,
}

struct Row {
    order_id: i64,
    customer_id: i64,
    region: &'static str,
    country: &'static str,
    currency: &'static str,
    event_time: Timestamp,
    ingested_at: Timestamp,
    amount_cents: i64,
    status: &'static str,
    note: String,
    malformed: Option<Malformed>,
}

impl Row {
    fn csv_fields(&self, out: &mut Vec<String>) {
        out.clear();
        out.push(self.order_id.to_string());
        out.push(self.customer_id.to_string());
        out.push(self.region.to_owned());
        out.push(self.country.to_owned());
        out.push(match self.malformed {
            Some(Malformed::BadTimestamp(s)) => s.to_owned(),
            _ => self.event_time.to_string(),
        });
        out.push(self.ingested_at.to_string());
        out.push(match self.malformed {
            Some(Malformed::BadAmount(s)) => s.to_owned(),
            _ => format_cents(self.amount_cents),
        });
        out.push(self.currency.to_owned());
        out.push(self.status.to_owned());
        out.push(self.note.clone());
        match self.malformed {
            Some(Malformed::MissingFields(n)) => out.truncate(out.len() - n),
            Some(Malformed::ExtraField) => out.push("EXTRA".to_owned()),
            _ => {}
        }
    }
}

fn format_cents(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

struct Generator {
    rng: Rng,
    spec: SampleSpec,
    customers: u64,
    index: u64,
    next_order_id: i64,
    summary: SampleSummary,
}

impl Generator {
    fn new(spec: &SampleSpec) -> Result<Generator, DataError> {
        let ratio_ok = |r: f64| (0.0..=1.0).contains(&r);
        if spec.days == 0 || !ratio_ok(spec.malformed_ratio) || !ratio_ok(spec.late_ratio) {
            return Err(DataError::InvalidOptions {
                what: "sample spec",
                reason: "days must be at least 1 and both ratios between 0 and 1".into(),
            });
        }
        Ok(Generator {
            rng: Rng(spec.seed),
            spec: spec.clone(),
            customers: (spec.rows / 20).max(100),
            index: 0,
            next_order_id: 1_000_000,
            summary: SampleSummary::default(),
        })
    }

    fn next_row(&mut self) -> Option<Row> {
        if self.index >= self.spec.rows {
            return None;
        }
        let rng = &mut self.rng;
        let i = self.index;
        self.index += 1;

        // Ids increase with gaps: usually +1, sometimes a few ids are skipped.
        let order_id = self.next_order_id;
        self.next_order_id += 1 + if rng.chance(0.1) {
            rng.below(5) as i64 + 1
        } else {
            0
        };

        // Zipf-like customer rank: density ∝ 1/rank over [1, customers].
        let n = self.customers as f64;
        let rank = ((rng.unit() * (n + 1.0).ln()).exp().floor() as u64).clamp(1, self.customers);
        let customer_id = 100_000 + rank as i64;
        let (region, country, currency) = home_of(customer_id, self.spec.seed);

        // Day by position (so order ids roughly follow time), time of day by the daily rhythm.
        let rows = self.spec.rows.max(1) as f64;
        let day = (((i as f64 + rng.unit()) / rows) * f64::from(self.spec.days)).floor() as i64;
        let day = day.min(i64::from(self.spec.days) - 1);
        let hour = weighted(rng, &HOUR_WEIGHTS.map(|w| ((), w))).0 as i64;
        let micros = hour * 3_600_000_000 + rng.below(3_600_000) as i64 * 1_000;
        let event_time = self
            .spec
            .start
            .saturating_add(SignedDuration::from_secs(day * 86_400))
            .and_then(|t| t.checked_add(SignedDuration::from_micros(micros)))
            .unwrap_or(self.spec.start);

        let late = rng.chance(self.spec.late_ratio);
        let delay_secs = if late {
            86_400 + rng.below(2 * 86_400) as i64
        } else {
            30 + rng.below(30 * 60 - 30) as i64
        };
        let ingested_at = event_time
            .checked_add(SignedDuration::from_secs(delay_secs))
            .unwrap_or(event_time);

        let amount_cents = ((8.0 + 1.0 * rng.normal()).exp().round() as i64).clamp(50, 5_000_000);
        let status = weighted(rng, &STATUSES.map(|(s, w)| (s, w))).1;
        let note = note(rng);

        let malformed = if rng.chance(self.spec.malformed_ratio) {
            Some(match rng.below(4) {
                0 => Malformed::BadTimestamp(rng.pick(BAD_TIMESTAMPS)),
                1 => Malformed::BadAmount(rng.pick(BAD_AMOUNTS)),
                2 => Malformed::MissingFields(1 + rng.below(3) as usize),
                _ => Malformed::ExtraField,
            })
        } else {
            None
        };

        self.summary.rows += 1;
        if malformed.is_some() {
            self.summary.malformed += 1;
        } else {
            if late {
                self.summary.late += 1;
            }
            let date = TimeZone::UTC.to_datetime(event_time).date();
            *self.summary.per_day.entry(date).or_default() += 1;
        }
        Some(Row {
            order_id,
            customer_id,
            region,
            country,
            currency,
            event_time,
            ingested_at,
            amount_cents,
            status,
            note,
            malformed,
        })
    }

    fn finish(mut self, path: &Path) -> Result<SampleSummary, DataError> {
        self.summary.bytes = std::fs::metadata(path)
            .map_err(|e| DataError::io("inspect", path, e))?
            .len();
        Ok(self.summary)
    }
}

/// Picks an item by weight; returns (index, item).
fn weighted<T: Copy>(rng: &mut Rng, items: &[(T, u32)]) -> (usize, T) {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(u64::from(total)) as u32;
    for (i, (item, w)) in items.iter().enumerate() {
        if x < *w {
            return (i, *item);
        }
        x -= w;
    }
    (items.len() - 1, items[items.len() - 1].0)
}

/// A customer's region, country and currency: fixed per customer (a hash of id and seed).
fn home_of(customer_id: i64, seed: u64) -> (&'static str, &'static str, &'static str) {
    let mut rng = Rng(mix(customer_id as u64 ^ seed.rotate_left(17)));
    let regions = REGIONS.map(|(name, w, countries)| ((name, countries), w));
    let (_, (region, countries)) = weighted(&mut rng, &regions);
    let options: Vec<((&str, &str), u32)> = countries
        .iter()
        .map(|(c, cur, w)| ((*c, *cur), *w))
        .collect();
    let (_, (country, currency)) = weighted(&mut rng, &options);
    (region, country, currency)
}

/// A note: usually empty or short, sometimes a few sentences, rarely up to 4 KiB.
fn note(rng: &mut Rng) -> String {
    let x = rng.unit();
    if x < 0.40 {
        String::new()
    } else if x < 0.85 {
        rng.pick(SHORT_NOTES).to_owned()
    } else {
        // Pareto-like length: many around 60 chars, a few in the KiB range, capped at 4 KiB.
        let target = if x < 0.97 {
            20 + rng.below(200) as usize
        } else {
            ((200.0 / (1.0 - rng.unit()).powf(0.8)) as usize).min(4096)
        };
        let mut s = String::with_capacity(target + 16);
        while s.len() < target {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(rng.pick(WORDS));
        }
        let mut cut = target.min(s.len());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s
    }
}

/// Column builders for the Parquet sample.
struct ParquetColumns {
    len: usize,
    order_id: Int64Builder,
    customer_id: Int64Builder,
    region: StringBuilder,
    country: StringBuilder,
    event_time: StringBuilder,
    ingested_at: TimestampMicrosecondBuilder,
    amount: Decimal128Builder,
    currency: StringBuilder,
    status: StringBuilder,
    note: StringBuilder,
}

impl ParquetColumns {
    fn new(capacity: usize) -> Self {
        ParquetColumns {
            len: 0,
            order_id: Int64Builder::with_capacity(capacity),
            customer_id: Int64Builder::with_capacity(capacity),
            region: StringBuilder::new(),
            country: StringBuilder::new(),
            event_time: StringBuilder::new(),
            ingested_at: TimestampMicrosecondBuilder::with_capacity(capacity)
                .with_timezone(crate::UTC_TZ),
            amount: Decimal128Builder::with_capacity(capacity)
                .with_data_type(DataType::Decimal128(18, 2)),
            currency: StringBuilder::new(),
            status: StringBuilder::new(),
            note: StringBuilder::new(),
        }
    }

    fn push(&mut self, row: &Row) {
        self.len += 1;
        self.order_id.append_value(row.order_id);
        self.customer_id.append_value(row.customer_id);
        self.region.append_value(row.region);
        self.country.append_value(row.country);
        match row.malformed {
            None => self.event_time.append_value(row.event_time.to_string()),
            Some(Malformed::BadTimestamp(s)) if !s.is_empty() => self.event_time.append_value(s),
            Some(_) => self.event_time.append_null(),
        }
        self.ingested_at
            .append_value(row.ingested_at.as_microsecond());
        self.amount.append_value(i128::from(row.amount_cents));
        self.currency.append_value(row.currency);
        self.status.append_value(row.status);
        if row.note.is_empty() {
            self.note.append_null();
        } else {
            self.note.append_value(&row.note);
        }
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        self.len = 0;
        vec![
            Arc::new(self.order_id.finish()),
            Arc::new(self.customer_id.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.ingested_at.finish()),
            Arc::new(self.amount.finish()),
            Arc::new(self.currency.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.note.finish()),
        ]
    }
}
