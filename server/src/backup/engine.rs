//! Writing one backup set from a point-in-time snapshot.
//!
//! The consistency argument, in order:
//! 1. One `fjall` snapshot is taken over every keyspace of the database. Writes
//!    are committed in etag order under the store's writer lock, so the
//!    snapshot holds exactly the writes up to its `last_etag` (the set's `ToEtag`).
//! 2. Every record of the set is read from that snapshot and nothing else, so
//!    the set is the database at one point in time, however long the backup
//!    takes and whatever is written meanwhile.
//! 3. An incremental set reads, from the same kind of snapshot, the change log
//!    (live documents whose etag is above the base set's `ToEtag`) and the
//!    deletion log (ids deleted above it and not alive in the snapshot), so
//!    applying it on top of the base gives the database at its `ToEtag`.
//! 4. In a folder: files go into `<location>/.tmp-<SetId>/`; each is fsynced;
//!    then the manifest and `SHA256SUMS`; then the folder is fsynced and
//!    renamed to `<location>/<SetId>` and the location fsynced. A set is
//!    visible under its final name only when complete; a crash leaves at most
//!    a `.tmp-` folder, which no reader takes for a set and which the next
//!    start removes. In object storage (no rename): every data file, then
//!    `SHA256SUMS`, each acknowledged by the storage, then `manifest.json`
//!    last; a set without its manifest is unfinished, ignored by readers and
//!    removed by the next backup into the location (see [`super::object`]).
//! 5. The snapshot is dropped as soon as the data files are written.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{
    sha256sums, DataRecord, FileContent, HashingWriter, Manifest, ManifestFile, RecordWriter, SetKind, SetWriter,
    BACKED_UP_INTERNAL_PREFIXES, FORMAT_VERSION, MANIFEST, SHA256SUMS, TEMP_PREFIX,
};
use super::location::{io_error, Location};
use super::object::{ObjectLocation, ObjectWriter};
use super::sealed::ChunkSealer;
use super::{BackupError, BackupSummary, PreparedBackup};
use crate::failpoint;
use crate::jobs::{now_rfc3339, CancelToken, StatusReporter};
use crate::storage::record::decode_header;
use crate::storage::StoreSnapshot;
use app::api::STATUS_DOCUMENT_IDS;

/// A data file is closed and a new one started after this many uncompressed bytes.
const FILE_SPLIT_BYTES: u64 = 128 * 1024 * 1024;
/// zstd level: fast, and JSON still compresses several times.
const ZSTD_LEVEL: i32 = 1;

/// Runs a prepared backup to the end, reporting into `reporter`.
///
/// # Errors
/// Any failure; what the backup wrote is removed before returning.
pub fn run(prepared: &PreparedBackup, reporter: &mut StatusReporter, cancel: &CancelToken) -> Result<BackupSummary, BackupError> {
    let target = Target::begin(&prepared.location, &prepared.set_id)?;
    let result = match prepared.kind {
        SetKind::Snapshot => super::snapshot::write_set(prepared, &target, reporter, cancel),
        SetKind::Full | SetKind::Incremental => write_set(prepared, &target, reporter, cancel),
    };
    if result.is_err() {
        target.abort();
    }
    result
}

/// Where the files of one new set go, and how it becomes complete.
pub(super) enum Target {
    Folder { location: PathBuf, temp: PathBuf, set_id: String },
    Objects { location: Arc<ObjectLocation>, set_id: String },
}

/// One file being written.
pub(super) enum FileSink {
    Folder(BufWriter<File>),
    Object(ObjectWriter),
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Folder(w) => w.write(buf),
            Self::Object(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Folder(w) => w.flush(),
            Self::Object(w) => w.flush(),
        }
    }
}

impl FileSink {
    /// Makes the file durable: fsynced, or acknowledged by the storage.
    pub(super) fn finish(self) -> std::io::Result<()> {
        failpoint::io_error("backup.write")?;
        match self {
            Self::Folder(w) => w.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all(),
            Self::Object(w) => w.finish(),
        }
    }
}

