//! The catalog: the system database and the named databases of a data directory.
//!
//! The registry lives in the system database's `internal` keyspace, one entry
//! per named database. Creating, restoring and deleting a database each write
//! an intent first (`Creating`, `Restoring`, `Deleting`) and finish with
//! `Ready` (or by removing the entry), so that a crash at any step leaves
//! something the next start can finish or undo: entries that are not `Ready`
//! are rolled back at open, their folders removed. No half-made database is
//! ever served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::error::StorageError;
use super::store::{DocumentStore, Durability};
use rookery_types::SYSTEM_DATABASE;

const REGISTRY_PREFIX: &str = "databases/";

/// One open database.
#[derive(Debug)]
pub struct DatabaseHandle {
    /// The name as it was created (`System` for the system database).
    pub name: String,
    /// Private: reads and writes go through the store's methods, which keep
    /// the rules (client writes never touch server-owned documents).
    store: DocumentStore,
    /// Jobs (backups) using this database right now; a busy database cannot be deleted.
    pub jobs: AtomicUsize,
    is_system: bool,
}

impl DatabaseHandle {
    /// The database's documents.
    #[must_use]
    pub fn store(&self) -> &DocumentStore {
        &self.store
    }

    /// Whether this is the system database.
    #[must_use]
    pub fn is_system(&self) -> bool {
        self.is_system
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum EntryState {
    Creating,
    Restoring,
    Deleting,
    Ready,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegistryEntry {
    name: String,
    location: PathBuf,
    state: EntryState,
    /// Creation order, for listings.
    seq: u64,
    /// Folders to remove if the entry is rolled back.
    #[serde(default)]
    cleanup: Vec<PathBuf>,
}

impl RegistryEntry {
    /// Makes the paths an older server recorded relative to the folder it
    /// was started from (`--data-dir ./data`) absolute, read from the folder
    /// this server starts from; whether any changed.
    fn absolutize(&mut self) -> std::io::Result<bool> {
        let mut changed = false;
        for path in std::iter::once(&mut self.location).chain(&mut self.cleanup) {
            if path.is_relative() {
                *path = crate::paths::resolve(path)?;
                changed = true;
            }
        }
        Ok(changed)
    }
}

/// A job's hold on a database (backup, export, import): while one exists, the
/// database cannot be deleted (409 `DatabaseBusy`). Dropping it releases it.
#[derive(Debug)]
pub struct JobHold(Arc<DatabaseHandle>);

impl JobHold {
    /// The database held.
    #[must_use]
    pub fn database(&self) -> &Arc<DatabaseHandle> {
        &self.0
    }
}

impl Drop for JobHold {
    fn drop(&mut self) {
        self.0.jobs.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a delete waits for requests still using a database before it
/// leaves the files to the next start (the registry entry says `Deleting`).
const DELETE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A name and a location reserved for a database being restored.
#[derive(Debug)]
pub struct RestoreReservation {
    pub name: String,
    pub location: PathBuf,
    /// Where the restore builds the database before moving it to
    /// `location`, when `location` is an empty folder that was there before.
    pub staging: PathBuf,
    key: String,
    /// Whether the restore makes `location` itself (see [`Self::build_dir`]).
    makes_location: bool,
}

impl RestoreReservation {
    /// Where the restore builds the database: at its location when the
    /// restore makes that folder (a failure, or a crash at the next start,
    /// removes it with the reservation, and the name serves nothing until
    /// the entry is `Ready`), else in the staging folder beside it, moved
    /// over the empty folder once built (an empty folder given by the
    /// operator is never filled with a half-built database).
    #[must_use]
    pub fn build_dir(&self) -> &Path {
        if self.makes_location {
            &self.location
        } else {
            &self.staging
        }
    }

    /// Whether [`Self::build_dir`] is the location itself.
    #[must_use]
    pub fn builds_in_place(&self) -> bool {
        self.makes_location
    }
}

/// The databases of one data directory.
pub struct Catalog {
    master: crate::crypto::MasterKeySource,
    data_dir: PathBuf,
    durability: Durability,
    system: Arc<DatabaseHandle>,
    databases: RwLock<BTreeMap<String, (u64, Arc<DatabaseHandle>)>>,
    next_seq: AtomicU64,
    /// Where databases may live: the data directory and the `--database-root`s.
    /// Every path of the registry is checked against them before the
    /// catalog opens or removes it (the registry may come from a backup).
    roots: Vec<PathBuf>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

impl Catalog {
    /// Opens the data directory: the system database, then every registered
    /// database; rolls back whatever a crash left half done.
    ///
    /// # Errors
    /// Storage errors of the system database. A named database that fails to
    /// open is logged and left out, so that one bad database does not stop the server.
    pub fn open(data_dir: &Path, durability: Durability, master: crate::crypto::MasterKeySource) -> Result<Self, StorageError> {
        Self::open_with_roots(data_dir, durability, master, &[])
    }

    /// [`Catalog::open`], with the `--database-root`s where restored databases may also live.
    ///
    /// # Errors
    /// As [`Catalog::open`].
    pub fn open_with_roots(
        data_dir: &Path,
        durability: Durability,
        master: crate::crypto::MasterKeySource,
        database_roots: &[PathBuf],
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(data_dir.join("Databases"))?;
        // Every path the registry records is absolute, whatever folder the
        // server is started from next (`--data-dir ./data` included).
        let data_dir = &crate::paths::resolve(data_dir)?;
        let system = DocumentStore::open(&data_dir.join("System"), durability)?;
        let system =
            Arc::new(DatabaseHandle { name: SYSTEM_DATABASE.to_string(), store: system, jobs: AtomicUsize::new(0), is_system: true });
        let catalog = Self {
            master,
            data_dir: data_dir.to_path_buf(),
            durability,
            system,
            databases: RwLock::new(BTreeMap::new()),
            next_seq: AtomicU64::new(1),
            roots: std::iter::once(data_dir.to_path_buf()).chain(database_roots.iter().cloned()).collect(),
        };
        let mut max_seq = 0;
        for (key, mut entry) in catalog.registry_entries()? {
            max_seq = max_seq.max(entry.seq);
            if entry.absolutize()? {
                catalog.write_entry(&key, &entry)?;
            }
            if entry.state != EntryState::Ready {
                tracing::warn!(database = %entry.name, state = ?entry.state, "rolling back an unfinished operation");
                catalog.roll_back(&key, &entry)?;
                continue;
            }
            if !catalog.is_database_path(&entry.location) {
                tracing::error!(database = %entry.name, location = %entry.location.display(), "a registry entry outside the data directory and every database root; skipped");
                continue;
            }
            match DocumentStore::open(&entry.location, durability).and_then(|store| catalog.unlock(store)) {
                Ok(store) => {
                    let handle = Arc::new(DatabaseHandle { name: entry.name.clone(), store, jobs: AtomicUsize::new(0), is_system: false });
                    catalog.write_map().insert(key_name(&key).to_string(), (entry.seq, handle));
                }
                Err(e) => tracing::error!(database = %entry.name, error = %e, "cannot open database; skipped"),
            }
        }
        catalog.next_seq.store(max_seq + 1, Ordering::SeqCst);
        Ok(catalog)
    }

    /// Unlocks an encrypted store with the master key.
    fn unlock(&self, store: DocumentStore) -> Result<DocumentStore, StorageError> {
        if store.is_encrypted() {
            let master = self.master.get(false)?.ok_or_else(|| {
                StorageError::Locked(format!("no master key at '{}' nor in ROOKERY_MASTER_KEY", self.master.path().display()))
            })?;
            store.unlock(&master)?;
        }
        Ok(store)
    }

    /// The server's master key, created when `create` and missing.
    ///
    /// # Errors
    /// A master key file that cannot be read or created.
    pub fn master_key(&self, create: bool) -> Result<Option<crate::crypto::Key>, StorageError> {
        Ok(self.master.get(create)?)
    }

    /// The data directory.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The durability of writes in every database of this catalog.
    #[must_use]
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The system database.
    #[must_use]
    pub fn system(&self) -> Arc<DatabaseHandle> {
        self.system.clone()
    }

    /// A database by name (case-insensitive); `System` is the system database.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<DatabaseHandle>> {
        if name.eq_ignore_ascii_case(SYSTEM_DATABASE) {
            return Some(self.system());
        }
        self.read_map().get(&name.to_ascii_lowercase()).map(|(_, h)| h.clone())
    }

    /// Every named database, in creation order.
    #[must_use]
    pub fn list(&self) -> Vec<Arc<DatabaseHandle>> {
        let mut all: Vec<_> = self.read_map().values().cloned().collect();
        all.sort_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, h)| h).collect()
    }

    /// Creates an empty named database in `DATA/Databases/<name>`.
    ///
    /// # Errors
    /// `InvalidName`, `DatabaseExists`, `DestinationNotEmpty`, storage errors.
    pub fn create(&self, name: &str) -> Result<Arc<DatabaseHandle>, StorageError> {
        self.create_with(name, None)
    }

    /// Creates a named database whose documents are encrypted at rest with a
    /// new random key; returns the database and the key (shown once to the user).
    ///
    /// # Errors
    /// As [`Catalog::create`], and a master key that cannot be had.
    pub fn create_encrypted(&self, name: &str) -> Result<(Arc<DatabaseHandle>, crate::crypto::Key), StorageError> {
        let master = self.master.get(true)?.ok_or_else(|| StorageError::Locked("no master key".into()))?;
        let key = crate::crypto::Key::random();
        let handle = self.create_with(name, Some((key.clone(), master)))?;
        Ok((handle, key))
    }

    fn create_with(
        &self,
        name: &str,
        encryption: Option<(crate::crypto::Key, crate::crypto::Key)>,
    ) -> Result<Arc<DatabaseHandle>, StorageError> {
        let location = self.default_location(name)?;
        let key = self.reserve(name, &location, EntryState::Creating, vec![location.clone()])?;
        if is_non_empty_dir(&location) {
            self.delete_entry(&key)?;
            return Err(StorageError::DestinationNotEmpty(location));
        }
        let result = DocumentStore::open(&location, self.durability)
            .and_then(|store| match encryption {
                Some((key, master)) => store.enable_encryption(key, &master).map(|()| store),
                None => Ok(store),
            })
            .and_then(|store| self.publish(&key, store));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&location);
            let _ = self.delete_entry(&key);
        }
        result
    }

    /// Takes a job's hold on `db`, atomically with respect to [`Catalog::delete`]:
    /// either the delete sees the hold (and answers `DatabaseBusy`), or the
    /// hold sees the database gone (`NotFound`).
    ///
    /// # Errors
    /// `NotFound` when the database was deleted meanwhile.
    pub fn hold(&self, db: &Arc<DatabaseHandle>) -> Result<JobHold, StorageError> {
        let map = self.read_map();
        if !db.is_system() && !map.values().any(|(_, h)| Arc::ptr_eq(h, db)) {
            return Err(StorageError::NotFound);
        }
        db.jobs.fetch_add(1, Ordering::SeqCst);
        drop(map);
        Ok(JobHold(db.clone()))
    }

    /// Deletes a named database and its folder. The folder is removed once
    /// the last request using the database has let go of it (or, if one still
    /// holds it after a few seconds, at the next start). A database that
    /// failed to open can be deleted too.
    ///
    /// # Errors
    /// `NotFound`, `DatabaseBusy` while a job (backup, export, import) holds it, storage errors.
    pub fn delete(&self, name: &str) -> Result<(), StorageError> {
        if name.eq_ignore_ascii_case(SYSTEM_DATABASE) {
            return Err(StorageError::InvalidName("the system database cannot be deleted".into()));
        }
        let key = registry_key(name);
        let handle = {
            let mut map = self.write_map();
            match map.get(key_name(&key)) {
                Some((_, handle)) => {
                    if handle.jobs.load(Ordering::SeqCst) > 0 {
                        return Err(StorageError::DatabaseBusy(handle.name.clone()));
                    }
                    let handle = handle.clone();
                    map.remove(key_name(&key));
                    Some(handle)
                }
                // Registered but not open (it failed to open at start): deletable.
                None => match self.read_entry(&key)? {
                    Some(entry) if entry.state == EntryState::Ready => None,
                    _ => return Err(StorageError::NotFound),
                },
            }
        };
        let mut entry = self.read_entry(&key)?.ok_or(StorageError::NotFound)?;
        entry.state = EntryState::Deleting;
        entry.cleanup = vec![entry.location.clone()];
        self.write_entry(&key, &entry)?;
        let location = entry.location.clone();
        if !self.is_database_path(&location) {
            tracing::error!(database = %entry.name, "its registry entry names a folder outside the data directory; only the entry is removed");
            return self.delete_entry(&key);
        }
        if let Some(handle) = handle {
            let deadline = std::time::Instant::now() + DELETE_WAIT;
            while Arc::strong_count(&handle) > 1 {
                if std::time::Instant::now() >= deadline {
                    tracing::warn!(database = %entry.name, "still in use after the delete; its files go at the next start");
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            drop(handle);
        }
        std::fs::remove_dir_all(&location).or_else(ignore_not_found)?;
        self.delete_entry(&key)
    }

    /// The folder a named database gets when none is given.
    ///
    /// # Errors
    /// `InvalidName`.
    pub fn default_location(&self, name: &str) -> Result<PathBuf, StorageError> {
        validate_name(name)?;
        Ok(self.data_dir.join("Databases").join(name))
    }

    /// Reserves `name` for a restore into `location` (which must not exist or be empty).
    ///
    /// # Errors
    /// `InvalidName`, `DatabaseExists`, `DestinationNotEmpty`, storage errors.
    pub fn reserve_restore(&self, name: &str, location: &Path) -> Result<RestoreReservation, StorageError> {
        validate_name(name)?;
        if name.eq_ignore_ascii_case(SYSTEM_DATABASE) || self.get(name).is_some() {
            return Err(StorageError::DatabaseExists(name.to_string()));
        }
        if is_non_empty_dir(location) || (location.exists() && !location.is_dir()) {
            return Err(StorageError::DestinationNotEmpty(location.to_path_buf()));
        }
        let parent = location.parent().ok_or_else(|| StorageError::InvalidName("location has no parent".into()))?;
        let base = location.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let staging = parent.join(format!(".{base}.restoring-{}", uuid::Uuid::new_v4().simple()));
        let mut cleanup = vec![staging.clone()];
        let makes_location = !location.exists();
        if makes_location {
            cleanup.push(location.to_path_buf());
        }
        let key = self.reserve(name, location, EntryState::Restoring, cleanup)?;
        Ok(RestoreReservation { name: name.to_string(), location: location.to_path_buf(), staging, key, makes_location })
    }

    /// Registers a restored database once its folder is in place: `built`,
    /// the store the restore built there and kept open, or opened again.
    ///
    /// # Errors
    /// Storage errors (the reservation is then rolled back).
    pub fn commit_restore(
        &self,
        reservation: &RestoreReservation,
        built: Option<DocumentStore>,
    ) -> Result<Arc<DatabaseHandle>, StorageError> {
        let opened = match built {
            Some(store) if store.path() == reservation.location => Ok(store.with_durability(self.durability)),
            Some(store) => {
                drop(store);
                DocumentStore::open(&reservation.location, self.durability)
            }
            None => DocumentStore::open(&reservation.location, self.durability),
        };
        let result = opened.and_then(|store| self.unlock(store)).and_then(|store| self.publish(&reservation.key, store));
        if result.is_err() {
            self.abort_restore(reservation);
        }
        result
    }

    /// Undoes a reservation: removes the staging folder, the location if the
    /// restore made it, and the registry entry.
    pub fn abort_restore(&self, reservation: &RestoreReservation) {
        match self.read_entry(&reservation.key) {
            Ok(Some(entry)) => {
                if let Err(e) = self.roll_back(&reservation.key, &entry) {
                    tracing::error!(error = %e, "rolling back a restore failed");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "reading a restore reservation failed"),
        }
    }

    fn reserve(&self, name: &str, location: &Path, state: EntryState, cleanup: Vec<PathBuf>) -> Result<String, StorageError> {
        validate_name(name)?;
        if name.eq_ignore_ascii_case(SYSTEM_DATABASE) {
            return Err(StorageError::DatabaseExists(SYSTEM_DATABASE.to_string()));
        }
        let key = registry_key(name);
        // The map lock serializes reservations, so two requests cannot take one name.
        let map = self.write_map();
        if map.contains_key(key_name(&key)) || self.read_entry(&key)?.is_some() {
            return Err(StorageError::DatabaseExists(name.to_string()));
        }
        let entry = RegistryEntry {
            name: name.to_string(),
            location: location.to_path_buf(),
            state,
            seq: self.next_seq.fetch_add(1, Ordering::SeqCst),
            cleanup,
        };
        self.write_entry(&key, &entry)?;
        drop(map);
        Ok(key)
    }

    fn publish(&self, key: &str, store: DocumentStore) -> Result<Arc<DatabaseHandle>, StorageError> {
        let mut entry = self.read_entry(key)?.ok_or(StorageError::NotFound)?;
        entry.state = EntryState::Ready;
        entry.cleanup.clear();
        self.write_entry(key, &entry)?;
        let handle = Arc::new(DatabaseHandle { name: entry.name.clone(), store, jobs: AtomicUsize::new(0), is_system: false });
        self.write_map().insert(key_name(key).to_string(), (entry.seq, handle.clone()));
        Ok(handle)
    }

    fn roll_back(&self, key: &str, entry: &RegistryEntry) -> Result<(), StorageError> {
        for path in &entry.cleanup {
            if self.is_database_path(path) {
                std::fs::remove_dir_all(path).or_else(ignore_not_found)?;
            } else {
                tracing::error!(path = %path.display(), "a registry entry names a folder outside the data directory and every database root; left in place");
            }
        }
        self.delete_entry(key)
    }

    /// Whether `path` may hold a named database: strictly inside the data
    /// directory or a database root, and not one of the data directory's own
    /// folders (`System`, `Databases`).
    fn is_database_path(&self, path: &Path) -> bool {
        let resolve = |p: &Path| crate::paths::resolve(p).ok();
        let (Some(resolved), Some(system), Some(databases)) =
            (resolve(path), resolve(&self.data_dir.join("System")), resolve(&self.data_dir.join("Databases")))
        else {
            return false;
        };
        crate::paths::is_strictly_inside(path, &self.roots) && !resolved.starts_with(&system) && resolved != databases
    }

    fn registry_entries(&self) -> Result<Vec<(String, RegistryEntry)>, StorageError> {
        let mut out = Vec::new();
        for guard in self.system.store().internal().prefix(REGISTRY_PREFIX) {
            let (k, v) = guard.into_inner()?;
            let key = String::from_utf8_lossy(&k).to_string();
            let entry: RegistryEntry =
                serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt(format!("registry entry {key}: {e}")))?;
            out.push((key, entry));
        }
        Ok(out)
    }

    fn read_entry(&self, key: &str) -> Result<Option<RegistryEntry>, StorageError> {
        match self.system.store().internal().get(key)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| StorageError::Corrupt(format!("registry entry {key}: {e}"))),
        }
    }

    fn write_entry(&self, key: &str, entry: &RegistryEntry) -> Result<(), StorageError> {
        let raw = serde_json::to_vec(entry).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        self.system.store().internal().insert(key, raw)?;
        self.system.store().persist()
    }

    fn delete_entry(&self, key: &str) -> Result<(), StorageError> {
        self.system.store().internal().remove(key)?;
        self.system.store().persist()
    }

    fn read_map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, (u64, Arc<DatabaseHandle>)>> {
        self.databases.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_map(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, (u64, Arc<DatabaseHandle>)>> {
        self.databases.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn registry_key(name: &str) -> String {
    format!("{REGISTRY_PREFIX}{}", name.to_ascii_lowercase())
}

fn key_name(key: &str) -> &str {
    key.strip_prefix(REGISTRY_PREFIX).unwrap_or(key)
}

fn validate_name(name: &str) -> Result<(), StorageError> {
    if rookery_types::is_valid_database_name(name) {
        Ok(())
    } else {
        Err(StorageError::InvalidName(format!(
            "'{}' is not a valid database name: use 1 to 64 of A-Z a-z 0-9 _ . -, not starting with '.'",
            name.escape_debug()
        )))
    }
}

/// Whether `path` is a directory with at least one entry.
#[must_use]
pub fn is_non_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).map(|mut d| d.next().is_some()).unwrap_or(false)
}

fn ignore_not_found(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_delete_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let catalog = Catalog::open(dir.path(), Durability::Os, crate::crypto::MasterKeySource::new(dir.path().join("master.key")))
                .expect("opens");
            catalog.create("Zeta").expect("creates");
            catalog.create("alpha").expect("creates");
            assert!(matches!(catalog.create("ZETA"), Err(StorageError::DatabaseExists(_))));
            assert!(matches!(catalog.create("System"), Err(StorageError::DatabaseExists(_))));
            assert!(matches!(catalog.create("../x"), Err(StorageError::InvalidName(_))));
            catalog.get("zeta").expect("found").store().put("a", b"{}", None).expect("put");
        }
        let catalog =
            Catalog::open(dir.path(), Durability::Os, crate::crypto::MasterKeySource::new(dir.path().join("master.key"))).expect("reopens");
        let names: Vec<_> = catalog.list().iter().map(|h| h.name.clone()).collect();
        assert_eq!(names, ["Zeta", "alpha"]);
        assert_eq!(catalog.get("Zeta").expect("found").store().document_count(), 1);
        catalog.delete("zeta").expect("deletes");
        assert!(catalog.get("Zeta").is_none());
        assert!(!dir.path().join("Databases/Zeta").exists());
        assert!(matches!(catalog.delete("zeta"), Err(StorageError::NotFound)));
    }

    #[test]
    fn registry_paths_outside_the_data_directory_are_never_removed_nor_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let outside = dir.path().join("precious");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("keep"), b"x").expect("writes");
        let master = || crate::crypto::MasterKeySource::new(dir.path().join("master.key"));
        {
            let catalog = Catalog::open(&data, Durability::Os, master()).expect("opens");
            // What a forged registry (a snapshot of the system database) could hold.
            for (name, state, location) in
                [("rolled", EntryState::Restoring, data.join("Databases/rolled")), ("opened", EntryState::Ready, outside.clone())]
            {
                let entry = RegistryEntry {
                    name: name.into(),
                    location,
                    state,
                    seq: 1,
                    cleanup: vec![outside.clone(), data.join("System"), data.join("Databases/../..")],
                };
                catalog.write_entry(&registry_key(name), &entry).expect("writes");
            }
        }
        let catalog = Catalog::open(&data, Durability::Os, master()).expect("reopens");
        assert!(outside.join("keep").exists(), "a registry entry removed a folder outside the data directory");
        assert!(data.join("System").is_dir(), "a registry entry removed the system database");
        assert!(catalog.get("opened").is_none(), "a database outside the data directory was opened");
        assert!(!outside.join("keyspaces").exists() && !outside.join("version").exists(), "a store was created outside");
    }

    #[test]
    fn unfinished_restore_is_rolled_back_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = dir.path().join("Databases/Restored");
        {
            let catalog = Catalog::open(dir.path(), Durability::Os, crate::crypto::MasterKeySource::new(dir.path().join("master.key")))
                .expect("opens");
            let r = catalog.reserve_restore("Restored", &location).expect("reserves");
            std::fs::create_dir_all(&r.staging).expect("staging");
            std::fs::write(r.staging.join("half"), b"x").expect("writes");
            std::fs::rename(&r.staging, &location).expect("moves");
            assert!(matches!(catalog.create("restored"), Err(StorageError::DatabaseExists(_))));
            // crash: never committed
        }
        let catalog =
            Catalog::open(dir.path(), Durability::Os, crate::crypto::MasterKeySource::new(dir.path().join("master.key"))).expect("reopens");
        assert!(catalog.get("Restored").is_none());
        assert!(!location.exists());
        catalog.create("Restored").expect("the name is free again");
    }
}
