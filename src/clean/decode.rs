//! JSON records → typed Arrow columns of [`raw_schema`](super::raw_schema), with a reject path.
//!
//! Fed by the batch job (lines of sink files) and the stream job (record values); feeds
//! [`clean`](super::clean). Each record is parsed on its own with serde_json straight into a
//! fixed set of field slots (strings borrowed from the input when they hold no escapes, no JSON
//! tree is built), checked, then appended to Arrow builders — so one bad record never spoils its
//! neighbours, unlike Arrow's JSON reader, which fails a whole file.
//!
//! Reasons (stable strings, counted by the batch report), checked in this order:
//! `not JSON` (also for a record with bytes that are not UTF-8 anywhere), `not a JSON object`,
//! ``duplicate field `<field>` `` (a field of the table given twice, whatever its values),
//! ``missing `<key>` `` (absent or null), ``invalid `<key>` `` (not an integer), then field by
//! field in source order: ``wrong type for `<field>` ``, ``invalid `age` `` (an integer outside
//! 32 bits), ``missing `<datetime>` `` (absent, null or `""`), ``unparseable `<datetime>` ``.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::record_batch::RecordBatch;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{Decoded, Error, Reject, Table, raw_schema};
use crate::contract::{WireField, WireType as Kind};

/// The most fields a table has (pin's twelve).
const MAX_FIELDS: usize = 12;

/// One JSON value as far as the checks need it: scalars kept, arrays and objects only noted.
#[derive(Debug)]
enum Scalar<'a> {
    Null,
    Bool,
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Compound,
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
}

/// Maps a key of the record object to the position of the field it names (`None`: ignored),
/// trying the position after the previous key's first: records mostly list the fields in order.
struct KeySeed {
    fields: &'static [WireField],
    next: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        if self.fields.get(self.next).is_some_and(|f| f.name == v) {
            return Ok(Some(self.next));
        }
        Ok(self.fields.iter().position(|f| f.name == v))
    }
}

type Slots<'a> = [Option<Scalar<'a>>; MAX_FIELDS];

/// Reads one JSON object into `slots`, one per field of the table, all `None` to begin with, and
/// returns the position of the first field given twice, if any (the whole object is still read,
/// so a record that is not JSON further on is that first). Filled in place: the slots are reused
/// from record to record.
struct RecordSeed<'s, 'de> {
    fields: &'static [WireField],
    slots: &'s mut Slots<'de>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, 'de> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, 'de> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut next = 0;
        let mut seen = 0u32; // bit i: field i was given
        let mut duplicate = None;
        while let Some(position) = map.next_key_seed(KeySeed { fields: self.fields, next })? {
            match position {
                Some(i) => {
                    let value = map.next_value::<Scalar<'de>>()?;
                    if seen & (1 << i) != 0 {
                        duplicate.get_or_insert(i);
                    } else {
                        seen |= 1 << i;
                        self.slots[i] = Some(value);
                    }
                    next = i + 1;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(duplicate)
    }
}

/// A checked field value, ready to append.
enum Value<'a> {
    Null,
    I64(i64),
    I32(i32),
    F64(f64),
    Str(Cow<'a, str>),
    Micros(i64),
}

/// Checks one field against its kind; `Err` is the reject reason.
fn check<'a>(name: &str, kind: Kind, scalar: Option<Scalar<'a>>) -> Result<Value<'a>, String> {
    let wrong = || format!("wrong type for `{name}`");
    let scalar = scalar.unwrap_or(Scalar::Null);
    match kind {
        Kind::Key => match scalar {
            Scalar::Null => Err(format!("missing `{name}`")),
            Scalar::Int(v) => Ok(Value::I64(v)),
            Scalar::UInt(v) => i64::try_from(v).map(Value::I64).map_err(|_| format!("invalid `{name}`")),
            _ => Err(format!("invalid `{name}`")),
        },
        Kind::Text => match scalar {
            Scalar::Null => Ok(Value::Null),
            Scalar::Str(s) => Ok(Value::Str(s)),
            _ => Err(wrong()),
        },
        Kind::Int64 => match scalar {
            Scalar::Null => Ok(Value::Null),
            Scalar::Int(v) => Ok(Value::I64(v)),
            Scalar::UInt(v) => i64::try_from(v).map(Value::I64).map_err(|_| wrong()),
            _ => Err(wrong()),
        },
        Kind::Int32 => match scalar {
            Scalar::Null => Ok(Value::Null),
            Scalar::Int(v) => i32::try_from(v).map(Value::I32).map_err(|_| format!("invalid `{name}`")),
            Scalar::UInt(v) => i32::try_from(v).map(Value::I32).map_err(|_| format!("invalid `{name}`")),
            _ => Err(wrong()),
        },
        Kind::Float64 => match scalar {
            Scalar::Null => Ok(Value::Null),
            Scalar::Int(v) => Ok(Value::F64(v as f64)),
            Scalar::UInt(v) => Ok(Value::F64(v as f64)),
            Scalar::Float(v) => Ok(Value::F64(v)),
            _ => Err(wrong()),
        },
        Kind::DateTime => match scalar {
            Scalar::Null => Err(format!("missing `{name}`")),
            Scalar::Str(s) if s.is_empty() => Err(format!("missing `{name}`")),
            Scalar::Str(s) => parse_datetime(&s).map(Value::Micros).ok_or_else(|| format!("unparseable `{name}`")),
            _ => Err(wrong()),
        },
    }
}

