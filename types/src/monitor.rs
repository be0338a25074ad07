//! Monitoring: the protection overview (`GET /admin/protection`) and the
//! notifications (`/admin/notifications`).

use serde::{Deserialize, Serialize};

use crate::tasks::LastDrill;

/// How well a database, or one of its tasks, is protected now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProtectionState {
    /// The newest restorable point is within the schedule.
    Ok,
    /// Older than the schedule's interval (or no backup yet), within the objective.
    Late,
    /// Older than the objective.
    Stale,
    /// The last run failed.
    Failed,
    /// A database with no enabled task.
    Unprotected,
    /// A task that is turned off.
    Disabled,
}

/// One task of a database in the protection overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct TaskProtection {
    pub name: String,
    pub location: String,
    pub state: ProtectionState,
    pub disabled: bool,
    /// The point the newest set of the task's location restores to (RFC 3339).
    pub recovery_point: Option<String>,
    /// Seconds of client writes a restore would lose now (0 when nothing changed since).
    pub recovery_point_age_seconds: Option<f64>,
    /// No client changed the database since the newest set.
    pub up_to_date: bool,
    pub last_set_id: Option<String>,
    pub last_success: Option<String>,
    /// How often the task backs up (its shortest schedule; continuous: `MaxLagSeconds`).
    pub interval_seconds: Option<f64>,
    /// Older than this, the task is stale.
    pub objective_seconds: f64,
    /// Failed runs since the last success.
    pub failures: u32,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
    pub next_backup: Option<String>,
    pub continuous_lag_seconds: Option<f64>,
    /// When the last drill proved the chain restorable, if it did.
    pub proven_restorable_at: Option<String>,
    pub last_drill: Option<LastDrill>,
}

/// One database in the protection overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DatabaseProtection {
    pub database: String,
    /// The worst state of its enabled tasks; `Unprotected` without one.
    pub state: ProtectionState,
    /// The newest restorable point of any of its tasks or backups by hand.
    pub recovery_point: Option<String>,
    pub recovery_point_age_seconds: Option<f64>,
    pub up_to_date: bool,
    pub document_count: u64,
    pub data_size_bytes: u64,
    pub tasks: Vec<TaskProtection>,
}

/// Answer of `GET /admin/protection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ProtectionOverview {
    /// When it was computed (RFC 3339).
    pub generated: String,
    /// The system database first.
    pub databases: Vec<DatabaseProtection>,
}

/// The events a webhook can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum NotificationEvent {
    /// A task's run (or a backup by hand) failed, after succeeding.
    BackupFailed,
    /// It succeeded again, after failing or going stale.
    BackupRecovered,
    /// A task's newest restorable point is older than its objective.
    BackupStale,
    DrillFailed,
    RestoreFailed,
    RestoreSucceeded,
    /// Sent by `POST /admin/notifications/{name}/test` only.
    Test,
}

impl NotificationEvent {
    /// The events a webhook can ask for.
    pub const SUBSCRIBABLE: [NotificationEvent; 6] =
        [Self::BackupFailed, Self::BackupRecovered, Self::BackupStale, Self::DrillFailed, Self::RestoreFailed, Self::RestoreSucceeded];
}

/// Body of `PUT /admin/notifications/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutNotificationRequest {
    /// Where events are POSTed: an absolute http:// or https:// URL.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 2048, pattern = "^https?://"))]
    pub url: String,
    /// The events to send (at least one; `Test` is not one).
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub events: Vec<NotificationEvent>,
    /// Write-only: signs each body (`X-Rookery-Signature`), 16 to 1024
    /// characters. Left out, the webhook keeps its secret; empty, it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^$|^[\s\S]{16,1024}$"))]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// The last attempt at delivering to a webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct NotificationDeliveryInfo {
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
}

/// A webhook as answers show it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct NotificationInfo {
    pub name: String,
    pub url: String,
    pub events: Vec<NotificationEvent>,
    pub has_secret: bool,
    pub disabled: bool,
    /// Events waiting to be delivered (retried with backoff).
    pub pending_deliveries: u64,
    pub last_delivery: NotificationDeliveryInfo,
}

/// What a webhook receives (`POST Url`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct NotificationBody {
    pub event: NotificationEvent,
    pub database: Option<String>,
    pub task: Option<String>,
    pub set_id: Option<String>,
    pub error_code: Option<String>,
    pub message: String,
    /// When the event happened (RFC 3339 UTC).
    pub at: String,
    /// The studio page that shows it.
    pub link: String,
}

/// Answer of `POST /admin/notifications/{name}/test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct TestDelivery {
    /// The receiver answered 2xx.
    pub delivered: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// `X-Rookery-Delivery` of the test.
    pub delivery_id: String,
}
