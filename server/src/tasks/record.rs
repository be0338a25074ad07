//! A task as its database's internal keyspace keeps it: the request, its sealed secrets and what ran.

use jiff::Timestamp;
use rookery_types::{BackupKind, BackupTask};
use serde::{Deserialize, Serialize};

use crate::storage::{DatabaseHandle, StorageError};

/// Where tasks are kept, in their database's internal keyspace.
pub const TASK_PREFIX: &str = "tasks/";

/// What ran, as the task's record keeps it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskState {
    /// When the schedules were last looked at: occurrences after it are due.
    pub last_checked: Option<Timestamp>,
    pub last_full_backup: Option<Timestamp>,
    pub last_incremental_backup: Option<Timestamp>,
    pub last_set_id: Option<String>,
    pub last_duration_ms: Option<u64>,
    pub last_error: Option<String>,
    /// A due run that had not started yet (it survives a restart).
    #[serde(default)]
    pub pending: Option<BackupKind>,
    /// The `ToEtag` of the last successful run (continuous tasks ship what is after it).
    #[serde(default)]
    pub last_shipped_etag: Option<u64>,
    /// When the drill schedule was last looked at.
    #[serde(default)]
    pub drill_checked: Option<Timestamp>,
    #[serde(default)]
    pub last_drill: Option<rookery_types::LastDrill>,
    /// The task's other destinations, by location.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub destinations: std::collections::BTreeMap<String, super::destination_state::DestinationState>,
}

/// A task as stored: the request without its secrets, the sealed secrets, the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredTask {
    pub name: String,
    pub task: BackupTask,
    pub sealed_passphrase: Option<String>,
    pub sealed_key: Option<String>,
    pub state: TaskState,
}

pub(crate) fn task_key(name: &str) -> String {
    format!("{TASK_PREFIX}{}", name.to_ascii_lowercase())
}

pub(crate) fn secret_aad(database: &str, task: &str, what: &str) -> Vec<u8> {
    format!("rookery-task-secret-v1/{}/{}/{what}", database.to_ascii_lowercase(), task.to_ascii_lowercase()).into_bytes()
}

/// Every task record of a database, in name order, each read or the reason it cannot be.
pub(crate) fn task_records(db: &DatabaseHandle) -> Vec<Result<StoredTask, StorageError>> {
    db.store()
        .internal()
        .prefix(TASK_PREFIX)
        .map(|guard| {
            let (_, value) = guard.into_inner()?;
            serde_json::from_slice(&value).map_err(|e| StorageError::Corrupt(format!("a task record: {e}")))
        })
        .collect()
}
