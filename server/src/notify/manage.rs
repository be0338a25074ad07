//! Managing webhooks (`/admin/notifications`): put, list, get, delete,
//! and opening a webhook's secret to sign a delivery.

use base64::Engine as _;
use rookery_types::{NotificationDeliveryInfo, NotificationInfo, PutNotificationRequest};

use super::notifier::{Delivery, OUTBOX_PREFIX};
use super::webhooks::{
    secret_aad, status_key, stored_webhook, stored_webhooks, validate, webhook_key, DeliveryStatus, NotifyError, StoredWebhook,
    MAX_WEBHOOKS,
};
use crate::engine::Rookery;
use crate::storage::{DatabaseHandle, StorageError};

impl Rookery {
    /// Creates or replaces a webhook; true when it is new. A secret left
    /// out keeps the one the webhook had; an empty one removes it.
    ///
    /// # Errors
    /// `InvalidName`, `Invalid`, storage errors (no master key to seal the secret).
    pub fn put_notification(&self, name: &str, request: &PutNotificationRequest) -> Result<bool, NotifyError> {
        if !rookery_types::is_valid_database_name(name) {
            return Err(NotifyError::InvalidName(format!(
                "'{}' is not a valid name: [A-Za-z0-9_.-]{{1,64}}, not starting with '.'",
                name.escape_debug()
            )));
        }
        validate(request)?;
        let system = self.catalog.system();
        let _changes = self.monitor.notifier.lock_changes();
        let existing = stored_webhook(&system, name);
        if existing.is_none() && stored_webhooks(&system).len() >= MAX_WEBHOOKS {
            return Err(NotifyError::Invalid(format!("A server keeps at most {MAX_WEBHOOKS} notifications.")));
        }
        let sealed_secret = match request.secret.as_deref() {
            None => existing.as_ref().and_then(|w| w.sealed_secret.clone()),
            Some("") => None,
            Some(secret) => {
                let master =
                    self.catalog.master_key(true)?.ok_or_else(|| StorageError::Locked("no master key to seal the secret".into()))?;
                Some(base64::engine::general_purpose::STANDARD.encode(master.seal(&secret_aad(name), secret.as_bytes())))
            }
        };
        let mut events = request.events.clone();
        events.sort();
        events.dedup();
        let webhook = StoredWebhook {
            name: existing.as_ref().map_or_else(|| name.to_string(), |w| w.name.clone()),
            url: request.url.trim().to_string(),
            events,
            sealed_secret,
            disabled: request.disabled.unwrap_or(false),
        };
        system.store().write_internal(&webhook_key(name), &webhook)?;
        system.store().persist()?;
        Ok(existing.is_none())
    }

    /// Every webhook, as answers show them (no secret).
    #[must_use]
    pub fn list_notifications(&self) -> Vec<NotificationInfo> {
        let system = self.catalog.system();
        let pending = pending_counts(&system);
        stored_webhooks(&system).iter().map(|w| info(&system, w, &pending)).collect()
    }

    /// One webhook.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn get_notification(&self, name: &str) -> Result<NotificationInfo, NotifyError> {
        let system = self.catalog.system();
        let webhook = stored_webhook(&system, name).ok_or_else(|| NotifyError::NotFound(name.to_string()))?;
        Ok(info(&system, &webhook, &pending_counts(&system)))
    }

    /// Removes a webhook, its status and its pending deliveries.
    ///
    /// # Errors
    /// `NotFound`, storage errors.
    pub fn delete_notification(&self, name: &str) -> Result<(), NotifyError> {
        let system = self.catalog.system();
        let _changes = self.monitor.notifier.lock_changes();
        let webhook = stored_webhook(&system, name).ok_or_else(|| NotifyError::NotFound(name.to_string()))?;
        system.store().remove_internal(&webhook_key(name))?;
        system.store().remove_internal(&status_key(name))?;
        for key in system.store().internal_keys_with_prefix(OUTBOX_PREFIX) {
            let delivery: Option<Delivery> = system.store().read_internal(&key).ok().flatten();
            if delivery.is_some_and(|d| d.webhook.eq_ignore_ascii_case(&webhook.name)) {
                system.store().remove_internal(&key)?;
            }
        }
        system.store().persist()?;
        Ok(())
    }

    /// The webhook's secret, unsealed with the master key.
    pub(super) fn webhook_secret(&self, webhook: &StoredWebhook) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(sealed) = &webhook.sealed_secret else { return Ok(None) };
        let master = self
            .catalog
            .master_key(false)?
            .ok_or_else(|| StorageError::Locked("the master key that sealed the secret is missing".into()))?;
        let raw = base64::engine::general_purpose::STANDARD.decode(sealed).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        Ok(Some(master.open(&secret_aad(&webhook.name), &raw)?))
    }
}

/// Pending deliveries per webhook (lowercase name).
fn pending_counts(system: &DatabaseHandle) -> std::collections::HashMap<String, u64> {
    let mut counts = std::collections::HashMap::new();
    for delivery in system.store().internal_json_with_prefix::<Delivery>(OUTBOX_PREFIX) {
        *counts.entry(delivery.webhook.to_ascii_lowercase()).or_insert(0) += 1;
    }
    counts
}

fn info(system: &DatabaseHandle, webhook: &StoredWebhook, pending: &std::collections::HashMap<String, u64>) -> NotificationInfo {
    let status: DeliveryStatus = system.store().read_internal(&status_key(&webhook.name)).ok().flatten().unwrap_or_default();
    NotificationInfo {
        name: webhook.name.clone(),
        url: webhook.url.clone(),
        events: webhook.events.clone(),
        has_secret: webhook.sealed_secret.is_some(),
        disabled: webhook.disabled,
        pending_deliveries: pending.get(&webhook.name.to_ascii_lowercase()).copied().unwrap_or(0),
        last_delivery: NotificationDeliveryInfo {
            last_attempt: status.last_attempt,
            last_success: status.last_success,
            last_status_code: status.last_status_code,
            last_error: status.last_error,
        },
    }
}
