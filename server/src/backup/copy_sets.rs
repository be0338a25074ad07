//! Copying sets from one location to another: the second copy of the
//! 3-2-1 rule, made from the first without touching it.
//!
//! The sets missing at the destination are copied whole chains at a time,
//! bases first, each file hashed while it is written and compared with the
//! source manifest, the manifest written last (a `.tmp-` folder renamed into
//! place, or the manifest uploaded after every object). A set the
//! destination already holds is skipped when its manifest is the same, and
//! refused when it is another set under the same id. So a copy that stops
//! (a crash, a cancel, a dead endpoint) is resumed by running it again: the
//! complete sets stay, the one that was being written starts over.
//!
//! The source is only read. The manifest is copied byte for byte, so an
//! encrypted set stays sealed with its own keys and its MAC still holds.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use super::error::BackupError;
use super::format::{sha256sums, MANIFEST};
use super::location::{io_error, scan, Location, StoredSet, MAX_MANIFEST_BYTES};
use super::target::{temp_dir, with_target, Target};
use crate::failpoint;
use crate::jobs::CancelToken;
use crate::restore::plan::{choose_chain, ChainChoice};

/// A file a copy writes first into a destination folder's `.tmp-<SetId>`
/// (removed before the set is complete): what proves to a later copy that a
/// `.tmp-` folder left by a crash was a copy's, and may be removed.
pub const COPY_MARKER: &str = ".rookery-copy";

/// Which sets a copy takes.
#[derive(Debug, Clone, Default)]
pub struct CopyChoice {
    /// A set id or an RFC 3339 time: the chain that holds that point, up to
    /// it. None: every chain of the source, whole.
    pub up_to: Option<String>,
    /// Only the chains of this database (by `DatabaseId`).
    pub database_id: Option<String>,
}

/// What a copy will do: the sets to copy, in order (bases first), and those already there.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    pub from: Location,
    pub to: Location,
    pub missing: Vec<StoredSet>,
    pub present: Vec<String>,
    /// Sets of the source left out, and why (an incremental without its base).
    pub left_out: Vec<String>,
}

