//! Putting, reading, deleting and running tasks: the engine's task methods.

use std::sync::Arc;

use base64::Engine as _;
use jiff::Timestamp;
use rookery_types::{BackupKind, BackupTask, BackupTaskInfo, RetentionOutcome, RetentionPolicy, TaskStatus};

use crate::backup::error::BackupError;
use crate::backup::prepare::BackupOptions;
use crate::engine::Rookery;
use crate::storage::{DatabaseHandle, StorageError};

use super::error::TaskError;
use super::record::{secret_aad, task_key, task_records, StoredTask, TaskState};
use super::retention;
use super::schedule::{self, format_time, Schedules};

impl Rookery {
    fn task_database(&self, database: &str) -> Result<Arc<DatabaseHandle>, TaskError> {
        self.catalog.get(database).ok_or(TaskError::Storage(StorageError::NotFound))
    }

    /// Creates or replaces a task; returns whether it was created. Secrets
    /// given are sealed with the master key; left out on a replace, the
    /// task's earlier secrets stay.
    ///
    /// # Errors
    /// `InvalidName`, `InvalidSchedule`, `Invalid` (no schedule, a bad
    /// policy, a key and a passphrase), `InvalidLocation`, storage errors.
    pub fn put_task(&self, database: &str, name: &str, mut task: BackupTask) -> Result<bool, TaskError> {
        let db = self.task_database(database)?;
        super::destinations::normalize(&mut task)?;
        self.validate_task(&db, name, &task)?;
        if task.backup_passphrase.is_some() && task.backup_encryption_key.is_some() {
            return Err(TaskError::Invalid("Give BackupEncryptionKey or BackupPassphrase, not both.".into()));
        }
        if let Some(key) = &task.backup_encryption_key {
            crate::crypto::Key::from_base64(key).map_err(|e| TaskError::Invalid(format!("BackupEncryptionKey: {e}")))?;
        }
        self.check_locks(&task)?;
        let _changes = self.tasks.lock_changes();
        let key = task_key(name);
        let existing = self.read_task(&db, name)?;
        let seal = |what: &str, secret: Option<String>| -> Result<Option<String>, TaskError> {
            let Some(secret) = secret else { return Ok(None) };
            let master =
                self.catalog.master_key(true)?.ok_or_else(|| StorageError::Locked("no master key to seal a task's secret".into()))?;
            Ok(Some(base64::engine::general_purpose::STANDARD.encode(master.seal(&secret_aad(&db.name, name, what), secret.as_bytes()))))
        };
        let new_passphrase = task.backup_passphrase.take();
        let new_key = task.backup_encryption_key.take();
        let (sealed_passphrase, sealed_key) = match (&new_passphrase, &new_key, &existing) {
            (None, None, Some(old)) => (old.sealed_passphrase.clone(), old.sealed_key.clone()),
            _ => (seal("passphrase", new_passphrase)?, seal("key", new_key)?),
        };
        let state = match &existing {
            Some(old) => TaskState { last_checked: Some(Timestamp::now()), ..old.state.clone() },
            None => TaskState { last_checked: Some(Timestamp::now()), ..TaskState::default() },
        };
        let stored = StoredTask { name: name.to_string(), task, sealed_passphrase, sealed_key, state };
        self.write_task(&db, &key, &stored)?;
        self.tasks.wake();
        Ok(existing.is_none())
    }

    /// The rules a task keeps, checked when it is put and again before each
    /// run reads it back (a record from storage is believed no more than a request).
    ///
    /// # Errors
    /// `InvalidName`, `InvalidSchedule`, `Invalid`, `InvalidLocation`.
    pub(super) fn validate_task(&self, db: &DatabaseHandle, name: &str, task: &BackupTask) -> Result<(), TaskError> {
        if !rookery_types::is_valid_database_name(name) {
            return Err(TaskError::InvalidName(format!(
                "'{}' is not a valid task name: use 1 to 64 of A-Z a-z 0-9 _ . -",
                name.escape_debug()
            )));
        }
        Schedules::of(task)?;
        if let Some(policy) = &task.retention {
            retention::validate(policy)?;
        }
        if let Some(drill) = &task.drill {
            schedule::Schedule::parse("Drill.Frequency", &drill.frequency)?;
        }
        if let Some(continuous) = &task.continuous {
            if !(1..=3600).contains(&continuous.max_lag_seconds) {
                return Err(TaskError::Invalid("Continuous.MaxLagSeconds is 1 to 3600.".into()));
            }
        }
        if let Some(objective) = &task.recovery_point_objective {
            let parsed =
                crate::config::parse_duration(objective).map_err(|e| TaskError::Invalid(format!("RecoveryPointObjective: {e}")))?;
            if !(60..=366 * 86_400).contains(&parsed.as_secs()) {
                return Err(TaskError::Invalid("RecoveryPointObjective is 1 minute (1m) to 366 days (366d).".into()));
            }
        }
        if task.compact && task.backup_type == rookery_types::BackupType::Snapshot {
            return Err(TaskError::Invalid(
                "Compact folds logical sets; a task whose full backups are snapshots cannot compact (choose one).".into(),
            ));
        }
        if task.backup_type == rookery_types::BackupType::Snapshot && db.is_system() {
            return Err(TaskError::Invalid("The system database is backed up logically: use BackupType Backup.".into()));
        }
        super::destinations::check(task)?;
        if task.destinations.is_empty() {
            self.open_backup_location(&task.backup_location, None)?;
        }
        for d in &task.destinations {
            self.open_destination(d)?;
        }
        Ok(())
    }

