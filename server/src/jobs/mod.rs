//! The one job model: backup, restore and import each run as a [`Job`], the
//! same way.
//!
//! A job owns, for as long as it runs:
//! - its [`SlotGuard`]: one job of a kind at a time on a server;
//! - its hold on the database it reads or writes ([`JobHold`]), taken before
//!   anything is read, so that a delete meanwhile answers `DatabaseBusy`;
//! - its [`StatusReporter`], which writes the status document and marks the
//!   job failed on any exit without a result (panics included);
//! - its [`CancelToken`], registered in [`Running`] so that a cancel request
//!   finds it; the job checks it between steps and ends with `Canceled`.
//!
//! [`Job::spawn`] runs the job's body on a named background thread at the
//! lowest CPU priority and ends the status document with the body's result;
//! only then are the slot, the hold and the registration released, so a
//! client that sees `IsRunning: false` can start the next job at once.

pub mod slot;
pub mod status;
pub mod unfinished;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rookery_types::ErrorCode;

use crate::storage::JobHold;
pub use slot::{JobSlot, SlotGuard};
pub use status::{format_rfc3339, now_rfc3339, read_status, recover_interrupted, StatusReporter, STATUS_INTERVAL};
pub use unfinished::{remove_unfinished_folders, UnfinishedFolder, UnfinishedSet};

/// The kinds of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Backup,
    Restore,
    Import,
    Compact,
    RestoreDocuments,
    Copy,
}

impl JobKind {
    /// The `kind` label of the job metrics.
    #[must_use]
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Import => "import",
            Self::Compact => "compaction",
            Self::RestoreDocuments => "restore_documents",
            Self::Copy => "copy",
        }
    }

    /// The word that starts the job's messages ("Backup failed: ...").
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Backup => "Backup",
            Self::Restore => "Restore",
            Self::Import => "Import",
            Self::Compact => "Compaction",
            Self::RestoreDocuments => "Restore of documents",
            Self::Copy => "Copy",
        }
    }
}

/// A request to stop, checked by the job between steps.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the job was asked to stop.
    #[must_use]
    pub fn is_canceled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleeps for `duration`, or less when the job is asked to stop
    /// meanwhile (looked at every `CANCEL_POLL`); whether it slept it all.
    #[must_use]
    pub fn sleep(&self, duration: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + duration;
        loop {
            if self.is_canceled() {
                return false;
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(CANCEL_POLL));
        }
    }
}

/// How often a job's wait (a sleep, a request to object storage) looks
/// whether it was canceled.
pub(crate) const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The jobs that run now, by kind and database (lower-case name; the
/// server-wide restore under `""`), so that a cancel request finds its job.
#[derive(Debug, Default)]
pub struct Running(Mutex<HashMap<(JobKind, String), CancelToken>>);

/// A job's entry in [`Running`]; dropping it removes the entry.
#[derive(Debug)]
pub struct Registration {
    running: Arc<Running>,
    key: (JobKind, String),
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(JobKind, String), CancelToken>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a job that starts now.
    fn register(self: &Arc<Self>, kind: JobKind, scope: &str) -> (CancelToken, Registration) {
        let token = CancelToken::default();
        let key = (kind, scope.to_ascii_lowercase());
        self.lock().insert(key.clone(), token.clone());
        (token, Registration { running: self.clone(), key })
    }

    /// Asks the running job of `kind` on `scope` to stop; false when none runs.
    pub fn cancel(&self, kind: JobKind, scope: &str) -> bool {
        match self.lock().get(&(kind, scope.to_ascii_lowercase())) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.running.lock().remove(&self.key);
    }
}

/// What a job's error tells its status document: the same code an HTTP
/// answer would give for the same failure.
pub trait JobError: std::fmt::Display + Sized {
    /// The stable code.
    fn code(&self) -> ErrorCode;

    /// A job whose thread failed, with `message`: a thread that could not
    /// start, or one that panicked (its status document then says
    /// `JobAborted`: see `CompletionGuard`).
    fn thread_failed(message: String) -> Self;
}

/// A job on its thread, as [`Job::spawn`] started it: its result to wait
/// for, and its end for others to wait on. Each kind's handle
/// (`BackupHandle`, `RestoreHandle`, `ImportHandle`, ...) holds one.
#[derive(Debug)]
pub struct JobThread<T, E> {
    kind: JobKind,
    thread: JoinHandle<Result<T, E>>,
    completion: Arc<Completion>,
}

impl<T, E: JobError> JobThread<T, E> {
    /// Blocks until the job ends.
    ///
    /// # Errors
    /// The job's error (also in its status document); [`JobError::thread_failed`]
    /// for a thread that panicked.
    pub fn wait(self) -> Result<T, E> {
        let kind = self.kind;
        self.thread.join().unwrap_or_else(|_| Err(E::thread_failed(format!("{}: the job's thread panicked", kind.label()))))
    }

    /// Whether the job has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// The job's end, to wait for without owning the handle.
    #[must_use]
    pub fn completion(&self) -> Arc<Completion> {
        self.completion.clone()
    }
}

/// How a job ended: its final status, and its error's code and message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: rookery_types::JobStatus,
    pub error: Option<(ErrorCode, String)>,
}

