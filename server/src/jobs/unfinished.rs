//! Folders a job writes outside the data directory, recorded in the server's
//! own state (never in a document) so that a crash leaves nothing behind.

use std::sync::Arc;

use crate::storage::DatabaseHandle;

/// Where the system database's internal keyspace records the folders jobs
/// are writing outside the data directory (a backup's `.tmp-<SetId>`).
const UNFINISHED_PREFIX: &str = "jobs/unfinished/";

/// A folder a job is writing, recorded in the server's own state (never in a
/// document) until the job has finished with it; a crash leaves the record,
/// and the next start removes the folder. Dropping this forgets the record.
pub struct UnfinishedFolder {
    system: Arc<DatabaseHandle>,
    key: String,
}

impl UnfinishedFolder {
    /// Records `path` (durably) before the job creates it.
    ///
    /// # Errors
    /// Storage errors.
    pub fn record(system: Arc<DatabaseHandle>, path: &std::path::Path) -> Result<Self, crate::storage::StorageError> {
        let key = format!("{UNFINISHED_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let text = path.to_str().ok_or_else(|| crate::storage::StorageError::Corrupt("a folder path that is not UTF-8".into()))?;
        system.store().internal().insert(&key, text.as_bytes())?;
        system.store().persist()?;
        Ok(Self { system, key })
    }
}

impl Drop for UnfinishedFolder {
    fn drop(&mut self) {
        if let Err(e) = self.system.store().internal().remove(&self.key) {
            tracing::warn!(error = %e, "cannot forget a finished job's folder");
        }
    }
}

/// At start: the folders that jobs a crash interrupted were writing. Each is
/// removed only when `allowed` accepts it again (the caller checks it against
/// the backup roots and the set-id syntax); the records are forgotten either way.
pub fn remove_unfinished_folders(system: &DatabaseHandle, allowed: impl Fn(&std::path::Path) -> bool) {
    let entries: Vec<(fjall::Slice, fjall::Slice)> =
        system.store().internal().prefix(UNFINISHED_PREFIX).filter_map(|g| g.into_inner().ok()).collect();
    for (key, value) in entries {
        let path = std::path::PathBuf::from(String::from_utf8_lossy(&value).to_string());
        if allowed(&path) {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(dir = %path.display(), "removed an interrupted backup's files"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(error = %e, dir = %path.display(), "cannot remove an interrupted backup's files"),
            }
        } else {
            tracing::warn!(dir = %path.display(), "an interrupted job's folder is no longer inside a backup root; left in place");
        }
        if let Err(e) = system.store().internal().remove(key) {
            tracing::warn!(error = %e, "cannot forget an interrupted job's folder");
        }
    }
}

/// Where the system database's internal keyspace records the sets a job is
/// uploading into object storage (no rename there: a set without its
/// manifest is unfinished, and only its writer can say it is its own).
const UNFINISHED_SETS_PREFIX: &str = "jobs/unfinished-sets/";

/// A set a job is uploading into an object storage location, recorded in
/// the server's own state before its first object is written. The record is
/// forgotten when the set is complete ([`UnfinishedSet::completed`]); a job
/// that fails keeps it (its objects may not all be deleted: the storage may
/// be the very thing that failed), and the next backup into the location
/// removes the set's objects as this server's own.
pub struct UnfinishedSet {
    system: Arc<DatabaseHandle>,
    key: String,
}

/// What a record of an unfinished set holds.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetRecord {
    location: String,
    set_id: String,
}

impl UnfinishedSet {
    /// Records (durably) that this server starts uploading `set_id` into `location`.
    ///
    /// # Errors
    /// Storage errors.
    pub fn record(system: Arc<DatabaseHandle>, location: &str, set_id: &str) -> Result<Self, crate::storage::StorageError> {
        let key = format!("{UNFINISHED_SETS_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let record = SetRecord { location: location.to_string(), set_id: set_id.to_string() };
        let raw = serde_json::to_vec(&record).map_err(|e| crate::storage::StorageError::Corrupt(e.to_string()))?;
        system.store().internal().insert(&key, raw)?;
        system.store().persist()?;
        Ok(Self { system, key })
    }

    /// The set is complete: forgets the record.
    pub fn completed(self) {
        forget(&self.system, &self.key);
    }
}

/// The sets this server recorded as its own unfinished uploads into
/// `location`: (record key, set id).
#[must_use]
pub fn recorded_sets(system: &DatabaseHandle, location: &str) -> Vec<(String, String)> {
    system
        .store()
        .internal()
        .prefix(UNFINISHED_SETS_PREFIX)
        .filter_map(|g| g.into_inner().ok())
        .filter_map(|(key, value)| {
            let record: SetRecord = serde_json::from_slice(&value).ok()?;
            (record.location == location).then(|| (String::from_utf8_lossy(&key).to_string(), record.set_id))
        })
        .collect()
}

/// Forgets a record of [`recorded_sets`].
pub fn forget(system: &DatabaseHandle, key: &str) {
    if let Err(e) = system.store().internal().remove(key) {
        tracing::warn!(error = %e, "cannot forget an unfinished set");
    }
}
