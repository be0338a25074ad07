//! Where the engine reports how its work ended: each backup, task run,
//! drill and restore goes into the records and the live metrics, and the
//! changes an operator must hear of become notifications, once each (a
//! task that keeps failing is announced when it starts to fail and when it
//! recovers, not at every run).

use std::sync::Arc;

use rookery_types::{ErrorCode, LastDrill, NotificationEvent};

use super::metrics::Metrics;
use super::records::{self, BackupOutcome};
use crate::notify::notifier::{EventFacts, Notifier};
use crate::storage::DatabaseHandle;

/// The engine's monitoring: metrics, records and notifications.
#[derive(Debug)]
pub struct Monitor {
    system: Arc<DatabaseHandle>,
    pub metrics: Metrics,
    pub notifier: Arc<Notifier>,
}

fn who(database: &DatabaseHandle, task: &str) -> String {
    if task.is_empty() {
        format!("The backup of '{}'", database.name)
    } else {
        format!("Task '{task}' of '{}'", database.name)
    }
}

impl Monitor {
    /// The monitoring of an engine whose system database is `system`;
    /// events link to the studio at `public_url`.
    #[must_use]
    pub fn new(system: Arc<DatabaseHandle>, public_url: String) -> Self {
        let notifier = Arc::new(Notifier::new(system.clone(), public_url));
        Self { system, metrics: Metrics::default(), notifier }
    }

    /// A backup or compaction job ended, by hand or for a task. Its kind's
    /// record is kept; a backup by hand is also judged here (a task's run is
    /// judged when the scheduler records it, its retention included).
    pub fn backup_ended(&self, outcome: &BackupOutcome) {
        if let Err(e) = records::record(&self.system, outcome) {
            tracing::warn!(database = %outcome.database.name, error = %e, "cannot record a backup's outcome");
        }
        if outcome.task.is_empty() {
            let result = outcome.result.as_ref().map(|s| s.set_id.as_str()).map_err(|(code, message)| (*code, message.as_str()));
            self.task_run_ended(&outcome.database, "", result);
        }
    }

    /// A task's run ended (`task` empty: a backup by hand), or could not
    /// start: `BackupFailed` when it starts failing, `BackupRecovered` at
    /// the first success after a failure or a stale spell.
    pub fn task_run_ended(&self, database: &DatabaseHandle, task: &str, result: Result<&str, (ErrorCode, &str)>) {
        let changed = records::update_health(&self.system, database, task, |health| match &result {
            Ok(_) => {
                health.failing = false;
                health.stale = false;
                health.failures = 0;
                health.last_error_code = None;
                health.last_error = None;
            }
            Err((code, message)) => {
                health.failing = true;
                health.failures = health.failures.saturating_add(1);
                health.last_error_code = Some(code.as_str().to_string());
                health.last_error = Some((*message).to_string());
            }
        });
        let (before, after) = match changed {
            Ok(states) => states,
            Err(e) => return tracing::warn!(database = %database.name, task, error = %e, "cannot record a task's health"),
        };
        let mut facts = EventFacts { database: Some(database.name.clone()), task: Some(task.to_string()), ..Default::default() };
        match result {
            Err((code, message)) if !before.failing => {
                facts.error_code = Some(code.as_str().to_string());
                facts.message = format!("{} failed: {message}", who(database, task));
                self.notifier.emit(NotificationEvent::BackupFailed, &facts);
            }
            Ok(set_id) if before.failing || before.stale => {
                facts.set_id = Some(set_id.to_string());
                facts.message = if before.failing {
                    format!("{} succeeded again ({set_id}) after {} failed run(s).", who(database, task), before.failures)
                } else {
                    format!("{} is up to date again ({set_id}).", who(database, task))
                };
                self.notifier.emit(NotificationEvent::BackupRecovered, &facts);
            }
            _ => {}
        }
        debug_assert!(after.failing == result.is_err());
    }

    /// The recovery point of a task became older than its objective (or
    /// caught up again): `BackupStale` once, when it begins.
    pub fn staleness(&self, database: &DatabaseHandle, task: &str, stale: bool, message: &str) {
        let Ok((before, _)) = records::update_health(&self.system, database, task, |h| h.stale = stale) else { return };
        if stale && !before.stale {
            let facts = EventFacts {
                database: Some(database.name.clone()),
                task: Some(task.to_string()),
                error_code: None,
                message: message.to_string(),
                ..Default::default()
            };
            self.notifier.emit(NotificationEvent::BackupStale, &facts);
        }
    }

    /// A restore drill ended: `DrillFailed` for each failed one.
    pub fn drill_ended(&self, database: &DatabaseHandle, task: &str, drill: &LastDrill) {
        if drill.success {
            return;
        }
        let facts = EventFacts {
            database: Some(database.name.clone()),
            task: Some(task.to_string()),
            set_id: drill.set_id.clone(),
            error_code: None,
            message: format!("The restore drill of task '{task}' of '{}' failed: {}", database.name, drill.error.as_deref().unwrap_or("")),
        };
        self.notifier.emit(NotificationEvent::DrillFailed, &facts);
    }

    /// A restore job ended: `RestoreSucceeded` or `RestoreFailed`.
    pub fn restore_ended(&self, database: &str, result: Result<&str, (ErrorCode, &str)>) {
        let mut facts = EventFacts { database: Some(database.to_string()), ..Default::default() };
        let event = match result {
            Ok(set_id) => {
                facts.set_id = Some(set_id.to_string());
                facts.message = format!("The restore of '{database}' succeeded (up to {set_id}).");
                NotificationEvent::RestoreSucceeded
            }
            Err((code, message)) => {
                facts.error_code = Some(code.as_str().to_string());
                facts.message = format!("The restore of '{database}' failed: {message}");
                NotificationEvent::RestoreFailed
            }
        };
        self.notifier.emit(event, &facts);
    }
}
