//! Rookery: a document database server with online backup and verified restore.
//!
//! [`Rookery`] is the engine: storage, backup, restore, import and export,
//! jobs, tasks and users. It builds without the web (`--no-default-features`):
//! the REST API ([`api::router`], feature `http`) and the studio (`web`,
//! feature `ssr`) are thin layers over it, and the binaries thinner still.
//! A Rust program embeds the engine directly; `examples/embedded.rs` backs a
//! database up, restores it under another name and restores the system
//! database offline, all without HTTP.

#[cfg(feature = "http")]
pub mod api;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod durable;
pub mod failpoint;
pub mod jobs;
pub mod paths;
pub mod restore;
pub mod smuggler;
pub mod storage;
pub mod tasks;
#[cfg(feature = "ssr")]
pub mod web;

use std::sync::Arc;

use rookery_types::{BACKUP_STATUS_ID, RESTORE_STATUS_ID};

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
        if jobs::recover_interrupted(&system, rookery_types::COMPACT_STATUS_ID).is_some() {
            tracing::warn!("a compaction was interrupted by a server stop");
        }
        // The unfinished set folders come from the server's own records, never
        // from a document, and each is checked again before it is removed.
        let (data_dir, roots) = (self.config.data_dir.clone(), self.config.effective_backup_roots());
        jobs::remove_unfinished_folders(&system, |path| {
            backup::target::is_unfinished_set_folder(path, &data_dir, &roots)
                || storage::files::is_staging_dir(path)
                || tasks::drill::is_drill_scratch(path, &data_dir)
        });
        for db in std::iter::once(system.clone()).chain(self.catalog.list()) {
            if jobs::recover_interrupted(&db, rookery_types::SMUGGLER_STATUS_ID).is_some() {
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
