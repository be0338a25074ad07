//! Backup tasks: the request, retention, continuous backup, drills, and
//! what a task did and will do.

use serde::{Deserialize, Serialize};

use crate::backup::{BackupKind, BackupType};

/// A retention policy, counted in sets (restorable points). Any subset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep the newest N sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub keep_last: Option<u32>,
    /// Keep the newest set of each of the last N days that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub keep_daily: Option<u32>,
    /// Keep the newest set of each of the last N ISO weeks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub keep_weekly: Option<u32>,
    /// Keep the newest set of each of the last N months that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub keep_monthly: Option<u32>,
    /// Keep every set younger than this (`30s`, `15m`, `12h`, `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{1,6}[smhd]$"))]
    pub minimum_age: Option<String>,
}

/// A backup task: the body of `PUT {base}/admin/backup/tasks/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct BackupTask {
    /// Where the task's sets are written; with `Destinations`, it may be left
    /// out (it is then the first destination's location).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(/|s3://)"))]
    pub backup_location: String,
    /// Every place the task keeps its sets, the first where they are written
    /// and each other a verified copy made after every run (whole chains,
    /// oldest missing set first); each has its own retention and status. A
    /// destination that fails neither fails nor delays the others, and
    /// catches up when it is back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 8))]
    pub destinations: Vec<TaskDestination>,
    /// Cron: 5 fields, or 6 with seconds first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*\S+(\s+\S+){4,5}\s*$"))]
    pub full_backup_frequency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*\S+(\s+\S+){4,5}\s*$"))]
    pub incremental_backup_frequency: Option<String>,
    /// IANA time zone of the schedules (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    #[serde(default)]
    pub disabled: bool,
    /// What the task's full backups copy (`Backup` or `Snapshot`).
    #[serde(default, skip_serializing_if = "BackupType::is_backup")]
    pub backup_type: BackupType,
    /// Forever-incremental: when a full backup is due, fold the location's
    /// chain into a new full set instead of reading the database.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compact: bool,
    /// Continuous backup: a small incremental whenever something changed, at
    /// most one per `MaxLagSeconds`; nothing while the database is idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous: Option<ContinuousBackup>,
    /// Restore drills: on this schedule, the newest chain of the location is
    /// restored into a scratch database no client sees and checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillOptions>,
    /// How old the newest restorable point may grow before the task is
    /// stale (`30m`, `6h`, `2d`; default twice its shortest schedule's
    /// interval, at least 5 minutes): what `BackupStale` and the alert use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{1,9}[smhd]$"))]
    pub recovery_point_objective: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_encryption_key: Option<bool>,
    /// Write-only: sealed with the master key, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub backup_passphrase: Option<String>,
    /// Write-only (base64 of 32 bytes): sealed with the master key, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9+/]{43}=$"))]
    pub backup_encryption_key: Option<String>,
}

/// One place a task keeps its sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TaskDestination {
    /// A folder on the server, or `s3://bucket/prefix`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = "^(/|s3://)"))]
    pub location: String,
    /// Object storage settings (endpoint, region, path style); credentials
    /// come from the server's `AWS_*` variables, never from a task.
    #[serde(default, rename = "S3", skip_serializing_if = "Option::is_none")]
    pub s3: Option<crate::backup::S3Settings>,
    /// This destination's retention (the first destination's is the task's `Retention`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    /// Every object of every set written here carries S3 Object Lock
    /// retention until the set's `Created` + `RetainDays` (object storage only,
    /// in a bucket made with object lock enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
}

/// S3 Object Lock retention of a destination's sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ObjectLock {
    pub mode: LockMode,
    /// Days each set stays locked after it was taken.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 36500))]
    pub retain_days: u32,
}

/// How strong an object lock is: `Governance` can be lifted by a user with
/// the storage's bypass permission; `Compliance` by nobody before its date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    /// The mode as S3 spells it (`GOVERNANCE`, `COMPLIANCE`).
    #[must_use]
    pub fn as_s3(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }
}

/// How one destination of a task stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DestinationStatus {
    pub location: String,
    /// The newest set of the database there.
    pub last_set_id: Option<String>,
    /// Seconds since the newest set there was taken (`Created`).
    pub recovery_point_age_seconds: Option<f64>,
    /// Why the last copy into it failed; none once one succeeded.
    pub last_error: Option<String>,
    /// Sets of the first destination not there yet.
    pub missing_sets: u64,
    /// A copy into it is running now.
    #[serde(default)]
    pub is_copying: bool,
}

/// A task's continuous backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ContinuousBackup {
    /// The most seconds a change waits before it is shipped (1 to 3600).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3600))]
    pub max_lag_seconds: u32,
}

/// A task's restore drills.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DrillOptions {
    /// Cron: 5 fields, or 6 with seconds first, in the task's time zone.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*\S+(\s+\S+){4,5}\s*$"))]
    pub frequency: String,
}

/// The last restore drill of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct LastDrill {
    /// When it ended (RFC 3339 UTC).
    pub at: String,
    /// The newest set of the chain it restored.
    pub set_id: Option<String>,
    pub success: bool,
    pub duration_ms: u64,
    /// Why it failed, naming the file when a file was damaged.
    pub error: Option<String>,
}

/// What a task did and will do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct TaskStatus {
    pub is_running: bool,
    pub last_full_backup: Option<String>,
    pub last_incremental_backup: Option<String>,
    pub last_set_id: Option<String>,
    pub last_duration_ms: Option<u64>,
    pub last_error: Option<String>,
    pub next_backup: Option<String>,
    pub next_backup_kind: Option<BackupKind>,
    /// Continuous tasks: seconds the oldest unshipped change has waited (0 when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Continuous tasks: the `ToEtag` of the last set shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_shipped_etag: Option<u64>,
    /// Tasks with drills: the last one, once one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<LastDrill>,
    /// Tasks with several destinations: each one's state, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<DestinationStatus>,
}

/// A task as answers show it: no secret, a flag instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct BackupTaskInfo {
    pub name: String,
    pub backup_location: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<TaskDestination>,
    pub full_backup_frequency: Option<String>,
    pub incremental_backup_frequency: Option<String>,
    pub time_zone: String,
    pub retention: Option<RetentionPolicy>,
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "BackupType::is_backup")]
    pub backup_type: BackupType,
    #[serde(default)]
    pub compact: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous: Option<ContinuousBackup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point_objective: Option<String>,
    pub include_encryption_key: Option<bool>,
    pub has_backup_passphrase: bool,
    pub has_backup_encryption_key: bool,
    pub status: TaskStatus,
}

/// Body of `POST {base}/admin/backup/retention`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RetentionRequest {
    pub retention: RetentionPolicy,
}

/// Answer of `POST {base}/admin/backup/retention`: the set ids deleted (or
/// that would be, with `dryRun`) and kept, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct RetentionOutcome {
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
    /// Kept sets whose object lock has not expired (never deleted before their date).
    #[serde(default)]
    pub locked: Vec<String>,
}

/// `GET /admin/backup/schedule?cron=&timeZone=`: what a schedule means.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleInfo {
    /// The expression in words.
    pub description: String,
    /// The next three times it fires (RFC 3339 UTC).
    pub next: Vec<String>,
}
