//! Where a new set's files go and how a set becomes complete, whoever writes
//! it (the logical writer, the snapshot writer, compaction): a `.tmp-`
//! folder renamed into place, or objects with the manifest uploaded last.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::BackupError;
use super::format::{sha256sums, Manifest, ManifestFile, MANIFEST, SHA256SUMS, TEMP_PREFIX};
use super::location::{io_error, Location};
use super::object::{Finishing, ObjectLocation, ObjectWriter};
use super::prepare::PreparedBackup;
use super::sealed::SEALED_DATABASE_KEY_AAD;
use crate::durable::{sync_dir, write_synced};
use crate::failpoint;
use crate::jobs::CancelToken;

/// Where the files of one new set go, and how it becomes complete.
pub(super) enum Target {
    Folder { location: PathBuf, temp: PathBuf, set_id: String, started: std::time::Instant, syncs: Arc<Syncs> },
    Objects { location: Arc<ObjectLocation>, set_id: String, started: std::time::Instant, finishing: Arc<Finishing> },
}

/// One file being written.
pub(super) enum FileSink {
    /// fsynced in the background once finished (see [`Syncs`]).
    Folder(BufWriter<File>, Arc<Syncs>),
    /// Completed in the background with the set's other uploads.
    Object(ObjectWriter, Arc<Finishing>),
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Folder(w, _) => w.write(buf),
            Self::Object(w, _) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Folder(w, _) => w.flush(),
            Self::Object(w, _) => w.flush(),
        }
    }
}

impl FileSink {
    /// Makes the file durable before the set is complete: fsynced in the
    /// background (see [`Syncs`]); or, in object storage, acknowledged by
    /// the storage (see [`Finishing`]).
    pub(super) fn finish(self) -> std::io::Result<()> {
        failpoint::io_error("backup.write")?;
        match self {
            Self::Folder(w, syncs) => syncs.push(w.into_inner().map_err(std::io::IntoInnerError::into_error)?),
            Self::Object(w, finishing) => w.finish_in(&finishing),
        }
    }
}

/// The files of a folder set fsynced on a thread of their own while the
/// next ones are written (a set of 1M documents has about 25 files, and
/// their fsyncs one after another took about 65 ms of a compaction's
/// merging thread). The set is committed only once every one is synced
/// ([`Self::wait_all`], before its manifest is written), so a crash still
/// never leaves a complete set with a file that is not durable.
#[derive(Default)]
pub(super) struct Syncs(std::sync::Mutex<Option<SyncThread>>);

/// The thread that fsyncs the files handed to it, one after another; it
/// ends when its queue is dropped, with the first error it met.
type SyncThread = (std::sync::mpsc::SyncSender<File>, std::thread::JoinHandle<std::io::Result<()>>);

/// Files waiting for their fsync at most: a set of many small files (an
/// encrypted snapshot's tables, copied one by one) holds a bounded number
/// of them open, the writer waiting for the thread beyond that.
const SYNCS_QUEUED: usize = 16;

impl Syncs {
    /// fsyncs `file` in the background (the thread starts with the first
    /// file); waits while [`SYNCS_QUEUED`] files are queued already.
    fn push(&self, file: File) -> std::io::Result<()> {
        let mut thread = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if thread.is_none() {
            let (tx, rx) = std::sync::mpsc::sync_channel::<File>(SYNCS_QUEUED);
            let handle = std::thread::Builder::new().name("backup-sync".into()).spawn(move || {
                let mut first_error = Ok(());
                for file in rx {
                    if let Err(e) = failpoint::io_error("backup.sync").and_then(|()| file.sync_all()) {
                        first_error = first_error.and(Err(e));
                    }
                }
                first_error
            })?;
            *thread = Some((tx, handle));
        }
        let (tx, _) = thread.as_ref().expect("started above");
        tx.send(file).map_err(|_| std::io::Error::other("the thread syncing the set's files stopped"))
    }

    /// Waits until every file handed over is synced.
    ///
    /// # Errors
    /// The first fsync that failed.
    fn wait_all(&self) -> std::io::Result<()> {
        let thread = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let Some((tx, handle)) = thread else { return Ok(()) };
        drop(tx);
        handle.join().map_err(|_| std::io::Error::other("the thread syncing the set's files failed"))?
    }
}

/// Writes one set into `location` with `write`. What a failed write left is
/// removed; a canceled one ends `Canceled` whatever its last step failed
/// with (a wait on the storage the cancel cut short, say).
pub(super) fn with_target<T>(
    location: &Location,
    set_id: &str,
    cancel: &CancelToken,
    write: impl FnOnce(&Target) -> Result<T, BackupError>,
) -> Result<T, BackupError> {
    let target = Target::begin(location, set_id, cancel)?;
    let result = write(&target);
    if result.is_err() {
        target.abort();
    }
    match result {
        Err(_) if cancel.is_canceled() => Err(BackupError::Canceled),
        other => other,
    }
}

