//! Notifications without Prometheus: webhooks that receive an event when a
//! backup fails, recovers or goes stale, a drill fails, or a restore ends.
//!
//! An event is queued in the system database ([`notifier`]) for each
//! webhook that wants it, then sent by a background thread ([`delivery`])
//! with an HMAC-SHA256 signature of its body, and retried with backoff for
//! a day, across restarts. Emitting never waits for a receiver.

pub mod delivery;
pub mod manage;
pub mod notifier;
pub mod webhooks;

pub use delivery::signature;
pub use notifier::{EventFacts, Notifier};
pub use webhooks::NotifyError;
