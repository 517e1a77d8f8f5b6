//! Stream positions kept inside the Delta tables: the `txn` app ids the stream job writes, and
//! where each stream partition resumes from them.
//!
//! Fed by the stored `txn` versions that [`super::delta::DeltaSink::stored_version`] reads back at
//! start, by the native positions a data commit stores beside them (in its commit info, under
//! [`NATIVE_KEY`]: Kinesis sequence numbers, which fit no `txn` version), and by the identity of
//! the log each stream's positions belong to (under [`IDENTITY_KEY`]); feeds the micro-batch
//! loop in [`super`]: [`super::resume`] (where each partition resumes, where the log can go on
//! without re-reading), [`super::gather`] (what to read next) and [`super::round`] (which records
//! each table still needs). Nothing here touches storage: the rules are plain functions, tested
//! below.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) use crate::contract::{data_app_id, rejects_app_id};

/// Where one partition of one stream stands: what the data table and the rejects table hold,
/// and the next offset to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub partition: u32,
    /// Next offset to read from the log.
    pub next: u64,
    /// Last offset whose record the data table accounts for (`None`: nothing yet).
    pub data: Option<u64>,
    /// Last offset whose reject, if it was one, the rejects table accounts for.
    pub rejects: Option<u64>,
    /// The log's native position ([`crate::eventlog::Record::native`]) of the record at offset
    /// `data`, when the log has them and it is known.
    pub native: Option<String>,
}

impl Cursor {
    /// The cursor of a partition whose readable records start at `log_start`, given the `txn`
    /// versions stored in the data and rejects tables (a negative version is not one of ours and
    /// counts as none). Reading resumes after what the data table holds: the rejects table never
    /// lags it (see the crash argument in [`super`]), so it needs nothing from before that.
    pub fn resume(partition: u32, log_start: u64, data: Option<i64>, rejects: Option<i64>) -> Cursor {
        let data = data.and_then(|v| u64::try_from(v).ok());
        let rejects = rejects.and_then(|v| u64::try_from(v).ok());
        let next = data.map_or(0, |v| v + 1).max(log_start);
        Cursor { partition, next, data, rejects, native: None }
    }

    /// Where the data table's records stop, when that is before the log's readable start
    /// `log_start`: the records in between were removed by retention before the table got them.
    /// `None` for a partition the table holds nothing of (it starts at the log's start).
    pub fn lost_to(&self, log_start: u64) -> Option<u64> {
        let next = self.data? + 1;
        (next < log_start).then_some(next)
    }

    /// Takes the native position stored for this partition when it belongs to the data version
    /// the table holds (a position stored with another version is of no use) and returns it.
    pub fn adopt_native(&mut self, stored: Option<&NativePosition>) -> Option<&str> {
        let data = self.data?;
        let stored = stored.filter(|s| u64::try_from(s.version).ok() == Some(data))?;
        self.native = Some(stored.native.clone());
        self.native.as_deref()
    }

    /// True when the data table still lacks the record at `offset`.
    pub fn data_wants(&self, offset: u64) -> bool {
        self.data.is_none_or(|v| offset > v)
    }

    /// True when the rejects table still lacks the reject at `offset`.
    pub fn rejects_want(&self, offset: u64) -> bool {
        self.rejects.is_none_or(|v| offset > v)
    }
}

/// An offset as a `txn` version (offsets are far below `i64::MAX`; saturate rather than wrap).
pub(crate) fn version_of(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}

/// The commit-info key under which every commit stores, per `txn` app id it sets, the identity of
/// the log whose offsets that version counts ([`crate::eventlog::LogInfo::incarnation`]): a
/// stored version counts only while the stream's log is that one (a deleted and re-created
/// stream is another log, read from its start). Every commit sets the app ids of all the
/// partitions the job owns, so the newest commit names the log of each.
pub(crate) const IDENTITY_KEY: &str = "pinpipe.logIdentity";

/// The commit-info value naming the log identity of each app id (those known), or `None`.
pub(crate) fn identity_metadata<'a>(
    pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Option<serde_json::Value> {
    let map: BTreeMap<&str, &str> = pairs.into_iter().filter_map(|(app_id, id)| Some((app_id, id?))).collect();
    if map.is_empty() { None } else { serde_json::to_value(map).ok() }
}

/// The identities in a commit-info value written by [`identity_metadata`], by app id.
pub(crate) fn parse_identity(value: &serde_json::Value) -> BTreeMap<String, String> {
    let Some(map) = value.as_object() else { return BTreeMap::new() };
    map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()
}