impl Target {
    pub(super) fn begin(location: &Location, set_id: &str) -> Result<Self, BackupError> {
        match location {
            Location::Folder(path) => {
                std::fs::create_dir_all(path).map_err(|e| BackupError::Io(format!("cannot create '{}': {e}", path.display())))?;
                let temp = temp_dir(path, set_id);
                std::fs::create_dir(&temp).map_err(|e| BackupError::Io(format!("cannot create the set folder: {e}")))?;
                Ok(Self::Folder { location: path.clone(), temp, set_id: set_id.to_string() })
            }
            Location::Objects(o) => Ok(Self::Objects { location: o.clone(), set_id: set_id.to_string() }),
        }
    }

    pub(super) fn create(&self, name: &str) -> std::io::Result<FileSink> {
        match self {
            Self::Folder { temp, .. } => {
                let path = temp.join(name);
                if let Some(parent) = path.parent().filter(|p| *p != temp.as_path()) {
                    std::fs::create_dir_all(parent)?;
                }
                Ok(FileSink::Folder(BufWriter::with_capacity(1 << 20, File::create(path)?)))
            }
            Self::Objects { location, set_id } => Ok(FileSink::Object(location.create(&format!("{set_id}/{name}")))),
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
    pub(super) fn commit(&self, manifest_json: Vec<u8>, sums: Vec<u8>) -> Result<PathBuf, BackupError> {
        let io = |what: &'static str| move |e: std::io::Error| io_error(&e, |m| BackupError::Io(format!("{what}: {m}")));
        match self {
            Self::Folder { location, temp, set_id } => {
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
            Self::Objects { location, set_id } => {
                location.put(&format!("{set_id}/{SHA256SUMS}"), sums).map_err(io("cannot upload SHA256SUMS"))?;
                failpoint::hit("backup.before_rename");
                // The manifest last: the set is complete once it exists.
                location.put(&format!("{set_id}/{MANIFEST}"), manifest_json).map_err(io("cannot upload the manifest"))?;
                failpoint::hit("backup.after_rename");
                Ok(PathBuf::new())
            }
        }
    }

    /// Removes what a failed backup wrote (in object storage, as far as the
    /// storage answers; what stays is an unfinished set without a manifest).
    pub(super) fn abort(&self) {
        match self {
            Self::Folder { temp, .. } => {
                if let Err(e) = std::fs::remove_dir_all(temp) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(error = %e, dir = %temp.display(), "cannot remove a failed backup's files");
                    }
                }
            }
            Self::Objects { location, set_id } => {
                if let Err(e) = location.delete_set(set_id) {
                    tracing::warn!(error = %e, set = %set_id, "cannot remove a failed backup's objects; the next backup removes them");
                }
            }
        }
    }
}

fn write_set(
    prepared: &PreparedBackup,
    target: &Target,
    reporter: &mut StatusReporter,
    cancel: &CancelToken,
) -> Result<BackupSummary, BackupError> {
    // Step 1: the point in time.
    let snapshot = prepared.database.store().snapshot();
    let to_etag = snapshot.last_etag()?;
    let content_digest = snapshot.content_digest()?.to_hex();
    // The point the set claims is durable on the database before the set is
    // written: a crash can never leave the database below a set's ToEtag.
    prepared.database.store().persist()?;
    let from_etag = prepared.base.as_ref().map_or(0, |b| b.to_etag);
    let mut files = FileSet::new(target, &prepared.set_id, reporter, cancel, prepared.set_key.as_ref().map(|k| k.key.clone()));
    files.pace = prepared.max_bytes_per_second.map(super::Pace::new);

    // Steps 2 and 3: every record from the snapshot.
    let (documents, deletions) = match prepared.kind {
        SetKind::Full => {
            let status_docs = STATUS_DOCUMENT_IDS.iter().filter(|id| matches!(snapshot.get_raw(id), Ok(Some(_)))).count() as u64;
            files.reporter.set_total(snapshot.document_count()?.saturating_sub(status_docs));
            let documents = files.write_documents(snapshot.documents())?;
            files.write_change_log(&snapshot)?;
            (documents, 0)
        }
        // Written from the storage files instead (see `run`).
        SetKind::Snapshot => return Err(BackupError::Io("a snapshot set is not written from documents".into())),
        SetKind::Incremental => {
            let total = snapshot.changes_after(from_etag).filter(|r| r.as_ref().map_or(true, |(_, id)| !is_status(id))).count() as u64;
            files.reporter.set_total(total);
            let changed = snapshot.changes_after(from_etag).map(|r| {
                let (_, id) = r?;
                let raw = snapshot
                    .get_raw(&id)?
                    .ok_or_else(|| crate::storage::StorageError::Corrupt(format!("change log names a missing document {id}")))?;
                Ok((id, raw))
            });
            let documents = files.write_documents(changed)?;
            let deletions = files.write_deletions(&snapshot, from_etag)?;
            (documents, deletions)
        }
    };
    // The system database's users and API keys, from the same snapshot.
    if prepared.database.is_system() {
        files.write_credentials(&snapshot)?;
    }
    // Step 5: release the snapshot.
    drop(snapshot);
    let (manifest_files, bytes_written) = files.into_files();

    // Step 4: manifest, checksums, rename.
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        set_id: prepared.set_id.clone(),
        database_name: prepared.database.name.clone(),
        database_id: prepared.database.store().database_id().to_string(),
        kind: prepared.kind,
        base_set_id: prepared.base.as_ref().map(|b| b.set_id.clone()),
        from_etag,
        to_etag,
        document_count: documents,
        deletion_count: deletions,
        created: now_rfc3339(),
        compression: "zstd".to_string(),
        encryption: database_encryption(prepared)?,
        files: manifest_files,
        content_digest: Some(content_digest),
        compacted_from: None,
        storage_format: None,
        mac: None,
    };
    let final_dir = commit_set(target, &mut manifest, prepared.set_key.as_ref().map(|k| &k.key), cancel)?;