impl CopyPlan {
    /// Bytes of the sets' files to copy (their manifests aside).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.missing.iter().flat_map(|s| &s.manifest.files).map(|f| f.size).sum()
    }

    /// Documents of the sets to copy.
    #[must_use]
    pub fn documents(&self) -> u64 {
        self.missing.iter().map(|s| s.manifest.document_count).sum()
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopySummary {
    pub copied: Vec<String>,
    pub present: usize,
    pub bytes: u64,
}

/// Progress of a copy: the set being copied, bytes and documents done.
pub trait CopyProgress {
    /// Before anything of `set` is written (the `index`-th of `of`); an
    /// error stops the copy there.
    ///
    /// # Errors
    /// Whatever keeps the set from being copied (a record that cannot be kept).
    fn set_started(&mut self, set: &StoredSet, index: usize, of: usize) -> Result<(), BackupError>;
    fn bytes(&mut self, bytes: u64);
    /// After `set` was copied (`copied`), or failed.
    fn set_ended(&mut self, set: &StoredSet, copied: bool);
}

/// Plans a copy from `from` to `to`.
///
/// # Errors
/// `InvalidLocation` when both are one location; `NoBackup` for a source
/// without sets; `SetNotFound` for an `up_to` no chain holds; `ChainMismatch`
/// when the destination holds another set under an id of the source; storage errors.
pub fn plan(from: Location, to: Location, choice: &CopyChoice) -> Result<CopyPlan, BackupError> {
    if from.to_string() == to.to_string() {
        return Err(BackupError::InvalidLocation(format!("'{from}' is both the source and the destination of the copy")));
    }
    let mut left_out = Vec::new();
    let sets: Vec<StoredSet> = match &choice.up_to {
        Some(point) => choose_chain(&from, ChainChoice { up_to: Some(point), database: None })?,
        None => {
            let scanned = scan(&from)?;
            let wanted = |id: &str| choice.database_id.as_deref().is_none_or(|w| w == id);
            let orphans = scanned.orphans.iter().filter(|s| wanted(&s.manifest.database_id));
            left_out.extend(orphans.map(|s| format!("{}: an incremental whose base is not in the source", s.manifest.set_id)));
            scanned.chains.into_iter().filter(|c| wanted(&c.database_id)).flat_map(|c| c.sets).collect()
        }
    };
    if sets.is_empty() {
        return Err(BackupError::NoBackup(format!("'{from}' holds no complete set to copy")));
    }
    let there: BTreeMap<String, StoredSet> =
        scan(&to)?.chains.into_iter().flat_map(|c| c.sets).map(|s| (s.manifest.set_id.clone(), s)).collect();
    let (mut missing, mut present) = (Vec::new(), Vec::new());
    for set in sets {
        match there.get(&set.manifest.set_id) {
            Some(copy) if copy.manifest == set.manifest => present.push(set.manifest.set_id.clone()),
            Some(_) => {
                return Err(BackupError::ChainMismatch(format!(
                    "'{to}' already holds a different set named {}: the copy would mix two backups, and stops",
                    set.manifest.set_id
                )))
            }
            None => missing.push(set),
        }
    }
    Ok(CopyPlan { from, to, missing, present, left_out })
}

/// Copies the planned sets, one after another, bases first.
///
/// # Errors
/// `ChecksumMismatch` when a source file is not what its manifest says (the
/// set being copied is removed; the sets before it stay complete);
/// `Canceled`; storage errors.
pub fn run(plan: &CopyPlan, progress: &mut dyn CopyProgress, cancel: &CancelToken) -> Result<CopySummary, BackupError> {
    let mut summary = CopySummary { present: plan.present.len(), ..CopySummary::default() };
    for (i, set) in plan.missing.iter().enumerate() {
        if cancel.is_canceled() {
            return Err(BackupError::Canceled);
        }
        progress.set_started(set, i, plan.missing.len())?;
        let copied = copy_set(set, &plan.to, progress, cancel);
        progress.set_ended(set, copied.is_ok());
        summary.bytes += copied?;
        summary.copied.push(set.manifest.set_id.clone());
        failpoint::hit("copy.after_set");
    }
    Ok(summary)
}

/// Copies one set; what it wrote is removed when it fails.
fn copy_set(set: &StoredSet, to: &Location, progress: &mut dyn CopyProgress, cancel: &CancelToken) -> Result<u64, BackupError> {
    let set_id = &set.manifest.set_id;
    // The manifest as stored, checked against the one planned with.
    let raw = set.location.read_capped(set_id, MANIFEST, MAX_MANIFEST_BYTES).map_err(|e| read_error(set, MANIFEST, &e))?;
    let manifest: super::format::Manifest =
        serde_json::from_slice(&raw).map_err(|e| BackupError::Corrupt(format!("{set_id}/{MANIFEST}: {e}")))?;
    if manifest != set.manifest {
        return Err(BackupError::ChecksumMismatch(format!("{set_id}/{MANIFEST} changed while the copy read it")));
    }
    clear_own_leftover(to, set_id)?;
    with_target(to, set_id, cancel, |target| write_files(set, to, target, raw, progress, cancel))
}

/// Writes the files, then the manifest; the bytes copied.
fn write_files(
    set: &StoredSet,
    to: &Location,
    target: &Target,
    manifest_raw: Vec<u8>,
    progress: &mut dyn CopyProgress,
    cancel: &CancelToken,
) -> Result<u64, BackupError> {
    let set_id = &set.manifest.set_id;
    let write_error = |name: &str, e: &std::io::Error| io_error(e, |m| BackupError::Io(format!("cannot write {set_id}/{name}: {m}")));
    if let Some(marker) = target.path_of(COPY_MARKER) {
        std::fs::write(&marker, set_id.as_bytes()).map_err(|e| write_error(COPY_MARKER, &e))?;
    }
    let mut bytes = 0;
    let mut buffer = vec![0u8; 1 << 20];
    let shared = copy_shared_tables(set, to, progress, cancel)?;
    bytes += shared;
    for file in set.manifest.files.iter().filter(|f| !f.shared) {
        let mut source = set.open(&file.name).map_err(|e| read_error(set, &file.name, &e))?;
        let mut sink = target.create(&file.name).map_err(|e| write_error(&file.name, &e))?;
        let (mut hash, mut size) = (Sha256::new(), 0u64);
        loop {
            if cancel.is_canceled() {
                return Err(BackupError::Canceled);
            }
            let n = source.read(&mut buffer).map_err(|e| read_error(set, &file.name, &e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > file.size {
                break;
            }
            hash.update(&buffer[..n]);
            sink.write_all(&buffer[..n]).map_err(|e| write_error(&file.name, &e))?;
            progress.bytes(n as u64);
            failpoint::hit("copy.mid_file");
        }
        if size != file.size || hex::encode(hash.finalize()) != file.sha256 {
            return Err(BackupError::ChecksumMismatch(format!(
                "{set_id}/{}: the source file does not match its manifest (the set is not copied)",
                file.name
            )));
        }
        sink.finish().map_err(|e| write_error(&file.name, &e))?;
        bytes += size;
    }
    target.sync_subfolders(&set.manifest.files).map_err(|e| write_error("a subfolder", &e))?;
    if let Some(marker) = target.path_of(COPY_MARKER) {
        std::fs::remove_file(&marker).map_err(|e| write_error(COPY_MARKER, &e))?;
    }
    if cancel.is_canceled() {
        return Err(BackupError::Canceled);
    }
    let mut sums: Vec<(String, String)> = set.manifest.files.iter().map(|f| (f.name.clone(), f.sha256.clone())).collect();
    sums.push((MANIFEST.to_string(), hex::encode(Sha256::digest(&manifest_raw))));
    target.commit(manifest_raw, sha256sums(&sums).into_bytes(), &set.manifest.created)?;
    Ok(bytes)
}

/// Copies the shared tables of `set` the destination does not hold yet into
/// its `tables/` (each checked against its hash while it streams); the bytes copied.
fn copy_shared_tables(set: &StoredSet, to: &Location, progress: &mut dyn CopyProgress, cancel: &CancelToken) -> Result<u64, BackupError> {
    let wanted: Vec<&super::format::ManifestFile> = set.manifest.files.iter().filter(|f| f.shared).collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let there = super::shared_tables::listed(to)?;
    let mut bytes = 0;
    for file in wanted {
        if there.get(&file.sha256).is_some_and(|t| t.size == file.size) {
            continue;
        }
        if cancel.is_canceled() {
            return Err(BackupError::Canceled);
        }
        let mut source = set.open(&file.name).map_err(|e| read_error(set, &file.name, &e))?;
        super::shared_tables::put(to, &file.sha256, file.size, &mut source, &mut |n| progress.bytes(n)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                BackupError::ChecksumMismatch(format!(
                    "{}/{} (shared table {}): the source does not match its manifest (the set is not copied)",
                    set.manifest.set_id, file.name, file.sha256
                ))
            } else {
                io_error(&e, |m| BackupError::Io(format!("cannot write the shared table {}: {m}", file.sha256)))
            }
        })?;
        bytes += file.size;
    }
    Ok(bytes)
}

/// A destination folder's `.tmp-<SetId>` left by a copy that stopped (it
/// holds [`COPY_MARKER`]) is removed; one without the marker is a backup's
/// being written, or someone else's, and the copy stops rather than touch it.
fn clear_own_leftover(to: &Location, set_id: &str) -> Result<(), BackupError> {
    let Some(folder) = to.folder() else { return Ok(()) };
    let temp = temp_dir(folder, set_id);
    if !temp.exists() {
        return Ok(());
    }
    if std::fs::read(temp.join(COPY_MARKER)).is_ok_and(|m| m == set_id.as_bytes()) {
        return std::fs::remove_dir_all(&temp)
            .map_err(|e| BackupError::Io(format!("cannot remove what an earlier copy left in '{}': {e}", temp.display())));
    }
    Err(BackupError::InvalidLocation(format!(
        "'{}' exists and was not left by a copy (a backup may be writing it): the copy does not touch it",
        temp.display()
    )))
}

fn read_error(set: &StoredSet, name: &str, e: &std::io::Error) -> BackupError {
    io_error(e, |m| BackupError::ChecksumMismatch(format!("{}/{name}: cannot be read from the source ({m})", set.manifest.set_id)))
}

/// A copy running in the background.
pub type CopyHandle = crate::jobs::JobThread<CopySummary, BackupError>;

/// Each set's record for crash recovery while it is copied (its `.tmp-`
/// folder, or its unfinished upload), kept in the server's own state as a
/// backup keeps one; a progress of its own for copies nobody watches.
pub(crate) struct SetRecords {
    system: std::sync::Arc<crate::storage::DatabaseHandle>,
    to: Location,
    unfinished: Option<super::job::Unfinished>,
}

impl SetRecords {
    pub(crate) fn new(system: std::sync::Arc<crate::storage::DatabaseHandle>, to: Location) -> Self {
        Self { system, to, unfinished: None }
    }
}

impl CopyProgress for SetRecords {
    fn set_started(&mut self, set: &StoredSet, _index: usize, _of: usize) -> Result<(), BackupError> {
        self.unfinished = Some(super::job::record_unfinished(self.system.clone(), &self.to, &set.manifest.set_id)?);
        Ok(())
    }

    fn bytes(&mut self, _bytes: u64) {}

    fn set_ended(&mut self, _set: &StoredSet, copied: bool) {
        if let Some(unfinished) = self.unfinished.take() {
            unfinished.finish(copied);
        }
    }
}

/// A copy's progress into its status document, with each set's record.
struct Reported<'a> {
    reporter: &'a mut crate::jobs::StatusReporter,
    records: SetRecords,
    documents_before: u64,
    set_documents: u64,
    set_size: u64,
    set_bytes: u64,
    bytes: u64,
}