impl Target {
    /// Starts a set in `location`; in object storage, its requests stop
    /// waiting on the storage once `cancel` is canceled.
    fn begin(location: &Location, set_id: &str, cancel: &CancelToken) -> Result<Self, BackupError> {
        match location {
            Location::Folder(path) => {
                std::fs::create_dir_all(path).map_err(|e| BackupError::Io(format!("cannot create '{}': {e}", path.display())))?;
                let temp = temp_dir(path, set_id);
                std::fs::create_dir(&temp).map_err(|e| BackupError::Io(format!("cannot create the set folder: {e}")))?;
                Ok(Self::Folder {
                    location: path.clone(),
                    temp,
                    set_id: set_id.to_string(),
                    started: std::time::Instant::now(),
                    syncs: Arc::default(),
                })
            }
            Location::Objects(o) => Ok(Self::Objects {
                location: Arc::new(o.canceled_by(cancel)),
                set_id: set_id.to_string(),
                started: std::time::Instant::now(),
                finishing: Arc::default(),
            }),
        }
    }

    pub(super) fn create(&self, name: &str) -> std::io::Result<FileSink> {
        match self {
            Self::Folder { temp, syncs, .. } => {
                let path = temp.join(name);
                if let Some(parent) = path.parent().filter(|p| *p != temp.as_path()) {
                    std::fs::create_dir_all(parent)?;
                }
                Ok(FileSink::Folder(BufWriter::with_capacity(1 << 20, File::create(path)?), syncs.clone()))
            }
            Self::Objects { location, set_id, finishing, .. } => {
                Ok(FileSink::Object(location.create(&format!("{set_id}/{name}")), finishing.clone()))
            }
        }
    }

    /// Where the file `name` of a folder set goes (none in object storage).
    pub(super) fn path_of(&self, name: &str) -> Option<PathBuf> {
        match self {
            Self::Folder { temp, .. } => Some(temp.join(name)),
            Self::Objects { .. } => None,
        }
    }

    /// Hard-links `source` into the set as `name` (a folder on the same
    /// filesystem); `false` when it cannot be linked (another filesystem),
    /// and the file is to be copied.
    pub(super) fn link(&self, source: &Path, name: &str) -> std::io::Result<bool> {
        let Self::Folder { temp, .. } = self else { return Ok(false) };
        let path = temp.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::hard_link(source, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) || e.kind() == std::io::ErrorKind::PermissionDenied => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// fsyncs the subfolders of a folder set that `files` are in (the set
    /// folder itself is synced when the set is committed).
    pub(super) fn sync_subfolders(&self, files: &[ManifestFile]) -> std::io::Result<()> {
        let Self::Folder { temp, .. } = self else { return Ok(()) };
        let dirs: BTreeSet<PathBuf> = files.iter().filter_map(|f| temp.join(&f.name).parent().map(Path::to_path_buf)).collect();
        for dir in dirs.iter().rev() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Writes the checksums and the manifest and makes the set complete.
    /// In object storage with an object lock, every object is locked (as
    /// of the set's `created`) before the manifest is written, locked too.
    pub(super) fn commit(&self, manifest_json: Vec<u8>, sums: Vec<u8>, created: &str) -> Result<PathBuf, BackupError> {
        let io = |what: &'static str| move |e: std::io::Error| io_error(&e, |m| BackupError::Io(format!("{what}: {m}")));
        match self {
            Self::Folder { location, temp, set_id, syncs, .. } => {
                syncs.wait_all().map_err(io("cannot sync the set's files"))?;
                write_synced(&temp.join(MANIFEST), &manifest_json).map_err(io("cannot write the manifest"))?;
                failpoint::hit("backup.after_manifest");
                write_synced(&temp.join(SHA256SUMS), &sums).map_err(io("cannot write SHA256SUMS"))?;
                sync_dir(temp).map_err(io("cannot sync the set folder"))?;
                failpoint::hit("backup.before_rename");
                let final_dir = location.join(set_id);
                std::fs::rename(temp, &final_dir).map_err(io("cannot move the set into place"))?;
                sync_dir(location).map_err(io("cannot sync the backup location"))?;
                failpoint::hit("backup.after_rename");
                Ok(final_dir)
            }
            Self::Objects { location, set_id, finishing, .. } => {
                finishing.wait_all_for(location).map_err(io("cannot upload the set's files"))?;
                location.put(&format!("{set_id}/{SHA256SUMS}"), sums).map_err(io("cannot upload SHA256SUMS"))?;
                let lock = location.lock_set(set_id, created).map_err(io("cannot lock the set's objects"))?;
                failpoint::hit("backup.before_rename");
                // The manifest last: the set is complete once it exists.
                location
                    .put_manifest(&format!("{set_id}/{MANIFEST}"), manifest_json, lock.as_ref())
                    .map_err(io("cannot upload the manifest"))?;
                failpoint::hit("backup.after_rename");
                Ok(PathBuf::new())
            }
        }
    }

    /// Removes what a failed backup wrote (in object storage, as far as the
    /// storage answers; what stays is an unfinished set without a manifest).
    fn abort(&self) {
        match self {
            Self::Folder { temp, syncs, .. } => {
                let _ = syncs.wait_all();
                if let Err(e) = std::fs::remove_dir_all(temp) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(error = %e, dir = %temp.display(), "cannot remove a failed backup's files");
                    }
                }
            }
            Self::Objects { location, set_id, finishing, .. } => {
                // Its uploads end first (failed or not): none lands after the
                // removal. A canceled job gives each request a few seconds,
                // not the storage's whole retry window: an upload the storage
                // has not acknowledged by then is dropped (it may still land,
                // as an object of a set without a manifest, which no reader
                // takes for a set and the next backup removes).
                let location = if location.job_canceled() { location.for_cleanup() } else { location.as_ref().clone() };
                let _ = finishing.wait_all_for(&location);
                if let Err(e) = location.delete_set(set_id) {
                    tracing::warn!(error = %e, set = %set_id, "cannot remove a failed backup's objects; the next backup removes them");
                }
            }
        }
    }
}

