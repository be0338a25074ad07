//! A backup or compaction that runs in the background: its thread, and its end to wait for.

use std::sync::Arc;

use super::error::BackupError;
use super::prepare::BackupSummary;
use crate::jobs::{Completion, JobThread};

/// A running backup (or compaction).
#[derive(Debug)]
pub struct BackupHandle {
    /// The set being written.
    pub set_id: String,
    pub(super) job: JobThread<BackupSummary, BackupError>,
}

impl BackupHandle {
    /// Blocks until the backup ends.
    ///
    /// # Errors
    /// The backup's error (also in its status document).
    pub fn wait(self) -> Result<BackupSummary, BackupError> {
        self.job.wait()
    }

    /// Whether the backup has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.job.is_finished()
    }

    /// The job's end, to wait for without owning the handle.
    #[must_use]
    pub fn completion(&self) -> Arc<Completion> {
        self.job.completion()
    }
}