/// The end of a job, for whoever waits for it (`?wait=true`): set once,
/// when the status document is final.
#[derive(Debug, Default)]
pub struct Completion {
    outcome: Mutex<Option<Outcome>>,
    ended: std::sync::Condvar,
}

impl Completion {
    fn finish(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(outcome);
        self.ended.notify_all();
    }

    /// Blocks until the job has ended.
    #[must_use]
    pub fn wait(&self) -> Outcome {
        let guard = self.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let guard = self.ended.wait_while(guard, |o| o.is_none()).unwrap_or_else(std::sync::PoisonError::into_inner);
        guard
            .clone()
            .unwrap_or_else(|| Outcome { status: rookery_types::JobStatus::default(), error: Some((ErrorCode::JobAborted, String::new())) })
    }
}

/// Ends a job's completion when the job's thread never got to it (it
/// panicked before its status was final, or could not start).
struct CompletionGuard(Arc<Completion>);

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        let mut outcome = self.0.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if outcome.is_none() {
            *outcome = Some(Outcome {
                status: rookery_types::JobStatus::default(),
                error: Some((ErrorCode::JobAborted, "The job stopped unexpectedly; nothing was made visible.".into())),
            });
            self.0.ended.notify_all();
        }
    }
}

/// One running job (see the module's documentation).
pub struct Job {
    pub kind: JobKind,
    pub reporter: StatusReporter,
    pub cancel: CancelToken,
    slot: SlotGuard,
    hold: Option<JobHold>,
    registration: Registration,
    completion: Arc<Completion>,
    monitor: Option<Arc<crate::monitor::outcomes::Monitor>>,
}

impl Job {
    /// A job that holds `slot` (and `hold`, for a job on one database), reports
    /// into `reporter`, and can be canceled through `running` under `scope`.
    #[must_use]
    pub fn new(
        kind: JobKind,
        slot: SlotGuard,
        hold: Option<JobHold>,
        reporter: StatusReporter,
        running: &Arc<Running>,
        scope: &str,
    ) -> Self {
        let (cancel, registration) = running.register(kind, scope);
        Self { kind, reporter, cancel, slot, hold, registration, completion: Arc::default(), monitor: None }
    }

    /// Counts the job's end in `monitor`'s metrics (`rookery_jobs_total`).
    #[must_use]
    pub fn observed_by(mut self, monitor: &Arc<crate::monitor::outcomes::Monitor>) -> Self {
        self.monitor = Some(monitor.clone());
        self
    }