    Ok(BackupSummary {
        set_id: prepared.set_id.clone(),
        kind: prepared.kind,
        location: prepared.location.clone(),
        set_dir: prepared.location.folder().map(|_| final_dir),
        documents,
        deletions,
        bytes_written,
        from_etag,
        to_etag,
    })
}

/// Step 4 for any set: the manifest's MAC (encrypted sets), then the
/// manifest and `SHA256SUMS`, and the set made complete.
pub(super) fn commit_set(
    target: &Target,
    manifest: &mut Manifest,
    set_key: Option<&crate::crypto::Key>,
    cancel: &CancelToken,
) -> Result<PathBuf, BackupError> {
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
    target.commit(manifest_json, sha256sums(&sums).into_bytes())
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

/// Associated data of a database key sealed with a set key.
pub const SEALED_DATABASE_KEY_AAD: &[u8] = b"rookery-database-key-in-set-v1";

fn is_status(id: &str) -> bool {
    STATUS_DOCUMENT_IDS.contains(&id)
}

pub(super) type Sink = RecordWriter<SetWriter<FileSink>>;

/// The data files of one set, and the progress they make.
pub(super) struct FileSet<'a> {
    target: &'a Target,
    set_id: &'a str,
    cancel: &'a CancelToken,
    reporter: &'a mut StatusReporter,
    finished: Vec<ManifestFile>,
    bytes_done: u64,
    documents_done: u64,
    set_key: Option<crate::crypto::Key>,
    /// `MaxBytesPerSecond`, checked every [`PACE_STEP`] bytes.
    pub(super) pace: Option<super::Pace>,
    paced_at: u64,
}

/// How often (in bytes written) a paced backup checks its rate.
const PACE_STEP: u64 = 256 * 1024;

impl<'a> FileSet<'a> {
    pub(super) fn new(
        target: &'a Target,
        set_id: &'a str,
        reporter: &'a mut StatusReporter,
        cancel: &'a CancelToken,
        set_key: Option<crate::crypto::Key>,
    ) -> Self {
        Self { target, set_id, cancel, reporter, finished: Vec::new(), bytes_done: 0, documents_done: 0, set_key, pace: None, paced_at: 0 }
    }

    /// The files written, and their bytes.
    pub(super) fn into_files(self) -> (Vec<ManifestFile>, u64) {
        (self.finished, self.bytes_done)
    }

    /// Between records: a canceled backup stops (its folder is removed by [`run`]).
    fn check_cancel(&self) -> Result<(), BackupError> {
        if self.cancel.is_canceled() {
            return Err(BackupError::Canceled);
        }
        Ok(())
    }

