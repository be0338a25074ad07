//! Events into the outbox: each event becomes one delivery per webhook that
//! wants it, written to the system database before anything is sent, so
//! that a stop or a crash delays a delivery and never loses it. Emitting
//! never waits for a receiver: the delivery thread ([`super::delivery`]) sends.

use std::sync::{Arc, Condvar, Mutex};

use rookery_types::{NotificationBody, NotificationEvent};
use serde::{Deserialize, Serialize};

use super::webhooks::{stored_webhooks, StoredWebhook};
use crate::storage::{DatabaseHandle, StorageError};

/// Where deliveries wait, in the system database's internal keyspace.
pub const OUTBOX_PREFIX: &str = "notify/outbox/";

/// One event on its way to one webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Delivery {
    /// `X-Rookery-Delivery`: the same on every attempt.
    pub id: String,
    pub webhook: String,
    pub event: NotificationEvent,
    /// The body as sent (signed as these exact bytes).
    pub body: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
}

impl Delivery {
    /// A delivery of `event` to `webhook`, made at `now` (Unix milliseconds).
    fn new(webhook: &str, event: NotificationEvent, body: String, now: i64) -> Self {
        Self {
            // Time-ordered, and ordered within a millisecond too (one
            // process's v7 ids follow their creation): the outbox key is the
            // time and then this id, and the outbox is sent in key order.
            id: uuid::Uuid::now_v7().to_string(),
            webhook: webhook.to_string(),
            event,
            body,
            created_ms: now,
            attempts: 0,
            next_attempt_ms: now,
            last_error: None,
        }
    }
}

/// What an event says besides its kind (see [`NotificationBody`]).
#[derive(Debug, Clone, Default)]
pub struct EventFacts {
    pub database: Option<String>,
    pub task: Option<String>,
    pub set_id: Option<String>,
    pub error_code: Option<String>,
    pub message: String,
}

/// Emits events and wakes the delivery thread.
#[derive(Debug)]
pub struct Notifier {
    system: Arc<DatabaseHandle>,
    /// The studio's address as its users reach it (`--public-url`), for the events' links.
    public_url: String,
    wake: (Mutex<bool>, Condvar),
    changes: Mutex<()>,
}

impl Notifier {
    /// A notifier writing into `system`'s outbox.
    #[must_use]
    pub fn new(system: Arc<DatabaseHandle>, public_url: String) -> Self {
        Self {
            system,
            public_url: public_url.trim_end_matches('/').to_string(),
            wake: (Mutex::new(false), Condvar::new()),
            changes: Mutex::new(()),
        }
    }

    /// The link of an event: the studio page that shows it.
    #[must_use]
    pub fn link(&self, event: NotificationEvent, database: Option<&str>) -> String {
        let page = match event {
            NotificationEvent::RestoreFailed | NotificationEvent::RestoreSucceeded => "/studio/restore".to_string(),
            NotificationEvent::Test => "/studio/backup".to_string(),
            _ => match database {
                Some(db) => format!("/studio/backup?database={}", rookery_types::encode_query(db)),
                None => "/studio/backup".to_string(),
            },
        };
        format!("{}{page}", self.public_url)
    }

    /// The body of an event, as sent.
    #[must_use]
    pub fn body(&self, event: NotificationEvent, facts: &EventFacts) -> NotificationBody {
        NotificationBody {
            event,
            database: facts.database.clone(),
            task: facts.task.clone().filter(|t| !t.is_empty()),
            set_id: facts.set_id.clone(),
            error_code: facts.error_code.clone(),
            message: facts.message.clone(),
            at: crate::jobs::status::now_rfc3339(),
            link: self.link(event, facts.database.as_deref()),
        }
    }

    /// Queues `event` for every enabled webhook that wants it. Never fails
    /// the caller: a delivery that cannot be queued is logged.
    pub fn emit(&self, event: NotificationEvent, facts: &EventFacts) {
        tracing::info!(event = ?event, database = ?facts.database, task = ?facts.task, "notification event: {}", facts.message);
        let webhooks: Vec<StoredWebhook> = stored_webhooks(&self.system).into_iter().filter(|w| w.wants(event)).collect();
        if webhooks.is_empty() {
            return;
        }
        let body = match serde_json::to_string(&self.body(event, facts)) {
            Ok(b) => b,
            Err(e) => return tracing::error!(error = %e, "cannot write a notification"),
        };
        let now = now_ms();
        for webhook in webhooks {
            let delivery = Delivery::new(&webhook.name, event, body.clone(), now);
            if let Err(e) = self.queue(&delivery) {
                tracing::error!(webhook = %webhook.name, error = %e, "cannot queue a notification");
            }
        }
        self.wake();
    }

    fn queue(&self, delivery: &Delivery) -> Result<(), StorageError> {
        self.system.store().write_internal(&outbox_key(delivery), delivery)?;
        self.system.store().persist()
    }

    /// Serializes changes to the webhooks.
    pub(super) fn lock_changes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the delivery thread look at the outbox now.
    pub fn wake(&self) {
        *self.wake.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.wake.1.notify_all();
    }

    /// Waits until woken or `limit` passed.
    pub(super) fn sleep(&self, limit: std::time::Duration) {
        let guard = self.wake.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut woken, _) = self.wake.1.wait_timeout_while(guard, limit, |w| !*w).unwrap_or_else(std::sync::PoisonError::into_inner);
        *woken = false;
    }
}

/// A delivery's key: created time first, so the outbox reads oldest first.
#[must_use]
pub fn outbox_key(delivery: &Delivery) -> String {
    format!("{OUTBOX_PREFIX}{:020}/{}", delivery.created_ms.max(0), delivery.id)
}

/// Now, in Unix milliseconds.
#[must_use]
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outbox is sent in key order: deliveries made within one
    /// millisecond (a task going stale, then recovering) must keep the order
    /// they were made in, or a receiver hears of the recovery first.
    #[test]
    fn deliveries_of_one_millisecond_keep_the_order_they_were_made_in() {
        let now = now_ms();
        for _ in 0..200 {
            let first = Delivery::new("ops", NotificationEvent::BackupStale, String::new(), now);
            let second = Delivery::new("ops", NotificationEvent::BackupRecovered, String::new(), now);
            assert!(outbox_key(&first) < outbox_key(&second), "{} then {}", outbox_key(&first), outbox_key(&second));
        }
    }
}
