//! The scheduler: a background thread that runs due task backups, waits for
//! a running backup before starting a due one, records what each run did and
//! applies the task's retention after a successful run.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rookery_types::{BackupKind, Severity, BACKUP_STATUS_ID};

use super::{task_key, Schedules, StoredTask, TaskError};
use crate::backup::{BackupError, BackupHandle, SetKind};
use crate::storage::DatabaseHandle;
use crate::Rookery;

/// Whether a client changed the database after `etag` (the server's own
/// `Raven/` documents, such as the status a backup writes, do not count).
fn has_client_changes_after(db: &DatabaseHandle, etag: u64) -> bool {
    if db.store().last_etag() <= etag {
        return false;
    }
    let snapshot = db.store().snapshot();
    let client = |r: Result<(u64, String), crate::storage::StorageError>| r.map_or(true, |(_, id)| !rookery_types::is_server_owned(&id));
    snapshot.changes_after(etag).any(client) || snapshot.deletions_after(etag).any(client)
}

/// How often the scheduler looks at the tasks when nothing wakes it.
const TICK: Duration = Duration::from_millis(200);

/// A run in progress.
struct Run {
    handle: BackupHandle,
    started: Instant,
}

/// What the scheduler holds for one task.
#[derive(Default)]
struct Runtime {
    /// A due run that waits for the backup slot (at most one per task).
    pending: Option<BackupKind>,
    /// Runs started and not yet recorded (a run now may start while the
    /// scheduler has not yet recorded the run before it).
    running: Vec<Run>,
    /// When the schedules were last looked at (persisted when a run falls due).
    last_checked: Option<Timestamp>,
    /// Continuous tasks: since when a change waits to be shipped.
    unshipped_since: Option<Instant>,
    /// Continuous tasks: when the last run started (at most one per MaxLagSeconds).
    last_started: Option<Instant>,
    /// Continuous tasks: the database's last etag when the change log last showed
    /// no client change to ship (the look is skipped while it stays there).
    clean_at: Option<u64>,
    /// A drill that is due and has not started (the restore slot was busy).
    drill_pending: bool,
    /// A drill in progress (`None` from it: the slot was busy, it stays due).
    drill: Option<JoinHandle<Option<rookery_types::LastDrill>>>,
    /// When the drill schedule was last looked at.
    drill_checked: Option<Timestamp>,
}

/// The tasks' runtime state, shared by the REST handlers and the scheduler.
#[derive(Default)]
pub struct Tasks {
    changes: Mutex<()>,
    runtime: Mutex<HashMap<(String, String), Runtime>>,
    wake: (Mutex<bool>, Condvar),
    /// Counts the scheduler's rounds of recording finished runs.
    recorded: (Mutex<u64>, Condvar),
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks").finish_non_exhaustive()
    }
}

fn runtime_key(database: &str, task: &str) -> (String, String) {
    (database.to_ascii_lowercase(), task.to_ascii_lowercase())
}

impl Tasks {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Runtime>> {
        self.runtime.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serializes changes to task records (a put, a delete, a run's result).
    pub(crate) fn lock_changes(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the scheduler look at the tasks now.
    pub(crate) fn wake(&self) {
        *self.wake.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.wake.1.notify_all();
    }

    fn sleep(&self) {
        let guard = self.wake.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut woken, _) = self.wake.1.wait_timeout_while(guard, TICK, |w| !*w).unwrap_or_else(std::sync::PoisonError::into_inner);
        *woken = false;
    }

    /// Tells whoever waits that finished runs were recorded.
    fn runs_recorded(&self) {
        *self.recorded.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.recorded.1.notify_all();
    }

    /// Blocks until no run of the task is left unrecorded (its retention
    /// applied, its status written), at most `limit`.
    pub(crate) fn wait_recorded(&self, database: &str, task: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let key = runtime_key(database, task);
        while self.lock().get(&key).is_some_and(|rt| !rt.running.is_empty()) && Instant::now() < deadline {
            self.wake();
            let guard = self.recorded.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = self.recorded.1.wait_timeout(guard, Duration::from_millis(50)).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Forgets a deleted task's pending run.
    pub(crate) fn forget(&self, database: &str, task: &str) {
        if let Some(rt) = self.lock().get_mut(&runtime_key(database, task)) {
            rt.pending = None;
        }
    }

    /// Whether a run of the task is in progress.
    pub(crate) fn is_running(&self, database: &str, task: &str) -> bool {
        self.lock().get(&runtime_key(database, task)).is_some_and(|rt| rt.running.iter().any(|r| !r.handle.is_finished()))
    }

    /// Records a run that started.
    pub(crate) fn started(&self, database: &str, task: &str, handle: BackupHandle, _kind: BackupKind) {
        let mut map = self.lock();
        let rt = map.entry(runtime_key(database, task)).or_default();
        rt.last_started = Some(Instant::now());
        rt.running.push(Run { handle, started: Instant::now() });
    }

    /// Seconds the oldest unshipped change of a continuous task has waited.
    pub(crate) fn lag_seconds(&self, database: &str, task: &str) -> f64 {
        let since = self.lock().get(&runtime_key(database, task)).and_then(|rt| rt.unshipped_since);
        since.map_or(0.0, |t| (t.elapsed().as_secs_f64() * 10.0).round() / 10.0)
    }
}

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
        let now = Timestamp::now();
        for db in std::iter::once(self.catalog.system()).chain(self.catalog.list()) {
            for record in super::task_records(&db) {
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
            let unshipped = !clean && has_client_changes_after(db, stored.state.last_shipped_etag.unwrap_or(0));
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
            self.record(&db, &task, |state| state.last_drill = Some(last));
        }
        let finished: Vec<((String, String), Run)> = {
            let mut map = self.tasks.lock();
            let mut out = Vec::new();
            for (key, rt) in map.iter_mut() {
                let (done, still): (Vec<Run>, Vec<Run>) = std::mem::take(&mut rt.running).into_iter().partition(|r| r.handle.is_finished());
                rt.running = still;
                out.extend(done.into_iter().map(|run| (key.clone(), run)));
            }
            out
        };
        for ((database, task), run) in finished {
            let duration = u64::try_from(run.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let result = run.handle.wait();
            let Some(db) = self.catalog.get(&database) else { continue };
            // A continuous task: nothing waits once the set shipped everything;
            // else what waits was changed after that run started, which bounds its age.
            if let Ok(summary) = &result {
                let left = has_client_changes_after(&db, summary.to_etag);
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
        }
        self.tasks.runs_recorded();
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

    /// Updates a task's stored state (if the task still exists).
    fn record(&self, db: &DatabaseHandle, task: &str, change: impl FnOnce(&mut super::TaskState)) {
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
