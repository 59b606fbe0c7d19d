//! The leader-epoch cache of one partition (Kafka's `LeaderEpochFileCache`): for every leader epoch that
//! wrote (or was about to write) to this log, the offset of its first record. A replica uses it to answer
//! OffsetForLeaderEpoch (and the diverging-epoch check of Fetch), so that a follower that rejoins after a
//! leader change truncates exactly the records the new leader never had.
//!
//! The cache itself is a plain in-memory value; [`read_checkpoint`] and [`write_checkpoint`] persist it as
//! the partition directory's `leader-epoch-checkpoint` in Kafka's text format, so that tools and operators
//! who know Kafka's files find the same content:
//!
//! ```text
//! 0            <- format version
//! 2            <- number of entries
//! 0 0          <- "<epoch> <start offset>", epochs and offsets strictly increasing
//! 3 120
//! ```
//!
//! The rules of [`LeaderEpochCache::assign`], [`LeaderEpochCache::end_offset_for`] and the two truncations
//! follow Apache Kafka 4's `LeaderEpochFileCache` (storage module) line by line; the doc of each method
//! says where Kafka's behaviour is surprising.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

/// Name of the checkpoint file in a partition directory (the same name as Kafka's).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// The only checkpoint format version Kafka has defined.
const CHECKPOINT_VERSION: &str = "0";
/// OffsetForLeaderEpoch's "no such epoch" answer (Kafka's `UNDEFINED_EPOCH`).
pub const UNDEFINED_EPOCH: i32 = -1;
/// OffsetForLeaderEpoch's "no end offset" answer (Kafka's `UNDEFINED_EPOCH_OFFSET`).
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// Ordered `(epoch, start_offset)` entries, strictly increasing in both; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
}

/// Why a checkpoint file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file exists but could not be read: the log directory itself is in trouble.
    #[error("cannot read leader epoch checkpoint: {0}")]
    Io(#[from] io::Error),
    /// The content is not a valid checkpoint (torn write, foreign file, hand edit); the caller rebuilds
    /// the cache from the log instead of failing.
    #[error("malformed leader epoch checkpoint: {0}")]
    Malformed(String),
}

impl LeaderEpochCache {
    /// An empty cache.
    pub fn new() -> LeaderEpochCache {
        LeaderEpochCache::default()
    }

    /// A cache holding exactly `entries`, or `None` unless they are non-negative and strictly increasing
    /// in both epoch and start offset (the invariant every other method relies on).
    pub fn from_entries(entries: Vec<(i32, i64)>) -> Option<LeaderEpochCache> {
        let non_negative = entries.iter().all(|&(e, o)| e >= 0 && o >= 0);
        let increasing = entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        (non_negative && increasing).then_some(LeaderEpochCache { entries })
    }

    /// The newest entry.
    pub fn latest(&self) -> Option<(i32, i64)> {
        self.entries.last().copied()
    }

