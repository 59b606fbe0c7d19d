//! A [`MetadataJournal`] on the single-node metadata file, for unit tests of the controller's decisions:
//! durable across reopen, without running a quorum (the quorum has tests of its own). Each record counts
//! as one metadata offset, both when committed and when replayed, so broker epochs survive a reopen.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::controller::{ControllerError, MetadataJournal};
use super::image::MetadataImage;
use super::log::MetadataLog;
use super::records::MetadataRecord;

pub struct FileJournal(Mutex<(MetadataLog, MetadataImage)>);

impl FileJournal {
    pub fn open(dir: &Path) -> FileJournal {
        let (log, records) = MetadataLog::open(dir).expect("open log");
        let mut image = MetadataImage::default();
        for record in &records {
            image.metadata_offset += 1;
            image.apply(record);
        }
        FileJournal(Mutex::new((log, image)))
    }
}

impl MetadataJournal for FileJournal {
    fn image_for_update(&self) -> Result<Arc<MetadataImage>, ControllerError> {
        Ok(self.latest())
    }

    fn commit(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, ControllerError> {
        let mut guard = self.0.lock().expect("journal lock");
        guard.0.append(&records)?;
        for record in &records {
            guard.1.metadata_offset += 1;
            guard.1.apply(record);
        }
        Ok(Arc::new(guard.1.clone()))
    }

    fn latest(&self) -> Arc<MetadataImage> {
        Arc::new(self.0.lock().expect("journal lock").1.clone())
    }
}
