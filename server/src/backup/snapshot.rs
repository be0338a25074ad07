//! Snapshot sets: a full set whose data files are the database's own
//! storage files, pinned at one point in time (see [`crate::storage::files`]
//! for the pin and why it is consistent), then shipped into the set:
//! - into a folder on the data directory's filesystem, unencrypted, every
//!   file is hard-linked (a checkpoint): the set costs no copy, and hashing
//!   what is new (a table's SHA-256 is kept once computed, keyed by the
//!   file, since tables never change);
//! - anywhere else (another filesystem, object storage, an encrypted set),
//!   each file is copied, hashed while it streams and sealed when the set is
//!   encrypted.
//!
//! The set is complete exactly like a logical one (manifest and
//! `SHA256SUMS` last, see [`super::target`]); its manifest says
//! `Kind: "Snapshot"` and the `StorageFormat` its files need.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::copy::{copy_hashed, CopyJob};
use super::format::{FileContent, HashingWriter, Manifest, ManifestFile, SetKind, SetWriter, FORMAT_VERSION};
use super::location::io_error;
use super::sealed::ChunkSealer;
use super::target::{commit_set, database_encryption, Target};
use super::{BackupError, BackupSummary, PreparedBackup, YieldToWrites, Yielding};
use crate::failpoint;
use crate::jobs::{now_rfc3339, CancelToken, StatusReporter};
use crate::storage::files::{self, PinnedFile, STORAGE_FORMAT};
use crate::storage::Foreground;

/// Forgets every kept hash (the benchmark measures a first snapshot with none).
pub fn forget_hashes() {
    super::kept_hashes::forget();
}

/// Removes the staging folder however the backup ends.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, dir = %self.0.display(), "cannot remove a snapshot's staging folder");
            }
        }
    }
}

