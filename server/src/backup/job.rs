//! A backup as a job: checked, then run in the background (see [`crate::jobs`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rookery_types::{counted, ErrorCode, JobStatus, Severity, BACKUP_STATUS_ID, COMPACT_STATUS_ID};

use super::compact::{self, CompactOptions};
use super::error::BackupError;
use super::format::SetKind;
use super::handle::BackupHandle;
use super::location::Location;
use super::prepare::{prepare, BackupOptions, BackupSummary, PreparedBackup};
use super::target::{temp_dir, with_target};
use super::{logical, snapshot};
use crate::engine::Rookery;
use crate::jobs::CancelToken;
use crate::jobs::{unfinished, Job, JobError, JobKind, StatusReporter, UnfinishedFolder, UnfinishedSet};
use crate::monitor::{BackupOutcome, RunKind, SetWritten};
use crate::notify::notifier::now_ms;
use crate::storage::DatabaseHandle;

/// The record of a set being written (see [`Rookery::record_unfinished`]).
pub(crate) enum Unfinished {
    /// A `.tmp-` folder: the folder is removed on any failure, so the record
    /// goes either way; a crash leaves it for the next start.
    Folder(UnfinishedFolder),
    /// A set in object storage: forgotten once complete; kept after a
    /// failure, for the next backup into the location to clear.
    Set(UnfinishedSet),
}

impl Unfinished {
    pub(crate) fn finish(self, completed: bool) {
        match self {
            Self::Folder(folder) => drop(folder),
            Self::Set(set) if completed => set.completed(),
            // Kept: the record stays in the server's state (see `UnfinishedSet`).
            Self::Set(_) => {}
        }
    }
}

/// Records where a new set is written, for crash recovery (see [`Unfinished`]).
pub(crate) fn record_unfinished(system: Arc<DatabaseHandle>, location: &Location, set_id: &str) -> Result<Unfinished, BackupError> {
    Ok(match location.folder() {
        Some(folder) => Unfinished::Folder(UnfinishedFolder::record(system, &temp_dir(folder, set_id))?),
        None => Unfinished::Set(UnfinishedSet::record(system, &location.to_string(), set_id)?),
    })
}

/// Before a new set is written into `location`: removes the location's
/// unfinished sets that are provably abandoned (see
/// [`Location::remove_unfinished`]), this server's recorded ones first, and
/// forgets the records it has dealt with.
///
/// # Errors
/// The location cannot be listed or the storage refused.
pub(crate) fn clear_abandoned(
    system: &DatabaseHandle,
    location: &Location,
    writing: &str,
    grace: Duration,
    reporter: &mut StatusReporter,
) -> Result<(), BackupError> {
    let records = unfinished::recorded_sets(system, &location.to_string());
    let own: BTreeSet<String> = records.iter().map(|(_, id)| id.clone()).filter(|id| id != writing).collect();
    let removed = location.remove_unfinished(&own, grace, writing)?;
    for (key, id) in &records {
        if id != writing {
            unfinished::forget(system, key);
        }
    }
    if !removed.is_empty() {
        reporter.message(&format!("Removed {} abandoned unfinished set(s): {}", removed.len(), removed.join(", ")), Severity::Information);
    }
    Ok(())
}

/// Runs a prepared backup to the end, reporting into `reporter`.
///
/// # Errors
/// Any failure; what the backup wrote is removed before returning.
fn run(prepared: &PreparedBackup, reporter: &mut StatusReporter, cancel: &CancelToken) -> Result<BackupSummary, BackupError> {
    with_target(&prepared.location, &prepared.set_id, cancel, |target| match prepared.kind {
        SetKind::Snapshot => snapshot::write_set(prepared, target, reporter, cancel),
        SetKind::Full | SetKind::Incremental => logical::write_set(prepared, target, reporter, cancel),
    })
}

/// How a backup or compaction ended, for the records.
fn outcome(
    database: &Arc<DatabaseHandle>,
    task: String,
    kind: RunKind,
    location: &Location,
    started_ms: i64,
    result: &Result<BackupSummary, BackupError>,
) -> BackupOutcome {
    BackupOutcome {
        database: database.clone(),
        task,
        kind,
        location: location.to_string(),
        started_ms,
        ended_ms: now_ms(),
        result: match result {
            Ok(s) => Ok(SetWritten { set_id: s.set_id.clone(), bytes: s.bytes_written, documents: s.documents, to_etag: s.to_etag }),
            Err(e) => Err((e.code(), e.to_string())),
        },
    }
}