/// Step 4 for any set: the manifest's MAC (encrypted sets), then the
/// manifest and `SHA256SUMS`, and the set made complete.
pub(super) fn commit_set(
    target: &Target,
    manifest: &mut Manifest,
    set_key: Option<&crate::crypto::Key>,
    cancel: &CancelToken,
) -> Result<PathBuf, BackupError> {
    let (Target::Folder { started, .. } | Target::Objects { started, .. }) = target;
    manifest.duration_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    if let Some(key) = set_key {
        let canonical = manifest.canonical_bytes().map_err(|e| BackupError::Io(e.to_string()))?;
        manifest.mac = Some(super::sealed::manifest_mac(key, &canonical));
    }
    failpoint::hit("backup.before_manifest");
    if cancel.is_canceled() {
        return Err(BackupError::Canceled);
    }
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io(e.to_string()))?;
    let manifest_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&manifest_json));
    let mut sums: Vec<(String, String)> = manifest.files.iter().map(|f| (f.name.clone(), f.sha256.clone())).collect();
    sums.push((MANIFEST.to_string(), manifest_sha));
    target.commit(manifest_json, sha256sums(&sums).into_bytes(), &manifest.created)
}

/// The manifest's `Encryption` of an encrypted database: the key check, and
/// the key itself unless the request left it out.
pub(super) fn database_encryption(prepared: &PreparedBackup) -> Result<Option<serde_json::Value>, BackupError> {
    let store = prepared.database.store();
    let mut encryption = serde_json::Map::new();
    if store.is_encrypted() {
        let key = store.database_key().ok_or_else(|| BackupError::Io("the database key is not available".into()))?;
        let mut database = serde_json::json!({"Algorithm": "XChaCha20-Poly1305", "KeyCheck": key.check()});
        if prepared.include_encryption_key {
            match &prepared.set_key {
                // In an encrypted set, the key is sealed with the set key: the manifest holds no secret.
                Some(set) => {
                    let sealed = set.key.seal(SEALED_DATABASE_KEY_AAD, key.to_base64().as_bytes());
                    database["SealedKey"] =
                        serde_json::Value::String(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sealed));
                }
                None => database["Key"] = serde_json::Value::String(key.to_base64()),
            }
        }
        encryption.insert("Database".into(), database);
    }
    if let Some(set) = &prepared.set_key {
        encryption.insert("Set".into(), set.description.clone());
    }
    Ok((!encryption.is_empty()).then_some(serde_json::Value::Object(encryption)))
}

/// The folder a set is written in before it is complete.
#[must_use]
pub fn temp_dir(location: &Path, set_id: &str) -> PathBuf {
    location.join(format!("{TEMP_PREFIX}{set_id}"))
}

/// Whether `path` is what [`temp_dir`] makes for a valid set id, in a
/// location that is still a valid backup location: the only kind of folder
/// crash recovery removes.
#[must_use]
pub fn is_unfinished_set_folder(path: &Path, data_dir: &Path, roots: &[PathBuf]) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    let Some(set_id) = name.strip_prefix(TEMP_PREFIX) else { return false };
    let Some(parent) = path.parent().and_then(Path::to_str) else { return false };
    super::format::is_valid_set_id(set_id)
        && super::location::validate_location(parent, data_dir, roots).is_ok_and(|p| p.join(name) == path)
}
