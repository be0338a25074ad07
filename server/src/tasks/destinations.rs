//! A task's other destinations: after each run, the sets of its first
//! destination that another lacks are copied there (see
//! [`crate::backup::copy_sets`]: whole chains, oldest missing set first,
//! each file verified, manifest last), then that destination's own retention
//! runs. Each destination copies on a thread of its own: one that fails (a
//! dead endpoint, a full disk) fails neither the run nor the others, keeps
//! its error in the task's status, and catches up after the next run once
//! it is back.

use std::sync::Arc;

use jiff::Timestamp;
use rookery_types::{DestinationStatus, RetentionPolicy};

pub use super::destination_state::{CopyOutcome, DestinationState};
use super::error::TaskError;
use super::record::StoredTask;
use super::retention;
use crate::backup::copy_sets::{self, CopyChoice, SetRecords};
use crate::backup::location::{scan, Location};
use crate::engine::Rookery;
use crate::jobs::CancelToken;
use crate::storage::DatabaseHandle;

/// The most destinations of one task.
pub const MAX_DESTINATIONS: usize = 8;

/// Checks a task's destinations and makes `BackupLocation` and `Retention`
/// the first one's (they are its shorthand).
///
/// # Errors
/// `Invalid` for a first destination that disagrees with `BackupLocation`
/// or `Retention`, a location named twice, too many, or credentials in `S3`.
pub fn normalize(task: &mut rookery_types::BackupTask) -> Result<(), TaskError> {
    let Some(first) = task.destinations.first().cloned() else { return Ok(()) };
    if task.backup_location.is_empty() {
        task.backup_location.clone_from(&first.location);
    }
    match (&task.retention, &first.retention) {
        (None, Some(policy)) => task.retention = Some(policy.clone()),
        (Some(a), Some(b)) if a != b => {
            return Err(TaskError::Invalid("Retention and the first destination's Retention differ: give one.".into()))
        }
        _ => {}
    }
    check(task)
}

/// The rules of a task's destinations (also for a record read back).
///
/// # Errors
/// As [`normalize`].
pub fn check(task: &rookery_types::BackupTask) -> Result<(), TaskError> {
    let Some(first) = task.destinations.first() else { return Ok(()) };
    if first.location != task.backup_location {
        return Err(TaskError::Invalid(format!(
            "BackupLocation '{}' is not the first destination '{}': the first destination is where the sets are written.",
            task.backup_location, first.location
        )));
    }
    if task.destinations.len() > MAX_DESTINATIONS {
        return Err(TaskError::Invalid(format!("A task has at most {MAX_DESTINATIONS} destinations.")));
    }
    for (i, d) in task.destinations.iter().enumerate() {
        if task.destinations[..i].iter().any(|e| e.location == d.location) {
            return Err(TaskError::Invalid(format!("'{}' is named twice in Destinations.", d.location)));
        }
        if d.s3.as_ref().is_some_and(|s| s.access_key_id.is_some() || s.secret_access_key.is_some() || s.session_token.is_some()) {
            return Err(TaskError::Invalid(
                "A destination's S3 takes no credentials (a task would keep them): the server's AWS_* variables give them.".into(),
            ));
        }
        if let Some(policy) = &d.retention {
            retention::validate(policy)?;
        }
        if let Some(lock) = &d.object_lock {
            if !d.location.starts_with(crate::backup::object::SCHEME) {
                return Err(TaskError::Invalid(format!(
                    "'{}' is a folder: ObjectLock is for s3:// destinations (S3 Object Lock).",
                    d.location
                )));
            }
            if !(1..=MAX_RETAIN_DAYS).contains(&lock.retain_days) {
                return Err(TaskError::Invalid(format!("ObjectLock.RetainDays is 1 to {MAX_RETAIN_DAYS}.")));
            }
        }
    }
    Ok(())
}

/// The longest object lock of a destination, in days (100 years).
pub const MAX_RETAIN_DAYS: u32 = 36_500;

/// The status of each destination of a task (none for a task of one).
#[must_use]
pub fn statuses(task: &rookery_types::BackupTask, record: &super::record::TaskState, copying: &[String]) -> Vec<DestinationStatus> {
    if task.destinations.len() < 2 {
        return Vec::new();
    }
    // The first destination is where the runs write: the task's own record.
    let written = record.last_full_backup.max(record.last_incremental_backup);
    let first = DestinationState {
        last_set_id: record.last_set_id.clone(),
        last_created: written.map(|t| t.to_string()),
        last_error: record.last_error.clone(),
        missing_sets: 0,
    };
    task.destinations
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let state = if i == 0 { first.clone() } else { record.destinations.get(&d.location).cloned().unwrap_or_default() };
            let age = state.last_created.as_deref().and_then(|c| c.parse::<Timestamp>().ok()).map(|c| {
                let seconds = Timestamp::now().duration_since(c).as_secs_f64().max(0.0);
                (seconds * 10.0).round() / 10.0
            });
            DestinationStatus {
                location: d.location.clone(),
                last_set_id: state.last_set_id,
                recovery_point_age_seconds: age,
                last_error: state.last_error,
                missing_sets: state.missing_sets,
                is_copying: copying.contains(&d.location),
            }
        })
        .collect()
}

