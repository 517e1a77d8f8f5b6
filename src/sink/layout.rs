//! The Confluent S3 sink's object layout, shared by the sink (which writes it) and the batch job
//! (which reads it): `topics/<topic>/partition=<p>/<topic>+<p>+<start offset, 10 digits>.json`.
//!
//! A file's name is fixed by its first offset, so rewriting a file after a crash produces the
//! same name, and the files of a partition sort by name in offset order.

/// The folder (relative to the lake root) holding every file of one topic partition.
pub fn partition_dir(topic: &str, partition: u32) -> String {
    format!("topics/{topic}/partition={partition}")
}

/// The folder (relative to the lake root) holding every partition of one topic.
pub(crate) fn topic_dir(topic: &str) -> String {
    format!("topics/{topic}")
}

/// The key (relative to the lake root) of the file whose first record is at `start`.
pub fn file_key(topic: &str, partition: u32, start: u64) -> String {
    format!("{}/{topic}+{partition}+{start:010}.json", partition_dir(topic, partition))
}

/// A sink file identified from its key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileName {
    pub topic: String,
    pub partition: u32,
    pub start: u64,
}

/// Parses the last segment of a key (`<topic>+<p>+<offset>.json`); `None` for any other file.
/// Topic names may contain `+`? Kafka forbids it, so splitting from the right is unambiguous.
pub fn parse_file_name(name: &str) -> Option<FileName> {
    let stem = name.strip_suffix(".json")?;
    let (rest, start) = stem.rsplit_once('+')?;
    let (topic, partition) = rest.rsplit_once('+')?;
    if topic.is_empty() || start.len() < 10 || !start.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(FileName { topic: topic.to_string(), partition: partition.parse().ok()?, start: start.parse().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_confluent_layout_and_parse_back() {
        let key = file_key("pinterest.pin", 0, 1234);
        assert_eq!(key, "topics/pinterest.pin/partition=0/pinterest.pin+0+0000001234.json");
        let name = key.rsplit('/').next().unwrap();
        assert_eq!(parse_file_name(name), Some(FileName { topic: "pinterest.pin".into(), partition: 0, start: 1234 }));
        assert_eq!(parse_file_name("pinterest.pin+0+0000001234.json.tmp"), None);
        assert_eq!(parse_file_name("notes.json"), None);
        assert_eq!(parse_file_name("t+x+0000000001.json"), None);
    }

    #[test]
    fn names_sort_in_offset_order() {
        let mut keys = vec![file_key("t", 0, 1000), file_key("t", 0, 999), file_key("t", 0, 10_000_000_000)];
        keys.sort();
        assert_eq!(keys, [file_key("t", 0, 999), file_key("t", 0, 1000), file_key("t", 0, 10_000_000_000)]);
    }
}
