//! Rookery: a document database server with online backup and verified restore.
//!
//! [`Rookery`] is the engine; the REST API ([`api::router`]) and the binaries
//! are thin layers over it, and a Rust program can embed it directly.
//!
//! # Embedding: back up and restore without HTTP
//!
//! ```
//! use rookery::{backup::BackupOptions, config::Config, Rookery};
//! use app::api::RestoreRequest;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let rookery = Rookery::open(Config::for_tests(&dir.path().join("data")))?;
//! let db = rookery.catalog().create("Northwind")?;
//! db.store.put("orders/1", br#"{"Total": 42}"#, None)?;
//!
//! // A full backup; `wait` blocks until the set is complete.
//! let location = dir.path().join("backups").display().to_string();
//! let backup = rookery.start_backup("Northwind", BackupOptions { location: location.clone(), incremental: false, ..Default::default() })?;
//! let summary = backup.wait()?;
//! assert_eq!(summary.documents, 1);
//!
//! // Restore it under another name, verified before it becomes visible.
//! let request = RestoreRequest {
//!     backup_location: location,
//!     database_name: Some("Northwind-copy".into()),
//!     ..Default::default()
//! };
//! let restored = rookery.start_restore(&request, false)?.wait()?;
//! assert_eq!(restored.documents, 1);
//! let copy = rookery.catalog().get("Northwind-copy").expect("restored");
//! assert!(copy.store.get("orders/1")?.is_some());
//!
//! // The system database restores offline, into a data directory no server uses.
//! let system_backup = dir.path().join("system-backup").display().to_string();
//! rookery.start_backup("System", BackupOptions { location: system_backup.clone(), incremental: false, ..Default::default() })?.wait()?;
//! let new_data = dir.path().join("new-data");
//! Rookery::restore_system_database(std::path::Path::new(&system_backup), &new_data, None, false)?;
//! assert!(new_data.join("System").is_dir());
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod failpoint;
pub mod jobs;
pub mod restore;
pub mod smuggler;
pub mod storage;
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use app::api::{JobStatus, RestoreRequest, Severity, BACKUP_STATUS_ID, RESTORE_STATUS_ID};

use backup::{BackupError, BackupOptions, BackupSummary};
use config::Config;
use jobs::{JobSlot, StatusReporter};
use restore::{RestoreError, RestoreSummary};
use storage::{Catalog, StorageError};

/// The engine: a catalog of databases and the jobs that run on them.
pub struct Rookery {
    config: Config,
    catalog: Arc<Catalog>,
    backup_slot: Arc<JobSlot>,
    restore_slot: Arc<JobSlot>,
    import_slot: Arc<JobSlot>,
    export_permits: Arc<tokio::sync::Semaphore>,
    auth: auth::Authenticator,
}

/// Exports streaming at once, server-wide (each holds a snapshot and a thread).
pub const MAX_CONCURRENT_EXPORTS: usize = 4;

impl std::fmt::Debug for Rookery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rookery").field("data_dir", &self.config.data_dir).finish_non_exhaustive()
    }
}

/// A running backup.
#[derive(Debug)]
pub struct BackupHandle {
    /// The set being written.
    pub set_id: String,
    thread: JoinHandle<Result<BackupSummary, BackupError>>,
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
}

/// A running restore.
#[derive(Debug)]
pub struct RestoreHandle {
    /// The database being restored.
    pub database_name: String,
    thread: JoinHandle<Result<RestoreSummary, RestoreError>>,
}

impl RestoreHandle {
    /// Blocks until the restore ends.
    ///
    /// # Errors
    /// The restore's error (also in `Raven/Restore/Status`).
    pub fn wait(self) -> Result<RestoreSummary, RestoreError> {
        self.thread.join().unwrap_or_else(|_| Err(RestoreError::Backup(BackupError::Io("the restore thread panicked".into()))))
    }

