//! Hive-style partition keys (`dt=2026-03-08/hr=05`) whose values are escaped so that no value can
//! leave its folder, and parsed back.
//!
//! Escaping follows Hive's `FileUtils.escapePathName` (percent-encoding, upper-case hex) for `/`,
//! `\`, `=`, `%`, `:`, `#`, `?`, `*`, quotes, brackets, `^`, `{` and control characters (NUL, DEL
//! and the C1 range included), plus a leading `.` (so a value can never be `.`, `..` or a hidden
//! file). An empty value is Hive's `__HIVE_DEFAULT_PARTITION__` (and a literal value equal to that
//! marker is escaped so the two never collide). Values whose escaped form is longer than
//! [`MAX_ESCAPED_VALUE_BYTES`] are truncated and end with `%%` and a hash of the full value: `%%`
//! never occurs in an escaped value, so a truncated segment is recognizable, and the dataset stores
//! the full key beside the data so that listing still returns it.

use std::fmt;
use std::path::PathBuf;

use jiff::civil::Date;

use crate::DataError;

/// The folder name Hive uses for an empty (or null) partition value.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Escaped values longer than this many bytes are truncated with a hash suffix; it keeps every
/// path segment (`name=value`) well under the usual 255-byte file-name limit.
pub const MAX_ESCAPED_VALUE_BYTES: usize = 180;

/// Partition column names are at most this long.
pub const MAX_NAME_BYTES: usize = 64;

/// Marks a truncated value; cannot occur in an untruncated escaped value because `%` is escaped.
const TRUNCATION_MARK: &str = "%%";
/// Hex digits of the SHA-1 of the full value kept after [`TRUNCATION_MARK`].
const TRUNCATION_HASH_HEX: usize = 16;

/// An ordered list of `(name, value)` pairs naming one partition of a dataset.
///
/// Names are identifiers (`[A-Za-z][A-Za-z0-9_]*`, so never starting with `_` or `.`, which mark
/// non-partition folders); values are arbitrary strings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PartitionKey {
    parts: Vec<(String, String)>,
}

impl PartitionKey {
    /// Builds a key from `(name, value)` pairs, validating the names.
    pub fn new<N, V>(parts: impl IntoIterator<Item = (N, V)>) -> Result<Self, DataError>
    where
        N: Into<String>,
        V: Into<String>,
    {
        let mut key = PartitionKey::default();
        for (name, value) in parts {
            key = key.with(name, value)?;
        }
        Ok(key)
    }

    /// Appends one `(name, value)` level, validating the name.
    pub fn with(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, DataError> {
        let name = name.into();
        validate_name(&name)?;
        if self.parts.iter().any(|(n, _)| *n == name) {
            return Err(DataError::InvalidPartitionKey {
                input: name,
                reason: "the name is used twice in one key; give each level a distinct name".into(),
            });
        }
        self.parts.push((name, value.into()));
        Ok(self)
    }

    /// `dt=YYYY-MM-DD`.
    pub fn date(date: Date) -> Self {
        PartitionKey {
            parts: vec![("dt".into(), date.to_string())],
        }
    }

    /// `dt=YYYY-MM-DD/hr=HH`.
    pub fn date_hour(date: Date, hour: i8) -> Self {
        PartitionKey {
            parts: vec![
                ("dt".into(), date.to_string()),
                ("hr".into(), format!("{hour:02}")),
            ],
        }
    }

    /// The `(name, value)` pairs, outermost first.
    pub fn parts(&self) -> &[(String, String)] {
        &self.parts
    }

    /// The value of the level called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the key has no levels (the dataset root itself).
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Whether any value is too long to be stored untruncated in its path segment.
    pub fn is_truncated(&self) -> bool {
        self.parts
            .iter()
            .any(|(_, v)| escape_value(v).contains(TRUNCATION_MARK))
    }

    /// The relative path, `/`-separated: `dt=2026-03-08/hr=05`.
    pub fn to_path_string(&self) -> String {
        let mut out = String::new();
        for (i, (name, value)) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(name);
            out.push('=');
            out.push_str(&escape_value(value));
        }
        out
    }