    /// The newest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest().map(|(e, _)| e)
    }

    /// All entries, oldest first.
    pub fn epochs(&self) -> Vec<(i32, i64)> {
        self.entries.clone()
    }

    /// No epoch recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry (the log was emptied and restarted, Kafka's `truncateFullyAndStartAt`).
    /// Returns whether anything changed.
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Records that `epoch` starts at `start_offset`; returns whether the cache changed (and so must be
    /// persisted). Kafka's rules:
    /// - negative epochs or offsets are not leader epochs (Kafka throws); they are ignored here, since a
    ///   batch with no partition leader epoch must not stop an append;
    /// - the same epoch as the latest entry changes nothing, unless it now starts earlier;
    /// - otherwise entries that would break monotonicity are removed from the end first (every entry with
    ///   an epoch >= `epoch` or a start offset >= `start_offset`) and the new entry is added. So after a
    ///   truncation a new epoch may start at or below the old latest start, and an epoch lower than the
    ///   latest replaces the newer entries: the cache always describes the log as it now is. Kafka
    ///   warns when the removal drops more than an empty placeholder entry; so does this.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            tracing::debug!(epoch, start_offset, "ignoring invalid leader epoch entry");
            return false;
        }
        let update_needed = self
            .latest()
            .is_none_or(|(e, o)| epoch != e || start_offset < o);
        if !update_needed {
            return false;
        }
        let keep = self
            .entries
            .iter()
            .rposition(|&(e, o)| e < epoch && o < start_offset)
            .map_or(0, |i| i + 1);
        let removed: Vec<(i32, i64)> = self.entries.drain(keep..).collect();
        // A removed entry that started exactly here never had data: a leader's placeholder replaced by the
        // next leader's epoch, which is routine; anything else means the log went back in time.
        if removed.len() > 1 || removed.first().is_some_and(|&(_, o)| o != start_offset) {
            tracing::warn!(
                epoch,
                start_offset,
                ?removed,
                "new leader epoch entry removed conflicting entries"
            );
        }
        self.entries.push((epoch, start_offset));
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch <= `requested_epoch` this log knows and the end offset of
    /// that epoch (the start offset of the first larger epoch):
    /// - `requested_epoch` is the latest epoch -> `(latest, log_end_offset)`: the latest epoch is still
    ///   being written, so it ends at the log end;
    /// - no epoch above `requested_epoch` (including an empty cache and any epoch above the latest) or a
    ///   negative `requested_epoch` -> `(-1, -1)`, UNDEFINED;
    /// - `requested_epoch` below the first known epoch -> `(requested_epoch, start of the first entry)`.
    ///   Kafka 4 answers this, not UNDEFINED (its javadoc still says UNDEFINED): the older epochs' data
    ///   was removed from the log, and the follower must truncate to no further than the first offset the
    ///   leader still has;
    /// - otherwise `(floor epoch, start of the next entry)`, which can be a smaller epoch than requested
    ///   when this replica never saw the requested one.
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        // Kafka only special-cases -1; any negative epoch is equally meaningless, so all get UNDEFINED.
        if requested_epoch < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end_offset);
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= requested_epoch);
        let Some(&(_, next_start)) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1).map(|i| self.entries[i]) {
            Some((floor_epoch, _)) => (floor_epoch, next_start),
            None => (requested_epoch, next_start),
        }
    }

    /// The log was truncated to end at `end_offset`: removes every entry starting at or after it.
    /// Returns whether anything changed. A negative `end_offset` changes nothing (as in Kafka).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        if end_offset < 0 {
            return false;
        }
        let keep = self.entries.partition_point(|&(_, o)| o < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log start moved up to `start_offset` (retention, DeleteRecords): removes the entries starting at
    /// or below it and re-adds the last of them starting at `start_offset`, because that epoch's records
    /// from `start_offset` on are still in the log (Kafka's `truncateFromStart`, which is exclusive: an
    /// entry starting exactly at `start_offset` stays). Returns whether anything changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let removed = self.entries.partition_point(|&(_, o)| o <= start_offset);
        let Some(&(epoch, old_start)) = removed.checked_sub(1).and_then(|i| self.entries.get(i))
        else {
            return false;
        };
        self.entries.drain(..removed - 1);
        self.entries[0] = (epoch, start_offset);
        removed > 1 || old_start != start_offset
    }

    /// The checkpoint file content (see the module docs).
    pub fn encode(&self) -> String {
        let mut out = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for (epoch, offset) in &self.entries {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{epoch} {offset}");
        }
        out
    }

    /// Parses checkpoint file content. Accepts what Kafka's reader accepts (entries separated by any
    /// whitespace, trailing blank lines); rejects a wrong version, a count that does not match, extra
    /// lines, unparsable numbers and entries that are negative or not strictly increasing.
    pub fn decode(text: &str) -> Result<LeaderEpochCache, CheckpointError> {
        let malformed = |why: String| CheckpointError::Malformed(why);
        let mut lines = text.lines();
        let version = lines.next().map(str::trim);
        if version != Some(CHECKPOINT_VERSION) {
            return Err(malformed(format!("unknown version {version:?}")));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| malformed("missing or invalid entry count".into()))?;
        // The count comes from disk: never reserve by it, push as lines actually arrive.
        let mut entries = Vec::new();
        for i in 0..count {
            let line = lines
                .next()
                .ok_or_else(|| malformed(format!("expected {count} entries, found {i}")))?;
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(offset), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(malformed(format!("bad entry line {line:?}")));
            };
            let (Ok(epoch), Ok(offset)) = (epoch.parse::<i32>(), offset.parse::<i64>()) else {
                return Err(malformed(format!("bad entry line {line:?}")));
            };
            entries.push((epoch, offset));
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(malformed(format!(
                "more than the {count} entries announced"
            )));
        }
        LeaderEpochCache::from_entries(entries)
            .ok_or_else(|| malformed("entries are negative or not strictly increasing".into()))
    }
}

