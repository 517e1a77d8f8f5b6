//! The data contract every stage shares: the three tables of a post, the fields their records
//! carry on the wire, the placeholder strings of the real data set, and the names built from the
//! pipeline id — topics, streams, Delta tables, `txn` app ids — so that no stage spells a name or
//! a placeholder of its own.
//!
//! The source writes these fields (SPEC §1) and the generator the placeholders; the emulator sends
//! them; the cleaning reads them by name ([`Table::fields`]) and recognises the placeholders; the
//! gateway, the sink, the batch and stream jobs, `lag` and `observe` find their logs and tables by
//! the names here (SPEC §4, §5, §8).

use std::fmt;

/// One of the three tables of a post (`pin`, `geo`, `user` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
        self.fields()[0].name
    }

    /// The table's name in the source database (SPEC §1).
    pub(crate) fn source_table(self) -> &'static str {
        match self {
            Table::Pin => "pinterest_data",
            Table::Geo => "geolocation_data",
            Table::User => "user_data",
        }
    }

    /// The fields of a record of this table, in source order: what the source's columns are
    /// called, what the emulator sends and what the cleaning reads (its decoded, not yet cleaned
    /// columns are exactly these).
    pub fn fields(self) -> &'static [WireField] {
        match self {
            Table::Pin => PIN_FIELDS,
            Table::Geo => GEO_FIELDS,
            Table::User => USER_FIELDS,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a field holds on the wire (a JSON value) and, once decoded, in Arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// `index`/`ind`: a JSON integer, required (a record without one is rejected).
    Key,
    /// A JSON string, or null.
    Text,
    /// A JSON integer that fits 64 bits, or null.
    Int64,
    /// A JSON integer that fits 32 bits (`age`), or null.
    Int32,
    /// A JSON number, or null.
    Float64,
    /// A string `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS`, required.
    DateTime,
}

/// One field of a table's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireField {
    pub name: &'static str,
    pub wire: WireType,
}

const fn field(name: &'static str, wire: WireType) -> WireField {
    WireField { name, wire }
}

const PIN_FIELDS: &[WireField] = &[
    field("index", WireType::Key),
    field("unique_id", WireType::Text),
    field("title", WireType::Text),
    field("description", WireType::Text),
    field("poster_name", WireType::Text),
    // Text in the source (SPEC §1): a JSON number here is the wrong type, like anywhere else.
    field("follower_count", WireType::Text),
    field("tag_list", WireType::Text),
    field("is_image_or_video", WireType::Text),
    field("image_src", WireType::Text),
    field("downloaded", WireType::Int64),
    field("save_location", WireType::Text),
    field("category", WireType::Text),
];
const GEO_FIELDS: &[WireField] = &[
    field("ind", WireType::Key),
    field("timestamp", WireType::DateTime),
    field("latitude", WireType::Float64),
    field("longitude", WireType::Float64),
    field("country", WireType::Text),
];
const USER_FIELDS: &[WireField] = &[
    field("ind", WireType::Key),
    field("first_name", WireType::Text),
    field("last_name", WireType::Text),
    field("age", WireType::Int32),
    field("date_joined", WireType::DateTime),
];

// ---- The placeholders of the real data set: the exact strings the original scraper wrote when a
// field was missing. The generator writes them; the cleaning turns them into NULL (SPEC §6).

/// `title` when the scraper found none.
pub const NO_TITLE: &str = "No Title Data Available";
/// `description` of story pins.
pub const NO_DESCRIPTION_STORY: &str = "No description available Story format";
/// `description` when the scraper found none.
pub const NO_DESCRIPTION: &str = "No description available";
/// Another "no description" marker of the real data.
pub const UNTITLED: &str = "Untitled";
/// `poster_name` and `follower_count` when the poster's profile could not be read.
pub const USER_INFO_ERROR: &str = "User Info Error";
/// `tag_list` when the pin had no tags: the scraper comma-joined the characters of a sentence.
pub const NO_TAGS: &str = "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e";
/// `image_src` when the image URL could not be read (those rows have `downloaded = 0`).
pub const IMAGE_SRC_ERROR: &str = "Image src error.";

