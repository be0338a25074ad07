//! A restore as a job: the cheap checks before the 202, then the build in
//! the background (see [`crate::jobs`] and the order of steps in [`super`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rookery_types::{counted, ErrorCode, JobStatus, RestoreRequest, Severity, RESTORE_STATUS_ID};

use super::build::{build_open, move_into_place, settle_in_place, RestoreSummary};
use super::error::RestoreError;
use super::plan::{check_free_space, plan, ChainChoice, RestorePlan};
use crate::backup::error::BackupError;
use crate::engine::Rookery;
use crate::jobs::{Completion, Job, JobError, JobKind, JobThread, StatusReporter};
use crate::storage::{Catalog, RestoreReservation, StorageError};

/// A running restore.
#[derive(Debug)]
pub struct RestoreHandle {
    /// The database being restored.
    pub database_name: String,
    job: JobThread<RestoreSummary, RestoreError>,
}

impl RestoreHandle {
    /// Blocks until the restore ends.
    ///
    /// # Errors
    /// The restore's error (also in `Raven/Restore/Status`).
    pub fn wait(self) -> Result<RestoreSummary, RestoreError> {
        self.job.wait()
    }

    /// Whether the restore has ended.
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

impl JobError for RestoreError {
    fn code(&self) -> ErrorCode {
        RestoreError::code(self)
    }

    fn thread_failed(message: String) -> Self {
        RestoreError::Backup(BackupError::Io(message))
    }
}

impl Rookery {
    /// Starts restoring a backup location into a new database. Waits up to
    /// `RestoreStartTimeout` seconds for a running restore; verifies the whole
    /// chain before it returns; the database is visible only once complete.
    ///
    /// # Errors
    /// `InvalidLocation`, `DatabaseExists`, `DestinationNotEmpty`,
    /// `AlreadyRunning`, `NoBackup`, `ChecksumMismatch`, `BrokenChain`,
    /// `UnsupportedFormatVersion`, `SetNotFound`.
    pub fn start_restore(&self, request: &RestoreRequest, defrag: bool) -> Result<RestoreHandle, RestoreError> {
        let source = self.open_backup_location(&request.backup_location, request.s3.as_ref())?;
        // Cheap refusals first, so that a doomed request does not wait for the slot.
        if let Some(name) = &request.database_name {
            self.check_name_free(name)?;
        }
        let requested_location = request.database_location.as_deref().map(|l| self.validate_database_location(l)).transpose()?;
        if let Some(location) = &requested_location {
            if crate::storage::catalog::is_non_empty_dir(location) {
                return Err(StorageError::DestinationNotEmpty(location.clone()).into());
            }
        }
        let wait = request.restore_start_timeout.unwrap_or(15);
        let slot = self.restore_slot.acquire(Duration::from_secs(wait)).ok_or(RestoreError::AlreadyRunning(wait))?;
        let set_secret =
            crate::backup::sealed::SetSecret::from_request(request.backup_encryption_key.as_ref(), request.backup_passphrase.as_ref())
                .map_err(RestoreError::InvalidRequest)?;
        let choice = ChainChoice { up_to: request.restore_up_to.as_deref(), database: request.source_database_name.as_deref() };
        let plan = plan(&source, choice, request.encryption_key.as_deref(), set_secret.as_ref())?;
        let master = if plan.database_key.is_some() { self.catalog.master_key(true)? } else { None };
        let name = request.database_name.clone().unwrap_or_else(|| plan.database_name().to_string());
        let location = match requested_location {
            Some(l) => l,
            None => self.catalog.default_location(&name)?,
        };
        check_free_space(&plan, &location)?;
        let reservation = self.catalog.reserve_restore(&name, &location)?;
        let initial = JobStatus {
            backup_location: Some(source.to_string()),
            set_id: Some(plan.last_set_id().to_string()),
            database_name: Some(name.clone()),
            ..Default::default()
        };
        let system = self.catalog.system();
        let mut reporter = match StatusReporter::start(
            system,
            RESTORE_STATUS_ID,
            initial,
            &format!(
                "Restore of '{name}' started from {} ({} sets; manifests and links checked, every file is hashed as it streams)",
                plan.last_set_id(),
                plan.chain.len()
            ),
        ) {
            Ok(r) => r,
            Err(e) => {
                self.catalog.abort_restore(&reservation);
                return Err(e.into());
            }
        };
        reporter.set_total(plan.total_records());
        let database_name = name.clone();
        let (catalog, monitor) = (self.catalog.clone(), self.monitor.clone());
        let job = Job::new(JobKind::Restore, slot, None, reporter, &self.running, "").observed_by(&self.monitor);
        let job = job.spawn(
            format!("restore-{name}"),
            move |job| {
                let result = run_restore(&catalog, &plan, &reservation, defrag, master.as_ref(), job);
                let ended = result.as_ref().map(|s| s.last_set_id.as_str()).map_err(|e| (e.code(), e.to_string()));
                monitor.restore_ended(&name, ended.as_ref().map(|s| *s).map_err(|(c, m)| (*c, m.as_str())));
                result
            },
            |s| {
                format!(
                    "Restore completed: database '{}' with {}, up to {} (etag {})",
                    s.database_name,
                    counted(s.documents, "document"),
                    s.last_set_id,
                    s.last_etag
                )
            },
        )?;
        Ok(RestoreHandle { database_name, job })
    }