    /// Whether the restore has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

impl Rookery {
    /// Opens the data directory of `config`, and cleans up after jobs that a
    /// crash interrupted: their status documents stop saying `IsRunning`, and
    /// their unfinished files are removed.
    ///
    /// # Errors
    /// Storage errors opening the system database.
    pub fn open(config: Config) -> Result<Self, StorageError> {
        let master = crypto::MasterKeySource::new(config.master_key_path());
        let catalog = Arc::new(Catalog::open(&config.data_dir, config.durability, master)?);
        let auth = auth::Authenticator::new(catalog.system(), config.max_failed_auth);
        let rookery = Self {
            config,
            catalog,
            backup_slot: Arc::default(),
            restore_slot: Arc::default(),
            import_slot: Arc::default(),
            export_permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_EXPORTS)),
            auth,
        };
        rookery.recover_interrupted_jobs();
        Ok(rookery)
    }

    fn recover_interrupted_jobs(&self) {
        let system = self.catalog.system();
        for db in std::iter::once(system.clone()).chain(self.catalog.list()) {
            if jobs::recover_interrupted(&db, BACKUP_STATUS_ID).is_some() {
                tracing::warn!(database = %db.name, "a backup was interrupted by a server stop");
            }
        }
        // The unfinished set folders come from the server's own records, never
        // from a document, and each is checked again before it is removed.
        let (data_dir, roots) = (self.config.data_dir.clone(), self.config.effective_backup_roots());
        jobs::remove_unfinished_folders(&system, |path| backup::engine::is_unfinished_set_folder(path, &data_dir, &roots));
        for db in std::iter::once(system.clone()).chain(self.catalog.list()) {
            if jobs::recover_interrupted(&db, app::api::SMUGGLER_STATUS_ID).is_some() {
                tracing::warn!(database = %db.name, "an import was interrupted by a server stop; the documents written before it are kept");
            }
        }
        if jobs::recover_interrupted(&system, RESTORE_STATUS_ID).is_some() {
            tracing::warn!("a restore was interrupted by a server stop; its files were removed");
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The databases.
    #[must_use]
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Users, API keys and sessions.
    #[must_use]
    pub fn auth(&self) -> &auth::Authenticator {
        &self.auth
    }

    /// The slot of imports (one at a time per server).
    #[must_use]
    pub fn import_slot(&self) -> &Arc<JobSlot> {
        &self.import_slot
    }

    /// The permits of exports (at most [`MAX_CONCURRENT_EXPORTS`] at once).
    #[must_use]
    pub fn export_permits(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.export_permits
    }

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
        let prepared = backup::prepare(db.clone(), &options, &self.config.data_dir, &self.config.effective_backup_roots())?;
        let slot = self.backup_slot.acquire(Duration::ZERO).ok_or(BackupError::AlreadyRunning)?;
        let initial = JobStatus {
            backup_location: Some(prepared.location.display().to_string()),
            incremental: prepared.kind == backup::SetKind::Incremental,
            set_id: Some(prepared.set_id.clone()),
            ..Default::default()
        };
        let first = match &prepared.base {
            Some(base) => format!("Incremental backup started on {} (from etag {})", base.set_id, base.to_etag),
            None if options.incremental && prepared.warnings.is_empty() => {
                "Full backup started (no earlier set of this database in the location)".to_string()
            }
            None => "Full backup started".to_string(),
        };
        let mut reporter = StatusReporter::start(db.clone(), BACKUP_STATUS_ID, initial, &first)?;
        for warning in &prepared.warnings {
            reporter.message(warning, Severity::Warning);
        }
        if db.store.is_encrypted() {
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
        let unfinished =
            jobs::UnfinishedFolder::record(self.catalog.system(), &backup::engine::temp_dir(&prepared.location, &prepared.set_id))?;
        let thread = std::thread::Builder::new()
            .name(format!("backup-{}", prepared.database.name))
            .spawn(move || {
                lower_priority();
                let _slot = slot;
                let _hold = hold;
                let result = backup::engine::run(&prepared, &mut reporter);
                drop(unfinished);
                match &result {
                    Ok(s) => reporter.succeed_with_bytes(
                        s.bytes_written,
                        &format!(
                            "Backup completed: {}, {}, {} in {}",
                            app::api::counted(s.documents, "document"),
                            app::api::counted(s.deletions, "deletion"),
                            app::api::counted(s.bytes_written, "byte"),
                            s.set_id
                        ),
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "backup failed");
                        reporter.fail(e.code(), &format!("Backup failed: {e}"));
                    }
                }
                result
            })
            .map_err(|e| BackupError::Io(format!("cannot start the backup thread: {e}")))?;
        Ok(BackupHandle { set_id, thread })
    }

    /// Starts restoring a backup location into a new database. Waits up to
    /// `RestoreStartTimeout` seconds for a running restore; verifies the whole
    /// chain before it returns; the database is visible only once complete.
    ///
    /// # Errors
    /// `InvalidLocation`, `DatabaseExists`, `DestinationNotEmpty`,
    /// `AlreadyRunning`, `NoBackup`, `ChecksumMismatch`, `BrokenChain`,
    /// `UnsupportedFormatVersion`, `SetNotFound`.
    pub fn start_restore(&self, request: &RestoreRequest, defrag: bool) -> Result<RestoreHandle, RestoreError> {
        let source =
            backup::location::validate_location(&request.backup_location, &self.config.data_dir, &self.config.effective_backup_roots())?;
        // Cheap refusals first, so that a doomed request does not wait for the slot.
        if let Some(name) = &request.database_name {
            self.check_name_free(name)?;
        }
        let requested_location = request.database_location.as_deref().map(|l| self.validate_database_location(l)).transpose()?;
        if let Some(location) = &requested_location {
            if storage::catalog::is_non_empty_dir(location) {
                return Err(StorageError::DestinationNotEmpty(location.clone()).into());
            }
        }
        let wait = request.restore_start_timeout.unwrap_or(15);
        let slot = self.restore_slot.acquire(Duration::from_secs(wait)).ok_or(RestoreError::AlreadyRunning(wait))?;
        let set_secret =
            backup::sealed::SetSecret::from_request(request.backup_encryption_key.as_ref(), request.backup_passphrase.as_ref())
                .map_err(RestoreError::InvalidRequest)?;
        let plan = restore::plan(&source, request.restore_up_to.as_deref(), request.encryption_key.as_deref(), set_secret.as_ref())?;
        let master = if plan.database_key.is_some() { self.catalog.master_key(true)? } else { None };
        let name = request.database_name.clone().unwrap_or_else(|| plan.database_name().to_string());
        let location = match requested_location {
            Some(l) => l,
            None => self.catalog.default_location(&name)?,
        };
        restore::check_free_space(&plan, &location)?;
        let reservation = self.catalog.reserve_restore(&name, &location)?;
        let initial = JobStatus {
            backup_location: Some(source.display().to_string()),
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
        let catalog = self.catalog.clone();
        let thread = std::thread::Builder::new()
            .name(format!("restore-{name}"))
            .spawn(move || {
                lower_priority();
                let _slot = slot;
                let result = run_restore(&catalog, &plan, &reservation, defrag, master.as_ref(), &mut reporter);
                match &result {
                    Ok(s) => reporter.succeed(&format!(
                        "Restore completed: database '{}' with {}, up to {} (etag {})",
                        s.database_name,
                        app::api::counted(s.documents, "document"),
                        s.last_set_id,
                        s.last_etag
                    )),
                    Err(e) => {
                        tracing::error!(error = %e, "restore failed");
                        reporter.fail(e.code(), &format!("Restore failed: {e}"));
                    }
                }
                result
            })
            .map_err(|e| RestoreError::Backup(BackupError::Io(format!("cannot start the restore thread: {e}"))))?;
        Ok(RestoreHandle { database_name, thread })
    }

    /// Restores the system database offline into an empty data directory,
    /// synchronously; no server may be running on `data_dir`.
    ///
    /// # Errors
    /// As [`restore::restore_system_database`].
    pub fn restore_system_database(
        source: &Path,
        data_dir: &Path,
        up_to: Option<&str>,
        defrag: bool,
    ) -> Result<RestoreSummary, RestoreError> {
        restore::restore_system_database(source, data_dir, up_to, None, defrag, &mut |_, _| {})
    }

    /// Flushes every database to stable storage (graceful shutdown).
    pub fn persist_all(&self) {
        for db in std::iter::once(self.catalog.system()).chain(self.catalog.list()) {
            if let Err(e) = db.store.persist() {
                tracing::error!(database = %db.name, error = %e, "flush at shutdown failed");
            }
        }
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
        let resolve = |p: &Path| backup::location::resolve(p).map_err(|e| bad(&format!("cannot be resolved: {e}")));
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
            let p = resolve(db.store.path())?;
            if resolved.starts_with(&p) || p.starts_with(&resolved) {
                return Err(bad(&format!("overlaps the files of database '{}'", db.name)));
            }
        }
        Ok(resolved)
    }
}

