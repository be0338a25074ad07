//! A backup or compaction that runs in the background: its thread, and its end to wait for.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::error::BackupError;
use super::prepare::BackupSummary;
use crate::jobs::Completion;

/// A running backup.
#[derive(Debug)]
pub struct BackupHandle {
    /// The set being written.
    pub set_id: String,
    pub(super) thread: JoinHandle<Result<BackupSummary, BackupError>>,
    pub(super) completion: Arc<Completion>,
}

impl BackupHandle {
    /// Blocks until the backup ends.
    ///
    /// # Errors
    /// The backup's error (also in its status document).
    pub fn wait(self) -> Result<BackupSummary, BackupError> {
        self.thread.join().unwrap_or_else(|_| Err(BackupError::Io("the backup thread panicked".into())))
    }

    /// Whether the backup has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// The job's end, to wait for without owning the handle.
    #[must_use]
    pub fn completion(&self) -> Arc<Completion> {
        self.completion.clone()
    }
}