impl CopyProgress for Reported<'_> {
    fn set_started(&mut self, set: &StoredSet, index: usize, of: usize) -> Result<(), BackupError> {
        let set_id = &set.manifest.set_id;
        self.records.set_started(set, index, of)?;
        (self.set_documents, self.set_size, self.set_bytes) =
            (set.manifest.document_count, set.manifest.files.iter().map(|f| f.size).sum(), 0);
        self.reporter.edit(|s| s.set_id = Some(set_id.clone()));
        self.reporter.message(&format!("Copying {set_id} ({} of {of})", index + 1), rookery_types::Severity::Information);
        Ok(())
    }

    fn bytes(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.set_bytes += bytes;
        let share = (u128::from(self.set_documents) * u128::from(self.set_bytes) / u128::from(self.set_size.max(1))) as u64;
        self.reporter.progress(self.documents_before + share.min(self.set_documents), self.bytes);
    }

    fn set_ended(&mut self, set: &StoredSet, copied: bool) {
        self.records.set_ended(set, copied);
        if copied {
            self.documents_before += set.manifest.document_count;
            self.reporter.edit(|s| s.sets_copied = Some(s.sets_copied.unwrap_or(0) + 1));
            self.reporter.progress(self.documents_before, self.bytes);
        }
    }
}