    pub(super) fn open(&self, name: &str) -> Result<Sink, BackupError> {
        let file = self.target.create(name).map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot create {name}: {m}"))))?;
        let hashing = HashingWriter::new(file);
        let under = match &self.set_key {
            Some(key) => {
                SetWriter::Sealed(ChunkSealer::new(hashing, key.clone(), &super::sealed::chunk_file_id(FORMAT_VERSION, self.set_id, name)))
            }
            None => SetWriter::Plain(hashing),
        };
        RecordWriter::new(under, ZSTD_LEVEL).map_err(|e| BackupError::Io(format!("cannot start {name}: {e}")))
    }

    pub(super) fn close(&mut self, name: String, sink: Sink, content: FileContent) -> Result<(), BackupError> {
        let io = |e: std::io::Error| io_error(&e, |m| BackupError::Io(format!("cannot finish {name}: {m}")));
        let (under, records) = sink.finish().map_err(io)?;
        let (file, size, sha256) = under.finish().map_err(io)?.finish();
        file.finish().map_err(io)?;
        self.bytes_done += size;
        if let Some(pace) = self.pace {
            pace.wait(self.bytes_done);
        }
        failpoint::hit("backup.after_data_file");
        self.finished.push(ManifestFile { name, size, sha256, content, records });
        Ok(())
    }

    fn write_documents(
        &mut self,
        docs: impl Iterator<Item = Result<(String, Vec<u8>), crate::storage::StorageError>>,
    ) -> Result<u64, BackupError> {
        let mut writer = self.documents()?;
        for item in docs {
            let (id, raw) = item?;
            if is_status(&id) {
                continue;
            }
            let (etag, modified_ms) = decode_header(&raw)?;
            let body = raw[crate::storage::record::HEADER_LEN..].to_vec();
            writer.push(self, DataRecord::Document { id, etag, modified_ms, body })?;
        }
        writer.finish(self)
    }

    /// A writer of `documents-NNNN.zst` files, split every [`FILE_SPLIT_BYTES`].
    pub(super) fn documents(&mut self) -> Result<DocumentFiles, BackupError> {
        let name = "documents-0001.zst".to_string();
        let sink = self.open(&name)?;
        Ok(DocumentFiles { index: 1, name, sink, count: 0 })
    }

    /// A whole file of `records`.
    pub(super) fn write_file(
        &mut self,
        name: &str,
        content: FileContent,
        records: impl Iterator<Item = Result<DataRecord, BackupError>>,
    ) -> Result<(), BackupError> {
        let mut sink = self.open(name)?;
        for record in records {
            let record = record?;
            self.check_cancel()?;
            sink.write(&record).map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot write {name}: {m}"))))?;
        }
        self.close(name.to_string(), sink, content)
    }

    fn write_change_log(&mut self, snapshot: &StoreSnapshot) -> Result<(), BackupError> {
        let name = "changes.zst".to_string();
        let mut sink = self.open(&name)?;
        for item in snapshot.changes_after(0) {
            let (etag, id) = item?;
            self.check_cancel()?;
            if is_status(&id) {
                continue;
            }
            sink.write(&DataRecord::Change { etag, id })
                .map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot write {name}: {m}"))))?;
        }
        self.close(name, sink, FileContent::ChangeLog)
    }

    fn write_credentials(&mut self, snapshot: &StoreSnapshot) -> Result<(), BackupError> {
        let name = "credentials.zst".to_string();
        let mut sink = self.open(&name)?;
        for prefix in BACKED_UP_INTERNAL_PREFIXES {
            for item in snapshot.internal_with_prefix(prefix) {
                let (key, value) = item?;
                sink.write(&DataRecord::Document { id: key, etag: 0, modified_ms: 0, body: value })
                    .map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot write {name}: {m}"))))?;
            }
        }
        self.close(name, sink, FileContent::Credentials)
    }

