//! Hash partitioning with a hash that never changes: xxHash64 (seed 0) of the key's bytes, so a
//! key lands in the same bucket on every run, machine and Rust version; buckets by `hash % N` or
//! by jump consistent hashing, and a balance report.
//!
//! Integer keys (any width, signed or not) are hashed as the 8 little-endian bytes of the value
//! widened to 64 bits, so `5i32` and `5i64` share a bucket; string keys as their UTF-8 bytes, so
//! `Utf8`, `LargeUtf8` and `Utf8View` agree. A dictionary-encoded column hashes each distinct value
//! once and maps its keys: the same bucket as the plain column, at a fraction of the cost.
//! `std`'s `DefaultHasher` is deliberately not used: its algorithm may change between releases.
//!
//! [`BucketScheme::Modulo`] is the classic `hash % N`: growing N to N + 1 moves about N/(N + 1) of
//! the keys. [`BucketScheme::Jump`] is Lamping & Veach's jump consistent hash ("A Fast, Minimal
//! Memory, Consistent Hash Algorithm", 2014): growing to N + 1 moves only about 1/(N + 1), and
//! only into the new bucket, with no ring to store. Its float arithmetic is plain IEEE-754
//! multiplication and division, exact the same everywhere.
//!
//! Null keys are an error ([`DataError::NullValue`]): fill or route them before hashing. So is
//! any other key type ([`DataError::ColumnType`], naming the types that work).