impl crate::engine::Rookery {
    /// Starts copying the sets of `from` missing in `to` in the background
    /// (status in the system database's `Raven/Copy/Status`); one copy at a
    /// time. The source is only read.
    ///
    /// # Errors
    /// `InvalidLocation`, `AlreadyRunning` (a copy runs), `NoBackup`,
    /// `SetNotFound`, `ChainMismatch` (the destination holds another set
    /// under a source's id), storage errors.
    pub fn start_copy(
        &self,
        from: &str,
        to: &str,
        s3_from: Option<&rookery_types::S3Settings>,
        s3_to: Option<&rookery_types::S3Settings>,
        choice: &CopyChoice,
    ) -> Result<CopyHandle, BackupError> {
        use crate::jobs::{Job, JobKind, StatusReporter};
        let (from, to) = (self.open_backup_location(from, s3_from)?, self.open_backup_location(to, s3_to)?);
        let slot = self.copy_slot.acquire(std::time::Duration::ZERO).ok_or(BackupError::AlreadyRunning)?;
        let plan = plan(from, to, choice)?;
        let initial = rookery_types::JobStatus {
            backup_location: Some(plan.to.to_string()),
            copy_from: Some(plan.from.to_string()),
            sets_copied: Some(0),
            sets_present: Some(plan.present.len() as u64),
            ..Default::default()
        };
        let first = format!(
            "Copy from {} to {} started: {} to copy ({}), {} already there",
            plan.from,
            plan.to,
            rookery_types::counted(plan.missing.len() as u64, "set"),
            rookery_types::counted(plan.bytes(), "byte"),
            plan.present.len()
        );
        let system = self.catalog.system();
        let mut reporter = StatusReporter::start(system.clone(), rookery_types::COPY_STATUS_ID, initial, &first)?;
        for why in &plan.left_out {
            reporter.message(&format!("Left out {why}"), rookery_types::Severity::Warning);
        }
        reporter.set_total(plan.documents());
        let job = Job::new(JobKind::Copy, slot, None, reporter, &self.running, "").observed_by(&self.monitor);
        job.spawn(
            "copy".to_string(),
            move |job| {
                let mut progress = Reported {
                    reporter: &mut job.reporter,
                    records: SetRecords::new(system, plan.to.clone()),
                    documents_before: 0,
                    set_documents: 0,
                    set_size: 0,
                    set_bytes: 0,
                    bytes: 0,
                };
                run(&plan, &mut progress, &job.cancel)
            },
            |s: &CopySummary| {
                format!(
                    "Copy completed: {} copied ({}), {} already there",
                    rookery_types::counted(s.copied.len() as u64, "set"),
                    rookery_types::counted(s.bytes, "byte"),
                    s.present
                )
            },
        )
    }

    /// Asks the running copy to stop: it ends with `Canceled`; the sets it
    /// completed stay, the one it was writing is removed.
    #[must_use]
    pub fn cancel_copy(&self) -> bool {
        self.running.cancel(crate::jobs::JobKind::Copy, "")
    }
}
