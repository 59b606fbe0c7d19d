//! The local, durable metadata log: one JSON record per line, each prefixed by its CRC-32C, fsynced on every
//! append. A torn last line (power loss mid-write) is detected by its checksum and cut off on open.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::records::MetadataRecord;
use super::MetadataError;

/// File name of the metadata log inside the first log directory.
pub const METADATA_LOG_FILE: &str = "__cluster_metadata.log";

/// Append-only record log backing the metadata image.
pub struct MetadataLog {
    path: PathBuf,
    file: File,
}

impl MetadataLog {
    /// Opens (or creates) the log and returns it with every intact record, in order.
    pub fn open(dir: &Path) -> Result<(MetadataLog, Vec<MetadataRecord>), MetadataError> {
        std::fs::create_dir_all(dir).map_err(|e| MetadataError::io(dir, e))?;
        let path = dir.join(METADATA_LOG_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| MetadataError::io(&path, e))?;
        let mut records = Vec::new();
        let mut valid_len: u64 = 0;
        {
            let mut reader = BufReader::new(&file);
            let mut line = String::new();
            loop {
                line.clear();
                let read = match reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(n) => n,
                    // Invalid UTF-8 can only be a torn or damaged tail.
                    Err(_) => break,
                };
                match decode_line(&line) {
                    Some(record) => {
                        records.push(record);
                        valid_len += read as u64;
                    }
                    None => break,
                }
            }
        }
        let actual_len = file
            .metadata()
            .map_err(|e| MetadataError::io(&path, e))?
            .len();
        if actual_len != valid_len {
            tracing::warn!(
                path = %path.display(),
                valid_bytes = valid_len,
                file_bytes = actual_len,
                "metadata log has a torn or corrupt tail; truncating it"
            );
            file.set_len(valid_len)
                .and_then(|_| file.sync_all())
                .map_err(|e| MetadataError::io(&path, e))?;
            file.seek(SeekFrom::End(0))
                .map_err(|e| MetadataError::io(&path, e))?;
        }
        Ok((MetadataLog { path, file }, records))
    }

    /// Appends records and fsyncs before returning, so a change is durable once acknowledged.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<(), MetadataError> {
        let mut buf = Vec::new();
        for record in records {
            let json = serde_json::to_string(record).map_err(MetadataError::Encode)?;
            let crc = crc32c::crc32c(json.as_bytes());
            buf.extend_from_slice(format!("{crc:08x} {json}\n").as_bytes());
        }
        self.file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| MetadataError::io(&self.path, e))
    }
}

fn decode_line(line: &str) -> Option<MetadataRecord> {
    let line = line.strip_suffix('\n')?;
    let (crc_hex, json) = line.split_once(' ')?;
    let crc = u32::from_str_radix(crc_hex, 16).ok()?;
    if crc32c::crc32c(json.as_bytes()) != crc {
        return None;
    }
    serde_json::from_str(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = Uuid::new_v4();
        {
            let (mut log, records) = MetadataLog::open(dir.path()).expect("open");
            assert!(records.is_empty());
            log.append(&[
                MetadataRecord::Topic {
                    name: "a".into(),
                    topic_id: id,
                },
                MetadataRecord::RemoveTopic { topic_id: id },
            ])
            .expect("append");
        }
        // Simulate a torn write: half a line at the end.
        let path = dir.path().join(METADATA_LOG_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"deadbeef {\"type\":\"Top").expect("write");
        drop(f);
        let (mut log, records) = MetadataLog::open(dir.path()).expect("reopen");
        assert_eq!(records.len(), 2);
        log.append(&[MetadataRecord::ProducerIds {
            next_block_start: 5,
        }])
        .expect("append after truncation");
        let (_, records) = MetadataLog::open(dir.path()).expect("reopen");
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn checksum_mismatch_stops_replay() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut log, _) = MetadataLog::open(dir.path()).expect("open");
            log.append(&[MetadataRecord::ProducerIds {
                next_block_start: 1000,
            }])
            .expect("append");
        }
        let path = dir.path().join(METADATA_LOG_FILE);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("1000", "9000")).expect("write");
        let (_, records) = MetadataLog::open(dir.path()).expect("reopen");
        assert!(records.is_empty());
    }
}
