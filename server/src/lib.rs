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
//! db.store().put("orders/1", br#"{"Total": 42}"#, None)?;
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
//! assert!(copy.store().get("orders/1")?.is_some());
//!
//! // The system database restores offline, into a data directory no server uses.
//! let system_backup = dir.path().join("system-backup").display().to_string();
//! rookery.start_backup("System", BackupOptions { location: system_backup.clone(), incremental: false, ..Default::default() })?.wait()?;
//! let new_data = dir.path().join("new-data");
//! let source = rookery::backup::location::Location::Folder(system_backup.into());
//! Rookery::restore_system_database(&source, &new_data, None, false)?;
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
pub mod paths;
pub mod restore;
pub mod smuggler;
pub mod storage;
pub mod tasks;
pub mod web;

use std::sync::Arc;

use app::api::{BACKUP_STATUS_ID, RESTORE_STATUS_ID};

pub use backup::BackupHandle;
use config::Config;
use jobs::JobSlot;
pub use restore::RestoreHandle;
use storage::{Catalog, StorageError};

/// The engine: a catalog of databases and the jobs that run on them.
///
/// Each capability adds its own methods from its folder: `start_backup` in
/// [`backup::job`], `start_restore` in [`restore::job`], `start_import` and
/// `export` in [`smuggler::job`]; this file opens the engine and lends its parts.
pub struct Rookery {
    pub(crate) config: Config,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) backup_slot: Arc<JobSlot>,
    pub(crate) compact_slot: Arc<JobSlot>,
    pub(crate) restore_slot: Arc<JobSlot>,
    pub(crate) import_slot: Arc<JobSlot>,
    pub(crate) export_permits: Arc<tokio::sync::Semaphore>,
    pub(crate) running: Arc<jobs::Running>,
    pub(crate) tasks: tasks::scheduler::Tasks,
    pub(crate) auth: auth::Authenticator,
}

/// Exports streaming at once, server-wide (each holds a snapshot and a thread).
pub const MAX_CONCURRENT_EXPORTS: usize = 4;

impl std::fmt::Debug for Rookery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rookery").field("data_dir", &self.config.data_dir).finish_non_exhaustive()
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
        let catalog = Arc::new(Catalog::open_with_roots(&config.data_dir, config.durability, master, &config.database_roots)?);
        let auth = auth::Authenticator::new(catalog.system(), config.max_failed_auth);
        let rookery = Self {
            config,
            catalog,
            backup_slot: Arc::default(),
            compact_slot: Arc::default(),
            restore_slot: Arc::default(),
            import_slot: Arc::default(),
            export_permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_EXPORTS)),
            running: Arc::default(),
            tasks: tasks::scheduler::Tasks::default(),
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
        if jobs::recover_interrupted(&system, app::api::COMPACT_STATUS_ID).is_some() {
            tracing::warn!("a compaction was interrupted by a server stop");
        }
        // The unfinished set folders come from the server's own records, never
        // from a document, and each is checked again before it is removed.
        let (data_dir, roots) = (self.config.data_dir.clone(), self.config.effective_backup_roots());
        jobs::remove_unfinished_folders(&system, |path| {
            backup::engine::is_unfinished_set_folder(path, &data_dir, &roots)
                || storage::files::is_staging_dir(path)
                || tasks::drill::is_drill_scratch(path, &data_dir)
        });
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

    /// Flushes every database to stable storage (graceful shutdown).
    pub fn persist_all(&self) {
        for db in std::iter::once(self.catalog.system()).chain(self.catalog.list()) {
            if let Err(e) = db.store().persist() {
                tracing::error!(database = %db.name, error = %e, "flush at shutdown failed");
            }
        }
    }
}
