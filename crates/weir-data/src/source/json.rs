//! JSON lines: one object per line, read through a reused line buffer and turned into one text
//! per column for the typed path shared with CSV ([`Columns`]).
//!
//! Lines are visited with serde rather than parsed into `serde_json::Value`s: members are seen in
//! file order (a `Value` map sorts its keys), values of keys that are not columns are skipped
//! without being built, and every value's text is written into one buffer reused across lines.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::infer::Seen;
use super::{Columns, Next, ReadOptions, Reject, TextRow, TextRows, TextState};
use crate::DataError;

/// The rows of a JSON lines file.
pub(super) struct JsonRows {
    lines: Lines,
    /// Column index by name.
    index: HashMap<String, usize>,
    row: JsonRow,
}

impl JsonRows {
    pub(super) fn open(
        path: &Path,
        opts: &ReadOptions,
    ) -> Result<(SchemaRef, TextState<JsonRows>), DataError> {
        let base = match &opts.schema {
            Some(schema) => schema.as_ref().clone(),
            None => super::infer::with_column_types(path, infer_schema(path, opts)?, opts)?,
        };
        if base.fields().is_empty() {
            return Err(DataError::Json {
                path: path.to_owned(),
                reason: match &opts.schema {
                    Some(_) => "the schema has no columns".into(),
                    None => format!(
                        "no object keys were found in the first {} good lines",
                        opts.infer_rows
                    ),
                },
            });
        }
        let (schema, columns) = Columns::new(path, &base, opts)?;
        let index = columns
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        let rows = JsonRows {
            lines: Lines::open(path)?,
            index,
            row: JsonRow {
                text: String::new(),
                spans: vec![None; columns.len()],
            },
        };
        Ok((schema, TextState { rows, columns }))
    }
}

impl TextRows for JsonRows {
    fn position(&self) -> super::SourcePosition {
        super::SourcePosition {
            byte: self.lines.byte,
            line: self.lines.number,
            record: self.lines.records,
        }
    }

    fn seek(&mut self, path: &Path, at: super::SourcePosition) -> Result<(), DataError> {
        self.lines.seek(path, at)
    }

    fn next_row(&mut self, path: &Path, columns: &mut Columns) -> Result<Next, DataError> {
        let Some((line, bytes)) = self.lines.next_line(path)? else {
            return Ok(Next::End);
        };
        let pushed = match std::str::from_utf8(bytes) {
            Ok(text) => self
                .row
                .load(text, &self.index)
                .and_then(|()| columns.push_row(&self.row)),
            Err(_) => Err("the line is not valid UTF-8".to_owned()),
        };
        Ok(match pushed {
            Ok(()) => Next::Pushed,
            Err(reason) => Next::Rejected(Reject {
                file: path.to_owned(),
                line,
                raw: String::from_utf8_lossy(bytes).into_owned(),
                reason,
            }),
        })
    }
}

/// One line's values as text: column `i` is `text[spans[i]]`, or null if `spans[i]` is `None`.
struct JsonRow {
    text: String,
    spans: Vec<Option<(usize, usize)>>,
}

impl JsonRow {
    /// Loads the object on `line`, or says why the line is not one.
    fn load(&mut self, line: &str, index: &HashMap<String, usize>) -> Result<(), String> {
        self.text.clear();
        self.spans.fill(None);
        let mut fill = Fill {
            index,
            spans: &mut self.spans,
        };
        visit_object(line, &mut self.text, &mut fill)
    }
}

impl TextRow for JsonRow {
    const NULL: &'static str = "missing or null";

    fn field(&self, i: usize) -> Result<Option<&str>, &'static str> {
        Ok(self.spans[i].map(|(start, end)| &self.text[start..end]))
    }
}

/// Records where each column's value is in the row's text.
struct Fill<'a> {
    index: &'a HashMap<String, usize>,
    spans: &'a mut [Option<(usize, usize)>],
}

impl Members for Fill<'_> {
    fn column(&mut self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    fn value(&mut self, column: usize, kind: JsonKind, span: (usize, usize)) {
        self.spans[column] = match kind {
            JsonKind::Null => None,
            _ => Some(span),
        };
    }
}

// ---------------------------------------------------------------------------------------------
// Lines

/// The non-blank lines of a file, read one at a time into a reused buffer.
struct Lines {
    reader: BufReader<File>,
    buf: Vec<u8>,
    /// The 1-based number of the line in `buf`.
    number: u64,
    /// Bytes before the next line.
    byte: u64,
    /// Lines with a record read so far.
    records: u64,
}

