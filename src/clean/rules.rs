//! SPEC §6's cleaning rules as Arrow kernels: a decoded batch ([`raw_schema`](super::raw_schema))
//! → a cleaned batch ([`cleaned_schema`](super::cleaned_schema)), row for row.
//!
//! Fed by [`decode`](super::decode); feeds the batch job (which then keeps one row per `ind`)
//! and the stream job (which appends every row to Delta). The rules, exactly:
//! - in every text column an empty string becomes NULL; nothing is trimmed or rewritten;
//! - each placeholder of SPEC §1 becomes NULL in its own column only, matched exactly
//!   ([`PLACEHOLDERS`], defined with the other names of the data in [`crate::contract`]);
//! - `follower_count` is parsed by [`parse_follower_count`];
//! - `save_location` loses a leading `Local save in ` (a value that is then empty is NULL);
//! - pin's `index` is renamed `ind` and `downloaded` dropped; geo's latitude and longitude become
//!   `coordinates` = [latitude, longitude] (a NULL coordinate stays a NULL element of the list,
//!   as Spark's `array(latitude, longitude)` has it); user's `user_name` = first_name + " " +
//!   last_name (NULL if either is NULL).
//!
//! Text columns keep their buffers: only the validity bitmap changes, so cleaning costs one pass.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, Int64Array, ListArray, StringArray, StringBuilder,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Error, TIMESTAMP, Table, cleaned_schema};
use crate::contract::{PLACEHOLDERS, SAVE_PREFIX};

/// Parses a follower count: ASCII whitespace trimmed, then digits with an optional fraction
/// (`437`, `1.5`) and an optional `k` (×1,000) or `M` (×1,000,000) suffix, case-sensitive.
/// A fractional result is rounded to the nearest integer, halves away from zero, computed on
/// the decimal digits themselves (no floating point): `1.5` → 2, `2.5k` → 2500, `1.0005k` → 1001.
/// Anything else — a sign, `K`, `1,000`, `.5`, `5.`, an empty string, a value past `i64` — is
/// `None` (NULL).
pub fn parse_follower_count(text: &str) -> Option<i64> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let (number, shift) = match text.as_bytes().last()? {
        b'k' => (&text[..text.len() - 1], 3),
        b'M' => (&text[..text.len() - 1], 6),
        _ => (text, 0),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
        Some(_) => return None,
        None => (number, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    // The digits of whole.fraction with the decimal point moved `shift` places right.
    let digit = |i: usize| -> u64 {
        let b = if i < whole.len() {
            whole.as_bytes()[i]
        } else {
            fraction.as_bytes().get(i - whole.len()).copied().unwrap_or(b'0')
        };
        u64::from(b - b'0')
    };
    let point = whole.len() + shift;
    let mut value: u64 = 0;
    for i in 0..point {
        value = value.checked_mul(10)?.checked_add(digit(i))?;
    }
    if point < whole.len() + fraction.len() && digit(point) >= 5 {
        value = value.checked_add(1)?;
    }
    i64::try_from(value).ok()
}

fn column<'a, T: Array + 'static>(
    table: Table,
    batch: &'a RecordBatch,
    name: &'static str,
    expected: DataType,
) -> Result<&'a T, Error> {
    batch
        .column_by_name(name)
        .filter(|c| *c.data_type() == expected)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or(Error::Column { table: table.name(), column: name, expected })
}

fn text<'a>(table: Table, batch: &'a RecordBatch, name: &'static str) -> Result<&'a StringArray, Error> {
    column::<StringArray>(table, batch, name, DataType::Utf8)
}

fn any<'a>(
    table: Table,
    batch: &'a RecordBatch,
    name: &'static str,
    expected: DataType,
) -> Result<&'a ArrayRef, Error> {
    batch.column_by_name(name).filter(|c| *c.data_type() == expected).ok_or(Error::Column {
        table: table.name(),
        column: name,
        expected,
    })
}

/// `array` with the empty string and `placeholders` made NULL; the value buffers are shared.
fn nullify(array: &StringArray, placeholders: &[&str]) -> Result<StringArray, Error> {
    let keep = BooleanBuffer::collect_bool(array.len(), |i| {
        array.is_valid(i) && {
            let v = array.value(i);
            !v.is_empty() && !placeholders.contains(&v)
        }
    });
    let (offsets, values, _) = array.clone().into_parts();
    Ok(StringArray::try_new(offsets, values, Some(NullBuffer::new(keep)))?)
}

fn placeholders(name: &str) -> &'static [&'static str] {
    PLACEHOLDERS.iter().find(|(column, _)| *column == name).map_or(&[], |(_, values)| values)
}

/// A pin text column cleaned by the empty-string and placeholder rules.
fn pin_text(batch: &RecordBatch, name: &'static str) -> Result<ArrayRef, Error> {
    Ok(Arc::new(nullify(text(Table::Pin, batch, name)?, placeholders(name))?))
}