use arrow::array::{
    Array, ArrayRef, AsArray, GenericStringArray, Int8Array, Int16Array, Int32Array, Int64Array,
    OffsetSizeTrait, RecordBatch, StringViewArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::DataType;

use super::{column, split_by_assignment, wrong_type};
use crate::DataError;

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge_round(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

fn read_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn read_u32(b: &[u8]) -> u64 {
    u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// xxHash64 of `input` with `seed`, as specified by Yann Collet (the `XXH64` of the reference
/// implementation; `xxh64("", 0) == 0xEF46DB3751D8E999`).
pub fn xxh64(input: &[u8], seed: u64) -> u64 {
    let len = input.len() as u64;
    let mut rest = input;
    let mut h = if input.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 32 {
            for (lane, acc) in v.iter_mut().enumerate() {
                *acc = round(*acc, read_u64(&rest[lane * 8..]));
            }
            rest = &rest[32..];
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = merge_round(h, lane);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(len);
    while rest.len() >= 8 {
        h ^= round(0, read_u64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= read_u32(rest).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &byte in rest {
        h ^= u64::from(byte).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// The stable hash of an integer key: xxHash64 of its 8 little-endian bytes.
pub fn hash_i64(key: i64) -> u64 {
    xxh64(&key.to_le_bytes(), 0)
}

/// The stable hash of a string or binary key: xxHash64 of its bytes.
pub fn hash_bytes(key: &[u8]) -> u64 {
    xxh64(key, 0)
}

/// Jump consistent hash (Lamping & Veach): the bucket in `0..buckets` of a 64-bit `key`.
///
/// Growing `buckets` by one moves a key only into the new bucket, and only about
/// `1 / (buckets + 1)` of the keys. `buckets == 0` gives 0.
pub fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as u32
}

/// How a hash becomes a bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BucketScheme {
    /// `hash % buckets`: simple and uniform, but resizing reshuffles almost every key.
    Modulo,
    /// Jump consistent hash: resizing N → N + 1 moves about 1/(N + 1) of the keys.
    #[default]
    Jump,
}

/// `max / mean` of per-bucket counts: 1.0 is perfect balance; `k` means the fullest bucket holds
/// `k` times its fair share. No buckets or no rows count as balanced (1.0).
pub fn balance(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 1.0;
    }
    let max = counts.iter().copied().max().unwrap_or(0);
    max as f64 * counts.len() as f64 / total as f64
}

/// Assigns rows to `buckets` buckets by the stable hash of one int or string column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashPartitioner {
    column: String,
    buckets: u32,
    scheme: BucketScheme,
}

impl HashPartitioner {
    /// A partitioner into `buckets` (at least 1) buckets of `column`.
    pub fn new(
        column: impl Into<String>,
        buckets: u32,
        scheme: BucketScheme,
    ) -> Result<Self, DataError> {
        if buckets == 0 {
            return Err(DataError::InvalidOptions {
                what: "hash buckets",
                reason: "0 buckets were asked for; ask for at least 1".into(),
            });
        }
        Ok(HashPartitioner {
            column: column.into(),
            buckets,
            scheme,
        })
    }

    /// The key column.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// Number of buckets.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// Modulo or jump.
    pub fn scheme(&self) -> BucketScheme {
        self.scheme
    }

    /// The bucket of a key hash.
    pub fn bucket_of_hash(&self, hash: u64) -> u32 {
        match self.scheme {
            BucketScheme::Modulo => (hash % u64::from(self.buckets)) as u32,
            BucketScheme::Jump => jump_consistent_hash(hash, self.buckets),
        }
    }

    /// The bucket of an integer key.
    pub fn bucket_of_i64(&self, key: i64) -> u32 {
        self.bucket_of_hash(hash_i64(key))
    }

    /// The bucket of a string key.
    pub fn bucket_of_str(&self, key: &str) -> u32 {
        self.bucket_of_hash(hash_bytes(key.as_bytes()))
    }

    /// The bucket of every row, in row order.
    pub fn assign(&self, batch: &RecordBatch) -> Result<Vec<u32>, DataError> {
        let array = column(batch, &self.column)?;
        if !is_hashable(array.data_type()) {
            return Err(wrong_type(&self.column, array, HASH_KEY_TYPES));
        }
        // Logical nulls: a dictionary key that points at a null value is a null too.
        if let Some(nulls) = array.logical_nulls().filter(|n| n.null_count() > 0) {
            let row = (0..nulls.len()).find(|&r| nulls.is_null(r)).unwrap_or(0);
            return Err(DataError::NullValue {
                column: self.column.clone(),
                row,
            });
        }
        let mut out = Vec::with_capacity(array.len());
        let mut push = |h: u64| out.push(self.bucket_of_hash(h));
        for_each_hash(&self.column, array, &mut push)?;
        Ok(out)
    }

    /// Rows per bucket (all `buckets` entries, empty ones included).
    pub fn counts(&self, batch: &RecordBatch) -> Result<Vec<u64>, DataError> {
        let mut counts = vec![0u64; self.buckets as usize];
        for b in self.assign(batch)? {
            counts[b as usize] += 1;
        }
        Ok(counts)
    }

    /// Splits `batch` into `(bucket, rows)` for every non-empty bucket, ascending.
    pub fn split(&self, batch: &RecordBatch) -> Result<Vec<(usize, RecordBatch)>, DataError> {
        let assignment = self.assign(batch)?;
        split_by_assignment(batch, &assignment, self.buckets as usize)
    }
}

/// The key types [`HashPartitioner`] hashes.
const HASH_KEY_TYPES: &str = "an integer (Int8-Int64, UInt8-UInt64), a string (Utf8, LargeUtf8, Utf8View) or a Dictionary with such values";

fn is_plain_hashable(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    )
}

fn is_hashable(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(_, values) => is_plain_hashable(values),
        other => is_plain_hashable(other),
    }
}

/// Calls `f` with the stable hash of every value of a hashable column, in row order. A dictionary
/// hashes each of its values once, then looks every row's value up by its key.
fn for_each_hash(name: &str, array: &ArrayRef, f: &mut impl FnMut(u64)) -> Result<(), DataError> {
    let Some(dict) = array.as_any_dictionary_opt() else {
        return for_each_plain_hash(name, array, f);
    };
    if dict.values().is_empty() {
        // Only all-null rows can point into no values, and nulls were rejected before.
        return match array.len() {
            0 => Ok(()),
            n => Err(DataError::Internal(format!(
                "column {name:?} has {n} rows of a dictionary without values after the null check"
            ))),
        };
    }
    let mut hashes = Vec::with_capacity(dict.values().len());
    for_each_plain_hash(name, dict.values(), &mut |h| hashes.push(h))?;
    // Keys are in bounds of the values, null ones too (they were rejected before, anyway).
    for key in dict.normalized_keys() {
        f(hashes[key]);
    }
    Ok(())
}

/// [`for_each_hash`] of a column that is not a dictionary (null slots get an arbitrary hash).
fn for_each_plain_hash(
    name: &str,
    array: &ArrayRef,
    f: &mut impl FnMut(u64),
) -> Result<(), DataError> {
    macro_rules! ints {
        ($ty:ty) => {{
            let a = array.as_any().downcast_ref::<$ty>().ok_or_else(|| {
                DataError::Internal(format!("column {name:?} is not the array its type says"))
            })?;
            for &v in a.values() {
                f(hash_i64(v as i64));
            }
        }};
    }
    match array.data_type() {
        DataType::Int8 => ints!(Int8Array),
        DataType::Int16 => ints!(Int16Array),
        DataType::Int32 => ints!(Int32Array),
        DataType::Int64 => ints!(Int64Array),
        DataType::UInt8 => ints!(UInt8Array),
        DataType::UInt16 => ints!(UInt16Array),
        DataType::UInt32 => ints!(UInt32Array),
        DataType::UInt64 => ints!(UInt64Array),
        DataType::Utf8 => strings::<i32>(name, array, f)?,
        DataType::LargeUtf8 => strings::<i64>(name, array, f)?,
        DataType::Utf8View => {
            let a = array
                .as_any()
                .downcast_ref::<StringViewArray>()
                .ok_or_else(|| wrong_type(name, array, HASH_KEY_TYPES))?;
            for i in 0..a.len() {
                f(hash_bytes(a.value(i).as_bytes()));
            }
        }
        _ => return Err(wrong_type(name, array, HASH_KEY_TYPES)),
    }
    Ok(())
}

fn strings<O: OffsetSizeTrait>(
    name: &str,
    array: &ArrayRef,
    f: &mut impl FnMut(u64),
) -> Result<(), DataError> {
    let a = array
        .as_any()
        .downcast_ref::<GenericStringArray<O>>()
        .ok_or_else(|| wrong_type(name, array, HASH_KEY_TYPES))?;
    // Hash straight from the values buffer: no per-row `&str` checks or allocation.
    let offsets = a.value_offsets();
    let bytes = a.value_data();
    for w in offsets.windows(2) {
        f(hash_bytes(&bytes[w[0].as_usize()..w[1].as_usize()]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_matches_the_reference_vectors() {
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        // 39 bytes: exercises the 32-byte stripe loop, the 4-byte and the 1-byte tails.
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition", 0),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    #[test]
    fn jump_hash_stays_in_range_and_one_bucket_is_zero() {
        for key in [0u64, 1, u64::MAX, 0xDEAD_BEEF] {
            assert_eq!(jump_consistent_hash(key, 1), 0);
            assert!(jump_consistent_hash(key, 7) < 7);
        }
        assert_eq!(jump_consistent_hash(42, 0), 0);
    }

    #[test]
    fn balance_is_max_over_mean() {
        assert_eq!(balance(&[10, 10, 10, 10]), 1.0);
        assert_eq!(balance(&[20, 0, 10, 10]), 2.0);
        assert_eq!(balance(&[]), 1.0);
        assert_eq!(balance(&[0, 0]), 1.0);
    }

    #[test]
    fn zero_buckets_is_an_error() {
        assert!(HashPartitioner::new("id", 0, BucketScheme::Jump).is_err());
    }
}