impl Lines {
    fn open(path: &Path) -> Result<Lines, DataError> {
        let file = File::open(path).map_err(|e| DataError::io("open", path, e))?;
        Ok(Lines {
            reader: BufReader::with_capacity(256 * 1024, file),
            buf: Vec::new(),
            number: 0,
            byte: 0,
            records: 0,
        })
    }

    /// The next line that is not blank, without its line terminator (or a leading byte-order
    /// mark), and its 1-based number; `None` at the end of the file.
    fn next_line(&mut self, path: &Path) -> Result<Option<(u64, &[u8])>, DataError> {
        loop {
            self.buf.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| DataError::io("read", path, e))?;
            if read == 0 {
                return Ok(None);
            }
            self.byte += read as u64;
            self.number += 1;
            if self.number == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.buf.drain(..3);
            }
            if !self.buf.trim_ascii().is_empty() {
                break;
            }
        }
        self.records += 1;
        let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Ok(Some((self.number, line)))
    }

    fn seek(&mut self, path: &Path, at: super::SourcePosition) -> Result<(), DataError> {
        use std::io::Seek as _;
        self.reader
            .seek(std::io::SeekFrom::Start(at.byte))
            .map_err(|e| DataError::io("seek", path, e))?;
        self.byte = at.byte;
        self.number = at.line;
        self.records = at.record;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Inference

fn infer_schema(path: &Path, opts: &ReadOptions) -> Result<Schema, DataError> {
    let mut lines = Lines::open(path)?;
    let mut inference = Inference::default();
    let mut text = String::new();
    let mut sampled = 0;
    let mut bytes_read = 0u64;
    while sampled < opts.infer_rows && bytes_read < opts.infer_bytes {
        let Some((_, bytes)) = lines.next_line(path)? else {
            break;
        };
        bytes_read += bytes.len() as u64 + 1;
        let Ok(line) = std::str::from_utf8(bytes) else {
            continue;
        };
        if inference.sample(line, &mut text) {
            sampled += 1;
        }
    }
    Ok(inference.schema(opts.source_tz.is_some()))
}

/// The keys seen so far, in first-seen order, and what their values were.
#[derive(Default)]
struct Inference {
    names: Vec<String>,
    index: HashMap<String, usize>,
    seen: Vec<Seen>,
    /// The current line's (column, kind, span of its text) triples, applied once the whole
    /// line has parsed.
    line: Vec<(usize, JsonKind, (usize, usize))>,
}

impl Inference {
    /// Samples one line; false (and nothing learned) if it is not a JSON object.
    fn sample(&mut self, line: &str, text: &mut String) -> bool {
        let known = self.names.len();
        self.line.clear();
        text.clear();
        if visit_object(line, text, self).is_err() {
            for name in self.names.drain(known..) {
                self.index.remove(&name);
            }
            return false;
        }
        self.seen.resize(self.names.len(), Seen::default());
        for &(column, kind, (start, end)) in &self.line {
            let s = &mut self.seen[column];
            match kind {
                JsonKind::Null => {}
                JsonKind::Int => s.not_text(true, true, false),
                JsonKind::Number => s.not_text(false, true, false),
                JsonKind::Bool => s.not_text(false, false, true),
                JsonKind::Nested => s.not_text(false, false, false),
                // A string is a date or timestamp if it looks like one, else text: a quoted
                // "42" stays a string (the writer meant one).
                JsonKind::String => {
                    s.json_string(&text[start..end]);
                }
            }
        }
        true
    }

    fn schema(&self, zoned_naive: bool) -> Schema {
        Schema::new(
            self.names
                .iter()
                .zip(&self.seen)
                .map(|(name, s)| Field::new(name, s.data_type(zoned_naive), true))
                .collect::<Vec<_>>(),
        )
    }
}

impl Members for Inference {
    fn column(&mut self, key: &str) -> Option<usize> {
        if let Some(&i) = self.index.get(key) {
            return Some(i);
        }
        self.names.push(key.to_owned());
        self.index.insert(key.to_owned(), self.names.len() - 1);
        Some(self.names.len() - 1)
    }

    fn value(&mut self, column: usize, kind: JsonKind, span: (usize, usize)) {
        self.line.push((column, kind, span));
    }
}

// ---------------------------------------------------------------------------------------------
// Visiting one line

/// The JSON type of a top-level value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JsonKind {
    Null,
    Bool,
    /// An integer that fits an `i64`.
    Int,
    /// Any other number.
    Number,
    String,
    /// An array or an object.
    Nested,
}