impl Rookery {
    /// A destination, opened with its object lock.
    ///
    /// # Errors
    /// As [`Rookery::open_backup_location`].
    pub(crate) fn open_destination(&self, d: &rookery_types::TaskDestination) -> Result<Location, crate::backup::error::BackupError> {
        self.open_backup_location(&d.location, d.s3.as_ref())?.with_lock(d.object_lock.as_ref())
    }

    /// Asks the storage of each destination with an `ObjectLock` whether its
    /// bucket was made with object lock (a task is saved only if so).
    ///
    /// # Errors
    /// `ObjectLockUnavailable`; `StorageUnavailable` when it cannot tell.
    pub(super) fn check_locks(&self, task: &rookery_types::BackupTask) -> Result<(), TaskError> {
        for d in task.destinations.iter().filter(|d| d.object_lock.is_some()) {
            let Location::Objects(o) = self.open_destination(d)? else { continue };
            let enabled = o.lock_enabled().map_err(|e| crate::backup::location::io_error(&e, crate::backup::error::BackupError::Io))?;
            if !enabled {
                return Err(crate::backup::error::BackupError::LockUnavailable(format!(
                    "The bucket of '{}' was not made with object lock: S3 turns it on only when a bucket is created \
                     (x-amz-bucket-object-lock-enabled). Use a bucket made with it, or leave ObjectLock out.",
                    d.location
                ))
                .into());
            }
        }
        Ok(())
    }

    /// After a run: starts a copy into each other destination of the task
    /// that has none running.
    pub(super) fn start_copies(&self, db: &Arc<DatabaseHandle>, stored: &StoredTask) {
        let task = &stored.task;
        let Some(first) = task.destinations.first() else { return };
        let copying = self.tasks.copying(&db.name, &stored.name);
        for destination in task.destinations.iter().skip(1) {
            if copying.contains(&destination.location) {
                continue;
            }
            let opened = self
                .open_backup_location(&first.location, first.s3.as_ref())
                .and_then(|from| Ok((from, self.open_destination(destination)?)));
            let (system, database_id) = (self.catalog.system(), db.store().database_id().to_string());
            let (policy, grace) = (destination.retention.clone(), self.config.unfinished_set_grace());
            let since = stored.state.destinations.get(&destination.location).and_then(|d| d.last_created.clone());
            let spawned = std::thread::Builder::new().name("task-copy".into()).spawn(move || match opened {
                Ok((from, to)) => {
                    // A bug in the copy fails this destination's copy, visibly, and nothing else.
                    let copy = || copy_into(&from, &to, &database_id, policy.as_ref(), since.as_deref(), system, grace);
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(copy)).unwrap_or_else(|_| {
                        failed(
                            "the copy stopped unexpectedly (a bug: the server's log has the detail); the next run tries again",
                            missing_after(&from, &database_id, since.as_deref()),
                        )
                    })
                }
                Err(e) => failed(&e.to_string(), 0),
            });
            match spawned {
                Ok(handle) => self.tasks.copy_started(&db.name, &stored.name, &destination.location, handle),
                Err(e) => tracing::warn!(error = %e, "cannot start a destination's copy"),
            }
        }
    }
}

/// Copies the database's missing sets from `from` into `to`, then applies
/// `policy` there; `since`: `Created` of the newest set it held before.
fn copy_into(
    from: &Location,
    to: &Location,
    database_id: &str,
    policy: Option<&RetentionPolicy>,
    since: Option<&str>,
    system: Arc<DatabaseHandle>,
    grace: std::time::Duration,
) -> CopyOutcome {
    let choice = CopyChoice { up_to: None, database_id: Some(database_id.to_string()) };
    let copied = copy_sets::plan(from.clone(), to.clone(), &choice)
        .and_then(|plan| copy_sets::run(&plan, &mut SetRecords::new(system, to.clone()), &CancelToken::default()));
    if let Err(e) = copied {
        return failed(&e.to_string(), missing_after(from, database_id, since));
    }
    // One listing of the destination serves its newest set and its retention
    // (which never deletes a set of the newest chain).
    let chains = match scan(to) {
        Ok(scanned) => scanned.into_chains_of(database_id),
        Err(e) => return failed(&e.to_string(), 0),
    };
    let newest = chains.iter().flat_map(|c| &c.sets).max_by(|a, b| a.manifest.created.cmp(&b.manifest.created));
    let state = DestinationState {
        last_set_id: newest.map(|s| s.manifest.set_id.clone()),
        last_created: newest.map(|s| s.manifest.created.clone()),
        last_error: None,
        missing_sets: 0,
    };
    match policy.map(|p| retention::apply(to, &chains, p, false, grace)).transpose() {
        Ok(outcome) => CopyOutcome { state, deleted: outcome.map(|o| o.deleted).unwrap_or_default() },
        Err(e) => failed(&format!("retention: {e}"), 0),
    }
}

/// A copy that failed: its error, and the sets it leaves missing.
fn failed(error: &str, missing_sets: u64) -> CopyOutcome {
    CopyOutcome { state: DestinationState { last_error: Some(error.to_string()), missing_sets, ..Default::default() }, deleted: Vec::new() }
}

/// Sets of the database in `from` created after `since` (every one without it).
fn missing_after(from: &Location, database_id: &str, since: Option<&str>) -> u64 {
    let Ok(scanned) = scan(from) else { return 0 };
    let sets = scanned.into_chains_of(database_id).into_iter().flat_map(|c| c.sets);
    sets.filter(|s| since.is_none_or(|t| s.manifest.created.as_str() > t)).count() as u64
}
