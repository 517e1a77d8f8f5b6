//! The three tables every stage carries — a post's pin, its geolocation and its user — and the
//! names each stage knows them by (source table, wire key, topic/stream/output suffix).

use std::fmt;

/// One of the three tables of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Pin,
    Geo,
    User,
}

impl Table {
    /// All three, in the order they are created, sent and cleaned.
    pub const ALL: [Table; 3] = [Table::Pin, Table::Geo, Table::User];

    /// `pin`, `geo`, `user`: the suffix of topic, stream, Delta table and output names.
    pub fn name(self) -> &'static str {
        match self {
            Table::Pin => "pin",
            Table::Geo => "geo",
            Table::User => "user",
        }
    }

    /// The field that identifies a record on the wire: `index` for pin, `ind` for geo and user.
    pub fn key(self) -> &'static str {
        match self {
            Table::Pin => "index",
            Table::Geo | Table::User => "ind",
        }
    }

    /// The table's name in the source database (SPEC §1).
    pub fn source_table(self) -> &'static str {
        match self {
            Table::Pin => "pinterest_data",
            Table::Geo => "geolocation_data",
            Table::User => "user_data",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
