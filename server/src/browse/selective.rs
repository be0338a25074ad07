//! A restore of chosen documents from a point in time into a live database:
//! a job with its own status document (`Raven/RestoreDocuments/Status`,
//! counts restored, skipped and not found), writing through the normal write
//! path (new etags, the change log, the content digest kept up to date) so
//! that the next incremental backup carries them like any other write.
//!
//! `Skip` creates only ids the live database does not hold at the moment of
//! the write (a create that fails on a concurrent write counts as skipped);
//! `Overwrite` writes over whatever is there. Writes the job did not make are
//! never touched.

use std::sync::Arc;
use std::time::Duration;

use rookery_types::{JobStatus, RestoreDocumentsMode, RestoreDocumentsRequest, RESTORE_DOCUMENTS_STATUS_ID};

use super::{open, PointChoice, PointReader};
use crate::backup::sealed::SetSecret;
use crate::engine::Rookery;
use crate::jobs::{CancelToken, Completion, Job, JobKind, JobThread, StatusReporter};
use crate::restore::RestoreError;
use crate::storage::{DocumentStore, StorageError};

/// Documents read from the backup at once (their blocks and frames side by side).
const READ_AT_ONCE: usize = 256;

/// The most ids one request may name.
pub const MAX_IDS: usize = 100_000;

/// What a selective restore did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoredDocuments {
    pub restored: u64,
    pub skipped: u64,
    pub not_found: u64,
}

/// A selective restore running in the background.
pub struct RestoreDocumentsHandle {
    pub database: String,
    job: JobThread<RestoredDocuments, RestoreError>,
}

impl RestoreDocumentsHandle {
    /// Blocks until the job ends.
    ///
    /// # Errors
    /// The job's error (also in its status document).
    pub fn wait(self) -> Result<RestoredDocuments, RestoreError> {
        self.job.wait()
    }

    /// The job's end, to wait for.
    #[must_use]
    pub fn completion(&self) -> Arc<Completion> {
        self.job.completion()
    }
}

/// Which ids: a list, or every id with a prefix at the point.
enum Selection {
    Ids(Vec<String>),
    Prefix(String),
}

fn selection(request: &RestoreDocumentsRequest) -> Result<Selection, RestoreError> {
    match (&request.ids, &request.starts_with) {
        (Some(_), Some(_)) => Err(RestoreError::InvalidRequest("Give Ids or StartsWith, not both.".into())),
        (None, None) => Err(RestoreError::InvalidRequest("Say which documents to restore: Ids or StartsWith.".into())),
        (Some(ids), None) if ids.is_empty() || ids.len() > MAX_IDS => {
            Err(RestoreError::InvalidRequest(format!("Ids holds between 1 and {MAX_IDS} ids.")))
        }
        (Some(ids), None) => {
            let mut ids = ids.clone();
            ids.sort_unstable();
            ids.dedup();
            Ok(Selection::Ids(ids))
        }
        (None, Some(prefix)) => Ok(Selection::Prefix(prefix.clone())),
    }
}

