//! Sending: a background thread takes the deliveries that are due from the
//! outbox, POSTs each to its webhook with its signature, and on anything but
//! a 2xx tries again later (10 s, 30 s, 1 min, 2 min, 5 min, then every
//! 10 min) for 24 hours. The outbox is in the system database, so a restart
//! goes on where the last run stopped.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rookery_types::{NotificationEvent, TestDelivery};
use sha2::Sha256;

use super::notifier::{now_ms, outbox_key, Delivery, EventFacts, OUTBOX_PREFIX};
use super::webhooks::{record_attempt, stored_webhook, NotifyError, StoredWebhook};
use crate::engine::Rookery;

/// How long deliveries are retried before they are given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the thread sleeps when nothing wakes it.
const IDLE: Duration = Duration::from_secs(1);

/// `X-Rookery-Signature`: `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
#[must_use]
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `attempts + 1`: 1, 3, 6, 12, 30, then 60 times
/// `base` (10 s unless `ROOKERY_NOTIFY_RETRY_SECONDS` says otherwise).
#[must_use]
pub fn backoff(attempts: u32, base: Duration) -> Duration {
    const STEPS: [u32; 6] = [1, 3, 6, 12, 30, 60];
    base * STEPS[(attempts.max(1) as usize - 1).min(STEPS.len() - 1)]
}

fn retry_base() -> Duration {
    let seconds = std::env::var("ROOKERY_NOTIFY_RETRY_SECONDS").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(10.0);
    Duration::from_secs_f64(seconds.clamp(0.05, 3600.0))
}

/// POSTs `body` to `url`; the status of a 2xx answer, or why it failed.
fn send(url: &str, event: NotificationEvent, delivery_id: &str, body: &str, secret: Option<&[u8]>) -> Result<u16, (Option<u16>, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(ATTEMPT_TIMEOUT))
        .max_redirects(0)
        .user_agent(concat!("Rookery/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut request = agent
        .post(url)
        .header("content-type", "application/json")
        .header("X-Rookery-Event", format!("{event:?}"))
        .header("X-Rookery-Delivery", delivery_id);
    if let Some(secret) = secret {
        request = request.header("X-Rookery-Signature", signature(secret, body.as_bytes()));
    }
    match request.send(body) {
        Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
        Ok(response) => Err((Some(response.status().as_u16()), format!("the receiver answered {}", response.status()))),
        Err(e) => Err((None, format!("cannot reach the receiver: {e}"))),
    }
}

impl Rookery {
    /// Starts the thread that delivers notifications; it stops when the
    /// engine is dropped. The server starts it; an embedder that wants
    /// notifications does too.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start_notifier(self: &Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        let engine: Weak<Rookery> = Arc::downgrade(self);
        std::thread::Builder::new().name("notify-delivery".into()).spawn(move || loop {
            let Some(rookery) = engine.upgrade() else { return };
            let wait = rookery.deliver_due().min(IDLE);
            let notifier = rookery.monitor.notifier.clone();
            drop(rookery);
            notifier.sleep(wait);
        })
    }

    /// Sends every delivery that is due; the time until the next one is.
    fn deliver_due(&self) -> Duration {
        let system = self.catalog.system();
        let base = retry_base();
        let mut next = IDLE;
        for key in system.store().internal_keys_with_prefix(OUTBOX_PREFIX) {
            let Some(mut delivery) = system.store().read_internal::<Delivery>(&key).ok().flatten() else { continue };
            let now = now_ms();
            if delivery.next_attempt_ms > now {
                next = next.min(Duration::from_millis(u64::try_from(delivery.next_attempt_ms - now).unwrap_or(0)));
                continue;
            }
            let Some(webhook) = stored_webhook(&system, &delivery.webhook).filter(|w| !w.disabled) else {
                // The webhook was removed or turned off: its deliveries go with it.
                let _ = system.store().remove_internal(&key);
                continue;
            };
            let outcome = self.attempt(&webhook, &delivery);
            delivery.attempts += 1;
            let (status, error) = match outcome {
                Ok(status) => (Some(status), None),
                Err((status, error)) => (status, Some(error)),
            };
            record_attempt(&system, &webhook.name, status, error.clone());
            let given_up = u64::try_from(now_ms() - delivery.created_ms).unwrap_or(0) >= GIVE_UP_AFTER.as_millis() as u64;
            let done = error.is_none() || given_up;
            self.monitor.metrics.notification(
                delivery.event,
                if error.is_none() {
                    "delivered"
                } else if given_up {
                    "given_up"
                } else {
                    "retried"
                },
            );
            let result = if done {
                if let Some(e) = &error {
                    tracing::error!(webhook = %webhook.name, delivery = %delivery.id, error = %e, "a notification was given up after 24 hours of attempts");
                }
                system.store().remove_internal(&key)
            } else {
                let wait = backoff(delivery.attempts, base);
                tracing::warn!(webhook = %webhook.name, delivery = %delivery.id, error = ?error, retry_in = ?wait, "a notification was not delivered");
                delivery.last_error = error;
                delivery.next_attempt_ms = now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                next = next.min(wait);
                system.store().write_internal(&outbox_key(&delivery), &delivery)
            };
            if let Err(e) = result.and_then(|()| system.store().persist()) {
                tracing::error!(error = %e, "cannot update the notification outbox");
            }
        }
        next
    }

    fn attempt(&self, webhook: &StoredWebhook, delivery: &Delivery) -> Result<u16, (Option<u16>, String)> {
        let secret = self.webhook_secret(webhook).map_err(|e| (None, format!("cannot open the webhook's secret: {e}")))?;
        send(&webhook.url, delivery.event, &delivery.id, &delivery.body, secret.as_deref())
    }

    /// Sends a `Test` event to a webhook now, once, and says what happened
    /// (the outbox is not involved; nothing is retried).
    ///
    /// # Errors
    /// `NotFound`; storage errors opening the secret.
    pub fn test_notification(&self, name: &str) -> Result<TestDelivery, NotifyError> {
        let system = self.catalog.system();
        let webhook = stored_webhook(&system, name).ok_or_else(|| NotifyError::NotFound(name.to_string()))?;
        let facts = EventFacts {
            message: format!("A test of the notification '{}' sent from the studio or the API.", webhook.name),
            ..Default::default()
        };
        let body = serde_json::to_string(&self.monitor.notifier.body(NotificationEvent::Test, &facts))
            .map_err(|e| NotifyError::Invalid(e.to_string()))?;
        let secret = self.webhook_secret(&webhook)?;
        let id = uuid::Uuid::new_v4().to_string();
        let outcome = send(&webhook.url, NotificationEvent::Test, &id, &body, secret.as_deref());
        let (status, error) = match outcome {
            Ok(status) => (Some(status), None),
            Err((status, error)) => (status, Some(error)),
        };
        record_attempt(&system, &webhook.name, status, error.clone());
        Ok(TestDelivery { delivered: error.is_none(), status_code: status, error, delivery_id: id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_back_off_to_every_ten_minutes_and_last_a_day() {
        let base = Duration::from_secs(10);
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n, base).as_secs()).collect();
        assert_eq!(waits, [10, 30, 60, 120, 300, 600, 600, 600]);
        let total: Duration = (1..=200).map(|n| backoff(n, base)).sum();
        assert!(total >= GIVE_UP_AFTER, "attempts go on for at least a day");
    }
}