    fn write_deletions(&mut self, snapshot: &StoreSnapshot, from_etag: u64) -> Result<u64, BackupError> {
        let name = "deletions.zst".to_string();
        let mut sink = self.open(&name)?;
        let mut count = 0;
        for item in snapshot.deletions_after(from_etag) {
            let (etag, id) = item?;
            self.check_cancel()?;
            // Deleted then created again: the document itself is in the set.
            if is_status(&id) || snapshot.get_raw(&id)?.is_some() {
                continue;
            }
            sink.write(&DataRecord::Deletion { id, etag })
                .map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot write {name}: {m}"))))?;
            count += 1;
        }
        self.close(name, sink, FileContent::Deletions)?;
        Ok(count)
    }
}

/// The documents files of a set being written (see [`FileSet::documents`]).
pub(super) struct DocumentFiles {
    index: u32,
    name: String,
    sink: Sink,
    count: u64,
}

impl DocumentFiles {
    /// Writes one document record (documents go in id order).
    pub(super) fn push(&mut self, files: &mut FileSet<'_>, record: DataRecord) -> Result<(), BackupError> {
        files.check_cancel()?;
        let name = &self.name;
        self.sink.write(&record).map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot write {name}: {m}"))))?;
        self.count += 1;
        files.documents_done += 1;
        failpoint::hit("backup.document");
        if self.sink.raw_bytes() >= FILE_SPLIT_BYTES {
            let next = format!("documents-{:04}.zst", self.index + 1);
            let full = std::mem::replace(&mut self.sink, files.open(&next)?);
            files.close(std::mem::replace(&mut self.name, next), full, FileContent::Documents)?;
            self.index += 1;
        }
        let current = files.bytes_done + self.sink.get_ref().written();
        files.reporter.progress(files.documents_done, current);
        if let Some(pace) = files.pace {
            if current >= files.paced_at + PACE_STEP {
                files.paced_at = current;
                pace.wait(current);
            }
        }
        Ok(())
    }

    /// Closes the last file; the number of documents written.
    pub(super) fn finish(self, files: &mut FileSet<'_>) -> Result<u64, BackupError> {
        files.close(self.name, self.sink, FileContent::Documents)?;
        Ok(self.count)
    }
}

/// Writes a small file, fsyncs it, and returns its SHA-256.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<String> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)))
}

/// fsyncs a directory, so that renames and new entries in it are durable.
///
/// # Errors
/// I/O errors.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The id of a new set: `20261126T050000Z-full`, with `.02`, `.03`... after
/// the time when a set of that second already exists in the location
/// (`taken`: its set names, finished or not), so that ids sort by name in
/// creation order whatever their kinds.
#[must_use]
pub fn new_set_id(taken: &BTreeSet<String>, kind: SetKind) -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp =
        format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", now.year(), u8::from(now.month()), now.day(), now.hour(), now.minute(), now.second());
    set_id_at(taken, &stamp, kind)
}

/// [`new_set_id`] for a given second (`YYYYMMDDTHHMMSSZ`).
fn set_id_at(taken: &BTreeSet<String>, stamp: &str, kind: SetKind) -> String {
    // Any set of this second, of either kind, takes the first form.
    let second_taken = |form: &str| SetKind::ALL.iter().any(|k| taken.contains(&format!("{form}-{}", k.suffix())));
    let mut form = stamp.to_string();
    let mut n = 2;
    while second_taken(&form) {
        form = format!("{stamp}.{n:02}");
        n += 1;
    }
    format!("{form}-{}", kind.suffix())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_ids_of_one_second_sort_in_creation_order_whatever_their_kinds() {
        let stamp = "20261126T050000Z";
        let kinds = [SetKind::Incremental, SetKind::Full, SetKind::Incremental, SetKind::Incremental, SetKind::Full];
        let mut taken = BTreeSet::new();
        let mut made = Vec::new();
        for kind in kinds {
            let id = set_id_at(&taken, stamp, kind);
            assert!(crate::backup::format::is_valid_set_id(&id), "{id}");
            taken.insert(id.clone());
            made.push(id);
        }
        assert_eq!(made[0], "20261126T050000Z-incremental");
        assert_eq!(made[1], "20261126T050000Z.02-full");
        let mut sorted = made.clone();
        sorted.sort();
        assert_eq!(sorted, made, "sorted by name = creation order");
    }
}