impl Rookery {
    /// Starts restoring the documents `request` names from a backup into
    /// `database` (or into a new database named `DatabaseName`). Everything
    /// a request can get wrong (location, point, keys, selection) is refused
    /// before the job starts.
    ///
    /// # Errors
    /// `NotFound` (database), `DatabaseExists`, `RestoreAlreadyRunning`, and
    /// every error of opening a point ([`super::open`]).
    pub fn start_restore_documents(
        &self,
        database: &str,
        request: &RestoreDocumentsRequest,
    ) -> Result<RestoreDocumentsHandle, RestoreError> {
        let selection = selection(request)?;
        let location = self.open_backup_location(&request.backup_location, request.s3.as_ref())?;
        let secret = SetSecret::from_request(request.backup_encryption_key.as_ref(), request.backup_passphrase.as_ref())
            .map_err(RestoreError::InvalidRequest)?;
        let choice = PointChoice {
            up_to: request.restore_up_to.as_deref(),
            database: request.source_database_name.as_deref(),
            encryption_key: request.encryption_key.as_deref(),
            secret: secret.as_ref(),
            scratch: Some(&self.config.data_dir),
        };
        let reader = open(&location, choice)?;
        let slot = self.restore_documents_slot.acquire(Duration::ZERO).ok_or_else(|| {
            RestoreError::DocumentsAlreadyRunning("A restore of documents is already running on this server; wait for it to finish.".into())
        })?;
        let db = match &request.database_name {
            Some(name) => self.catalog.create(name)?,
            None => self.catalog.get(database).ok_or(StorageError::NotFound)?,
        };
        let hold = self.catalog.hold(&db)?;
        let first = format!("Restore of documents from {} into '{}' started", reader.set_id(reader.chain().len() - 1), db.name);
        let status = JobStatus { backup_location: Some(location.to_string()), ..JobStatus::default() };
        let reporter = StatusReporter::start(db.clone(), RESTORE_DOCUMENTS_STATUS_ID, status, &first)?;
        let job = Job::new(JobKind::RestoreDocuments, slot, Some(hold), reporter, &self.running, &db.name).observed_by(&self.monitor);
        let mode = request.mode;
        let name = db.name.clone();
        let job = job.spawn(
            format!("restore-documents-{}", db.name),
            move |job| {
                let mut reader = reader;
                run(&mut reader, db.store(), &selection, mode, &mut job.reporter, &job.cancel)
            },
            |done| {
                format!(
                    "Restore of documents completed: {} restored, {} skipped, {} not found",
                    done.restored, done.skipped, done.not_found
                )
            },
        )?;
        Ok(RestoreDocumentsHandle { database: name, job })
    }

    /// Asks the running selective restore into `database` to stop: what it wrote stays.
    #[must_use]
    pub fn cancel_restore_documents(&self, database: &str) -> bool {
        self.running.cancel(JobKind::RestoreDocuments, database)
    }
}

fn run(
    reader: &mut PointReader,
    store: &DocumentStore,
    selection: &Selection,
    mode: RestoreDocumentsMode,
    reporter: &mut StatusReporter,
    cancel: &CancelToken,
) -> Result<RestoredDocuments, RestoreError> {
    let mut done = RestoredDocuments::default();
    let report = |reporter: &mut StatusReporter, done: &RestoredDocuments| {
        reporter.edit(|s| {
            s.restored = Some(done.restored);
            s.skipped = Some(done.skipped);
            s.not_found = Some(done.not_found);
        });
        reporter.progress(done.restored + done.skipped + done.not_found, 0);
    };
    let ids: Vec<String> = match selection {
        Selection::Ids(ids) => ids.clone(),
        Selection::Prefix(prefix) => every_id(reader, prefix, cancel)?,
    };
    reporter.set_total(ids.len() as u64);
    for batch in ids.chunks(READ_AT_ONCE) {
        if cancel.is_canceled() {
            return Err(RestoreError::Canceled);
        }
        let wanted: Vec<&str> = batch.iter().map(String::as_str).collect();
        for (id, found) in wanted.iter().zip(super::get_many(reader, &wanted)?) {
            let Ok(found) = found else {
                done.not_found += 1;
                continue;
            };
            let written = match mode {
                RestoreDocumentsMode::Overwrite => store.put(id, &found.body, None),
                RestoreDocumentsMode::Skip => store.create(id, &found.body),
            };
            match written {
                Ok(_) => done.restored += 1,
                Err(StorageError::ConcurrencyConflict { .. }) => done.skipped += 1,
                // An id no client may write (a forged set): never written.
                Err(StorageError::InvalidId(_)) => done.not_found += 1,
                Err(e) => return Err(e.into()),
            }
        }
        report(reporter, &done);
    }
    report(reporter, &done);
    Ok(done)
}

/// Every id with `prefix` at the point, in id order.
fn every_id(reader: &mut PointReader, prefix: &str, cancel: &CancelToken) -> Result<Vec<String>, RestoreError> {
    let mut ids = Vec::new();
    let mut too_many = false;
    super::each_document(reader, prefix, &mut |document| {
        ids.push(document.id);
        too_many = ids.len() > MAX_IDS * 10;
        !too_many && !cancel.is_canceled()
    })?;
    if cancel.is_canceled() {
        return Err(RestoreError::Canceled);
    }
    if too_many {
        return Err(RestoreError::InvalidRequest(format!("StartsWith '{prefix}' selects more than {} documents", MAX_IDS * 10)));
    }
    Ok(ids)
}