    /// Asks the running restore to stop: it ends with `Canceled` and leaves
    /// no database and no files. False when no restore runs.
    #[must_use]
    pub fn cancel_restore(&self) -> bool {
        self.running.cancel(JobKind::Restore, "")
    }

    fn check_name_free(&self, name: &str) -> Result<(), RestoreError> {
        self.catalog.default_location(name)?;
        if self.catalog.get(name).is_some() {
            return Err(StorageError::DatabaseExists(name.to_string()).into());
        }
        Ok(())
    }

    /// A client-given `DatabaseLocation`, by the rules of backup locations:
    /// absolute, no `.`/`..`, symlinks resolved, inside the data directory or
    /// a `--database-root`, never inside a backup root outside the data
    /// directory (where sets live), never over another database's files.
    fn validate_database_location(&self, raw: &str) -> Result<PathBuf, RestoreError> {
        let path = Path::new(raw);
        let bad = |why: &str| RestoreError::InvalidDatabaseLocation(format!("DatabaseLocation '{}' {why}", raw.escape_debug()));
        if raw.contains('\0') || !path.is_absolute() {
            return Err(bad("is not an absolute path"));
        }
        if path.components().any(|c| matches!(c, std::path::Component::ParentDir | std::path::Component::CurDir)) {
            return Err(bad("must not contain '.' or '..' components"));
        }
        let resolve = |p: &Path| crate::backup::location::resolve(p).map_err(|e| bad(&format!("cannot be resolved: {e}")));
        let resolved = resolve(path)?;
        if resolved.parent().is_none() {
            return Err(bad("is a filesystem root"));
        }
        let data_dir = resolve(&self.config.data_dir)?;
        let in_data = resolved.starts_with(&data_dir);
        let mut roots = Vec::new();
        for root in &self.config.database_roots {
            roots.push(resolve(root)?);
        }
        if !in_data && !roots.iter().any(|r| resolved.starts_with(r)) {
            let mut allowed = vec![data_dir.display().to_string()];
            allowed.extend(roots.iter().map(|r| r.display().to_string()));
            return Err(bad(&format!("is outside the data directory and every --database-root ({})", allowed.join(", "))));
        }
        if !in_data {
            for root in self.config.effective_backup_roots() {
                if resolve(&root).is_ok_and(|r| resolved.starts_with(r)) {
                    return Err(bad("is inside a backup root, where backup sets live"));
                }
            }
        }
        let system = self.catalog.system();
        for db in std::iter::once(system).chain(self.catalog.list()) {
            let p = resolve(db.store().path())?;
            if resolved.starts_with(&p) || p.starts_with(&resolved) {
                return Err(bad(&format!("overlaps the files of database '{}'", db.name)));
            }
        }
        Ok(resolved)
    }
}

/// The body of a restore job: build, move into place, register; on any
/// failure, undo the reservation (see [`super`] for the order of steps).
fn run_restore(
    catalog: &Catalog,
    plan: &RestorePlan,
    reservation: &RestoreReservation,
    defrag: bool,
    master: Option<&crate::crypto::Key>,
    job: &mut Job,
) -> Result<RestoreSummary, RestoreError> {
    let (reporter, cancel) = (&mut job.reporter, &job.cancel);
    // Undone on every way out but success, a panic included: no name stays
    // reserved and no staging folder stays behind.
    let mut undo = UndoReservation { catalog, reservation, armed: true };
    let result = (|| {
        let (mut summary, store) = {
            let mut progress = |done: u64, bytes: u64| reporter.progress(done, bytes);
            build_open(plan, reservation.build_dir(), defrag, master, cancel, &mut progress)?
        };
        if defrag {
            reporter.message("Defragmented (compacted) the restored database", Severity::Information);
        }
        if cancel.is_canceled() {
            return Err(RestoreError::Canceled);
        }
        // Built where it belongs, it is served as it is; built beside an
        // empty folder given by the operator, it is closed, moved over the
        // folder, and opened there.
        let built = if reservation.builds_in_place() {
            settle_in_place(&reservation.location)?;
            Some(store)
        } else {
            drop(store);
            move_into_place(&reservation.staging, &reservation.location)?;
            None
        };
        crate::failpoint::hit("restore.before_register");
        let handle = catalog.commit_restore(reservation, built)?;
        summary.database_name = handle.name.clone();
        summary.location = reservation.location.clone();
        summary.documents = handle.store().document_count();
        Ok(summary)
    })();
    if let Ok(s) = &result {
        undo.armed = false;
        reporter.edit(|st| st.set_id = Some(s.last_set_id.clone()));
    }
    result
}

/// Rolls a restore's reservation back when dropped armed.
struct UndoReservation<'a> {
    catalog: &'a Catalog,
    reservation: &'a RestoreReservation,
    armed: bool,
}

impl Drop for UndoReservation<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.catalog.abort_restore(self.reservation);
        }
    }
}