impl JobError for BackupError {
    fn code(&self) -> ErrorCode {
        BackupError::code(self)
    }

    fn thread_failed(message: String) -> Self {
        BackupError::Io(message)
    }
}

impl Rookery {
    /// Whether a backup is running on this server.
    #[must_use]
    pub fn backup_running(&self) -> bool {
        self.backup_slot.is_busy()
    }

    /// Starts a backup of `database` (`System` for the system database) in the
    /// background. When this returns, `Raven/Backup/Status` already shows the job.
    ///
    /// # Errors
    /// `DatabaseNotFound`, `InvalidLocation` (checked first), `ChainMismatch`,
    /// then `AlreadyRunning` when any backup runs on this server.
    pub fn start_backup(&self, database: &str, options: BackupOptions) -> Result<BackupHandle, BackupError> {
        let db = self.catalog.get(database).ok_or_else(|| BackupError::DatabaseNotFound(database.to_string()))?;
        // The hold comes before anything is read: a delete now answers DatabaseBusy.
        let hold = self.catalog.hold(&db).map_err(|_| BackupError::DatabaseNotFound(database.to_string()))?;
        let location = self.open_backup_location(&options.location, options.s3.as_ref())?.with_lock(options.object_lock.as_ref())?;
        let prepared = prepare(db.clone(), &options, location)?;
        let slot = self.backup_slot.acquire(Duration::ZERO).ok_or(BackupError::AlreadyRunning)?;
        let initial = JobStatus {
            backup_location: Some(prepared.location.to_string()),
            incremental: prepared.kind == SetKind::Incremental,
            set_id: Some(prepared.set_id.clone()),
            ..Default::default()
        };
        let first = match &prepared.base {
            Some(base) => format!("Incremental backup started on {} (from etag {})", base.set_id, base.to_etag),
            None if prepared.kind == SetKind::Snapshot => "Snapshot backup started (the database's storage files)".to_string(),
            None if options.incremental && prepared.warnings.is_empty() => {
                "Full backup started (no earlier set of this database in the location)".to_string()
            }
            None => "Full backup started".to_string(),
        };
        let mut reporter = StatusReporter::start(db.clone(), BACKUP_STATUS_ID, initial, &first)?;
        for warning in &prepared.warnings {
            reporter.message(warning, Severity::Warning);
        }
        if db.store().is_encrypted() {
            if prepared.include_encryption_key {
                reporter.message(
                    "The database is encrypted and this set contains its encryption key in plain text, so that it restores on any server. Keep the set safe, or back up with IncludeEncryptionKey: false.",
                    Severity::Warning,
                );
            } else {
                reporter.message("The set leaves the database key out: a restore will need EncryptionKey.", Severity::Information);
            }
        }
        let set_id = prepared.set_id.clone();
        let unfinished = self.record_unfinished(&prepared.location, &prepared.set_id)?;
        let staging = match &prepared.staging {
            Some(dir) => Some(UnfinishedFolder::record(self.catalog.system(), dir)?),
            None => None,
        };
        let (system, grace) = (self.catalog.system(), self.config.unfinished_set_grace());
        let (monitor, task) = (self.monitor.clone(), options.task.clone().unwrap_or_default());
        let job = Job::new(JobKind::Backup, slot, Some(hold), reporter, &self.running, &db.name).observed_by(&self.monitor);
        let job = job.spawn(
            format!("backup-{}", prepared.database.name),
            move |job| {
                let started_ms = now_ms();
                let result = clear_abandoned(&system, &prepared.location, &prepared.set_id, grace, &mut job.reporter)
                    .and_then(|()| run(&prepared, &mut job.reporter, &job.cancel));
                unfinished.finish(result.is_ok());
                drop(staging);
                if let Ok(s) = &result {
                    job.reporter.edit(|st| st.progress.bytes_written = s.bytes_written);
                }
                let kind = RunKind::of_set(prepared.kind);
                monitor.backup_ended(&outcome(&prepared.database, task, kind, &prepared.location, started_ms, &result));
                result
            },
            |s| {
                format!(
                    "Backup completed: {}, {}, {} in {}",
                    counted(s.documents, "document"),
                    counted(s.deletions, "deletion"),
                    counted(s.bytes_written, "byte"),
                    s.set_id
                )
            },
        )?;
        Ok(BackupHandle { set_id, job })
    }