/// The placeholders that mean "no data", per pin column (matched exactly, in that column only).
pub(crate) const PLACEHOLDERS: &[(&str, &[&str])] = &[
    ("title", &[NO_TITLE]),
    ("description", &[NO_DESCRIPTION_STORY, NO_DESCRIPTION, UNTITLED]),
    ("poster_name", &[USER_INFO_ERROR]),
    ("follower_count", &[USER_INFO_ERROR]),
    ("tag_list", &[NO_TAGS]),
    ("image_src", &[IMAGE_SRC_ERROR]),
];

/// What every `save_location` starts with; the cleaned column keeps the path after it.
pub(crate) const SAVE_PREFIX: &str = "Local save in ";

// ---- Names built from the pipeline id `<id>` (SPEC §4, §8).

/// The batch topic of `table`: `<id>.pin`.
pub fn topic(id: &str, table: Table) -> String {
    format!("{id}.{table}")
}

/// The stream of `table`: `streaming-<id>-pin`.
pub fn stream(id: &str, table: Table) -> String {
    format!("streaming-{id}-{table}")
}

/// The stream job's Delta table of `table`: `<id>_pin_table`.
pub(crate) fn delta_table(id: &str, table: Table) -> String {
    format!("{id}_{table}_table")
}

/// The stream job's rejects table: `<id>_rejects_table`.
pub fn rejects_table(id: &str) -> String {
    format!("{id}_rejects_table")
}

/// The batch job's cleaned Delta table of `table`: `<id>_batch_pin`.
pub fn batch_table(id: &str, table: Table) -> String {
    format!("{id}_batch_{table}")
}

/// The batch job's rejects table: `<id>_batch_rejects`.
pub fn batch_rejects_table(id: &str) -> String {
    format!("{id}_batch_rejects")
}

/// The `txn` app id under which each batch table stores the last batch run it holds.
pub(crate) const BATCH_APP_ID: &str = "pinpipe-batch";

/// The folder of the stream job's and the batch job's Delta tables under the lake.
pub const DELTA_DIR: &str = "delta";

/// The `txn` app id under which a data table stores how far it holds `stream`'s `partition`
/// (kafka-delta-ingest's one-app-id-per-partition scheme).
pub(crate) fn data_app_id(stream: &str, partition: u32) -> String {
    format!("pinpipe-{stream}-{partition}")
}

/// The `txn` app id under which the rejects table stores how far it holds the rejects of
/// `stream`'s `partition`.
pub(crate) fn rejects_app_id(stream: &str, partition: u32) -> String {
    format!("pinpipe-rejects-{stream}-{partition}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec() {
        assert_eq!(topic("pinterest", Table::Pin), "pinterest.pin");
        assert_eq!(stream("pinterest", Table::Geo), "streaming-pinterest-geo");
        assert_eq!(delta_table("p", Table::User), "p_user_table");
        assert_eq!(rejects_table("p"), "p_rejects_table");
        assert_eq!(batch_table("p", Table::Geo), "p_batch_geo");
        assert_eq!(batch_rejects_table("p"), "p_batch_rejects");
        assert_eq!(data_app_id("streaming-p-pin", 3), "pinpipe-streaming-p-pin-3");
        assert_eq!(rejects_app_id("streaming-p-geo", 0), "pinpipe-rejects-streaming-p-geo-0");
    }

    #[test]
    fn keys_come_first_and_placeholders_name_pin_fields() {
        for table in Table::ALL {
            assert_eq!(table.fields()[0].wire, WireType::Key);
        }
        assert_eq!((Table::Pin.key(), Table::Geo.key(), Table::User.key()), ("index", "ind", "ind"));
        for (column, _) in PLACEHOLDERS {
            assert!(Table::Pin.fields().iter().any(|f| f.name == *column), "{column}");
        }
    }
}
