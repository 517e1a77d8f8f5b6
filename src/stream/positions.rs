//! Stream positions kept inside the Delta tables: the `txn` app ids the stream job writes, and
//! where each stream partition resumes from them.
//!
//! Fed by the stored `txn` versions that [`super::delta::DeltaSink::stored_version`] reads back at
//! start; feeds the micro-batch loop in [`super`] (what to read next, which records each table
//! still needs). Nothing here touches storage: the rules are plain functions, tested below.

/// The `txn` app id under which a data table stores how far it holds `stream`'s `partition`:
/// its version is the last offset whose cleaned row is in the table (kafka-delta-ingest's
/// one-app-id-per-partition scheme).
pub(crate) fn data_app_id(stream: &str, partition: u32) -> String {
    format!("pinpipe-{stream}-{partition}")
}

/// The `txn` app id under which the rejects table stores how far it holds the rejects of
/// `stream`'s `partition`: its version is the last offset of the micro-batch whose rejects were
/// committed with it.
pub(crate) fn rejects_app_id(stream: &str, partition: u32) -> String {
    format!("pinpipe-rejects-{stream}-{partition}")
}

/// Where one partition of one stream stands: what the data table and the rejects table hold,
/// and the next offset to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub partition: u32,
    /// Next offset to read from the log.
    pub next: u64,
    /// Last offset whose record the data table accounts for (`None`: nothing yet).
    pub data: Option<u64>,
    /// Last offset whose reject, if it was one, the rejects table accounts for.
    pub rejects: Option<u64>,
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
        Cursor { partition, next, data, rejects }
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
    fn app_ids_name_stream_and_partition() {
        assert_eq!(data_app_id("streaming-p-pin", 3), "pinpipe-streaming-p-pin-3");
        assert_eq!(rejects_app_id("streaming-p-geo", 0), "pinpipe-rejects-streaming-p-geo-0");
    }
}