    /// The relative path as a `PathBuf` (one component per level).
    pub fn to_relative_path(&self) -> PathBuf {
        self.parts
            .iter()
            .map(|(n, v)| format!("{n}={}", escape_value(v)))
            .collect()
    }

    /// Parses a `/`-separated relative path back into a key.
    ///
    /// A truncated value (see the module docs) cannot be recovered from the path alone and is an
    /// error here; [`crate::Dataset::partitions`] recovers it from the partition's sidecar file.
    pub fn parse(path: &str) -> Result<Self, DataError> {
        let mut key = PartitionKey::default();
        if path.is_empty() {
            return Ok(key);
        }
        for segment in path.split('/') {
            let (name, escaped) =
                parse_segment(segment).map_err(|reason| DataError::InvalidPartitionKey {
                    input: path.to_owned(),
                    reason,
                })?;
            if escaped.contains(TRUNCATION_MARK) {
                return Err(DataError::InvalidPartitionKey {
                    input: path.to_owned(),
                    reason: "the value was truncated to fit a file name; read the full key from the dataset listing".into(),
                });
            }
            let value =
                unescape_value(escaped).map_err(|reason| DataError::InvalidPartitionKey {
                    input: path.to_owned(),
                    reason,
                })?;
            key = key.with(name, value)?;
        }
        Ok(key)
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_path_string())
    }
}

/// Splits `name=escaped`, validating the name; the value is left escaped.
pub(crate) fn parse_segment(segment: &str) -> Result<(&str, &str), String> {
    let (name, escaped) = segment
        .split_once('=')
        .ok_or_else(|| format!("segment {segment:?} is not of the form name=value"))?;
    validate_name(name).map_err(|e| e.to_string())?;
    if escaped.is_empty() {
        return Err(format!(
            "segment {segment:?} has an empty value; empty values are written as {DEFAULT_PARTITION}"
        ));
    }
    Ok((name, escaped))
}

fn validate_name(name: &str) -> Result<(), DataError> {
    let mut chars = name.chars();
    let ok = name.len() <= MAX_NAME_BYTES
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(DataError::InvalidPartitionKey {
            input: name.to_owned(),
            reason: format!(
                "a partition name must be 1 to {MAX_NAME_BYTES} ASCII letters, digits or underscores, starting with a letter"
            ),
        })
    }
}

fn must_escape(c: char, first: bool) -> bool {
    c.is_control()
        || (first && c == '.')
        || matches!(
            c,
            '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '[' | ']' | '^' | '{'
        )
}

/// Escapes one value for use as a path segment (see the module docs).
pub fn escape_value(value: &str) -> String {
    if value.is_empty() {
        return DEFAULT_PARTITION.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        // A literal value equal to the default-partition marker gets its first `_` escaped.
        if i == 0 && value == DEFAULT_PARTITION {
            out.push_str("%5F");
        } else if must_escape(c, i == 0) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.len() > MAX_ESCAPED_VALUE_BYTES {
        let keep = MAX_ESCAPED_VALUE_BYTES - TRUNCATION_MARK.len() - TRUNCATION_HASH_HEX;
        let mut cut = keep;
        // Never cut inside a UTF-8 character or a `%XX` escape.
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        let from = cut.saturating_sub(2);
        if let Some(pct) = out.as_bytes()[from..cut].iter().rposition(|&b| b == b'%') {
            cut = from + pct;
        }
        let hash = sha1_smol::Sha1::from(value.as_bytes()).digest().to_string();
        out.truncate(cut);
        out.push_str(TRUNCATION_MARK);
        out.push_str(&hash[..TRUNCATION_HASH_HEX]);
    }
    out
}

/// Reverses [`escape_value`] for an untruncated value.
pub fn unescape_value(escaped: &str) -> Result<String, String> {
    if escaped == DEFAULT_PARTITION {
        return Ok(String::new());
    }
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = escaped
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape at byte {i} of {escaped:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{escaped:?} does not decode to UTF-8"))
}