    /// Starts compacting a chain of `location` into one new full set in the
    /// background (status in the system database's `Raven/Compact/Status`).
    /// It holds the backup slot: no backup or retention runs meanwhile.
    ///
    /// # Errors
    /// `InvalidLocation`, `CompactionAlreadyRunning`, `AlreadyRunning`,
    /// `NoBackup`, `SetNotFound`, `BrokenChain`, `ChecksumMismatch`, `InvalidEncryptionKey`.
    pub fn start_compaction(
        &self,
        location: &str,
        s3: Option<&rookery_types::S3Settings>,
        options: &CompactOptions,
    ) -> Result<BackupHandle, BackupError> {
        let location = self.open_backup_location(location, s3)?.with_lock(options.object_lock.as_ref())?;
        let compact_slot = self.compact_slot.acquire(Duration::ZERO).ok_or(BackupError::CompactionAlreadyRunning)?;
        let backup_slot = self.backup_slot.acquire(Duration::ZERO).ok_or(BackupError::AlreadyRunning)?;
        let prepared = compact::prepare(location, options)?.with_scratch_in(&self.config.data_dir);
        let first = format!(
            "Compaction of {} sets ({} to {}) started",
            prepared.chain.len(),
            prepared.set_ids().first().map_or("", String::as_str),
            prepared.set_ids().last().map_or("", String::as_str)
        );
        let reporter = StatusReporter::start(self.catalog.system(), COMPACT_STATUS_ID, compact::initial_status(&prepared), &first)?;
        let unfinished = self.record_unfinished(&prepared.location, &prepared.set_id)?;
        let set_id = prepared.set_id.clone();
        let (system, grace) = (self.catalog.system(), self.config.unfinished_set_grace());
        let (monitor, task) = (self.monitor.clone(), options.task.clone().unwrap_or_default());
        // The records are the chain's database's, when it is one of this server's.
        let database = prepared.chain.first().and_then(|s| self.catalog.get(&s.manifest.database_name));
        let job = Job::new(JobKind::Compact, compact_slot, None, reporter, &self.running, "").observed_by(&self.monitor);
        let job = job.spawn(
            "compact".to_string(),
            move |job| {
                let started_ms = now_ms();
                let result = clear_abandoned(&system, &prepared.location, &prepared.set_id, grace, &mut job.reporter)
                    .and_then(|()| compact::run(&prepared, &mut job.reporter, &job.cancel));
                unfinished.finish(result.is_ok());
                drop(backup_slot);
                if let Ok(s) = &result {
                    job.reporter.edit(|st| st.progress.bytes_written = s.bytes_written);
                }
                if let Some(db) = &database {
                    monitor.backup_ended(&outcome(db, task, RunKind::Compaction, &prepared.location, started_ms, &result));
                }
                result
            },
            |s| {
                format!(
                    "Compaction completed: {} in {} (up to etag {}), {}",
                    counted(s.documents, "document"),
                    s.set_id,
                    s.to_etag,
                    counted(s.bytes_written, "byte")
                )
            },
        )?;
        Ok(BackupHandle { set_id, job })
    }

    /// Records where a new set is written, for crash recovery: its `.tmp-`
    /// folder, or the set id in an object storage location (see [`Unfinished`]).
    fn record_unfinished(&self, location: &Location, set_id: &str) -> Result<Unfinished, BackupError> {
        record_unfinished(self.catalog.system(), location, set_id)
    }

    /// Asks the running compaction to stop: it ends with `Canceled` and leaves no set.
    #[must_use]
    pub fn cancel_compaction(&self) -> bool {
        self.running.cancel(JobKind::Compact, "")
    }

    /// A client-given backup location checked against this server's rules and
    /// roots (folders and `s3://`); `s3` overrides the `AWS_*` variables.
    ///
    /// # Errors
    /// `InvalidLocation`; `StorageUnavailable` for settings that make no client.
    pub fn open_backup_location(&self, raw: &str, s3: Option<&rookery_types::S3Settings>) -> Result<Location, BackupError> {
        super::location::open_location(
            raw,
            &self.config.data_dir,
            &self.config.effective_backup_roots(),
            &self.config.object_backup_roots(),
            s3,
        )
    }

    /// Asks the running backup of `database` to stop: it ends with `Canceled`
    /// and leaves no set. False when no backup of it runs.
    #[must_use]
    pub fn cancel_backup(&self, database: &str) -> bool {
        self.running.cancel(JobKind::Backup, database)
    }
}