/// Writes a snapshot set of `prepared` into `target`.
///
/// # Errors
/// Storage and I/O errors, `Canceled`.
pub(super) fn write_set(
    prepared: &PreparedBackup,
    target: &Target,
    reporter: &mut StatusReporter,
    cancel: &CancelToken,
) -> Result<BackupSummary, BackupError> {
    let store = prepared.database.store();
    let staging = Staging(prepared.staging.clone().ok_or_else(|| BackupError::Io("a snapshot without a staging folder".into()))?);
    // Unencrypted, unlocked snapshots in object storage share their tables
    // with the location's other sets (see `shared_tables`).
    let share = matches!(target, Target::Objects { location, .. } if location.lock().is_none()) && prepared.set_key.is_none();
    let pinned = files::pin(store, &staging.0, share)?;
    // The point the set claims is durable in the database before the set exists.
    store.persist()?;
    if pinned.retries > 0 {
        tracing::debug!(retries = pinned.retries, "the snapshot's pin started over while fjall replaced files");
    }
    let state = pinned.state;
    reporter.set_total(state.document_count);
    let total_bytes: u64 = pinned.files.iter().map(|f| f.size).sum();
    reporter.message(
        &format!("Pinned the database at etag {}: {} files, {total_bytes} bytes", state.last_etag, pinned.files.len()),
        rookery_types::Severity::Information,
    );
    let link = matches!(target, Target::Folder { .. }) && prepared.set_key.is_none() && !prepared.copy_files;
    // A plain folder set (unpaced) copies in the kernel; other targets stream.
    let kernel_copy = matches!(target, Target::Folder { .. }) && prepared.set_key.is_none() && prepared.max_bytes_per_second.is_none();
    let set_key = prepared.set_key.as_ref().map(|k| &k.key);
    let pace = prepared.max_bytes_per_second.map(super::Pace::new);
    let mut shipped: Vec<Option<(u64, String)>> = vec![None; pinned.files.len()];
    let mut to_copy = Vec::new();
    let mut to_hash = Vec::new();
    let mut bytes_done = 0u64;
    let mut uploaded = 0u64;
    let mut in_folder = false;
    let held = if share { super::shared_tables::listed(&prepared.location)? } else { std::collections::BTreeMap::new() };
    let mut shared = vec![false; pinned.files.len()];
    let report = |reporter: &mut StatusReporter, bytes_done: u64| {
        reporter.progress(state.document_count * bytes_done / total_bytes.max(1), bytes_done);
    };
    for (i, file) in pinned.files.iter().enumerate() {
        if cancel.is_canceled() {
            return Err(BackupError::Canceled);
        }
        let source = staging.0.join(&file.name);
        let io = |e: std::io::Error| io_error(&e, |m| BackupError::Io(format!("cannot write {}: {m}", file.name)));
        if share && file.shared {
            let (sha, sent) = ship_shared(&prepared.location, &source, file, &held).map_err(io)?;
            shipped[i] = Some((file.size, sha));
            shared[i] = true;
            uploaded += sent;
        } else if link && target.link(&source, &file.name).map_err(io)? {
            in_folder = true;
            to_hash.push(i); // hashed below, on both cores
        } else if kernel_copy {
            to_copy.push(i);
            continue;
        } else {
            let pace = pace.as_ref().map(|p| (p, bytes_done, cancel));
            shipped[i] = Some(copy_into(target, &source, file, &prepared.set_id, set_key, pace)?);
            uploaded += file.size;
        }
        failpoint::hit("snapshot.after_file");
        bytes_done += file.size;
        report(reporter, bytes_done);
    }
    if !to_hash.is_empty() {
        let linked: Vec<(PathBuf, &PinnedFile)> =
            to_hash.iter().map(|&i| (staging.0.join(&pinned.files[i].name), &pinned.files[i])).collect();
        let hashes = hash_linked_all(&linked, &store.foreground())
            .map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot hash the linked files: {m}"))))?;
        for (&i, sha) in to_hash.iter().zip(hashes) {
            shipped[i] = Some((pinned.files[i].size, sha));
        }
    }
    if !to_copy.is_empty() {
        in_folder = true;
        let mut jobs = Vec::with_capacity(to_copy.len());
        for &i in &to_copy {
            let file = &pinned.files[i];
            let from = staging.0.join(&file.name);
            let known_sha = if file.shared { std::fs::metadata(&from).ok().and_then(|m| super::kept_hashes::get(&m)) } else { None };
            let to = target.path_of(&file.name).ok_or_else(|| BackupError::Io("a folder set without a folder".into()))?;
            jobs.push(CopyJob { from, to, known_sha });
        }
        let results = copy_hashed(&jobs, &|| cancel.is_canceled(), &mut |_, size| {
            failpoint::hit("snapshot.after_file");
            bytes_done += size;
            report(reporter, bytes_done);
        })
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::Interrupted {
                BackupError::Canceled
            } else {
                io_error(&e, |m| BackupError::Io(format!("cannot copy the storage files: {m}")))
            }
        })?;
        for ((&i, job), result) in to_copy.iter().zip(&jobs).zip(results) {
            if pinned.files[i].shared && job.known_sha.is_none() {
                if let Ok(meta) = std::fs::metadata(&job.from) {
                    super::kept_hashes::remember(&meta, &result.1);
                }
            }
            shipped[i] = Some(result);
        }
    }
    let shipped: Vec<ManifestFile> = pinned
        .files
        .iter()
        .zip(shipped)
        .zip(shared)
        .map(|((file, done), shared)| {
            let (size, sha256) = done.unwrap_or_default();
            ManifestFile { name: file.name.clone(), size, sha256, content: FileContent::Storage, records: 0, shared }
        })
        .collect();
    if share {
        reporter.message(
            &format!("Uploaded {uploaded} of {total_bytes} bytes: the other tables are already in the location"),
            rookery_types::Severity::Information,
        );
    }
    if in_folder {
        target.sync_subfolders(&shipped).map_err(|e| BackupError::Io(format!("cannot sync the set folder: {e}")))?;
    }
    drop(staging);

    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        set_id: prepared.set_id.clone(),
        database_name: prepared.database.name.clone(),
        database_id: store.database_id().to_string(),
        kind: SetKind::Snapshot,
        base_set_id: None,
        from_etag: 0,
        to_etag: state.last_etag,
        document_count: state.document_count,
        deletion_count: 0,
        created: now_rfc3339(),
        compression: "none".to_string(),
        encryption: database_encryption(prepared)?,
        files: shipped,
        content_digest: Some(state.digest.to_hex()),
        compacted_from: None,
        storage_format: Some(STORAGE_FORMAT.to_string()),
        duration_ms: None,
        mac: None,
    };
    let final_dir = commit_set(target, &mut manifest, set_key, cancel)?;
    super::kept_hashes::save();
    Ok(BackupSummary {
        set_id: prepared.set_id.clone(),
        kind: SetKind::Snapshot,
        location: prepared.location.clone(),
        set_dir: prepared.location.folder().map(|_| final_dir),
        documents: state.document_count,
        deletions: 0,
        bytes_written: if share { uploaded } else { bytes_done },
        from_etag: 0,
        to_etag: state.last_etag,
    })
}