/// Receives the members of a line's top-level object, in file order.
trait Members {
    /// The column `key` fills, or `None` to skip its value.
    fn column(&mut self, key: &str) -> Option<usize>;

    /// Column `column`'s value is of `kind` and written at `span` of the line's text.
    fn value(&mut self, column: usize, kind: JsonKind, span: (usize, usize));
}

/// Visits the object on `line`, writing the text of each wanted value into `text`: numbers as
/// written by serde_json, bools as `true`/`false`, strings unescaped, arrays and objects as
/// compact JSON. Says why the line is rejected if it is not one JSON object.
fn visit_object(line: &str, text: &mut String, members: &mut impl Members) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(line);
    let parsed = ObjectSeed { text, members }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    parsed.map_err(|e| {
        if serde_json::from_str::<IgnoredAny>(line).is_ok() {
            let found = match line.trim_start().as_bytes().first() {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                Some(b'n') => "null",
                _ => "a number",
            };
            format!("the line is {found}, not a JSON object")
        } else {
            format!("the line is not valid JSON: {e}")
        }
    })
}

struct ObjectSeed<'a, M> {
    text: &'a mut String,
    members: &'a mut M,
}

impl<'de, M: Members> DeserializeSeed<'de> for ObjectSeed<'_, M> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, M: Members> Visitor<'de> for ObjectSeed<'_, M> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(column) = map.next_key_seed(KeySeed(&mut *self.members))? {
            let Some(column) = column else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let start = self.text.len();
            let kind = map.next_value_seed(ValueSeed {
                text: &mut *self.text,
                top: true,
            })?;
            self.members.value(column, kind, (start, self.text.len()));
        }
        Ok(())
    }
}

/// Looks a key up without allocating it.
struct KeySeed<'a, M>(&'a mut M);

impl<'de, M: Members> DeserializeSeed<'de> for KeySeed<'_, M> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, M: Members> Visitor<'de> for KeySeed<'_, M> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.column(key))
    }
}

/// Writes any JSON value's text into `text` and says what kind it is. A top-level string is
/// written as its content; strings inside arrays and objects are written as JSON.
struct ValueSeed<'a> {
    text: &'a mut String,
    top: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = JsonKind;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonKind, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = JsonKind;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonKind, E> {
        self.text.push_str("null");
        Ok(JsonKind::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<JsonKind, E> {
        self.text.push_str(if v { "true" } else { "false" });
        Ok(JsonKind::Bool)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<JsonKind, E> {
        let _ = write!(self.text, "{v}");
        Ok(JsonKind::Int)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<JsonKind, E> {
        let _ = write!(self.text, "{v}");
        Ok(if i64::try_from(v).is_ok() {
            JsonKind::Int
        } else {
            JsonKind::Number
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<JsonKind, E> {
        // serde_json's shortest round-trip form (`1e300`, not 301 digits); JSON has no NaN.
        let _ = match serde_json::Number::from_f64(v) {
            Some(n) => write!(self.text, "{n}"),
            None => write!(self.text, "{v}"),
        };
        Ok(JsonKind::Number)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonKind, E> {
        if self.top {
            self.text.push_str(v);
        } else {
            push_json_string(self.text, v);
        }
        Ok(JsonKind::String)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonKind, A::Error> {
        self.text.push('[');
        let mut first = true;
        loop {
            let mark = self.text.len();
            if !first {
                self.text.push(',');
            }
            let element = ValueSeed {
                text: &mut *self.text,
                top: false,
            };
            if seq.next_element_seed(element)?.is_none() {
                self.text.truncate(mark);
                break;
            }
            first = false;
        }
        self.text.push(']');
        Ok(JsonKind::Nested)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonKind, A::Error> {
        self.text.push('{');
        let mut first = true;
        loop {
            let mark = self.text.len();
            if !first {
                self.text.push(',');
            }
            let key = ValueSeed {
                text: &mut *self.text,
                top: false,
            };
            if map.next_key_seed(key)?.is_none() {
                self.text.truncate(mark);
                break;
            }
            self.text.push(':');
            map.next_value_seed(ValueSeed {
                text: &mut *self.text,
                top: false,
            })?;
            first = false;
        }
        self.text.push('}');
        Ok(JsonKind::Nested)
    }
}

/// Writes `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
