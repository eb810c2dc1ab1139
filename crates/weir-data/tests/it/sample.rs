//! The sample generator: deterministic per seed, skewed, with malformed and late shares near the
//! spec — all counted independently by reading the files back.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, Int64Array, StringArray, TimestampMicrosecondArray};
use jiff::Timestamp;
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use weir_data::{
    ReadOptions, SampleSpec, open_source, orders_schema, write_orders_csv, write_orders_parquet,
};

fn spec(rows: u64, seed: u64) -> SampleSpec {
    SampleSpec {
        rows,
        seed,
        ..SampleSpec::default()
    }
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    write_orders_csv(&spec(3000, 7), &p("a.csv")).unwrap();
    write_orders_csv(&spec(3000, 7), &p("b.csv")).unwrap();
    write_orders_csv(&spec(3000, 8), &p("c.csv")).unwrap();
    let read = |n: &str| std::fs::read(p(n)).unwrap();
    assert_eq!(read("a.csv"), read("b.csv"));
    assert_ne!(read("a.csv"), read("c.csv"));

    write_orders_parquet(&spec(3000, 7), &p("a.parquet")).unwrap();
    write_orders_parquet(&spec(3000, 7), &p("b.parquet")).unwrap();
    write_orders_parquet(&spec(3000, 8), &p("c.parquet")).unwrap();
    assert_eq!(read("a.parquet"), read("b.parquet"));
    assert_ne!(read("a.parquet"), read("c.parquet"));
}

/// Everything a test needs from a CSV read back with the explicit schema.
struct ReadBack {
    good: u64,
    rejects: u64,
    late: u64,
    per_day: BTreeMap<Date, u64>,
    per_customer: HashMap<i64, u64>,
    per_utc_hour: [u64; 24],
    order_ids: Vec<i64>,
    region_country: Vec<(String, String)>,
}

fn read_back(path: &std::path::Path) -> ReadBack {
    let opts = ReadOptions {
        schema: Some(orders_schema()),
        time_column: Some("event_time".into()),
        batch_size: 10_000,
        ..ReadOptions::default()
    };
    let mut reader = open_source(path, &opts).unwrap();
    let mut rb = ReadBack {
        good: 0,
        rejects: 0,
        late: 0,
        per_day: BTreeMap::new(),
        per_customer: HashMap::new(),
        per_utc_hour: [0; 24],
        order_ids: Vec::new(),
        region_country: Vec::new(),
    };
    for batch in reader.by_ref() {
        let batch = batch.unwrap();
        let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let ids = col("order_id");
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let customers = col("customer_id");
        let customers = customers.as_any().downcast_ref::<Int64Array>().unwrap();
        let event = col("event_time");
        let event = event
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let ingested = col("ingested_at");
        let ingested = ingested
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let region = col("region");
        let region = region.as_any().downcast_ref::<StringArray>().unwrap();
        let country = col("country");
        let country = country.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..batch.num_rows() {
            rb.good += 1;
            let t = Timestamp::from_microsecond(event.value(i)).unwrap();
            let dt = TimeZone::UTC.to_datetime(t);
            *rb.per_day.entry(dt.date()).or_default() += 1;
            rb.per_utc_hour[dt.hour() as usize] += 1;
            if ingested.value(i) - event.value(i) >= 86_400_000_000 {
                rb.late += 1;
            }
            *rb.per_customer.entry(customers.value(i)).or_default() += 1;
            rb.order_ids.push(ids.value(i));
            rb.region_country
                .push((region.value(i).to_owned(), country.value(i).to_owned()));
        }
    }
    rb.rejects = reader.rejects().len() as u64;
    rb
}

