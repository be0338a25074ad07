//! A backup request checked and planned before anything is written: the
//! location, the kind of set and the chain an incremental continues.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::BackupError;
use super::format::new_set_id;
use super::format::SetKind;
use super::location;
use super::sealed;
use crate::storage::{DatabaseHandle, Foreground};

/// What to back up and where.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// An absolute folder on the server, or `s3://bucket/prefix`.
    pub location: String,
    /// Per-request object storage settings for an `s3://` location.
    pub s3: Option<rookery_types::S3Settings>,
    /// An incremental set on the newest set of this database's chain in the
    /// location (a full set when there is none).
    pub incremental: bool,
    /// Encrypted databases: put the database key in the set, in plain text
    /// (default: yes, so that the set restores on any server).
    pub include_encryption_key: Option<bool>,
    /// Encrypt the set's data files with this key or passphrase.
    pub set_secret: Option<sealed::SetSecret>,
    /// What a full set copies: the documents, or the storage files.
    pub backup_type: rookery_types::BackupType,
    /// Snapshots: copy every file even where a hard link would do (the
    /// benchmark's copy mode; not offered over REST).
    pub copy_files: bool,
    /// At most this many bytes a second written into the set (none: as fast
    /// as the job runs; it already runs at the lowest CPU priority).
    pub max_bytes_per_second: Option<u64>,
    /// The task that runs this backup (none: asked for by hand), for its records.
    pub task: Option<String>,
    /// S3 Object Lock on every object of the set (a task destination's `ObjectLock`).
    pub object_lock: Option<rookery_types::ObjectLock>,
    /// A new documents file after this many bytes of records (none: 128
    /// MiB). Small files make a small database's sets look like a large
    /// one's (tests); not offered over REST.
    pub documents_file_bytes: Option<u64>,
}

/// Keeps a job's writing at or under a rate: [`Pace::wait`] sleeps while
/// the bytes written so far are ahead of the rate since the start.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    bytes_per_second: u64,
    started: std::time::Instant,
}

impl Pace {
    /// A pace of `bytes_per_second` (at least 1), starting now.
    #[must_use]
    pub fn new(bytes_per_second: u64) -> Self {
        Self { bytes_per_second: bytes_per_second.max(1), started: std::time::Instant::now() }
    }

    /// How long `written` bytes are ahead of the rate (zero when within it).
    #[must_use]
    pub fn ahead(&self, written: u64) -> std::time::Duration {
        let due = std::time::Duration::from_secs_f64(written as f64 / self.bytes_per_second as f64);
        due.saturating_sub(self.started.elapsed())
    }

    /// Sleeps until `written` bytes are within the rate, or until the job
    /// is canceled: a cap of a few bytes a second holds a backup for hours,
    /// and a cancel must still stop it at once.
    ///
    /// # Errors
    /// [`BackupError::Canceled`] when the job was asked to stop.
    pub fn wait(&self, written: u64, cancel: &crate::jobs::CancelToken) -> Result<(), BackupError> {
        if cancel.sleep(self.ahead(written)) {
            Ok(())
        } else {
            Err(BackupError::Canceled)
        }
    }
}

