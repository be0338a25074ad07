//! The engine: a catalog of databases, the slots of its jobs, its tasks and users.

use std::sync::Arc;

use crate::config::Config;
use crate::jobs::slot::JobSlot;
use crate::storage::{Catalog, StorageError};

/// The engine: a catalog of databases and the jobs that run on them.
///
/// Each capability adds its own methods from its folder: `start_backup` in
/// [`crate::backup::job`], `start_restore` in [`crate::restore::job`], `start_import` and
/// `export` in [`crate::smuggler::job`]; this file opens the engine and lends its parts.
pub struct Rookery {
    pub(crate) config: Config,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) backup_slot: Arc<JobSlot>,
    pub(crate) compact_slot: Arc<JobSlot>,
    pub(crate) restore_slot: Arc<JobSlot>,
    pub(crate) import_slot: Arc<JobSlot>,
    /// Selective restores into live databases (one at a time per server).
    pub(crate) restore_documents_slot: Arc<JobSlot>,
    /// Copies of sets between locations (one at a time per server).
    pub(crate) copy_slot: Arc<JobSlot>,
    pub(crate) export_permits: Arc<tokio::sync::Semaphore>,
    pub(crate) running: Arc<crate::jobs::Running>,
    pub(crate) tasks: crate::tasks::runtime::Tasks,
    pub(crate) auth: crate::auth::Authenticator,
    pub(crate) monitor: Arc<crate::monitor::outcomes::Monitor>,
}

/// Exports streaming at once, server-wide (each holds a snapshot and a thread).
pub const MAX_CONCURRENT_EXPORTS: usize = 4;

/// The file in the data directory that keeps the hashes of storage tables
/// already read (see `backup::kept_hashes`).
pub const KEPT_HASHES: &str = "kept-table-hashes";

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
        let master = crate::crypto::MasterKeySource::new(config.master_key_path());
        crate::backup::kept_hashes::keep_in(config.data_dir.join(KEPT_HASHES));
        let catalog = Arc::new(Catalog::open_with_roots(&config.data_dir, config.durability, master, &config.database_roots)?);
        let auth = crate::auth::Authenticator::new(catalog.system(), config.max_failed_auth);
        let monitor = Arc::new(crate::monitor::outcomes::Monitor::new(catalog.system(), config.public_url()));
        let rookery = Self {
            config,
            catalog,
            backup_slot: Arc::default(),
            compact_slot: Arc::default(),
            restore_slot: Arc::default(),
            import_slot: Arc::default(),
            restore_documents_slot: Arc::default(),
            copy_slot: Arc::default(),
            export_permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_EXPORTS)),
            running: Arc::default(),
            tasks: crate::tasks::runtime::Tasks::default(),
            auth,
            monitor,
        };
        rookery.recover_interrupted_jobs();
        Ok(rookery)
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
    pub fn auth(&self) -> &crate::auth::Authenticator {
        &self.auth
    }

    /// Metrics, records and notifications.
    #[must_use]
    pub fn monitor(&self) -> &crate::monitor::outcomes::Monitor {
        &self.monitor
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
