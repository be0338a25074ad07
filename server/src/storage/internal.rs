//! The server's own records in a database's internal keyspace, as JSON
//! (tasks, monitor records, notification settings), and what changed since
//! an etag as a client sees it.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::StorageError;
use super::store::DocumentStore;

impl DocumentStore {
    /// The record at `key`, if there is one.
    ///
    /// # Errors
    /// Storage errors; `Corrupt` for a record that is not the JSON of a `T`.
    pub(crate) fn read_internal<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        let Some(raw) = self.internal().get(key)? else { return Ok(None) };
        serde_json::from_slice(&raw).map(Some).map_err(|e| StorageError::Corrupt(format!("the record '{key}': {e}")))
    }

    /// Writes the record at `key`.
    ///
    /// # Errors
    /// Storage errors.
    pub(crate) fn write_internal<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StorageError> {
        let raw = serde_json::to_vec(value).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        self.internal().insert(key, raw)?;
        Ok(())
    }

    /// Removes the record at `key`.
    ///
    /// # Errors
    /// Storage errors.
    pub(crate) fn remove_internal(&self, key: &str) -> Result<(), StorageError> {
        self.internal().remove(key)?;
        Ok(())
    }

    /// Every record under `prefix` that reads as a `T`, in key order (one
    /// that does not is logged and left out).
    pub(crate) fn internal_json_with_prefix<T: DeserializeOwned>(&self, prefix: &str) -> Vec<T> {
        let mut out = Vec::new();
        for guard in self.internal().prefix(prefix) {
            let parsed = guard
                .into_inner()
                .map_err(StorageError::from)
                .and_then(|(key, value)| serde_json::from_slice(&value).map_err(|e| StorageError::Corrupt(format!("{key:?}: {e}"))));
            match parsed {
                Ok(value) => out.push(value),
                Err(e) => tracing::warn!(error = %e, "an internal record cannot be read"),
            }
        }
        out
    }

    /// The keys under `prefix`, in order.
    pub(crate) fn internal_keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.internal().prefix(prefix).filter_map(|guard| guard.key().ok()).filter_map(|key| String::from_utf8(key.to_vec()).ok()).collect()
    }

    /// Whether a client changed the database after `etag` (the server's own
    /// `Raven/` documents, such as the status a backup writes, do not count).
    #[must_use]
    pub fn has_client_changes_after(&self, etag: u64) -> bool {
        if self.last_etag() <= etag {
            return false;
        }
        let snapshot = self.snapshot();
        let client = |r: Result<(u64, String), StorageError>| r.map_or(true, |(_, id)| !rookery_types::is_server_owned(&id));
        snapshot.changes_after(etag).any(client) || snapshot.deletions_after(etag).any(client)
    }
}