/// Reads `dir`'s checkpoint: `Ok(None)` when there is none, `Malformed` when it cannot be trusted.
pub fn read_checkpoint(dir: &Path) -> Result<Option<LeaderEpochCache>, CheckpointError> {
    let bytes = match fs::read(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CheckpointError::Malformed("not UTF-8 text".into()))?;
    LeaderEpochCache::decode(text).map(Some)
}

/// Replaces `dir`'s checkpoint with `cache`, crash-safely (temp file, fsync, rename, directory fsync).
/// Callers serialize writes (the log's append lock): concurrent writers would share the temp file.
pub fn write_checkpoint(dir: &Path, cache: &LeaderEpochCache) -> io::Result<()> {
    crate::log::write_atomically(
        dir,
        &dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
        cache.encode().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(entries.to_vec()).expect("valid entries")
    }

    #[test]
    fn end_offset_for_latest_is_log_end() {
        let c = cache(&[(0, 0), (2, 10), (5, 30)]);
        assert_eq!(c.end_offset_for(5, 42), (5, 42));
    }

    #[test]
    fn end_offset_for_middle_epochs_and_gaps() {
        let c = cache(&[(0, 0), (2, 10), (5, 30)]);
        assert_eq!(c.end_offset_for(0, 42), (0, 10));
        assert_eq!(c.end_offset_for(2, 42), (2, 30));
        // Epochs this replica never saw map to the largest smaller epoch it knows.
        assert_eq!(c.end_offset_for(1, 42), (0, 10));
        assert_eq!(c.end_offset_for(3, 42), (2, 30));
        assert_eq!(c.end_offset_for(4, 42), (2, 30));
    }

    #[test]
    fn end_offset_for_before_first_epoch_is_first_start() {
        let c = cache(&[(3, 100), (5, 130)]);
        assert_eq!(c.end_offset_for(1, 150), (1, 100));
        assert_eq!(c.end_offset_for(2, 150), (2, 100));
    }

    #[test]
    fn end_offset_for_undefined_cases() {
        let c = cache(&[(3, 100), (5, 130)]);
        assert_eq!(c.end_offset_for(6, 150), (-1, -1), "above the latest");
        assert_eq!(c.end_offset_for(-1, 150), (-1, -1));
        assert_eq!(c.end_offset_for(-7, 150), (-1, -1));
        let empty = LeaderEpochCache::new();
        assert_eq!(empty.end_offset_for(0, 0), (-1, -1));
        assert_eq!(empty.end_offset_for(3, 10), (-1, -1));
    }

    #[test]
    fn assign_adds_higher_epochs_and_ignores_repeats() {
        let mut c = LeaderEpochCache::new();
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 5), "same epoch, later offset");
        assert!(c.assign(2, 10));
        assert!(c.assign(5, 30));
        assert_eq!(c.epochs(), vec![(0, 0), (2, 10), (5, 30)]);
        assert_eq!(c.latest(), Some((5, 30)));
        assert!(!c.assign(-1, 40), "no partition leader epoch");
        assert!(!c.assign(6, -1));
        assert_eq!(c.epochs(), vec![(0, 0), (2, 10), (5, 30)]);
    }

    #[test]
    fn assign_same_epoch_earlier_start_moves_it() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(c.assign(2, 8));
        assert_eq!(c.epochs(), vec![(0, 0), (2, 8)]);
    }

    #[test]
    fn assign_at_or_below_latest_start_replaces_later_entries() {
        // A leader's placeholder at its LEO replaced by the next leader's epoch at the same offset.
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(c.assign(3, 10));
        assert_eq!(c.epochs(), vec![(0, 0), (3, 10)]);
        // A new epoch starting below entries that are still cached (the log was truncated meanwhile).
        let mut c = cache(&[(0, 0), (2, 10), (3, 20)]);
        assert!(c.assign(4, 10));
        assert_eq!(c.epochs(), vec![(0, 0), (4, 10)]);
    }

    #[test]
    fn assign_lower_epoch_replaces_newer_entries_as_kafka_does() {
        let mut c = cache(&[(0, 0), (2, 10), (5, 30)]);
        assert!(c.assign(4, 40));
        assert_eq!(c.epochs(), vec![(0, 0), (2, 10), (4, 40)]);
        assert!(c.assign(1, 50));
        assert_eq!(c.epochs(), vec![(0, 0), (1, 50)]);
    }

    #[test]
    fn truncate_from_end_removes_entries_at_or_after_end() {
        let mut c = cache(&[(0, 0), (2, 10), (5, 30)]);
        assert!(!c.truncate_from_end(31));
        assert!(c.truncate_from_end(30));
        assert_eq!(c.epochs(), vec![(0, 0), (2, 10)]);
        assert!(!c.truncate_from_end(-1));
        assert!(c.truncate_from_end(5));
        assert_eq!(c.epochs(), vec![(0, 0)]);
        assert!(c.truncate_from_end(0));
        assert!(c.is_empty());
    }

    #[test]
    fn truncate_from_start_moves_first_entry_up() {
        let mut c = cache(&[(0, 0), (2, 10), (5, 30)]);
        assert!(!c.truncate_from_start(-5), "below every entry");
        assert!(c.truncate_from_start(5));
        assert_eq!(c.epochs(), vec![(0, 5), (2, 10), (5, 30)]);
        // Exclusive: an entry starting exactly at the new start stays as it is.
        assert!(c.truncate_from_start(10));
        assert_eq!(c.epochs(), vec![(2, 10), (5, 30)]);
        assert!(!c.truncate_from_start(10));
        assert!(c.truncate_from_start(25));
        assert_eq!(c.epochs(), vec![(2, 25), (5, 30)]);
        // Beyond the last entry: the latest epoch now starts at the log start.
        assert!(c.truncate_from_start(100));
        assert_eq!(c.epochs(), vec![(5, 100)]);
        assert!(!LeaderEpochCache::new().truncate_from_start(3));
    }

    #[test]
    fn encode_decode_round_trip_in_kafka_format() {
        let c = cache(&[(0, 0), (3, 120)]);
        assert_eq!(c.encode(), "0\n2\n0 0\n3 120\n");
        assert_eq!(LeaderEpochCache::decode(&c.encode()).unwrap(), c);
        assert_eq!(
            LeaderEpochCache::decode("0\n0\n").unwrap(),
            LeaderEpochCache::new()
        );
        // Kafka's reader splits entries on any whitespace and tolerates a missing final newline.
        assert_eq!(
            LeaderEpochCache::decode("0\n1\n4\t7").unwrap(),
            cache(&[(4, 7)])
        );
    }

    #[test]
    fn decode_rejects_malformed_content() {
        for bad in [
            "",
            "1\n0\n",
            "0\n",
            "0\nx\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0\n1 5\n",
            "0\n1\n0\n",
            "0\n1\n0 0 0\n",
            "0\n1\na 0\n",
            "0\n1\n0 99999999999999999999\n",
            "0\n2\n3 0\n2 5\n",
            "0\n2\n1 5\n2 5\n",
            "0\n1\n-1 0\n",
            "0\n18446744073709551615\n",
        ] {
            assert!(
                matches!(
                    LeaderEpochCache::decode(bad),
                    Err(CheckpointError::Malformed(_))
                ),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn checkpoint_file_round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_checkpoint(dir.path()).unwrap().is_none());
        let c = cache(&[(1, 0), (4, 77)]);
        write_checkpoint(dir.path(), &c).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap(),
            "0\n2\n1 0\n4 77\n"
        );
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(c));
        fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_checkpoint(dir.path()),
            Err(CheckpointError::Malformed(_))
        ));
    }
}
