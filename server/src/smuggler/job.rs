//! Import and export as the engine's own operations, so an embedder gets
//! them as the REST API does: an import is a [`Job`] (slot, hold, status
//! document, cancel); an export holds its database and one of a bounded
//! number of export permits while it streams.

use std::io::{Read, Write};
use std::thread::JoinHandle;
use std::time::Duration;

use rookery_types::{counted, ErrorCode, JobStatus, SMUGGLER_STATUS_ID};

use super::dump::{export, import, ImportSummary, SmugglerError};
use crate::engine::Rookery;
use crate::jobs::{Job, JobError, JobKind, JobThread, StatusReporter};

/// A running import.
pub type ImportHandle = JobThread<ImportSummary, SmugglerError>;

impl JobError for SmugglerError {
    fn code(&self) -> ErrorCode {
        SmugglerError::code(self)
    }

    fn thread_failed(message: String) -> Self {
        SmugglerError::Io(message)
    }
}

impl Rookery {
    /// Starts importing a dump (zstd, gzip or plain NDJSON) read from `input`
    /// into `database`, in the background; `Raven/Smuggler/Status` of that
    /// database shows the job when this returns.
    ///
    /// # Errors
    /// `NotFound` for an unknown database, `AlreadyRunning` while another import runs.
    pub fn start_import(&self, database: &str, input: impl Read + Send + 'static, overwrite: bool) -> Result<ImportHandle, SmugglerError> {
        let db = self.catalog.get(database).ok_or(crate::storage::StorageError::NotFound)?;
        let slot = self.import_slot.acquire(Duration::ZERO).ok_or(SmugglerError::AlreadyRunning)?;
        let hold = self.catalog.hold(&db)?;
        let reporter =
            StatusReporter::start(db.clone(), SMUGGLER_STATUS_ID, JobStatus::default(), &format!("Import into '{}' started", db.name))?;
        let job = Job::new(JobKind::Import, slot, Some(hold), reporter, &self.running, &db.name).observed_by(&self.monitor);
        job.spawn(
            format!("import-{}", db.name),
            move |job| {
                let (reporter, cancel) = (&mut job.reporter, &job.cancel);
                import(db.store(), input, overwrite, cancel, &mut |written, skipped| reporter.progress(written + skipped, 0))
            },
            |s| format!("Import completed: {} written, {} skipped (existing ids)", counted(s.written, "document"), s.skipped),
        )
    }

    /// Asks the running import into `database` to stop: the documents imported
    /// before it stay. False when no import into it runs.
    #[must_use]
    pub fn cancel_import(&self, database: &str) -> bool {
        self.running.cancel(JobKind::Import, database)
    }

    /// Starts writing a dump of `database` (ids starting with `prefix`) into
    /// `out` on a background thread, from one snapshot. The export holds the
    /// database (a delete meanwhile answers `DatabaseBusy`) and one of
    /// [`crate::engine::MAX_CONCURRENT_EXPORTS`] permits until it ends.
    ///
    /// # Errors
    /// `NotFound`, `TooManyExports`.
    pub fn start_export(
        &self,
        database: &str,
        prefix: &str,
        out: impl Write + Send + 'static,
    ) -> Result<JoinHandle<Result<u64, SmugglerError>>, SmugglerError> {
        let db = self.catalog.get(database).ok_or(crate::storage::StorageError::NotFound)?;
        // The hold comes before the snapshot: a delete meanwhile answers DatabaseBusy.
        let hold = self.catalog.hold(&db)?;
        let permit = self.export_permits.clone().try_acquire_owned().map_err(|_| SmugglerError::TooManyExports)?;
        let prefix = prefix.to_string();
        std::thread::Builder::new()
            .name(format!("export-{}", db.name))
            .spawn(move || {
                let (_hold, _permit) = (hold, permit);
                let snapshot = db.store().snapshot();
                export(&snapshot, &db.name, &prefix, out, &mut |_| {})
            })
            .map_err(|e| SmugglerError::Io(format!("cannot start the export thread: {e}")))
    }
}