/// The body of a restore job: build, move into place, register; on any
/// failure, undo the reservation (see [`restore`] for the order of steps).
fn run_restore(
    catalog: &Catalog,
    plan: &restore::RestorePlan,
    reservation: &storage::RestoreReservation,
    defrag: bool,
    master: Option<&crypto::Key>,
    reporter: &mut StatusReporter,
) -> Result<RestoreSummary, RestoreError> {
    let result = (|| {
        let mut summary = {
            let mut progress = |done: u64, bytes: u64| reporter.progress(done, bytes);
            restore::build(plan, &reservation.staging, defrag, master, &mut progress)?
        };
        if defrag {
            reporter.message("Defragmented (compacted) the restored database", Severity::Information);
        }
        restore::move_into_place(&reservation.staging, &reservation.location)?;
        failpoint::hit("restore.before_register");
        let handle = catalog.commit_restore(reservation)?;
        summary.database_name = handle.name.clone();
        summary.location = reservation.location.clone();
        summary.documents = handle.store.document_count();
        Ok(summary)
    })();
    match &result {
        Ok(s) => reporter.edit(|st| st.set_id = Some(s.last_set_id.clone())),
        Err(_) => catalog.abort_restore(reservation),
    }
    result
}

/// Jobs yield the CPU to the requests the database keeps serving: the
/// calling thread (and the compression threads it starts) get the lowest
/// scheduling priority (niceness 19 on Linux).
fn lower_priority() {
    if let Err(e) = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min) {
        tracing::debug!(error = ?e, "cannot lower a job thread's priority");
    }
}