    /// Runs `body` on a background thread named `thread_name`, at the lowest
    /// CPU priority, then ends the status document: `done(&result)` as the
    /// last message on success, the error's code and message otherwise.
    ///
    /// # Errors
    /// [`JobError::thread_failed`]: the thread cannot be started (the job
    /// then ends as failed).
    pub fn spawn<T, E>(
        self,
        thread_name: String,
        body: impl FnOnce(&mut Job) -> Result<T, E> + Send + 'static,
        done: impl FnOnce(&T) -> String + Send + 'static,
    ) -> Result<JobThread<T, E>, E>
    where
        T: Send + 'static,
        E: JobError + Send + 'static,
    {
        let (kind, completion) = (self.kind, self.completion.clone());
        let guard = CompletionGuard(completion.clone());
        let thread = std::thread::Builder::new().name(thread_name).spawn(move || {
            let guard = guard;
            lower_priority();
            let mut job = self;
            let started = std::time::Instant::now();
            let result = body(&mut job);
            let Job { kind, reporter, slot, hold, registration, completion, monitor, .. } = job;
            // From here a request for the slot waits for it rather than being
            // refused: the status is about to say the job ended.
            slot.ending();
            let outcome = match &result {
                Ok(value) => Outcome { status: reporter.succeed(&done(value)), error: None },
                Err(e) if e.code() == ErrorCode::Canceled => {
                    tracing::info!(job = kind.label(), "job canceled");
                    let status = reporter.fail(e.code(), &format!("{} canceled: {e}", kind.label()));
                    Outcome { status, error: Some((e.code(), e.to_string())) }
                }
                Err(e) => {
                    tracing::error!(job = kind.label(), error = %e, "job failed");
                    let status = reporter.fail(e.code(), &format!("{} failed: {e}", kind.label()));
                    Outcome { status, error: Some((e.code(), e.to_string())) }
                }
            };
            if let Some(monitor) = monitor {
                let outcome_label = match &outcome.error {
                    None => "succeeded",
                    Some((ErrorCode::Canceled, _)) => "canceled",
                    Some(_) => "failed",
                };
                monitor.metrics.job_ended(kind.metric_label(), outcome_label, started.elapsed().as_secs_f64());
            }
            // The status says the job ended before its slot is free.
            drop((registration, hold, slot));
            completion.finish(outcome);
            drop(guard);
            result
        });
        let thread = thread.map_err(|e| E::thread_failed(format!("{}: cannot start the job's thread: {e}", kind.label())))?;
        Ok(JobThread { kind, thread, completion })
    }
}

/// Jobs yield the CPU to the requests the database keeps serving: the
/// calling thread (and every thread it starts: compression, reading ahead)
/// runs under Linux's `SCHED_IDLE` policy, so it gets a core only while no
/// request wants it and a waking request takes the core back at once
/// (niceness 19 alone still lets a job hold a core for a time slice of
/// several milliseconds, which is what a request's p99 felt). Where the
/// policy cannot be set, the lowest niceness.
fn lower_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if thread_priority::set_thread_priority_and_policy(thread_priority::thread_native_id(), ThreadPriority::Min, idle).is_ok() {
        return;
    }
    if let Err(e) = thread_priority::set_current_thread_priority(ThreadPriority::Min) {
        tracing::debug!(error = ?e, "cannot lower a job thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_finds_its_running_job_and_only_while_it_runs() {
        let running = Arc::new(Running::default());
        assert!(!running.cancel(JobKind::Backup, "Northwind"), "nothing runs");
        let (token, registration) = running.register(JobKind::Backup, "Northwind");
        assert!(!running.cancel(JobKind::Restore, "Northwind"), "another kind");
        assert!(!running.cancel(JobKind::Backup, "Other"), "another database");
        assert!(!token.is_canceled());
        assert!(running.cancel(JobKind::Backup, "NORTHWIND"), "names are case-insensitive");
        assert!(token.is_canceled());
        drop(registration);
        assert!(!running.cancel(JobKind::Backup, "Northwind"), "ended");
    }

    /// Waiting for a job whose thread panicked answers the kind's error
    /// naming the job, and the job's end is still given to whoever waits.
    #[test]
    fn waiting_for_a_job_whose_thread_panicked_answers_its_error() {
        #[derive(Debug)]
        struct Failed(String);
        impl std::fmt::Display for Failed {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl JobError for Failed {
            fn code(&self) -> ErrorCode {
                ErrorCode::JobAborted
            }
            fn thread_failed(message: String) -> Self {
                Self(message)
            }
        }
        let completion = Arc::new(Completion::default());
        let guard = CompletionGuard(completion.clone());
        let thread = std::thread::spawn(move || -> Result<(), Failed> {
            let _guard = guard;
            panic!("a bug in a job");
        });
        let job = JobThread { kind: JobKind::RestoreDocuments, thread, completion };
        let end = job.completion();
        let Err(Failed(message)) = job.wait() else { panic!("a panicked job cannot succeed") };
        assert_eq!(message, "Restore of documents: the job's thread panicked");
        assert_eq!(end.wait().error.map(|(code, _)| code), Some(ErrorCode::JobAborted));
    }
}
