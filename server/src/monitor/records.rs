//! What the server keeps of each backup's outcome, for the metrics, the
//! protection overview and the notifications: per database, task and kind,
//! the last success and failure; per database and task, whether it is
//! failing or stale now. Kept in the system database's internal keyspace
//! (never in a backup), keyed by the database's id, so that a database
//! deleted and created again under its name starts with no history.

use serde::{Deserialize, Serialize};

use crate::storage::{DatabaseHandle, StorageError};

/// Where the records live in the system database's internal keyspace.
pub const RECORD_PREFIX: &str = "monitor/backups/";
/// Where the health of each task lives.
pub const HEALTH_PREFIX: &str = "monitor/health/";

/// The kinds of backup a record is kept for (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    Full,
    Incremental,
    Snapshot,
    Compaction,
}

impl RunKind {
    pub const ALL: [RunKind; 4] = [Self::Full, Self::Incremental, Self::Snapshot, Self::Compaction];

    /// The label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
            Self::Snapshot => "snapshot",
            Self::Compaction => "compaction",
        }
    }

    /// The kind of a set written by a backup (compaction is known by its job).
    #[must_use]
    pub fn of_set(kind: crate::backup::format::SetKind) -> Self {
        match kind {
            crate::backup::format::SetKind::Full => Self::Full,
            crate::backup::format::SetKind::Incremental => Self::Incremental,
            crate::backup::format::SetKind::Snapshot => Self::Snapshot,
        }
    }

    /// Whether a set of this kind is a newer restorable point (a compaction
    /// folds points that exist already).
    #[must_use]
    pub fn adds_a_point(self) -> bool {
        self != Self::Compaction
    }
}

/// The last outcomes of one kind of backup of one database by one task
/// (`""`: backups asked for by hand). Times are Unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KindRecord {
    pub database: String,
    pub task: String,
    pub kind: Option<RunKind>,
    /// The location of the last run.
    pub location: String,
    pub last_success_ms: Option<i64>,
    pub last_failure_ms: Option<i64>,
    /// The last run's duration, successful or not.
    pub last_duration_ms: u64,
    pub last_bytes: u64,
    pub last_documents: u64,
    pub last_set_id: Option<String>,
    /// The `ToEtag` of the last successful set.
    pub last_to_etag: u64,
    /// When the last successful set's job started: the point it restores to.
    pub last_point_ms: Option<i64>,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
}

/// Whether a task is failing or stale now (the states the notifications
/// announce once, when they begin and when they end).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskHealth {
    pub failing: bool,
    pub stale: bool,
    /// Failed runs since the last success.
    pub failures: u32,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
}

/// How one backup ended, as the records keep it.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub database: std::sync::Arc<DatabaseHandle>,
    /// The task that ran it; `""` by hand.
    pub task: String,
    pub kind: RunKind,
    pub location: String,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub result: Result<SetWritten, (rookery_types::ErrorCode, String)>,
}

/// What a successful backup wrote.
#[derive(Debug, Clone, Default)]
pub struct SetWritten {
    pub set_id: String,
    pub bytes: u64,
    pub documents: u64,
    pub to_etag: u64,
}

fn key(prefix: &str, database_id: &str, task: &str) -> String {
    format!("{prefix}{database_id}/{}/", task.to_ascii_lowercase())
}

/// Records `outcome` in its kind's record.
///
/// # Errors
/// Storage errors.
pub fn record(system: &DatabaseHandle, outcome: &BackupOutcome) -> Result<KindRecord, StorageError> {
    let id = outcome.database.store().database_id().to_string();
    let key = format!("{}{}", key(RECORD_PREFIX, &id, &outcome.task), outcome.kind.as_str());
    let mut record: KindRecord = system.store().read_internal(&key)?.unwrap_or_default();
    record.database = outcome.database.name.clone();
    record.task = outcome.task.clone();
    record.kind = Some(outcome.kind);
    record.location = outcome.location.clone();
    record.last_duration_ms = u64::try_from(outcome.ended_ms.saturating_sub(outcome.started_ms)).unwrap_or(0);
    match &outcome.result {
        Ok(set) => {
            record.last_success_ms = Some(outcome.ended_ms);
            record.last_bytes = set.bytes;
            record.last_documents = set.documents;
            record.last_set_id = Some(set.set_id.clone());
            record.last_to_etag = set.to_etag;
            record.last_point_ms = Some(outcome.started_ms);
            record.last_error_code = None;
            record.last_error = None;
        }
        Err((code, message)) => {
            record.last_failure_ms = Some(outcome.ended_ms);
            record.last_error_code = Some(code.as_str().to_string());
            record.last_error = Some(message.clone());
        }
    }
    system.store().write_internal(&key, &record)?;
    Ok(record)
}

/// Every kind's record of a database (all its tasks, and the backups by hand).
#[must_use]
pub fn records_of(system: &DatabaseHandle, database: &DatabaseHandle) -> Vec<KindRecord> {
    let prefix = format!("{RECORD_PREFIX}{}/", database.store().database_id());
    system.store().internal_json_with_prefix(&prefix)
}

/// The health of a task of a database (`""`: backups by hand).
#[must_use]
pub fn health(system: &DatabaseHandle, database: &DatabaseHandle, task: &str) -> TaskHealth {
    let key = key(HEALTH_PREFIX, database.store().database_id(), task);
    system.store().read_internal(&key).ok().flatten().unwrap_or_default()
}

/// Changes a task's health; returns it before and after.
///
/// # Errors
/// Storage errors.
pub fn update_health(
    system: &DatabaseHandle,
    database: &DatabaseHandle,
    task: &str,
    change: impl FnOnce(&mut TaskHealth),
) -> Result<(TaskHealth, TaskHealth), StorageError> {
    let key = key(HEALTH_PREFIX, database.store().database_id(), task);
    let before: TaskHealth = system.store().read_internal(&key)?.unwrap_or_default();
    let mut after = before.clone();
    change(&mut after);
    if after != before {
        system.store().write_internal(&key, &after)?;
    }
    Ok((before, after))
}

/// Forgets the records of databases that no longer exist (at start).
pub fn forget_deleted(system: &DatabaseHandle, live_ids: &std::collections::BTreeSet<String>) {
    for prefix in [RECORD_PREFIX, HEALTH_PREFIX] {
        let keys: Vec<String> = system.store().internal_keys_with_prefix(prefix);
        for key in keys {
            let id = key[prefix.len()..].split('/').next().unwrap_or("");
            if !live_ids.contains(id) {
                if let Err(e) = system.store().remove_internal(&key) {
                    tracing::warn!(error = %e, "cannot forget a deleted database's backup record");
                }
            }
        }
    }
}
