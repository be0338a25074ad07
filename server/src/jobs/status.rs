//! A job's status document (`Raven/Backup/Status`, `Raven/Restore/Status`,
//! `Raven/Smuggler/Status`), which shows its progress to every client.
//!
//! The status is written through the database's normal write path, so any
//! client reads it with `GET {base}/docs/<id>`. Progress is written at most
//! every [`STATUS_INTERVAL`]; start, messages and the end are written at once.
//! A [`StatusReporter`] that is dropped before [`StatusReporter::succeed`] or
//! [`StatusReporter::fail`] marks the job failed: `IsRunning` becomes false on
//! every exit path, panics included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rookery_types::{JobProgress, JobStatus, Severity, StatusMessage};

use crate::storage::DatabaseHandle;

/// The most often progress is written to a status document.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(250);

/// Writes a job's status document as the job goes.
pub struct StatusReporter {
    /// None: an offline job (a command line), whose status goes nowhere.
    database: Option<Arc<DatabaseHandle>>,
    doc_id: &'static str,
    status: JobStatus,
    last_write: Instant,
    finished: bool,
    /// An offline job: told of each change instead (a command line's progress bar).
    on_change: Option<OnChange>,
}

/// What an offline job's reporter calls with each change of its status.
pub type OnChange = Box<dyn FnMut(&JobStatus) + Send>;

impl StatusReporter {
    /// Starts a job: writes `IsRunning: true`, a fresh `Started` and the first message.
    ///
    /// # Errors
    /// Storage errors from writing the status document.
    pub fn start(
        database: Arc<DatabaseHandle>,
        doc_id: &'static str,
        mut status: JobStatus,
        first_message: &str,
    ) -> Result<Self, crate::storage::StorageError> {
        status.is_running = true;
        status.success = false;
        status.started = Some(now_rfc3339());
        status.completed = None;
        status.error = None;
        status.error_code = None;
        status.progress = JobProgress::default();
        status.messages = vec![message(first_message, Severity::Information)];
        let mut reporter = Self { database: Some(database), doc_id, status, last_write: Instant::now(), finished: false, on_change: None };
        reporter.write()?;
        Ok(reporter)
    }

    /// A reporter for an offline job: no document; `on_change` sees each change.
    #[must_use]
    pub fn detached(doc_id: &'static str, mut status: JobStatus, on_change: OnChange) -> Self {
        status.is_running = true;
        status.started = Some(now_rfc3339());
        Self { database: None, doc_id, status, last_write: Instant::now(), finished: false, on_change: Some(on_change) }
    }

    /// The status as last set.
    #[must_use]
    pub fn status(&self) -> &JobStatus {
        &self.status
    }

    /// Changes the status without writing it (written with the next progress or message).
    pub fn edit(&mut self, f: impl FnOnce(&mut JobStatus)) {
        f(&mut self.status);
    }

    /// Sets the totals to reach.
    pub fn set_total(&mut self, documents_total: u64) {
        self.status.progress.documents_total = documents_total;
        self.status.progress.update_percent();
        self.write_logged();
    }

    /// Writes the document now (before a job waits, so its status shows
    /// where it stands meanwhile).
    pub fn publish(&mut self) {
        self.write_logged();
    }

    /// Records progress; writes the document at most every [`STATUS_INTERVAL`].
    pub fn progress(&mut self, documents_done: u64, bytes_written: u64) {
        let p = &mut self.status.progress;
        p.documents_done = documents_done;
        p.bytes_written = bytes_written;
        if p.documents_total < documents_done {
            p.documents_total = documents_done;
        }
        p.update_percent();
        if self.last_write.elapsed() >= STATUS_INTERVAL {
            self.write_logged();
        }
    }

    /// Adds a message and writes the document.
    pub fn message(&mut self, text: &str, severity: Severity) {
        self.status.messages.push(message(text, severity));
        self.write_logged();
    }

    /// Ends the job successfully; the final status.
    pub fn succeed(mut self, text: &str) -> JobStatus {
        self.status.progress.percent = 100.0;
        self.status.progress.documents_done = self.status.progress.documents_total;
        self.status.messages.push(message(text, Severity::Information));
        self.finish(true);
        self.status.clone()
    }