    /// The tasks of a database, in name order, with their status.
    ///
    /// # Errors
    /// `NotFound` for an unknown database; storage errors.
    pub fn list_tasks(&self, database: &str) -> Result<Vec<BackupTaskInfo>, TaskError> {
        let db = self.task_database(database)?;
        task_records(&db).into_iter().map(|record| Ok(self.task_info(&db, &record?))).collect()
    }

    /// One task with its status.
    ///
    /// # Errors
    /// `NotFound`; storage errors.
    pub fn get_task(&self, database: &str, name: &str) -> Result<BackupTaskInfo, TaskError> {
        let db = self.task_database(database)?;
        let stored = self.read_task(&db, name)?.ok_or_else(|| TaskError::NotFound(name.to_string()))?;
        Ok(self.task_info(&db, &stored))
    }

    /// Deletes a task (a run in progress finishes; nothing new starts).
    ///
    /// # Errors
    /// `NotFound`; storage errors.
    pub fn delete_task(&self, database: &str, name: &str) -> Result<(), TaskError> {
        let db = self.task_database(database)?;
        let _changes = self.tasks.lock_changes();
        if self.read_task(&db, name)?.is_none() {
            return Err(TaskError::NotFound(name.to_string()));
        }
        db.store().internal().remove(task_key(name)).map_err(StorageError::from)?;
        db.store().persist()?;
        self.tasks.forget(&db.name, name);
        Ok(())
    }

    /// Runs a task now (an incremental when asked and possible); the answer
    /// comes when the backup has started, like `POST {base}/admin/backup`.
    ///
    /// # Errors
    /// `NotFound`; `AlreadyRunning` while any backup runs.
    pub fn run_task(&self, database: &str, name: &str, incremental: bool) -> Result<TaskRun, TaskError> {
        let db = self.task_database(database)?;
        let stored = self.read_task(&db, name)?.ok_or_else(|| TaskError::NotFound(name.to_string()))?;
        let kind = if incremental { BackupKind::Incremental } else { BackupKind::Full };
        let run = self.start_task_run(&db, &stored, kind);
        match &run {
            // Another backup runs: nothing was tried.
            Err(TaskError::Backup(crate::backup::BackupError::AlreadyRunning | crate::backup::BackupError::CompactionAlreadyRunning)) => {}
            Err(e) => self.run_could_not_start(&db, &stored, kind, e),
            Ok(_) => {}
        }
        run
    }

    /// Blocks until the task's runs that ended are recorded (their
    /// retention applied and their status written), at most ten minutes.
    pub fn wait_for_task_run(&self, database: &str, name: &str) {
        self.tasks.wait_recorded(database, name, std::time::Duration::from_secs(600));
    }

    /// Applies `policy` to the chains of `database` in `location` (only
    /// lists what it would delete with `dry_run`).
    ///
    /// # Errors
    /// `InvalidLocation`, `Invalid` (a bad policy), I/O errors.
    pub fn apply_retention(
        &self,
        database: &str,
        location: &str,
        policy: &RetentionPolicy,
        dry_run: bool,
    ) -> Result<RetentionOutcome, TaskError> {
        let db = self.task_database(database)?;
        let location = self.open_backup_location(location, None)?;
        retention::validate(policy)?;
        // Never while a backup writes into the location (it may be extending a
        // chain): the plan is made once the backup slot is ours, from what is there then.
        let _slot = if dry_run {
            None
        } else {
            Some(self.backup_slot.acquire(std::time::Duration::from_secs(60)).ok_or(BackupError::AlreadyRunning)?)
        };
        let chains = crate::backup::location::scan(&location)?.into_chains_of(db.store().database_id());
        retention::apply(&location, &chains, policy, dry_run, self.config.unfinished_set_grace())
    }

