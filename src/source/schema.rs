//! The table layout of the source database (SPEC §1) and the SQL that reads and writes it.
//!
//! The SQL text is written once; what differs between SQLite and MySQL / MariaDB (column types,
//! table options, and the expression that reads a datetime back as `YYYY-MM-DD HH:MM:SS` text) is
//! a [`Dialect`] built by one macro from those differences. `index` is quoted with backticks
//! everywhere because it is a reserved word in MySQL (SQLite accepts backticks too). Used by
//! [`super::Source`] only; nothing here touches a connection.

pub use crate::contract::Table;

/// `SELECT COUNT(*)` of one source table.
pub(super) fn count_sql(table: Table) -> &'static str {
    match table {
        Table::Pin => "SELECT COUNT(*) FROM pinterest_data",
        Table::Geo => "SELECT COUNT(*) FROM geolocation_data",
        Table::User => "SELECT COUNT(*) FROM user_data",
    }
}

/// The row keys of one source table, in key order.
pub(super) fn keys_sql(table: Table) -> &'static str {
    match table {
        Table::Pin => "SELECT `index` FROM pinterest_data ORDER BY `index`",
        Table::Geo => "SELECT ind FROM geolocation_data ORDER BY ind",
        Table::User => "SELECT ind FROM user_data ORDER BY ind",
    }
}

/// What differs between the two databases: column types, table options, and how a datetime
/// column is read back as `YYYY-MM-DD HH:MM:SS` text. Everything else is shared SQL.
pub(super) struct Dialect {
    pub(super) create: [(Table, &'static str); 3],
    pub(super) select_geo: &'static str,
    pub(super) select_user: &'static str,
}

/// Builds a [`Dialect`] from the parts that differ, so the table layout is written down once.
#[rustfmt::skip]
macro_rules! dialect {
    (int: $int:literal, real: $real:literal, datetime: $datetime:literal, options: $options:literal,
     read_datetime: ($before:literal, $after:literal)) => {
        Dialect {
            create: [
                (Table::Pin, concat!(
                    "CREATE TABLE IF NOT EXISTS pinterest_data (`index` ", $int, " NOT NULL PRIMARY KEY, ",
                    "unique_id TEXT, title TEXT, description TEXT, poster_name TEXT, follower_count TEXT, ",
                    "tag_list TEXT, is_image_or_video TEXT, image_src TEXT, downloaded ", $int, ", ",
                    "save_location TEXT, category TEXT)", $options)),
                (Table::Geo, concat!(
                    "CREATE TABLE IF NOT EXISTS geolocation_data (ind ", $int, " NOT NULL PRIMARY KEY, ",
                    "`timestamp` ", $datetime, ", latitude ", $real, ", longitude ", $real, ", country TEXT)",
                    $options)),
                (Table::User, concat!(
                    "CREATE TABLE IF NOT EXISTS user_data (ind ", $int, " NOT NULL PRIMARY KEY, ",
                    "first_name TEXT, last_name TEXT, age ", $int, ", date_joined ", $datetime, ")", $options)),
            ],
            select_geo: concat!(
                "SELECT ind, ", $before, "`timestamp`", $after, " AS `timestamp`, latitude, longitude, country ",
                "FROM geolocation_data WHERE ind = ?"),
            select_user: concat!(
                "SELECT ind, first_name, last_name, age, ", $before, "date_joined", $after, " AS date_joined ",
                "FROM user_data WHERE ind = ?"),
        }
    };
}

/// SQLite: datetimes as TEXT, floats as REAL; a datetime is read back as the text it holds.
pub(super) const SQLITE: Dialect = dialect!(int: "INTEGER", real: "REAL", datetime: "TEXT", options: "",
    read_datetime: ("CAST(", " AS TEXT)"));
/// MySQL / MariaDB: DOUBLE keeps the generated coordinates exact; utf8mb4 so `…` and U+00A0 fit
/// whatever the server's default character set is.
pub(super) const MYSQL: Dialect = dialect!(int: "INT", real: "DOUBLE", datetime: "DATETIME",
    options: " DEFAULT CHARSET=utf8mb4", read_datetime: ("DATE_FORMAT(", ", '%Y-%m-%d %H:%i:%s')"));

pub(super) const SELECT_PIN: &str = "SELECT `index`, unique_id, title, description, poster_name, follower_count, \
    tag_list, is_image_or_video, image_src, downloaded, save_location, category FROM pinterest_data WHERE `index` = ?";
pub(super) const INSERT_PIN: &str = "INSERT INTO pinterest_data (`index`, unique_id, title, description, poster_name, \
    follower_count, tag_list, is_image_or_video, image_src, downloaded, save_location, category) ";
pub(super) const INSERT_GEO: &str = "INSERT INTO geolocation_data (ind, `timestamp`, latitude, longitude, country) ";
pub(super) const INSERT_USER: &str = "INSERT INTO user_data (ind, first_name, last_name, age, date_joined) ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_differ_only_in_types_options_and_datetime_reads() {
        assert_eq!(
            SQLITE.create[1].1,
            "CREATE TABLE IF NOT EXISTS geolocation_data (ind INTEGER NOT NULL PRIMARY KEY, \
             `timestamp` TEXT, latitude REAL, longitude REAL, country TEXT)"
        );
        assert_eq!(
            MYSQL.create[2].1,
            "CREATE TABLE IF NOT EXISTS user_data (ind INT NOT NULL PRIMARY KEY, first_name TEXT, \
             last_name TEXT, age INT, date_joined DATETIME) DEFAULT CHARSET=utf8mb4"
        );
        assert!(MYSQL.select_geo.contains("DATE_FORMAT(`timestamp`, '%Y-%m-%d %H:%i:%s') AS `timestamp`"));
        assert!(SQLITE.select_user.contains("CAST(date_joined AS TEXT) AS date_joined"));
    }
}