    /// Ends the job successfully, with the final byte count; the final status.
    pub fn succeed_with_bytes(mut self, bytes: u64, text: &str) -> JobStatus {
        self.status.progress.bytes_written = bytes;
        self.succeed(text)
    }

    /// Ends the job with an error; the final status.
    pub fn fail(mut self, code: rookery_types::ErrorCode, text: &str) -> JobStatus {
        self.status.error = Some(text.to_string());
        self.status.error_code = Some(code.as_str().to_string());
        self.status.messages.push(message(text, Severity::Error));
        self.finish(false);
        self.status.clone()
    }

    fn finish(&mut self, success: bool) {
        self.status.is_running = false;
        self.status.success = success;
        self.status.completed = Some(now_rfc3339());
        self.finished = true;
        self.write_logged();
    }

    fn write_logged(&mut self) {
        if let Err(e) = self.write() {
            tracing::warn!(error = %e, doc = self.doc_id, "cannot write a status document");
        }
    }

    fn write(&mut self) -> Result<(), crate::storage::StorageError> {
        if let Some(on_change) = &mut self.on_change {
            on_change(&self.status);
        }
        let Some(database) = &self.database else { return Ok(()) };
        let body = serde_json::to_vec(&self.status).map_err(|e| crate::storage::StorageError::Corrupt(e.to_string()))?;
        database.store().put_server_owned(self.doc_id, &body)?;
        self.last_write = Instant::now();
        Ok(())
    }
}

impl Drop for StatusReporter {
    fn drop(&mut self) {
        if !self.finished {
            let text = if std::thread::panicking() {
                "The job stopped unexpectedly (internal panic); nothing was made visible."
            } else {
                "The job stopped before it finished; nothing was made visible."
            };
            self.status.error = Some(text.to_string());
            self.status.error_code = Some(rookery_types::ErrorCode::JobAborted.as_str().to_string());
            self.status.messages.push(message(text, Severity::Error));
            self.finish(false);
        }
    }
}

/// Reads a status document.
#[must_use]
pub fn read_status(database: &DatabaseHandle, doc_id: &str) -> Option<JobStatus> {
    let record = database.store().get(doc_id).ok()??;
    serde_json::from_slice(&record.body).ok()
}

/// Adds a message to a finished job's status document (what a task's
/// retention did after its backup, say).
pub fn append_message(database: &DatabaseHandle, doc_id: &str, text: &str, severity: Severity) {
    let Some(mut status) = read_status(database, doc_id) else { return };
    status.messages.push(message(text, severity));
    match serde_json::to_vec(&status) {
        Ok(body) => {
            if let Err(e) = database.store().put_server_owned(doc_id, &body) {
                tracing::warn!(error = %e, "cannot add a message to a status document");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot serialize a status"),
    }
}

/// After a crash, a status document may still say `IsRunning: true`. Marks it
/// failed and returns it so that the caller can clean up what the job left.
pub fn recover_interrupted(database: &DatabaseHandle, doc_id: &str) -> Option<JobStatus> {
    let mut status = read_status(database, doc_id)?;
    if !status.is_running {
        return None;
    }
    let text = "The server stopped while this job ran; nothing it wrote was made visible. Run it again.";
    status.is_running = false;
    status.success = false;
    status.completed = Some(now_rfc3339());
    status.error = Some(text.to_string());
    status.error_code = Some(rookery_types::ErrorCode::Interrupted.as_str().to_string());
    status.messages.push(message(text, Severity::Error));
    match serde_json::to_vec(&status) {
        Ok(body) => {
            if let Err(e) = database.store().put_server_owned(doc_id, &body) {
                tracing::warn!(error = %e, "cannot mark an interrupted job");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot serialize a status"),
    }
    Some(status)
}

fn message(text: &str, severity: Severity) -> StatusMessage {
    StatusMessage { timestamp: now_rfc3339(), message: text.to_string(), severity }
}

/// The current time as RFC 3339 UTC with milliseconds (`2026-11-26T05:00:00.123Z`).
#[must_use]
pub fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

/// Formats a time as RFC 3339 UTC with milliseconds.
#[must_use]
pub fn format_rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        let t = time::macros::datetime!(2026-11-26 05:00:03.042 UTC);
        assert_eq!(format_rfc3339(t), "2026-11-26T05:00:03.042Z");
    }
}