/// [`hash_linked`] of every file, on two threads per core (two to four): a
/// first snapshot reads every table once, from the disk, and while one
/// thread waits on a read another hashes (on 2 cores, 1M documents: 0.74 to
/// 0.87 s on one thread per core, 0.63 to 0.70 s on two).
fn hash_linked_all(files: &[(PathBuf, &PinnedFile)], foreground: &Foreground) -> std::io::Result<Vec<String>> {
    // The largest first: no thread is left hashing a big table alone at the end.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].1.size));
    let hashed = super::concurrent::map(&order, super::copy::workers(), |&i| hash_linked(&files[i].0, files[i].1, foreground));
    // Back into the files' order.
    let mut shas: Vec<(usize, std::io::Result<String>)> = order.into_iter().zip(hashed).collect();
    shas.sort_unstable_by_key(|&(i, _)| i);
    shas.into_iter().map(|(_, sha)| sha).collect()
}

/// The SHA-256 of a file linked into the set: remembered for immutable
/// files, read otherwise (and the file fsynced: the pin's own copies),
/// yielding the disk to clients' writes as it reads.
fn hash_linked(path: &Path, file: &PinnedFile, foreground: &Foreground) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if file.shared {
        if let Some(sha) = super::kept_hashes::get(&meta) {
            return Ok(sha);
        }
    }
    let handle = File::open(path)?;
    if !file.shared {
        handle.sync_all()?;
    }
    let sha = super::format::sha256_reader(Yielding::new(handle, Some(YieldToWrites::new(foreground.clone()))))?;
    if file.shared {
        super::kept_hashes::remember(&meta, &sha);
    }
    Ok(sha)
}

/// Stores one immutable table once for the location: nothing to send when
/// the location holds it already. Its SHA-256 and the bytes sent.
fn ship_shared(
    location: &super::location::Location,
    source: &Path,
    file: &PinnedFile,
    held: &std::collections::BTreeMap<String, super::shared_tables::Table>,
) -> std::io::Result<(String, u64)> {
    let meta = std::fs::metadata(source)?;
    let sha = match super::kept_hashes::get(&meta) {
        Some(sha) => sha,
        None => {
            let sha = super::format::sha256_reader(File::open(source)?)?;
            super::kept_hashes::remember(&meta, &sha);
            sha
        }
    };
    if held.get(&sha).is_some_and(|t| t.size == file.size) {
        return Ok((sha, 0));
    }
    super::shared_tables::put(location, &sha, file.size, &mut File::open(source)?, &mut |_| {})?;
    Ok((sha, file.size))
}

/// Copies one file into the set (sealed when the set is encrypted), hashing
/// what is written; the size and SHA-256 of the file in the set. A paced
/// copy (`MaxBytesPerSecond`, the bytes of the set before this file) waits
/// after each chunk, and a cancel cuts the wait short.
fn copy_into(
    target: &Target,
    source: &Path,
    file: &PinnedFile,
    set_id: &str,
    set_key: Option<&crate::crypto::Key>,
    pace: Option<(&super::Pace, u64, &CancelToken)>,
) -> Result<(u64, String), BackupError> {
    let io = |e: std::io::Error| io_error(&e, |m| BackupError::Io(format!("cannot write {}: {m}", file.name)));
    let mut input = File::open(source).map_err(io)?;
    let meta = input.metadata().map_err(io)?;
    let sink = target.create(&file.name).map_err(io)?;
    let hashing = HashingWriter::new(sink);
    let mut out = match set_key {
        Some(key) => {
            SetWriter::Sealed(ChunkSealer::new(hashing, key.clone(), &super::sealed::chunk_file_id(FORMAT_VERSION, set_id, &file.name)))
        }
        None => SetWriter::Plain(hashing),
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(io)?;
        if let Some((pace, before, cancel)) = pace {
            pace.wait(before + out.written(), cancel)?;
        }
    }
    let (sink, size, sha) = out.finish().map_err(io)?.finish();
    sink.finish().map_err(io)?;
    if file.shared && set_key.is_none() {
        super::kept_hashes::remember(&meta, &sha);
    }
    Ok((size, sha))
}
