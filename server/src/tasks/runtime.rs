//! The tasks' runtime state, shared by the REST handlers and the scheduler:
//! runs in progress, due runs waiting for the backup slot, and the wake-ups.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rookery_types::BackupKind;

use crate::backup::handle::BackupHandle;

/// How often the scheduler looks at the tasks when nothing wakes it.
const TICK: Duration = Duration::from_millis(200);

/// A run in progress.
pub(super) struct Run {
    pub(super) handle: BackupHandle,
    pub(super) started: Instant,
}

/// What the scheduler holds for one task.
#[derive(Default)]
pub(super) struct Runtime {
    /// A due run that waits for the backup slot (at most one per task).
    pub(super) pending: Option<BackupKind>,
    /// Runs started and not yet recorded (a run now may start while the
    /// scheduler has not yet recorded the run before it).
    pub(super) running: Vec<Run>,
    /// When the schedules were last looked at (persisted when a run falls due).
    pub(super) last_checked: Option<Timestamp>,
    /// Continuous tasks: since when a change waits to be shipped.
    pub(super) unshipped_since: Option<Instant>,
    /// Continuous tasks: when the last run started (at most one per MaxLagSeconds).
    pub(super) last_started: Option<Instant>,
    /// Continuous tasks: the database's last etag when the change log last showed
    /// no client change to ship (the look is skipped while it stays there).
    pub(super) clean_at: Option<u64>,
    /// A drill that is due and has not started (the restore slot was busy).
    pub(super) drill_pending: bool,
    /// A drill in progress (`None` from it: the slot was busy, it stays due).
    pub(super) drill: Option<JoinHandle<Option<rookery_types::LastDrill>>>,
    /// When the drill schedule was last looked at.
    pub(super) drill_checked: Option<Timestamp>,
    /// Finished runs being recorded (their copies not yet started).
    pub(super) recording: usize,
    /// Copies into the task's other destinations in progress, by location.
    pub(super) copies: Vec<(String, JoinHandle<super::destination_state::CopyOutcome>)>,
}

/// The tasks' runtime state, shared by the REST handlers and the scheduler.
#[derive(Default)]
pub struct Tasks {
    changes: Mutex<()>,
    runtime: Mutex<HashMap<(String, String), Runtime>>,
    wake: (Mutex<bool>, Condvar),
    /// Counts the scheduler's rounds of recording finished runs.
    recorded: (Mutex<u64>, Condvar),
    /// When the recovery points were last checked against the objectives.
    staleness_checked: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks").finish_non_exhaustive()
    }
}

pub(super) fn runtime_key(database: &str, task: &str) -> (String, String) {
    (database.to_ascii_lowercase(), task.to_ascii_lowercase())
}

impl Tasks {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Runtime>> {
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

    pub(super) fn sleep(&self) {
        let guard = self.wake.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut woken, _) = self.wake.1.wait_timeout_while(guard, TICK, |w| !*w).unwrap_or_else(std::sync::PoisonError::into_inner);
        *woken = false;
    }

    /// Tells whoever waits that finished runs were recorded.
    pub(super) fn runs_recorded(&self) {
        *self.recorded.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.recorded.1.notify_all();
    }

    /// Blocks until no run of the task is left unrecorded (its retention
    /// applied, its copies into other destinations made, its status
    /// written), at most `limit`.
    pub(crate) fn wait_recorded(&self, database: &str, task: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let key = runtime_key(database, task);
        let busy = |rt: &Runtime| !rt.running.is_empty() || rt.recording > 0 || !rt.copies.is_empty();
        while self.lock().get(&key).is_some_and(busy) && Instant::now() < deadline {
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

    /// Counts one finished run of the task as recorded when dropped.
    pub(super) fn recorded_on_drop<'a>(&'a self, database: &str, task: &str) -> impl Drop + 'a {
        struct Recorded<'a>(&'a Tasks, (String, String));
        impl Drop for Recorded<'_> {
            fn drop(&mut self) {
                if let Some(rt) = self.0.lock().get_mut(&self.1) {
                    rt.recording = rt.recording.saturating_sub(1);
                }
            }
        }
        Recorded(self, runtime_key(database, task))
    }

    /// The destinations of a task a copy runs into now.
    pub(crate) fn copying(&self, database: &str, task: &str) -> Vec<String> {
        self.lock().get(&runtime_key(database, task)).map(|rt| rt.copies.iter().map(|(l, _)| l.clone()).collect()).unwrap_or_default()
    }

    /// Records a copy into a destination that started.
    pub(crate) fn copy_started(
        &self,
        database: &str,
        task: &str,
        location: &str,
        handle: JoinHandle<super::destination_state::CopyOutcome>,
    ) {
        self.lock().entry(runtime_key(database, task)).or_default().copies.push((location.to_string(), handle));
    }

    /// Whether `every` has passed since the last check of staleness (and
    /// then counts this one as done).
    pub(crate) fn staleness_due(&self, every: Duration) -> bool {
        let mut last = self.staleness_checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < every) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Seconds the oldest unshipped change of a continuous task has waited.
    pub(crate) fn lag_seconds(&self, database: &str, task: &str) -> f64 {
        let since = self.lock().get(&runtime_key(database, task)).and_then(|rt| rt.unshipped_since);
        since.map_or(0.0, |t| (t.elapsed().as_secs_f64() * 10.0).round() / 10.0)
    }
}
