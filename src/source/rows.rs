//! Turning database rows into [`Pin`], [`Geo`] and [`User`], for both backends.
//!
//! The decoding is written once, generic over the row type; the only backend-specific part is
//! reading a float ([`FloatColumn`]), because a user's MySQL table may declare `latitude FLOAT`
//! (the original schema did) and a 4-byte float must be read as the value MySQL prints, not as
//! its binary widening (`-45.8508`, not `-45.85079956054688`). Called by [`super::Source`] only.

use sqlx::mysql::MySqlRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{ColumnIndex, Decode, Row, Type, TypeInfo, ValueRef};

use super::{Geo, Pin, User};

/// Reads a floating-point column of one backend as `f64`.
pub(super) trait FloatColumn: Row {
    fn float(&self, column: &str) -> Result<f64, sqlx::Error>;
}

impl FloatColumn for SqliteRow {
    fn float(&self, column: &str) -> Result<f64, sqlx::Error> {
        self.try_get(column)
    }
}

impl FloatColumn for MySqlRow {
    fn float(&self, column: &str) -> Result<f64, sqlx::Error> {
        let is_float = self.try_get_raw(column)?.type_info().name() == "FLOAT";
        if is_float {
            let value: f32 = self.try_get(column)?;
            Ok(widen(value))
        } else {
            self.try_get(column)
        }
    }
}

/// The `f64` nearest to the shortest decimal that reads back as `value`: what a client printing
/// MySQL's FLOAT and parsing the text gets.
fn widen(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

pub(super) fn pin<R>(row: &R) -> Result<Pin, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    i64: Type<R::Database> + for<'r> Decode<'r, R::Database>,
    String: Type<R::Database> + for<'r> Decode<'r, R::Database>,
{
    Ok(Pin {
        index: row.try_get("index")?,
        unique_id: row.try_get("unique_id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        poster_name: row.try_get("poster_name")?,
        follower_count: row.try_get("follower_count")?,
        tag_list: row.try_get("tag_list")?,
        is_image_or_video: row.try_get("is_image_or_video")?,
        image_src: row.try_get("image_src")?,
        downloaded: row.try_get("downloaded")?,
        save_location: row.try_get("save_location")?,
        category: row.try_get("category")?,
    })
}

pub(super) fn geo<R>(row: &R) -> Result<Geo, sqlx::Error>
where
    R: FloatColumn,
    for<'a> &'a str: ColumnIndex<R>,
    i64: Type<R::Database> + for<'r> Decode<'r, R::Database>,
    String: Type<R::Database> + for<'r> Decode<'r, R::Database>,
{
    Ok(Geo {
        ind: row.try_get("ind")?,
        timestamp: row.try_get("timestamp")?,
        latitude: row.float("latitude")?,
        longitude: row.float("longitude")?,
        country: row.try_get("country")?,
    })
}

pub(super) fn user<R>(row: &R) -> Result<User, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    i64: Type<R::Database> + for<'r> Decode<'r, R::Database>,
    String: Type<R::Database> + for<'r> Decode<'r, R::Database>,
{
    Ok(User {
        ind: row.try_get("ind")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        age: row.try_get("age")?,
        date_joined: row.try_get("date_joined")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_a_float_keeps_its_printed_value() {
        assert_eq!(widen(-45.8508), -45.8508);
        assert_eq!(widen(153.8231), 153.8231);
        assert_eq!(widen(0.0), 0.0);
    }
}
