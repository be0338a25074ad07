//! The scheduler: a background thread that runs due task backups, waits for
//! a running backup before starting a due one, records what each run did and
//! applies the task's retention after a successful run.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rookery_types::{BackupKind, Severity, BACKUP_STATUS_ID};

use super::error::TaskError;
use super::record::{task_key, task_records, StoredTask, TaskState};
use super::runtime::{runtime_key, Run, Runtime};
use super::schedule::Schedules;
use crate::backup::{BackupError, SetKind};
use crate::engine::Rookery;
use crate::monitor::{BackupOutcome, RunKind};
use crate::storage::DatabaseHandle;

/// How often the scheduler checks the tasks' recovery points against their objectives.
const STALENESS_EVERY: Duration = Duration::from_secs(5);

impl Rookery {
    /// Starts the scheduler thread; it stops when the engine is dropped. The
    /// server starts it; an embedder that wants scheduled backups does too.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start_scheduler(self: &Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        let engine: Weak<Rookery> = Arc::downgrade(self);
        std::thread::Builder::new().name("task-scheduler".into()).spawn(move || loop {
            let Some(rookery) = engine.upgrade() else { return };
            rookery.scheduler_tick();
            let tasks = rookery.clone();
            drop(rookery);
            tasks.tasks.sleep();
        })
    }

    /// One look at every task: record finished runs, find due ones, start
    /// what can start.
    fn scheduler_tick(self: &Arc<Self>) {
        self.reap_finished_runs();
        if self.tasks.staleness_due(STALENESS_EVERY) {
            self.check_staleness();
        }
        let now = Timestamp::now();
        for db in std::iter::once(self.catalog.system()).chain(self.catalog.list()) {
            for record in task_records(&db) {
                let stored = match record {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(database = %db.name, error = %e, "an unreadable backup task record");
                        continue;
                    }
                };
                if let Err(e) = self.consider_drill(&db, &stored, now) {
                    tracing::warn!(database = %db.name, task = %stored.name, error = %e, "a restore drill could not start");
                }
                if let Err(e) = self.consider(&db, &stored, now) {
                    tracing::warn!(database = %db.name, task = %stored.name, error = %e, "a backup task could not run");
                    self.record(&db, &stored.name, |state| state.last_error = Some(e.to_string()));
                }
            }
        }
    }

    /// Marks a due run pending, then starts a pending run when the backup slot is free.
    fn consider(&self, db: &Arc<DatabaseHandle>, stored: &StoredTask, now: Timestamp) -> Result<(), TaskError> {
        let key = runtime_key(&db.name, &stored.name);
        let due = {
            let mut map = self.tasks.lock();
            let rt = map.entry(key.clone()).or_insert_with(|| Runtime { pending: stored.state.pending, ..Runtime::default() });
            let after = rt.last_checked.or(stored.state.last_checked).unwrap_or(now);
            rt.last_checked = Some(now);
            if stored.task.disabled {
                rt.pending = None;
                None
            } else {
                let due = Schedules::of(&stored.task)?.due(after, now);
                if let Some(kind) = due {
                    // At most one pending run; a full wins over an incremental.
                    rt.pending = Some(match (rt.pending, kind) {
                        (Some(BackupKind::Full), _) | (_, BackupKind::Full) => BackupKind::Full,
                        _ => BackupKind::Incremental,
                    });
                }
                due
            }
        };
        if let Some(continuous) = stored.task.continuous.as_ref().filter(|_| !stored.task.disabled) {
            // Nothing is asked of the storage here: a look at the database only,
            // and none at all while its last etag has not moved since a clean look.
            let last_etag = db.store().last_etag();
            let clean = self.tasks.lock().get(&key).and_then(|rt| rt.clean_at) == Some(last_etag);
            let unshipped = !clean && db.store().has_client_changes_after(stored.state.last_shipped_etag.unwrap_or(0));
            let mut map = self.tasks.lock();
            if let Some(rt) = map.get_mut(&key) {
                rt.clean_at = (!unshipped && rt.running.is_empty()).then_some(last_etag);
                if unshipped {
                    rt.unshipped_since.get_or_insert_with(Instant::now);
                    let spaced = rt.last_started.is_none_or(|t| t.elapsed() >= Duration::from_secs(u64::from(continuous.max_lag_seconds)));
                    if rt.pending.is_none() && rt.running.is_empty() && spaced {
                        rt.pending = Some(BackupKind::Incremental);
                    }
                } else if rt.running.is_empty() {
                    rt.unshipped_since = None;
                }
            }
        }
        let pending = {
            let map = self.tasks.lock();
            map.get(&key).and_then(|rt| if rt.running.is_empty() { rt.pending } else { None })
        };
        if due.is_some() {
            // Persisted with the pending run, so a restart neither loses it nor runs it twice.
            self.record(db, &stored.name, |state| {
                state.last_checked = Some(now);
                state.pending = pending;
            });
        }
        let Some(kind) = pending else { return Ok(()) };
        // While another backup runs, the run waits (without preparing it again each tick).
        if self.backup_slot.is_busy() {
            return Ok(());
        }
        match self.start_task_run(db, stored, kind) {
            Ok(run) => {
                tracing::info!(database = %db.name, task = %stored.name, set = %run.set_id, "scheduled backup started");
                if let Some(rt) = self.tasks.lock().get_mut(&key) {
                    rt.pending = None;
                }
                self.record(db, &stored.name, |state| state.pending = None);
                Ok(())
            }
            // Another backup runs: the run waits for it (it stays pending).
            Err(TaskError::Backup(BackupError::AlreadyRunning | BackupError::CompactionAlreadyRunning)) => Ok(()),
            Err(e) => {
                if let Some(rt) = self.tasks.lock().get_mut(&key) {
                    rt.pending = None;
                }
                self.record(db, &stored.name, |state| state.pending = None);
                self.run_could_not_start(db, stored, kind, &e);
                Err(e)
            }
        }
    }

    /// Starts a due drill of the task in the background (one at a time per task).
    fn consider_drill(self: &Arc<Self>, db: &Arc<DatabaseHandle>, stored: &StoredTask, now: Timestamp) -> Result<(), TaskError> {
        let Some(drill) = stored.task.drill.as_ref().filter(|_| !stored.task.disabled) else { return Ok(()) };
        let key = runtime_key(&db.name, &stored.name);
        let start = {
            let mut map = self.tasks.lock();
            let rt = map.entry(key).or_default();
            let after = rt.drill_checked.or(stored.state.drill_checked).unwrap_or(now);
            rt.drill_checked = Some(now);
            let schedule = super::schedule::Schedule::parse("Drill.Frequency", &drill.frequency)?;
            let zone = super::schedule::zone(stored.task.time_zone.as_deref())?;
            if schedule.due_between(&zone, after, now) {
                rt.drill_pending = true;
            }
            if rt.drill_pending && rt.drill.is_none() && !self.restore_slot.is_busy() {
                rt.drill_pending = false;
                let (engine, db, stored) = (self.clone(), db.clone(), stored.clone());
                rt.drill = Some(
                    std::thread::Builder::new()
                        .name(format!("drill-{}", stored.name))
                        .spawn(move || engine.run_drill(&db, &stored))
                        .map_err(|e| TaskError::Io(format!("cannot start a drill: {e}")))?,
                );
                true
            } else {
                false
            }
        };
        if start {
            self.record(db, &stored.name, |state| state.drill_checked = Some(now));
        }
        Ok(())
    }

    /// Records the result of every run that ended, then applies retention.
    fn reap_finished_runs(&self) {
        let drills: Vec<((String, String), Option<rookery_types::LastDrill>)> = {
            let mut map = self.tasks.lock();
            let mut out = Vec::new();
            for (key, rt) in map.iter_mut() {
                if rt.drill.as_ref().is_some_and(JoinHandle::is_finished) {
                    let outcome = match rt.drill.take().map(JoinHandle::join) {
                        // The restore slot was busy: still due.
                        Some(Ok(None)) => {
                            rt.drill_pending = true;
                            None
                        }
                        Some(Ok(Some(last))) => Some(last),
                        // A drill that panicked failed; it runs again at its next scheduled time only.
                        Some(Err(_)) => Some(super::drill::panicked()),
                        None => None,
                    };
                    out.push((key.clone(), outcome));
                }
            }
            out
        };
        for ((database, task), outcome) in drills {
            let (Some(db), Some(last)) = (self.catalog.get(&database), outcome) else { continue };
            self.monitor.drill_ended(&db, &task, &last);
            self.record(&db, &task, |state| state.last_drill = Some(last));
        }
        self.reap_copies();
        let finished: Vec<((String, String), Run)> = {
            let mut map = self.tasks.lock();
            let mut out = Vec::new();
            for (key, rt) in map.iter_mut() {
                let (done, still): (Vec<Run>, Vec<Run>) = std::mem::take(&mut rt.running).into_iter().partition(|r| r.handle.is_finished());
                rt.running = still;
                rt.recording += done.len();
                out.extend(done.into_iter().map(|run| (key.clone(), run)));
            }
            out
        };
        for ((database, task), run) in finished {
            let _recorded = self.tasks.recorded_on_drop(&database, &task);
            let duration = u64::try_from(run.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let result = run.handle.wait();
            let Some(db) = self.catalog.get(&database) else { continue };
            // A continuous task: nothing waits once the set shipped everything;
            // else what waits was changed after that run started, which bounds its age.
            if let Ok(summary) = &result {
                let left = db.store().has_client_changes_after(summary.to_etag);
                if let Some(rt) = self.tasks.lock().get_mut(&(database.clone(), task.clone())) {
                    if rt.unshipped_since.is_some() {
                        rt.unshipped_since = left.then_some(run.started);
                    }
                }
            }
            // Retention first: a run is recorded (LastSetId) once its retention
            // has let the backup slot go, so a run-now after it is not refused.
            // A retention that failed is the run's error (the set itself is fine).
            let retention_error = if result.is_ok() { self.retain_after_run(&db, &task) } else { None };
            let now = Timestamp::now();
            let judged = match (&result, &retention_error) {
                (Ok(summary), None) => Ok(summary.set_id.as_str()),
                (Ok(_), Some(e)) => Err((rookery_types::ErrorCode::IoError, e.as_str())),
                (Err(e), _) => Err((e.code(), "")),
            };
            let message = result.as_ref().err().map(ToString::to_string);
            self.monitor.task_run_ended(&db, &task, judged.map_err(|(code, m)| (code, message.as_deref().unwrap_or(m))));
            match &result {
                Ok(summary) => self.record(&db, &task, |state| {
                    match summary.kind {
                        SetKind::Full | SetKind::Snapshot => state.last_full_backup = Some(now),
                        SetKind::Incremental => state.last_incremental_backup = Some(now),
                    }
                    state.last_set_id = Some(summary.set_id.clone());
                    state.last_duration_ms = Some(duration);
                    state.last_error = retention_error;
                    state.last_shipped_etag = Some(summary.to_etag);
                }),
                Err(e) => self.record(&db, &task, |state| {
                    state.last_duration_ms = Some(duration);
                    state.last_error = Some(e.to_string());
                }),
            }
            if result.is_ok() {
                self.copy_after_run(&db, &task);
            }
        }
        self.tasks.runs_recorded();
    }

    /// After a successful run: copies into the task's other destinations.
    fn copy_after_run(&self, db: &Arc<DatabaseHandle>, task: &str) {
        if let Ok(Some(stored)) = self.read_task(db, task) {
            self.start_copies(db, &stored);
        }
    }

    /// Records the copies into other destinations that ended: a success
    /// replaces the destination's state, a failure keeps its last set and
    /// adds the error.
    fn reap_copies(&self) {
        let finished: Vec<((String, String), String, super::destinations::CopyOutcome)> = {
            let mut map = self.tasks.lock();
            let mut out = Vec::new();
            for (key, rt) in map.iter_mut() {
                let (done, still): (Vec<_>, Vec<_>) = std::mem::take(&mut rt.copies).into_iter().partition(|(_, h)| h.is_finished());
                rt.copies = still;
                out.extend(done.into_iter().filter_map(|(location, h)| Some((key.clone(), location, h.join().ok()?))));
            }
            out
        };
        for ((database, task), location, outcome) in finished {
            let Some(db) = self.catalog.get(&database) else { continue };
            let text = match (&outcome.state.last_error, outcome.deleted.is_empty()) {
                (Some(e), _) => format!("Copy of task '{task}' into {location} failed: {e}"),
                (None, true) => format!("Copy of task '{task}' into {location}: up to date"),
                (None, false) => {
                    format!("Copy of task '{task}' into {location}: up to date; retention deleted {}", outcome.deleted.join(", "))
                }
            };
            let severity = if outcome.state.last_error.is_some() { Severity::Warning } else { Severity::Information };
            crate::jobs::status::append_message(&db, BACKUP_STATUS_ID, &text, severity);
            self.record(&db, &task, |state| {
                let entry = state.destinations.entry(location).or_default();
                if outcome.state.last_error.is_some() {
                    entry.last_error = outcome.state.last_error;
                    entry.missing_sets = outcome.state.missing_sets;
                } else {
                    *entry = outcome.state;
                }
            });
        }
    }

    /// A task's retention after a successful run; what it deleted is said in
    /// the database's backup status document. Why it failed, if it did.
    fn retain_after_run(&self, db: &Arc<DatabaseHandle>, task: &str) -> Option<String> {
        let Ok(Some(stored)) = self.read_task(db, task) else { return None };
        let Some(policy) = &stored.task.retention else { return None };
        let mut failed = None;
        let (text, severity) = match self.apply_retention(&db.name, &stored.task.backup_location, policy, false) {
            Ok(outcome) if outcome.deleted.is_empty() => {
                (format!("Retention of task '{task}': nothing to delete ({} sets kept)", outcome.kept.len()), Severity::Information)
            }
            Ok(outcome) => (
                format!(
                    "Retention of task '{task}': deleted {} ({}); kept {} sets",
                    outcome.deleted.len(),
                    outcome.deleted.join(", "),
                    outcome.kept.len()
                ),
                Severity::Information,
            ),
            Err(e) => {
                failed = Some(format!("retention: {e}"));
                (format!("Retention of task '{task}' failed: {e}"), Severity::Warning)
            }
        };
        crate::jobs::status::append_message(db, BACKUP_STATUS_ID, &text, severity);
        failed
    }

    /// A due run that could not start (its location gone, its key missing):
    /// a failed run, for the records and the notifications.
    pub(super) fn run_could_not_start(&self, db: &Arc<DatabaseHandle>, stored: &StoredTask, kind: BackupKind, error: &TaskError) {
        let now = crate::notify::notifier::now_ms();
        let kind = match kind {
            BackupKind::Incremental => RunKind::Incremental,
            BackupKind::Full if stored.task.backup_type == rookery_types::BackupType::Snapshot => RunKind::Snapshot,
            BackupKind::Full => RunKind::Full,
        };
        let outcome = BackupOutcome {
            database: db.clone(),
            task: stored.name.clone(),
            kind,
            location: stored.task.backup_location.clone(),
            started_ms: now,
            ended_ms: now,
            result: Err((error.code(), error.to_string())),
        };
        self.monitor.backup_ended(&outcome);
        self.monitor.task_run_ended(db, &stored.name, Err((error.code(), &error.to_string())));
    }

    /// Updates a task's stored state (if the task still exists).
    fn record(&self, db: &DatabaseHandle, task: &str, change: impl FnOnce(&mut TaskState)) {
        let _changes = self.tasks.lock_changes();
        match self.read_task(db, task) {
            Ok(Some(mut stored)) => {
                change(&mut stored.state);
                if let Err(e) = self.write_task(db, &task_key(task), &stored) {
                    tracing::warn!(database = %db.name, task, error = %e, "cannot record a task's state");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(database = %db.name, task, error = %e, "cannot read a task"),
        }
    }
}
