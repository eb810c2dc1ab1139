//! Partition keys: escaping keeps hostile values inside their folder, and keys round-trip.

use proptest::prelude::*;
use weir_data::partition::{DEFAULT_PARTITION, escape_value};
use weir_data::{DataError, PartitionKey};

fn hostile_values() -> Vec<String> {
    vec![
        "../".into(),
        "..".into(),
        ".".into(),
        "../../etc/passwd".into(),
        "/".into(),
        "/abs".into(),
        "a/b".into(),
        "a\\b".into(),
        "=".into(),
        "a=b".into(),
        "\0".into(),
        "nul\0byte".into(),
        "line\nbreak".into(),
        String::new(),
        DEFAULT_PARTITION.into(),
        "%".into(),
        "%%".into(),
        "%2F".into(),
        ".hidden".into(),
        "_underscore".into(),
        "ünïcødé 日本".into(),
        "x".repeat(5_000),
        "/".repeat(5_000),
        "é".repeat(3_000),
    ]
}

#[test]
fn hostile_values_render_to_one_safe_segment() {
    for value in hostile_values() {
        let escaped = escape_value(&value);
        assert!(!escaped.is_empty(), "{value:?}");
        assert!(
            !escaped.contains('/') && !escaped.contains('\\'),
            "{value:?} -> {escaped}"
        );
        assert!(
            !escaped.contains('\0') && !escaped.contains('='),
            "{value:?} -> {escaped}"
        );
        assert!(!escaped.starts_with('.'), "{value:?} -> {escaped}");
        assert!(escaped.len() <= 200, "{value:?} -> {} bytes", escaped.len());
        let key = PartitionKey::new([("k", value.clone())]).unwrap();
        let path = key.to_relative_path();
        assert_eq!(path.components().count(), 1, "{value:?} -> {path:?}");
        if key.is_truncated() {
            assert!(
                value.len() > 60,
                "only long values are truncated: {value:?}"
            );
            assert!(PartitionKey::parse(&key.to_path_string()).is_err());
        } else {
            assert_eq!(
                PartitionKey::parse(&key.to_path_string()).unwrap(),
                key,
                "{value:?}"
            );
        }
    }
}

#[test]
fn empty_value_is_hive_default_and_literal_marker_is_distinct() {
    let empty = PartitionKey::new([("k", "")]).unwrap();
    let literal = PartitionKey::new([("k", DEFAULT_PARTITION)]).unwrap();
    assert_eq!(empty.to_path_string(), format!("k={DEFAULT_PARTITION}"));
    assert_ne!(empty.to_path_string(), literal.to_path_string());
    assert_eq!(
        PartitionKey::parse(&literal.to_path_string()).unwrap(),
        literal
    );
}

#[test]
fn date_hour_renders_hive_style() {
    let key = PartitionKey::date_hour(jiff::civil::date(2026, 3, 8), 5);
    assert_eq!(key.to_path_string(), "dt=2026-03-08/hr=05");
    assert_eq!(PartitionKey::parse("dt=2026-03-08/hr=05").unwrap(), key);
    assert_eq!(key.get("hr"), Some("05"));
}

#[test]
fn bad_names_and_paths_are_rejected() {
    for name in ["", "_x", ".x", "a/b", "a=b", "1a", "a b", &"n".repeat(65)] {
        let err = PartitionKey::new([(name, "v")]).unwrap_err();
        assert!(
            matches!(err, DataError::InvalidPartitionKey { .. }),
            "{name:?}"
        );
    }
    for path in [
        "novalue",
        "a=",
        "_s=1",
        "a=1/../b=2",
        "a=%zz",
        "a=1//b=2",
        "a=1/a=2",
    ] {
        assert!(
            PartitionKey::parse(path).is_err(),
            "{path:?} should not parse"
        );
    }
}

proptest! {
    #[test]
    fn escape_parse_round_trips(values in proptest::collection::vec(any::<String>(), 1..4)) {
        let key = PartitionKey::new(
            values.iter().enumerate().map(|(i, v)| (format!("k{i}"), v.clone())),
        ).unwrap();
        let rendered = key.to_path_string();
        prop_assert_eq!(rendered.split('/').count(), values.len());
        for segment in rendered.split('/') {
            let (_, value) = segment.split_once('=').unwrap();
            prop_assert!(!value.is_empty() && !value.starts_with('.'));
            prop_assert!(!value.contains('\\') && !value.contains('\0') && !value.contains('='));
            prop_assert!(!value.chars().any(|c| c.is_control()));
            prop_assert!(segment.len() <= 255);
        }
        if !key.is_truncated() {
            prop_assert_eq!(PartitionKey::parse(&rendered).unwrap(), key);
        }
    }

    #[test]
    fn escape_is_injective_on_short_values(a in ".{0,40}", b in ".{0,40}") {
        prop_assume!(a != b);
        prop_assert_ne!(escape_value(&a), escape_value(&b));
    }
}