    pub(super) fn read_task(&self, db: &DatabaseHandle, name: &str) -> Result<Option<StoredTask>, TaskError> {
        match db.store().internal().get(task_key(name)).map_err(StorageError::from)? {
            None => Ok(None),
            Some(raw) => Ok(Some(serde_json::from_slice(&raw).map_err(|e| StorageError::Corrupt(format!("task {name}: {e}")))?)),
        }
    }

    pub(super) fn write_task(&self, db: &DatabaseHandle, key: &str, stored: &StoredTask) -> Result<(), TaskError> {
        let raw = serde_json::to_vec(stored).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        db.store().internal().insert(key, raw).map_err(StorageError::from)?;
        db.store().persist()?;
        Ok(())
    }

    fn task_info(&self, db: &DatabaseHandle, stored: &StoredTask) -> BackupTaskInfo {
        let t = &stored.task;
        let next = Schedules::of(t).ok().filter(|_| !t.disabled).and_then(|s| s.next(Timestamp::now()));
        let s = &stored.state;
        BackupTaskInfo {
            name: stored.name.clone(),
            backup_location: t.backup_location.clone(),
            destinations: t.destinations.clone(),
            full_backup_frequency: t.full_backup_frequency.clone(),
            incremental_backup_frequency: t.incremental_backup_frequency.clone(),
            time_zone: t.time_zone.clone().unwrap_or_else(|| "UTC".into()),
            retention: t.retention.clone(),
            disabled: t.disabled,
            backup_type: t.backup_type,
            compact: t.compact,
            continuous: t.continuous.clone(),
            drill: t.drill.clone(),
            recovery_point_objective: t.recovery_point_objective.clone(),
            include_encryption_key: t.include_encryption_key,
            has_backup_passphrase: stored.sealed_passphrase.is_some(),
            has_backup_encryption_key: stored.sealed_key.is_some(),
            status: TaskStatus {
                is_running: self.tasks.is_running(&db.name, &stored.name),
                last_full_backup: s.last_full_backup.map(format_time),
                last_incremental_backup: s.last_incremental_backup.map(format_time),
                last_set_id: s.last_set_id.clone(),
                last_duration_ms: s.last_duration_ms,
                last_error: s.last_error.clone(),
                next_backup: next.map(|(t, _)| format_time(t)),
                next_backup_kind: next.map(|(_, k)| k),
                lag_seconds: t.continuous.as_ref().map(|_| self.tasks.lag_seconds(&db.name, &stored.name)),
                last_shipped_etag: s.last_shipped_etag,
                last_drill: s.last_drill.clone(),
                destinations: super::destinations::statuses(t, s, &self.tasks.copying(&db.name, &stored.name)),
            },
        }
    }

    /// A compacting task's full: the newest chain of `db` in `location` folded
    /// into a new full set, when it has incrementals to fold.
    fn compaction_instead_of_full(
        &self,
        db: &DatabaseHandle,
        stored: &StoredTask,
        set_secret: Option<crate::backup::sealed::SetSecret>,
    ) -> Result<Compaction, TaskError> {
        let location = stored.task.backup_location.as_str();
        let s3 = stored.task.destinations.first().and_then(|d| d.s3.as_ref());
        let opened = self.open_backup_location(location, s3)?;
        let scanned = crate::backup::location::scan(&opened)?;
        let Some(chain) = scanned.newest_chain_of(db.store().database_id()) else { return Ok(Compaction::NoChain) };
        if chain.sets.len() < 2 {
            return Ok(Compaction::NothingToFold);
        }
        let up_to = chain.sets.last().map(|s| s.manifest.set_id.clone());
        let object_lock = stored.task.destinations.first().and_then(|d| d.object_lock);
        let options = crate::backup::compact::CompactOptions {
            up_to,
            set_secret,
            source_database: None,
            task: Some(stored.name.clone()),
            object_lock,
        };
        Ok(Compaction::Started(self.start_compaction(location, s3, &options)?))
    }