/// Background work that yields to clients' writes. After every
/// [`YIELD_STEP`] bytes read, when a client wrote to the database within
/// [`BUSY_WINDOW`], it pauses [`BUSY_PAUSE_RATIO`] times the CPU time its
/// thread spent on the step (at most [`MAX_PAUSE`]): while clients write, a
/// backup's reading thread is on a core about 1/16 of the time. With no
/// writes, it reads flat out.
///
/// Its threads already run under `SCHED_IDLE` (see `jobs`), yet a client's
/// p99 still felt them: measured with two writers of 1 KB documents on two
/// cores, a fixed 10 ms pause per MiB (the backup busy about 15% of the
/// time) doubled the writers' p99 (0.7 to 1.2-1.9 ms, slow writes spread
/// evenly over the backup, not in bursts), and a 30 ms pause kept it within
/// 1.1-1.3x. The pause follows the thread's CPU time, not the step's wall
/// time: a step the writers preempted is not work done, and pausing for it
/// too made a backup under load 40 times slower instead of about 16.
/// `MaxBytesPerSecond` stays the hard cap either way.
///
/// Yielding has a price in memory: the storage keeps every version written
/// after a backup's snapshot in memory until the snapshot is released (it
/// frees its versions oldest first), and a steady writer made a paced
/// backup's process grow by about 10 MB a second. So a backup yields only
/// until clients have written [`YIELD_BUDGET`] bytes since it began; after
/// that it runs flat out, to release them sooner.
#[derive(Debug)]
pub struct YieldToWrites {
    foreground: Foreground,
    /// Bytes clients had written when the backup began.
    written_before: u64,
    read: u64,
    /// The thread's CPU time when the step began (none before its first read).
    step_started: Option<std::time::Duration>,
    /// Whether the last step ended yielding (clients writing).
    yielding: bool,
}

/// A clone counts the steps of the thread it is used on.
impl Clone for YieldToWrites {
    fn clone(&self) -> Self {
        Self {
            foreground: self.foreground.clone(),
            written_before: self.written_before,
            read: 0,
            step_started: None,
            yielding: self.yielding,
        }
    }
}

/// See [`YieldToWrites`].
pub const YIELD_STEP: u64 = 1024 * 1024;
/// See [`YieldToWrites`].
pub const BUSY_PAUSE_RATIO: u32 = 15;
/// See [`YieldToWrites`].
pub const MAX_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);
/// See [`YieldToWrites`].
pub const BUSY_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);
/// See [`YieldToWrites`].
pub const YIELD_BUDGET: u64 = 64 << 20;

impl YieldToWrites {
    /// Starts yielding to the writes that come after now.
    #[must_use]
    pub fn new(foreground: Foreground) -> Self {
        let mut yielder = Self { written_before: foreground.written(), foreground, read: 0, step_started: None, yielding: false };
        yielder.yielding = yielder.should_yield();
        yielder
    }

    /// Whether the backup yields to clients' writes now (as of its last step).
    #[must_use]
    pub fn yielding(&self) -> bool {
        self.yielding
    }

    /// Whether clients wrote within [`BUSY_WINDOW`], and less than
    /// [`YIELD_BUDGET`] since the backup began.
    fn should_yield(&self) -> bool {
        self.should_yield_within(BUSY_WINDOW)
    }

    /// [`Self::should_yield`] with a busy window of `window`.
    fn should_yield_within(&self, window: std::time::Duration) -> bool {
        self.foreground.wrote_within(window) && self.foreground.written().saturating_sub(self.written_before) < YIELD_BUDGET
    }

    /// Counts `bytes` read, pausing after every [`YIELD_STEP`] while clients write.
    pub fn read(&mut self, bytes: u64) {
        let started = *self.step_started.get_or_insert_with(thread_cpu_time);
        self.read += bytes;
        if self.read >= YIELD_STEP {
            self.read = 0;
            let now = thread_cpu_time();
            self.yielding = self.should_yield();
            if self.yielding {
                std::thread::sleep(pause_after(now.saturating_sub(started)));
            }
            self.step_started = Some(now);
        }
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}

/// How long a step that used `step` of CPU time pauses while clients write.
fn pause_after(step: std::time::Duration) -> std::time::Duration {
    step.saturating_mul(BUSY_PAUSE_RATIO).min(MAX_PAUSE)
}

/// A reader that yields to clients' writes as it reads (see [`YieldToWrites`]).
pub struct Yielding<R> {
    inner: R,
    yielder: Option<YieldToWrites>,
}

impl<R> Yielding<R> {
    pub fn new(inner: R, yielder: Option<YieldToWrites>) -> Self {
        Self { inner, yielder }
    }
}

impl<R: std::io::Read> std::io::Read for Yielding<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(y) = &mut self.yielder {
            y.read(n as u64);
        }
        Ok(n)
    }
}