fn clean_pin(batch: &RecordBatch) -> Result<Vec<ArrayRef>, Error> {
    let table = Table::Pin;
    let ind = any(table, batch, "index", DataType::Int64)?.clone();
    let followers = nullify(text(table, batch, "follower_count")?, placeholders("follower_count"))?;
    let followers: Int64Array = followers.iter().map(|v| v.and_then(parse_follower_count)).collect();
    let saves: StringArray = text(table, batch, "save_location")?
        .iter()
        .map(|v| v.map(|s| s.strip_prefix(SAVE_PREFIX).unwrap_or(s)).filter(|s| !s.is_empty()))
        .collect();
    Ok(vec![
        ind,
        pin_text(batch, "unique_id")?,
        pin_text(batch, "title")?,
        pin_text(batch, "description")?,
        Arc::new(followers),
        pin_text(batch, "poster_name")?,
        pin_text(batch, "tag_list")?,
        pin_text(batch, "is_image_or_video")?,
        pin_text(batch, "image_src")?,
        Arc::new(saves),
        pin_text(batch, "category")?,
    ])
}

fn clean_geo(batch: &RecordBatch) -> Result<Vec<ArrayRef>, Error> {
    let table = Table::Geo;
    let latitude = column::<Float64Array>(table, batch, "latitude", DataType::Float64)?;
    let longitude = column::<Float64Array>(table, batch, "longitude", DataType::Float64)?;
    let mut values = Float64Builder::with_capacity(2 * batch.num_rows());
    for (lat, lon) in latitude.iter().zip(longitude.iter()) {
        values.append_option(lat);
        values.append_option(lon);
    }
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(2, batch.num_rows()));
    let element = Arc::new(Field::new("element", DataType::Float64, true));
    let coordinates = ListArray::try_new(element, offsets, Arc::new(values.finish()), None)?;
    Ok(vec![
        any(table, batch, "ind", DataType::Int64)?.clone(),
        Arc::new(nullify(text(table, batch, "country")?, &[])?),
        Arc::new(coordinates),
        any(table, batch, "timestamp", TIMESTAMP)?.clone(),
    ])
}

fn clean_user(batch: &RecordBatch) -> Result<Vec<ArrayRef>, Error> {
    let table = Table::User;
    let first = nullify(text(table, batch, "first_name")?, &[])?;
    let last = nullify(text(table, batch, "last_name")?, &[])?;
    let mut names = StringBuilder::with_capacity(batch.num_rows(), batch.num_rows() * 16);
    let mut name = String::new();
    for (first, last) in first.iter().zip(last.iter()) {
        match (first, last) {
            (Some(first), Some(last)) => {
                name.clear();
                name.push_str(first);
                name.push(' ');
                name.push_str(last);
                names.append_value(&name);
            }
            _ => names.append_null(),
        }
    }
    Ok(vec![
        any(table, batch, "ind", DataType::Int64)?.clone(),
        Arc::new(names.finish()),
        any(table, batch, "age", DataType::Int32)?.clone(),
        any(table, batch, "date_joined", TIMESTAMP)?.clone(),
    ])
}

/// How many `follower_count`s of a decoded pin batch become NULL for not being a number (an
/// empty string or the `User Info Error` placeholder is "no data", not counted): SPEC §6 has the
/// batch job count them.
pub fn unreadable_follower_counts(decoded: &RecordBatch) -> Result<usize, Error> {
    let followers = nullify(text(Table::Pin, decoded, "follower_count")?, placeholders("follower_count"))?;
    Ok(followers.iter().flatten().filter(|v| parse_follower_count(v).is_none()).count())
}

pub(super) fn clean(table: Table, batch: &RecordBatch) -> Result<RecordBatch, Error> {
    let columns = match table {
        Table::Pin => clean_pin(batch)?,
        Table::Geo => clean_geo(batch)?,
        Table::User => clean_user(batch)?,
    };
    Ok(RecordBatch::try_new(cleaned_schema(table), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follower_counts_round_halves_away_from_zero_in_decimal() {
        let cases = [
            ("0", Some(0)),
            ("437", Some(437)),
            ("12k", Some(12_000)),
            ("1.5k", Some(1_500)),
            ("3M", Some(3_000_000)),
            ("1.5", Some(2)),
            ("2.5", Some(3)),
            ("0.49", Some(0)),
            ("1.0005k", Some(1_001)),
            ("1.00049k", Some(1_000)),
            ("0.0000005M", Some(1)),
            ("007", Some(7)),
            (" 12k\t", Some(12_000)),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("9223372036854775807.5", None),
            ("12K", None),
            ("-5", None),
            ("+5", None),
            (".5", None),
            ("5.", None),
            ("1,000", None),
            ("k", None),
            ("", None),
            ("12 k", None),
            ("1.5.2", None),
            ("User Info Error", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_follower_count(text), expected, "{text:?}");
        }
    }
}