    /// The task's set key or passphrase, unsealed with the master key.
    pub(crate) fn task_secret(
        &self,
        db: &DatabaseHandle,
        stored: &StoredTask,
    ) -> Result<Option<crate::backup::sealed::SetSecret>, TaskError> {
        let open = |what: &str, sealed: &Option<String>| -> Result<Option<String>, TaskError> {
            let Some(sealed) = sealed else { return Ok(None) };
            let master = self
                .catalog
                .master_key(false)?
                .ok_or_else(|| StorageError::Locked("the master key that sealed the task's secret is missing".into()))?;
            let raw = base64::engine::general_purpose::STANDARD.decode(sealed).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            let opened = master.open(&secret_aad(&db.name, &stored.name, what), &raw).map_err(StorageError::from)?;
            Ok(Some(String::from_utf8(opened).map_err(|e| StorageError::Corrupt(e.to_string()))?))
        };
        let passphrase = open("passphrase", &stored.sealed_passphrase)?;
        let key = open("key", &stored.sealed_key)?;
        crate::backup::sealed::SetSecret::from_request(key.as_ref(), passphrase.as_ref()).map_err(TaskError::Invalid)
    }

    /// Starts one run of a task: an ordinary backup into its location.
    pub(super) fn start_task_run(&self, db: &Arc<DatabaseHandle>, stored: &StoredTask, kind: BackupKind) -> Result<TaskRun, TaskError> {
        self.validate_task(db, &stored.name, &stored.task)?;
        let set_secret = self.task_secret(db, stored)?;
        let mut incremental = kind == BackupKind::Incremental;
        if kind == BackupKind::Full && stored.task.compact {
            // Forever-incremental: a full is folded from the sets, not read from the database.
            match self.compaction_instead_of_full(db, stored, set_secret.clone())? {
                Compaction::Started(handle) => {
                    let run = TaskRun { set_id: handle.set_id.clone(), completion: handle.completion(), compaction: true };
                    self.tasks.started(&db.name, &stored.name, handle, kind);
                    return Ok(run);
                }
                Compaction::NothingToFold => incremental = true,
                Compaction::NoChain => {}
            }
        }
        let options = BackupOptions {
            location: stored.task.backup_location.clone(),
            s3: stored.task.destinations.first().and_then(|d| d.s3.clone()),
            incremental,
            include_encryption_key: stored.task.include_encryption_key,
            set_secret,
            backup_type: stored.task.backup_type,
            copy_files: false,
            max_bytes_per_second: None,
            task: Some(stored.name.clone()),
            object_lock: stored.task.destinations.first().and_then(|d| d.object_lock),
            documents_file_bytes: None,
        };
        let handle = self.start_backup(&db.name, options)?;
        let run = TaskRun { set_id: handle.set_id.clone(), completion: handle.completion(), compaction: false };
        self.tasks.started(&db.name, &stored.name, handle, kind);
        Ok(run)
    }
}

/// A task run that started: the set it writes and its job's end.
#[derive(Debug)]
pub struct TaskRun {
    pub set_id: String,
    pub completion: Arc<crate::jobs::Completion>,
    /// The run folds the chain (a forever-incremental task's full): its
    /// status is `Raven/Compact/Status` in the system database.
    pub compaction: bool,
}

/// What a compacting task does when a full is due.
enum Compaction {
    Started(crate::backup::BackupHandle),
    /// The chain is a full set alone: an incremental keeps it growing instead.
    NothingToFold,
    /// No chain of the database yet: a full backup starts one.
    NoChain,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_record_read_back_is_checked_as_a_request_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rookery = Rookery::open(crate::config::Config::for_tests(&dir.path().join("data"))).expect("opens");
        let db = rookery.catalog().create("Db").expect("creates");
        db.store().put("doc/1", b"{}", None).expect("puts");
        // A record no PUT accepts (MaxLagSeconds 0), as a forged set could bring one.
        let location = dir.path().join("continuous");
        let task = BackupTask {
            backup_location: location.display().to_string(),
            full_backup_frequency: Some("0 2 * * *".into()),
            continuous: Some(rookery_types::ContinuousBackup { max_lag_seconds: 0 }),
            ..Default::default()
        };
        let stored = StoredTask { name: "t".into(), task, sealed_passphrase: None, sealed_key: None, state: TaskState::default() };
        rookery.write_task(&db, &task_key("t"), &stored).expect("writes");
        let err = rookery.run_task("Db", "t", false).expect_err("a forged record is refused");
        assert_eq!(err.code(), rookery_types::ErrorCode::InvalidRequest, "{err}");
        assert!(!location.exists(), "a forged task ran");
    }
}