/// What a finished backup wrote.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub set_id: String,
    pub kind: SetKind,
    pub location: location::Location,
    /// The set's folder, for a folder location.
    pub set_dir: Option<PathBuf>,
    pub documents: u64,
    pub deletions: u64,
    pub bytes_written: u64,
    pub from_etag: u64,
    pub to_etag: u64,
}

/// The set an incremental builds on.
#[derive(Debug, Clone)]
pub struct BaseSet {
    pub set_id: String,
    pub to_etag: u64,
}

/// A backup checked and ready to run.
#[derive(Debug)]
pub struct PreparedBackup {
    pub database: Arc<DatabaseHandle>,
    pub location: location::Location,
    pub kind: SetKind,
    pub set_id: String,
    pub base: Option<BaseSet>,
    pub include_encryption_key: bool,
    pub set_key: Option<sealed::SetKey>,
    /// Said in the status document as warnings (why a full set replaced an incremental).
    pub warnings: Vec<String>,
    /// A snapshot's staging folder, beside the database (see `storage::files`).
    pub staging: Option<PathBuf>,
    /// See [`BackupOptions::copy_files`].
    pub copy_files: bool,
    /// See [`BackupOptions::max_bytes_per_second`].
    pub max_bytes_per_second: Option<u64>,
    /// See [`BackupOptions::documents_file_bytes`].
    pub documents_file_bytes: Option<u64>,
}

/// Checks a backup request without writing anything: the location, and for
/// an incremental, the chain it would continue.
///
/// # Errors
/// `InvalidLocation`, `ChainMismatch`, I/O errors reading the location.
pub fn prepare(
    database: Arc<DatabaseHandle>,
    options: &BackupOptions,
    location: location::Location,
) -> Result<PreparedBackup, BackupError> {
    if let Some(folder) = location.folder() {
        if folder.exists() && !folder.is_dir() {
            return Err(BackupError::InvalidLocation(format!("'{}' exists and is not a folder", folder.display())));
        }
    }
    // Lists the location (once): in object storage this is also the probe
    // that turns a dead endpoint, refused credentials or a missing bucket into a 400.
    let scanned = if options.incremental { Some(location::scan_to_extend(&location)?) } else { None };
    let names = match &scanned {
        Some(s) => s.names.clone(),
        None => location.names()?,
    };
    let mut base = None;
    let mut warnings = Vec::new();
    if let Some(scanned) = scanned {
        match scanned.newest_chain_of(database.store().database_id()) {
            Some(chain) => match unusable_base(chain, database.store().last_etag(), options.set_secret.is_some()) {
                None => {
                    let tip = chain.sets.last().map(|s| &s.manifest);
                    base = tip.map(|m| BaseSet { set_id: m.set_id.clone(), to_etag: m.to_etag });
                }
                Some(why) => warnings.push(format!("A full backup was written instead of an incremental: {why}")),
            },
            None => {
                if let Some(other) = scanned.chains.first() {
                    return Err(BackupError::ChainMismatch(format!(
                        "'{}' holds the backup chain of another database ('{}', id {}); an incremental of '{}' cannot continue it. Use another location or a full backup.",
                        location,
                        other.database_name,
                        other.database_id,
                        database.name
                    )));
                }
            }
        }
    }
    let kind = match (&base, options.backup_type) {
        (Some(_), _) => SetKind::Incremental,
        (None, rookery_types::BackupType::Backup) => SetKind::Full,
        (None, rookery_types::BackupType::Snapshot) => {
            if database.is_system() {
                return Err(BackupError::Unsupported(
                    "The system database is backed up logically (its users and API keys travel, its registry does not): use BackupType Backup.".into(),
                ));
            }
            SetKind::Snapshot
        }
    };
    let set_id = new_set_id(&names, kind);
    let include_encryption_key = options.include_encryption_key.unwrap_or(true);
    let set_key = match &options.set_secret {
        Some(secret) => Some(sealed::SetKey::for_new_set(secret).map_err(BackupError::InvalidEncryptionKey)?),
        None => None,
    };
    let staging = (kind == SetKind::Snapshot).then(|| crate::storage::files::staging_dir(database.store().path()));
    Ok(PreparedBackup {
        database,
        location,
        kind,
        set_id,
        base,
        include_encryption_key,
        set_key,
        warnings,
        staging,
        copy_files: options.copy_files,
        max_bytes_per_second: options.max_bytes_per_second,
        documents_file_bytes: options.documents_file_bytes,
    })
}