/// Parses `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS`, each optionally followed by a
/// fraction of 1–6 digits, into microseconds since the epoch (the wall-clock time taken as UTC).
/// Anything else (a time zone, a missing part, a day that does not exist) is `None`.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b' ' && b[10] != b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let year = digits(0, 4)?;
    let (month, day) = (digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let mut micros = 0u32;
    if b.len() > 19 {
        let fraction = &b[20..];
        if b[19] != b'.' || fraction.is_empty() || fraction.len() > 6 {
            return None;
        }
        micros = digits(20, b.len())? * 10u32.pow(6 - fraction.len() as u32);
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    Some(date.and_time(time).and_utc().timestamp_micros())
}

/// One Arrow builder per raw column.
enum Column {
    I64(Int64Builder),
    I32(Int32Builder),
    F64(Float64Builder),
    Str(StringBuilder),
    Micros(TimestampMicrosecondBuilder),
}

impl Column {
    fn new(kind: Kind, rows: usize) -> Column {
        match kind {
            Kind::Key | Kind::Int64 => Column::I64(Int64Builder::with_capacity(rows)),
            Kind::Int32 => Column::I32(Int32Builder::with_capacity(rows)),
            Kind::Float64 => Column::F64(Float64Builder::with_capacity(rows)),
            Kind::Text => Column::Str(StringBuilder::with_capacity(rows, rows * 16)),
            Kind::DateTime => Column::Micros(TimestampMicrosecondBuilder::with_capacity(rows)),
        }
    }

    fn append(&mut self, value: Value<'_>) {
        match (self, value) {
            (Column::I64(b), Value::I64(v)) => b.append_value(v),
            (Column::I32(b), Value::I32(v)) => b.append_value(v),
            (Column::F64(b), Value::F64(v)) => b.append_value(v),
            (Column::Str(b), Value::Str(v)) => b.append_value(v),
            (Column::Micros(b), Value::Micros(v)) => b.append_value(v),
            // `check` only yields the value type of its kind, so this is a NULL.
            (column, _) => column.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::I64(b) => b.append_null(),
            Column::I32(b) => b.append_null(),
            Column::F64(b) => b.append_null(),
            Column::Str(b) => b.append_null(),
            Column::Micros(b) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::I64(mut b) => Arc::new(b.finish()),
            Column::I32(mut b) => Arc::new(b.finish()),
            Column::F64(mut b) => Arc::new(b.finish()),
            Column::Str(mut b) => Arc::new(b.finish()),
            Column::Micros(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Parses `record` into `slots` (all `None` before); `Err` is why it is not an object of the
/// table's fields at all (not JSON, not an object, a field given twice).
fn parse<'a>(table: Table, record: &'a [u8], slots: &mut Slots<'a>) -> Result<(), String> {
    // JSON is UTF-8 (RFC 8259): checked once for the whole record, not string by string.
    let text = std::str::from_utf8(record).map_err(|_| "not JSON".to_string())?;
    let mut de = serde_json::Deserializer::from_str(text);
    let spec = table.fields();
    let duplicate = RecordSeed { fields: spec, slots }.deserialize(&mut de).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => "not a JSON object".to_string(),
        _ => "not JSON".to_string(),
    })?;
    de.end().map_err(|_| "not JSON".to_string())?;
    match duplicate {
        Some(i) => Err(format!("duplicate field `{}`", spec[i].name)),
        None => Ok(()),
    }
}

pub(super) fn decode(table: Table, records: &[&[u8]]) -> Result<Decoded, Error> {
    let spec = table.fields();
    let mut columns: Vec<Column> = spec.iter().map(|f| Column::new(f.wire, records.len())).collect();
    let mut rows = Vec::with_capacity(records.len());
    let mut rejects = Vec::new();
    let mut reject = |index: usize, record: &[u8], reason: String| {
        rejects.push(Reject { index, raw: String::from_utf8_lossy(record).into_owned(), reason });
    };
    let mut slots: Slots<'_> = Default::default();
    for (index, record) in records.iter().enumerate() {
        slots.iter_mut().for_each(|slot| *slot = None);
        if let Err(reason) = parse(table, record, &mut slots) {
            reject(index, record, reason);
            continue;
        }
        let mut values: [Option<Value<'_>>; MAX_FIELDS] = Default::default();
        let mut failed = None;
        for (i, WireField { name, wire: kind }) in spec.iter().enumerate() {
            match check(name, *kind, slots[i].take()) {
                Ok(value) => values[i] = Some(value),
                Err(reason) => {
                    failed = Some(reason);
                    break;
                }
            }
        }
        if let Some(reason) = failed {
            reject(index, record, reason);
            continue;
        }
        for (column, value) in columns.iter_mut().zip(values.iter_mut()) {
            column.append(value.take().unwrap_or(Value::Null));
        }
        rows.push(index);
    }
    let arrays = columns.into_iter().map(Column::finish).collect();
    let batch = RecordBatch::try_new(raw_schema(table), arrays)?;
    Ok(Decoded { batch, rows, rejects })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_in_both_forms_and_nothing_else() {
        let space = parse_datetime("2020-02-29 23:59:58").unwrap();
        assert_eq!(parse_datetime("2020-02-29T23:59:58"), Some(space));
        assert_eq!(parse_datetime("2020-02-29T23:59:58.5"), Some(space + 500_000));
        assert_eq!(parse_datetime("1970-01-01 00:00:01.000001"), Some(1_000_001));
        for bad in [
            "2021-02-29 00:00:00",
            "2020-01-01",
            "2020-01-01 00:00",
            "2020-01-01x00:00:00",
            "2020-01-01 00:00:00Z",
            "2020-01-01 00:00:00.",
            "2020-01-01 00:00:00.1234567",
            "2020-1-01 00:00:00",
            "2020-01-01 24:00:00",
            "+020-01-01 00:00:00",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }
}
