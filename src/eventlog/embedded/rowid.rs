//! Where a record sits in the embedded log's file: the rowid that encodes (log, partition, offset).
//!
//! Owns the bit layout and the limits it implies (offsets per partition, partitions per log, logs
//! per file). Knows nothing of SQL or threads: the writer ([`super::writer`]) turns positions into
//! rowids when it inserts, the readers ([`super`]) turn rowid ranges back into offsets and extents.

// A record's rowid is its position: `log id << 48 | partition << 38 | offset`, so one b-tree
// insert per record (no separate index) and a partition's records lie together in offset order.
const OFFSET_BITS: u32 = 38;
const PARTITION_BITS: u32 = 10;
const LOG_SHIFT: u32 = OFFSET_BITS + PARTITION_BITS;
/// Most partitions a log may have.
pub(super) const MAX_PARTITIONS: u32 = 1 << PARTITION_BITS;
/// Largest log id that fits the rowid (15 bits; the sign bit stays clear).
pub(super) const MAX_LOG_ID: i64 = (1 << (63 - LOG_SHIFT)) - 1;
/// Offsets per partition: 2^38, about 275 billion records.
pub(super) const MAX_OFFSET: u64 = (1 << OFFSET_BITS) - 1;

/// The rowid of (log, partition, offset).
pub(super) fn rowid(log_id: i64, partition: u32, offset: u64) -> i64 {
    (log_id << LOG_SHIFT) | (i64::from(partition) << OFFSET_BITS) | offset as i64
}

/// The rowids of one partition: `first..=last`.
pub(super) fn partition_rowids(log_id: i64, partition: u32) -> (i64, i64) {
    (rowid(log_id, partition, 0), rowid(log_id, partition, MAX_OFFSET))
}

/// The rowids of one log: `first..=last`.
pub(super) fn log_rowids(log_id: i64) -> (i64, i64) {
    (rowid(log_id, 0, 0), rowid(log_id, MAX_PARTITIONS - 1, MAX_OFFSET))
}

/// The offset inside a rowid.
pub(super) fn offset_of(rowid: i64) -> u64 {
    rowid as u64 & MAX_OFFSET
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_survives_its_rowid_and_partitions_do_not_overlap() {
        let r = rowid(MAX_LOG_ID, MAX_PARTITIONS - 1, MAX_OFFSET);
        assert!(r > 0, "the sign bit stays clear");
        assert_eq!(offset_of(rowid(3, 7, 12_345)), 12_345);
        let (_, last_of_0) = partition_rowids(3, 0);
        let (first_of_1, _) = partition_rowids(3, 1);
        assert_eq!(last_of_0 + 1, first_of_1);
        assert_eq!(log_rowids(3).1 + 1, log_rowids(4).0);
    }
}