/// Why a chain cannot take an incremental, if it cannot: a broken link, a
/// file missing or of the wrong size anywhere in it, a newest set whose
/// checksums fail, or a newest set that claims more than the database has
/// (its `ToEtag` above the database's last etag).
fn unusable_base(chain: &location::Chain, last_etag: u64, encrypted: bool) -> Option<String> {
    let tip = chain.sets.last()?;
    // A chain is encrypted throughout or not at all (a restore refuses a mix).
    let chain_encrypted = tip.manifest.encryption.as_ref().is_some_and(|e| e.get("Set").is_some());
    if chain_encrypted != encrypted {
        return Some(if chain_encrypted {
            "the chain it would extend is encrypted and this backup is not (give the chain's key or passphrase)".to_string()
        } else {
            "the chain it would extend is not encrypted and this backup is".to_string()
        });
    }
    // The sets behind the tip: their files, unless this process checked them
    // since it last read them (object storage only; see `chain_memory`).
    let mut findings = location::verify_links(&chain.sets);
    for set in chain.sets[..chain.sets.len() - 1].iter().filter(|s| !super::chain_memory::is_checked(s)) {
        findings.extend(location::verify_set(set, location::Depth::Structure));
    }
    findings.extend(location::verify_set(tip, location::Depth::ChecksumsOrKept));
    if let Some(f) = findings.into_iter().next() {
        return Some(format!("the chain it would extend is damaged ({})", f.message));
    }
    super::chain_memory::remember_checked(&chain.sets);
    if tip.manifest.to_etag > last_etag {
        return Some(format!(
            "the newest set {} claims etag {}, above the database's last etag {last_etag}",
            tip.manifest.set_id, tip.manifest.to_etag
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_step_pauses_in_proportion_to_its_own_length_up_to_a_cap() {
        assert_eq!(pause_after(Duration::from_millis(2)), Duration::from_millis(30));
        assert_eq!(pause_after(Duration::ZERO), Duration::ZERO);
        assert_eq!(pause_after(Duration::from_secs(1)), MAX_PAUSE, "a slow step still lets the backup go on");
    }

    #[test]
    fn a_backup_yields_while_clients_write_until_they_wrote_its_budget() {
        // The budget is what this test checks, so "busy" is a write within
        // the hour: within the 20 ms of `BUSY_WINDOW`, a put of 1 MiB and
        // the check after it were not always on a loaded machine. (When a
        // write counts as recent is the store's own test.)
        let hour = std::time::Duration::from_secs(3600);
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::storage::DocumentStore::open(dir.path(), crate::storage::Durability::Os).expect("opens");
        store.put("before", &vec![b' '; 1 << 20], None).expect("a write before the backup");
        let yielder = YieldToWrites::new(store.foreground());
        assert!(yielder.should_yield_within(hour), "a client wrote just now");
        let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20));
        for i in 0..(YIELD_BUDGET >> 20) - 2 {
            store.put(&format!("docs/{i}"), body.as_bytes(), None).expect("put");
        }
        assert!(yielder.clone().should_yield_within(hour), "within the budget, the write before the backup not counted");
        store.put("docs/last", body.as_bytes(), None).expect("put");
        store.put("docs/over", body.as_bytes(), None).expect("put");
        assert!(!yielder.should_yield_within(hour), "over the budget: the backup runs flat out");
        assert!(YieldToWrites::new(store.foreground()).should_yield_within(hour), "the next backup has a budget of its own");
    }
}