/// Whether positions stored for a log whose identity was `stored` belong to the log `current`:
/// yes when they match, or when either is unknown (a table written before identities were
/// stored, a log without them).
pub(crate) fn same_log(stored: Option<&str>, current: Option<&str>) -> bool {
    match (stored, current) {
        (Some(s), Some(c)) => s == c,
        _ => true,
    }
}

/// The commit-info key under which a data commit stores the native positions of its stream's
/// partitions.
pub(crate) const NATIVE_KEY: &str = "pinpipe.nativePositions";

/// A partition's native position as a data commit stores it: the native position of the record
/// at offset `version`, the `txn` version of the partition's app id in the same commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NativePosition {
    pub version: i64,
    pub native: String,
}

/// The commit-info value for the native positions of `cursors` of `stream` (those known), or
/// `None` when no partition has one (logs without native positions).
pub(crate) fn native_metadata<'a>(
    stream: &str,
    cursors: impl IntoIterator<Item = &'a Cursor>,
) -> Option<serde_json::Value> {
    let map: BTreeMap<String, NativePosition> = cursors
        .into_iter()
        .filter_map(|c| {
            let (data, native) = (c.data?, c.native.clone()?);
            Some((data_app_id(stream, c.partition), NativePosition { version: version_of(data), native }))
        })
        .collect();
    if map.is_empty() { None } else { serde_json::to_value(map).ok() }
}

/// The native positions in a commit-info value written by [`native_metadata`], by app id;
/// entries of another shape are ignored.
pub(crate) fn parse_native(value: &serde_json::Value) -> BTreeMap<String, NativePosition> {
    let Some(map) = value.as_object() else { return BTreeMap::new() };
    map.iter()
        .filter_map(|(k, v)| Some((k.clone(), serde_json::from_value::<NativePosition>(v.clone()).ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_partition_starts_at_the_log_start_and_wants_everything() {
        let c = Cursor::resume(0, 0, None, None);
        assert_eq!(c.next, 0);
        assert!(c.data_wants(0) && c.rejects_want(0));
    }

    #[test]
    fn resumes_after_the_data_tables_version_and_skips_rejects_already_stored() {
        // Crash between the rejects commit (up to 19) and the data commit (still at 9).
        let c = Cursor::resume(2, 0, Some(9), Some(19));
        assert_eq!(c.next, 10);
        assert!(c.data_wants(10) && !c.data_wants(9));
        assert!(!c.rejects_want(19) && c.rejects_want(20));
    }

    #[test]
    fn never_reads_before_what_the_log_still_holds() {
        assert_eq!(Cursor::resume(0, 50, Some(9), None).next, 50);
        assert_eq!(Cursor::resume(0, 0, Some(-1), None).next, 0);
    }

    #[test]
    fn native_positions_round_trip_through_commit_info_and_must_match_the_version() {
        let mut a = Cursor::resume(0, 0, Some(9), None);
        a.native = Some("4960".into());
        let b = Cursor::resume(1, 0, None, None);
        let value = native_metadata("streaming-p-pin", [&a, &b]).unwrap();
        assert_eq!(value, serde_json::json!({"pinpipe-streaming-p-pin-0": {"version": 9, "native": "4960"}}));
        let parsed = parse_native(&value);
        let mut fresh = Cursor::resume(0, 0, Some(9), None);
        assert_eq!(fresh.adopt_native(parsed.get("pinpipe-streaming-p-pin-0")), Some("4960"));
        let mut ahead = Cursor::resume(0, 0, Some(12), None);
        assert_eq!(ahead.adopt_native(parsed.get("pinpipe-streaming-p-pin-0")), None);
        assert_eq!(ahead.native, None);
        assert_eq!(native_metadata("s", [&b]), None);
    }

    #[test]
    fn identities_round_trip_and_unknown_ones_match_anything() {
        let v = identity_metadata([("s1", Some("A")), ("s2", None), ("s3", Some("C"))]).unwrap();
        assert_eq!(v, serde_json::json!({"s1": "A", "s3": "C"}));
        let parsed = parse_identity(&v);
        assert_eq!(parsed.get("s1").map(String::as_str), Some("A"));
        assert!(!parsed.contains_key("s2"));
        assert!(same_log(Some("A"), Some("A")) && !same_log(Some("A"), Some("B")));
        assert!(same_log(None, Some("B")) && same_log(Some("A"), None));
        assert_eq!(identity_metadata([("s", None)]), None);
    }
}