#[test]
fn shares_skew_rhythm_and_days_match_the_spec_counted_independently() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("orders.csv");
    let spec = SampleSpec {
        rows: 40_000,
        malformed_ratio: 0.01,
        late_ratio: 0.05,
        ..SampleSpec::default()
    };
    let summary = write_orders_csv(&spec, &path).unwrap();
    let rb = read_back(&path);

    // Malformed and late shares near the spec, and the summary agrees with an independent count.
    assert_eq!(summary.rows, 40_000);
    assert_eq!(
        rb.rejects, summary.malformed,
        "every malformed row is rejected, nothing else"
    );
    assert_eq!(rb.good, summary.rows - summary.malformed);
    let malformed = rb.rejects as f64 / 40_000.0;
    assert!(
        (0.007..0.013).contains(&malformed),
        "malformed share {malformed}"
    );
    assert_eq!(rb.late, summary.late);
    let late = rb.late as f64 / rb.good as f64;
    assert!((0.04..0.06).contains(&late), "late share {late}");
    assert_eq!(rb.per_day, summary.per_day);

    // Days: all 35, roughly even, DST days included.
    assert_eq!(rb.per_day.len(), 35);
    assert!(
        rb.per_day.contains_key(&date(2026, 3, 8)) && rb.per_day.contains_key(&date(2026, 3, 29))
    );
    let (min, max) = (
        rb.per_day.values().min().unwrap(),
        rb.per_day.values().max().unwrap(),
    );
    assert!(
        *min as f64 > 0.85 * *max as f64,
        "days uneven: {min}..{max}"
    );

    // Daily rhythm: the UTC afternoon is much busier than the early morning.
    assert!(
        rb.per_utc_hour[16] > 3 * rb.per_utc_hour[5],
        "{:?}",
        rb.per_utc_hour
    );

    // Skew: the top 1% of customers place a large share; the busiest far above the median.
    let mut counts: Vec<u64> = rb.per_customer.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top = counts.len().div_ceil(100);
    let top_share = counts[..top].iter().sum::<u64>() as f64 / rb.good as f64;
    assert!(top_share > 0.3, "top 1% of customers hold only {top_share}");
    assert!(
        counts[0] > 50 * counts[counts.len() / 2],
        "busiest {} vs median {}",
        counts[0],
        counts[counts.len() / 2]
    );

    // Ids: unique, increasing, with gaps.
    assert!(rb.order_ids.windows(2).all(|w| w[0] < w[1]));
    assert!(rb.order_ids.windows(2).any(|w| w[1] - w[0] > 1));

    // Countries are consistent with regions.
    let allowed: HashMap<&str, &[&str]> = HashMap::from([
        ("NAM", &["US", "CA", "MX"][..]),
        ("EU", &["GB", "DE", "FR"][..]),
        ("APAC", &["AU", "JP", "IN", "SG"][..]),
        ("LATAM", &["BR", "AR"][..]),
    ]);
    for (region, country) in &rb.region_country {
        assert!(
            allowed[region.as_str()].contains(&country.as_str()),
            "{region}/{country}"
        );
    }
}

#[test]
fn notes_have_a_long_tail_and_csv_quoting_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("orders.csv");
    write_orders_csv(&spec(20_000, 3), &path).unwrap();
    let opts = ReadOptions {
        schema: Some(orders_schema()),
        ..ReadOptions::default()
    };
    let mut lengths = Vec::new();
    let mut quoted = 0;
    for batch in open_source(&path, &opts).unwrap() {
        let batch = batch.unwrap();
        let notes = batch
            .column(9)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for note in notes.iter() {
            let note = note.unwrap_or("");
            lengths.push(note.len());
            quoted += usize::from(note.contains('"') || note.contains(','));
        }
    }
    lengths.sort_unstable();
    assert!(lengths[lengths.len() / 2] < 40, "median note is short");
    assert!(*lengths.last().unwrap() > 1000, "some notes are long");
    assert!(*lengths.last().unwrap() <= 4096);
    assert!(quoted > 100, "notes with quotes or commas: {quoted}");
}

#[test]
fn parquet_sample_rejects_exactly_its_malformed_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("orders.parquet");
    let spec = SampleSpec {
        rows: 30_000,
        malformed_ratio: 0.01,
        ..SampleSpec::default()
    };
    let summary = write_orders_parquet(&spec, &path).unwrap();
    let opts = ReadOptions {
        time_column: Some("event_time".into()),
        batch_size: 4096,
        ..ReadOptions::default()
    };
    let mut reader = open_source(&path, &opts).unwrap();
    let mut good = 0;
    let mut per_day: BTreeMap<Date, u64> = BTreeMap::new();
    for batch in reader.by_ref() {
        let batch = batch.unwrap();
        assert!(batch.num_rows() <= 4096);
        let t = batch
            .column(4)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(t.null_count(), 0);
        for v in t.values() {
            let day = TimeZone::UTC
                .to_datetime(Timestamp::from_microsecond(*v).unwrap())
                .date();
            *per_day.entry(day).or_default() += 1;
        }
        good += batch.num_rows() as u64;
    }
    assert_eq!(reader.rejects().len() as u64, summary.malformed);
    assert!(summary.malformed > 200);
    assert_eq!(good, summary.rows - summary.malformed);
    assert_eq!(per_day, summary.per_day);
}
