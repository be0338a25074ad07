//! The server's webhooks as kept: where events go, which ones, and the
//! secret their bodies are signed with (sealed with the master key), in the
//! system database's internal keyspace, with the last delivery to each.
//! Webhooks are not part of a backup: a restored server does not call its
//! original's receivers. Managing them is in [`super::manage`].

use rookery_types::{NotificationEvent, PutNotificationRequest};
use serde::{Deserialize, Serialize};

use crate::storage::{DatabaseHandle, StorageError};

/// Where webhooks are kept.
pub const WEBHOOK_PREFIX: &str = "notify/webhooks/";
/// Where each webhook's last delivery is kept.
pub const STATUS_PREFIX: &str = "notify/status/";
/// At most this many webhooks on a server.
pub const MAX_WEBHOOKS: usize = 100;
/// A secret's length in characters, at least and at most.
pub const SECRET_LENGTH: std::ops::RangeInclusive<usize> = 16..=1024;

/// What can go wrong with a webhook.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("No notification named '{0}'.")]
    NotFound(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl NotifyError {
    /// The stable error code.
    #[must_use]
    pub fn code(&self) -> rookery_types::ErrorCode {
        use rookery_types::ErrorCode;
        match self {
            Self::Invalid(_) => ErrorCode::InvalidRequest,
            Self::InvalidName(_) => ErrorCode::InvalidName,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Storage(s) => s.code(),
        }
    }
}

/// A webhook as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredWebhook {
    pub name: String,
    pub url: String,
    pub events: Vec<NotificationEvent>,
    pub sealed_secret: Option<String>,
    pub disabled: bool,
}

impl StoredWebhook {
    /// Whether an event goes to this webhook.
    #[must_use]
    pub fn wants(&self, event: NotificationEvent) -> bool {
        !self.disabled && self.events.contains(&event)
    }
}

/// The last attempt at delivering to a webhook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeliveryStatus {
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
}

pub(super) fn webhook_key(name: &str) -> String {
    format!("{WEBHOOK_PREFIX}{}", name.to_ascii_lowercase())
}

pub(super) fn status_key(name: &str) -> String {
    format!("{STATUS_PREFIX}{}", name.to_ascii_lowercase())
}

pub(super) fn secret_aad(name: &str) -> Vec<u8> {
    format!("rookery-webhook-secret-v1/{}", name.to_ascii_lowercase()).into_bytes()
}

/// Every webhook, in name order.
#[must_use]
pub fn stored_webhooks(system: &DatabaseHandle) -> Vec<StoredWebhook> {
    system.store().internal_json_with_prefix(WEBHOOK_PREFIX)
}

/// A webhook by name.
#[must_use]
pub fn stored_webhook(system: &DatabaseHandle, name: &str) -> Option<StoredWebhook> {
    system.store().read_internal(&webhook_key(name)).ok().flatten()
}

/// Records the outcome of an attempt at delivering to `webhook`.
pub fn record_attempt(system: &DatabaseHandle, webhook: &str, status: Option<u16>, error: Option<String>) {
    let key = status_key(webhook);
    let mut record: DeliveryStatus = system.store().read_internal(&key).ok().flatten().unwrap_or_default();
    let now = crate::jobs::status::now_rfc3339();
    record.last_attempt = Some(now.clone());
    record.last_status_code = status;
    if error.is_none() {
        record.last_success = Some(now);
    }
    record.last_error = error;
    if let Err(e) = system.store().write_internal(&key, &record) {
        tracing::warn!(webhook, error = %e, "cannot record a delivery attempt");
    }
}

/// Checks a webhook request: its URL, events and secret.
///
/// # Errors
/// `Invalid` naming what is wrong.
pub fn validate(request: &PutNotificationRequest) -> Result<(), NotifyError> {
    let url = request.url.trim();
    let uri: ureq::http::Uri = url.parse().map_err(|e| NotifyError::Invalid(format!("Url is not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) || url.len() > 2048 {
        return Err(NotifyError::Invalid("Url must be an absolute http:// or https:// URL of at most 2048 characters.".into()));
    }
    if request.events.is_empty() {
        return Err(NotifyError::Invalid(format!("Events must name at least one event: {}.", event_names())));
    }
    if request.events.contains(&NotificationEvent::Test) {
        return Err(NotifyError::Invalid("Test is sent by POST .../test only; it is not an event to subscribe to.".into()));
    }
    if let Some(secret) = request.secret.as_deref().filter(|s| !s.is_empty()) {
        if !SECRET_LENGTH.contains(&secret.chars().count()) {
            return Err(NotifyError::Invalid(format!(
                "Secret must be {} to {} characters long (or empty, to remove it).",
                SECRET_LENGTH.start(),
                SECRET_LENGTH.end()
            )));
        }
    }
    Ok(())
}

pub(super) fn event_names() -> String {
    NotificationEvent::SUBSCRIBABLE.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(", ")
}
