//! The logical writer: one backup set of documents (a full or an
//! incremental) from a point-in-time snapshot of the database.
//!
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

use super::error::BackupError;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use super::format::{
    DataRecord, FileContent, HashingWriter, Manifest, ManifestFile, RecordWriter, SetKind, SetWriter, BACKED_UP_INTERNAL_PREFIXES,
    FORMAT_VERSION,
};
use super::frames::{self, FramedWriter};
use super::location::io_error;
use super::prepare::{BackupSummary, Pace, PreparedBackup, YieldToWrites};
use super::sealed::ChunkSealer;
use super::target::{commit_set, database_encryption, FileSink, Target};
use crate::failpoint;
use crate::jobs::{now_rfc3339, CancelToken, StatusReporter};
use crate::storage::record::decode_header;
use crate::storage::StoreSnapshot;
use rookery_types::STATUS_DOCUMENT_IDS;

/// A data file is closed and a new one started after this many uncompressed bytes.
const FILE_SPLIT_BYTES: u64 = 128 * 1024 * 1024;
/// zstd level: fast, and JSON still compresses several times.
const ZSTD_LEVEL: i32 = 1;

pub(super) fn write_set(
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
    files.pace = prepared.max_bytes_per_second.map(Pace::new);
    files.yielder = Some(YieldToWrites::new(prepared.database.store().foreground()));
    files.filters = prepared.kind == SetKind::Incremental;
    if let Some(bytes) = prepared.documents_file_bytes {
        files.split_bytes = bytes.max(1);
    }

    // Steps 2 and 3: every record from the snapshot.
    let (documents, deletions) = match prepared.kind {
        SetKind::Full => {
            let status_docs = STATUS_DOCUMENT_IDS.iter().filter(|id| matches!(snapshot.get_raw(id), Ok(Some(_)))).count() as u64;
            files.reporter.set_total(snapshot.document_count()?.saturating_sub(status_docs));
            let documents = files.write_documents_and_change_log(&snapshot)?;
            (documents, 0)
        }
        // Written from the storage files instead (see `run`).
        SetKind::Snapshot => return Err(BackupError::Io("a snapshot set is not written from documents".into())),
        SetKind::Incremental => {
            let documents = write_changed_documents(&mut files, &snapshot, from_etag)?;
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
        duration_ms: None,
        mac: None,
    };
    let final_dir = commit_set(target, &mut manifest, prepared.set_key.as_ref().map(|k| &k.key), cancel)?;
    if prepared.location.folder().is_some() {
        keep_hashes(&final_dir, &manifest.files);
    }

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

/// The hashes of a set's files just written into a folder, kept by inode,
/// size and modification time: the next incremental's check of this set
/// (the newest of its chain) need not read them again while they are
/// unchanged (see [`super::location::Depth::ChecksumsOrKept`]).
fn keep_hashes(dir: &std::path::Path, files: &[ManifestFile]) {
    for file in files {
        if let Ok(meta) = std::fs::metadata(dir.join(&file.name)) {
            super::kept_hashes::remember(&meta, &file.sha256);
        }
    }
    super::kept_hashes::save();
}

/// The documents changed after `from_etag`, in id order (format version 4):
/// from the change log and point reads, sorted, when they are a small part
/// of the database (the usual incremental); by one ordered pass over every
/// document otherwise, so that memory never holds more than a bounded list.
fn write_changed_documents(files: &mut FileSet<'_>, snapshot: &StoreSnapshot, from_etag: u64) -> Result<u64, BackupError> {
    let changed = snapshot.changes_after(from_etag).filter(|r| r.as_ref().map_or(true, |(_, id)| !is_status(id))).count() as u64;
    files.reporter.set_total(changed);
    let max_sorted = failpoint::value("backup.max_sorted_changes", MAX_SORTED_CHANGES);
    if changed > max_sorted.max(snapshot.document_count()? / 8) {
        // The pass over every document scans on a thread of its own, as a
        // full set's does; only the newer documents are handed over.
        return std::thread::scope(|scope| {
            let newer = files.yielding(snapshot.documents_raw_dropping_behind()).filter(move |item| match item {
                Ok((_, raw)) => decode_header(raw).map_or(true, |(etag, _)| etag > from_etag),
                Err(_) => true,
            });
            files.write_scanned(scope, newer)
        });
    }
    let mut ids = Vec::with_capacity(usize::try_from(changed).unwrap_or(0));
    for item in snapshot.changes_after(from_etag) {
        let (_, id) = item?;
        if !is_status(&id) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    let documents = ids.into_iter().map(|id| {
        let raw = snapshot
            .get_raw(&id)?
            .ok_or_else(|| crate::storage::StorageError::Corrupt(format!("change log names a missing document {id}")))?;
        Ok((id, raw))
    });
    files.write_documents(documents)
}

/// Every entry of the change log into `sink` (`name`), until the documents
/// beside it fail (`stop`) or the backup is canceled.
fn write_change_log(
    mut sink: Sink,
    name: &str,
    snapshot: &StoreSnapshot,
    cancel: &CancelToken,
    stop: &AtomicBool,
    mut yielder: Option<YieldToWrites>,
) -> Result<Sink, BackupError> {
    for item in snapshot.changes_after(0) {
        let (etag, id) = item?;
        if cancel.is_canceled() || stop.load(Ordering::Relaxed) {
            return Err(BackupError::Canceled);
        }
        if is_status(&id) {
            continue;
        }
        if let Some(y) = &mut yielder {
            y.read((8 + id.len()) as u64);
        }
        sink.write(&DataRecord::Change { etag, id }).map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot write {name}: {m}"))))?;
    }
    Ok(sink)
}

/// A scan of the documents hands them over 256 at a time, up to 8 batches ahead.
const SCAN_BATCHES: super::concurrent::Batches = super::concurrent::Batches { items: 256, bytes: usize::MAX, in_flight: 8 };

/// The most changed ids an incremental sorts in memory (about 64 bytes each).
const MAX_SORTED_CHANGES: u64 = 1_000_000;

fn is_status(id: &str) -> bool {
    STATUS_DOCUMENT_IDS.contains(&id)
}

pub(super) type Sink = RecordWriter<SetWriter<FileSink>>;

/// The data files of one set, and the progress they make.
pub(super) struct FileSet<'a> {
    target: &'a Target,
    set_id: &'a str,
    cancel: &'a CancelToken,
    pub(super) reporter: &'a mut StatusReporter,
    finished: Vec<ManifestFile>,
    bytes_done: u64,
    documents_done: u64,
    set_key: Option<crate::crypto::Key>,
    /// `MaxBytesPerSecond`, checked every [`PACE_STEP`] bytes.
    pub(super) pace: Option<Pace>,
    paced_at: u64,
    /// Yields the documents' reading to clients' writes.
    pub(super) yielder: Option<YieldToWrites>,
    /// Index blocks with membership filters (an incremental's).
    pub(super) filters: bool,
    /// A new documents file after this many bytes of records.
    pub(super) split_bytes: u64,
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
        Self {
            target,
            set_id,
            cancel,
            reporter,
            finished: Vec::new(),
            bytes_done: 0,
            documents_done: 0,
            set_key,
            pace: None,
            paced_at: 0,
            yielder: None,
            filters: false,
            split_bytes: failpoint::value("backup.documents_file_bytes", FILE_SPLIT_BYTES),
        }
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

    /// A new file of the set: hashed, and sealed in an encrypted set.
    fn open_raw(&self, name: &str) -> Result<SetWriter<FileSink>, BackupError> {
        let file = self.target.create(name).map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot create {name}: {m}"))))?;
        let hashing = HashingWriter::new(file);
        Ok(match &self.set_key {
            Some(key) => {
                SetWriter::Sealed(ChunkSealer::new(hashing, key.clone(), &super::sealed::chunk_file_id(FORMAT_VERSION, self.set_id, name)))
            }
            None => SetWriter::Plain(hashing),
        })
    }

    pub(super) fn open(&self, name: &str) -> Result<Sink, BackupError> {
        RecordWriter::new(self.open_raw(name)?, ZSTD_LEVEL).map_err(|e| BackupError::Io(format!("cannot start {name}: {e}")))
    }

    pub(super) fn close(&mut self, name: String, sink: Sink, content: FileContent) -> Result<(), BackupError> {
        let (under, records) = sink.finish().map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot finish {name}: {m}"))))?;
        self.close_raw(name, under, content, records)
    }

    fn close_raw(&mut self, name: String, under: SetWriter<FileSink>, content: FileContent, records: u64) -> Result<(), BackupError> {
        let io = |e: std::io::Error| io_error(&e, |m| BackupError::Io(format!("cannot finish {name}: {m}")));
        let (file, size, sha256) = under.finish().map_err(io)?.finish();
        file.finish().map_err(io)?;
        self.bytes_done += size;
        self.pace_to(self.bytes_done)?;
        failpoint::hit("backup.after_data_file");
        self.finished.push(ManifestFile { name, size, sha256, content, records, shared: false });
        Ok(())
    }

    /// Keeps `MaxBytesPerSecond` once `written` bytes are out: a wait long
    /// enough to be seen shows the progress made first (its report would
    /// otherwise wait with it), and a cancel cuts the wait short.
    fn pace_to(&mut self, written: u64) -> Result<(), BackupError> {
        let Some(pace) = self.pace else { return Ok(()) };
        if pace.ahead(written) >= crate::jobs::STATUS_INTERVAL {
            self.reporter.publish();
        }
        pace.wait(written, self.cancel)
    }

    /// Documents as `(id, stored record)` in id order, written from the
    /// storage's own bytes (no copy of a body before it is encoded).
    fn write_documents<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        docs: impl Iterator<Item = Result<(K, V), crate::storage::StorageError>>,
    ) -> Result<u64, BackupError> {
        let mut writer = self.documents()?;
        for item in docs {
            let (id, raw) = item?;
            let (id, raw) = (crate::storage::store::id_str(id.as_ref())?, raw.as_ref());
            if is_status(id) {
                continue;
            }
            if let Some(y) = &mut self.yielder {
                y.read((id.len() + raw.len()) as u64);
                // While it yields to clients, the reading thread leaves the
                // compression to the frame thread, as it leaves them the cores.
                writer.share_compression(!y.yielding());
            }
            let (etag, modified_ms) = decode_header(raw)?;
            writer.push_document(self, id, etag, modified_ms, &raw[crate::storage::record::HEADER_LEN..])?;
        }
        writer.finish(self)
    }

    /// `docs`, a scan of the storage's tables, yielding to clients' writes
    /// for the CPU time of the thread that scans (see [`Self::write_scanned`]);
    /// the writer yields for its own.
    fn yielding<I: Iterator<Item = Result<(fjall::UserKey, fjall::UserValue), crate::storage::StorageError>>>(
        &self,
        docs: I,
    ) -> impl Iterator<Item = I::Item> {
        let mut yielder = self.yielder.clone();
        docs.inspect(move |item| {
            if let (Some(y), Ok((id, raw))) = (&mut yielder, item) {
                y.read((id.len() + raw.len()) as u64);
            }
        })
    }

    /// Documents (in id order) scanned on a thread of their own in `scope`
    /// and written here: reading the tables (the storage's blocks, their
    /// checksums and decoding) is as much work as compressing what it reads.
    /// The tables the scan brings into the page cache leave it behind the scan.
    fn write_scanned<'scope>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        docs: impl Iterator<Item = Result<(fjall::UserKey, fjall::UserValue), crate::storage::StorageError>> + Send + 'scope,
    ) -> Result<u64, BackupError> {
        let scan = super::concurrent::beside(scope, "backup-scan", docs, SCAN_BATCHES, |_| 0)
            .map_err(|e| BackupError::Io(format!("cannot start a backup thread: {e}")))?;
        self.write_documents(scan)
    }

    /// A writer of `documents-NNNN.zst` files, split every [`FILE_SPLIT_BYTES`].
    pub(super) fn documents(&mut self) -> Result<DocumentFiles, BackupError> {
        let name = "documents-0001.zst".to_string();
        let sink = self.open_documents(&name)?;
        Ok(DocumentFiles { index: 1, name, sink, count: 0, unreported: 0 })
    }

    fn open_documents(&self, name: &str) -> Result<Framed, BackupError> {
        let index = self.open_raw(&frames::index_name(name).unwrap_or_default())?;
        let writer =
            FramedWriter::new(self.open_raw(name)?, index, ZSTD_LEVEL).map_err(|e| BackupError::Io(format!("cannot start {name}: {e}")))?;
        Ok(if self.filters { writer.with_filters() } else { writer })
    }

    /// Closes a documents file, then its index and its top.
    fn close_documents(&mut self, name: String, sink: Framed) -> Result<(), BackupError> {
        let io = |e: std::io::Error| io_error(&e, |m| BackupError::Io(format!("cannot finish {name}: {m}")));
        let records = sink.records();
        let (data, index, top) = sink.finish().map_err(io)?;
        let index_name = frames::index_name(&name).unwrap_or_default();
        let top_name = frames::top_name(&name).unwrap_or_default();
        self.close_raw(name, data, FileContent::Documents, records)?;
        self.close_raw(index_name, index, FileContent::DocumentIndex, 0)?;
        let mut top_file = self.open_raw(&top_name)?;
        top_file.write_all(&top.encode()).map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot write {top_name}: {m}"))))?;
        self.close_raw(top_name, top_file, FileContent::IndexTop, 0)
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

    /// A full set's documents, and its change log written beside them on a
    /// thread of its own (two independent streams of the same snapshot).
    fn write_documents_and_change_log(&mut self, snapshot: &StoreSnapshot) -> Result<u64, BackupError> {
        let name = "changes.zst".to_string();
        let sink = self.open(&name)?;
        let stop = AtomicBool::new(false);
        let (cancel, yielder) = (self.cancel, self.yielder.clone());
        let (documents, change_log) = std::thread::scope(|scope| {
            let change_log = std::thread::Builder::new()
                .name("backup-changes".into())
                .spawn_scoped(scope, || write_change_log(sink, &name, snapshot, cancel, &stop, yielder))
                .map_err(|e| BackupError::Io(format!("cannot start a backup thread: {e}")))?;
            let documents = self.write_scanned(scope, self.yielding(snapshot.documents_raw_dropping_behind()));
            if documents.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            let change_log = change_log.join().unwrap_or_else(|_| Err(BackupError::Io("the change log's thread failed".into())));
            Ok::<_, BackupError>((documents, change_log))
        })?;
        let documents = documents?;
        self.close(name, change_log?, FileContent::ChangeLog)?;
        Ok(documents)
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
    sink: Framed,
    count: u64,
    /// Documents written since progress was last reported.
    unreported: u64,
}

/// Documents between two progress reports and pace checks.
const REPORT_EVERY: u64 = 64;

type Framed = FramedWriter<SetWriter<FileSink>, SetWriter<FileSink>>;

impl DocumentFiles {
    /// Writes one document record (documents go in id order).
    pub(super) fn push(&mut self, files: &mut FileSet<'_>, record: DataRecord) -> Result<(), BackupError> {
        let DataRecord::Document { id, etag, modified_ms, body } = record else {
            return Err(BackupError::Io(format!("cannot write {}: only documents go into a documents file", self.name)));
        };
        self.push_document(files, &id, etag, modified_ms, &body)
    }

    /// Writes one document from its parts (documents go in id order).
    pub(super) fn push_document(
        &mut self,
        files: &mut FileSet<'_>,
        id: &str,
        etag: u64,
        modified_ms: i64,
        body: &[u8],
    ) -> Result<(), BackupError> {
        files.check_cancel()?;
        let name = &self.name;
        self.sink
            .write_document(id, etag, modified_ms, body)
            .map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot write {name}: {m}"))))?;
        failpoint::hit("backup.document");
        self.written(files, 1)
    }

    /// Whether the calling thread compresses frames while the frame
    /// thread is busy (see [`FramedWriter::share_compression`]).
    pub(super) fn share_compression(&mut self, share: bool) {
        self.sink.share_compression(share);
    }

    /// Writes a frame of another set's documents file as it is (see
    /// [`FramedWriter::copy_frame`]); its documents come after those written.
    pub(super) fn push_frame(
        &mut self,
        files: &mut FileSet<'_>,
        compressed: Vec<u8>,
        sha256: [u8; 32],
        entries: &[frames::IndexEntry],
    ) -> Result<(), BackupError> {
        files.check_cancel()?;
        let name = &self.name;
        self.sink
            .copy_frame(compressed, sha256, entries)
            .map_err(|e| io_error(&e, |m| BackupError::Io(format!("cannot write {name}: {m}"))))?;
        self.written(files, entries.len() as u64)
    }

    /// After `documents` were written: the next file when this one is full,
    /// progress and pace (every [`REPORT_EVERY`] documents).
    fn written(&mut self, files: &mut FileSet<'_>, documents: u64) -> Result<(), BackupError> {
        self.count += documents;
        files.documents_done += documents;
        self.unreported += documents;
        let full = self.sink.raw_bytes() >= files.split_bytes;
        if self.unreported < REPORT_EVERY && !full {
            return Ok(());
        }
        self.unreported = 0;
        if full {
            let next = format!("documents-{:04}.zst", self.index + 1);
            let full = std::mem::replace(&mut self.sink, files.open_documents(&next)?);
            self.sink.share_compression(full.shares_compression());
            files.close_documents(std::mem::replace(&mut self.name, next), full)?;
            self.index += 1;
        }
        let current = files.bytes_done + self.sink.written();
        files.reporter.progress(files.documents_done, current);
        if files.pace.is_some() && current >= files.paced_at + PACE_STEP {
            files.paced_at = current;
            files.pace_to(current)?;
        }
        Ok(())
    }

    /// Closes the last file; the number of documents written.
    pub(super) fn finish(self, files: &mut FileSet<'_>) -> Result<u64, BackupError> {
        files.reporter.progress(files.documents_done, files.bytes_done + self.sink.written());
        files.close_documents(self.name, self.sink)?;
        Ok(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::super::location::{self, Depth, Location};
    use super::*;
    use crate::backup::BackupOptions;
    use crate::config::Config;
    use crate::engine::Rookery;
    use rookery_types::RestoreRequest;

    fn age(path: &std::path::Path) -> std::time::Duration {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).expect("a modification time");
        std::time::SystemTime::now().duration_since(modified).unwrap_or_default()
    }

    /// The check of a chain's newest set before an incremental trusts a
    /// hash kept for a file only while its inode, size and modification
    /// time are those it had; a verification and a restore read every byte.
    #[test]
    fn a_kept_hash_stands_for_a_set_file_only_while_it_is_unchanged_and_a_restore_reads_every_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rookery = Rookery::open(Config::for_tests(&dir.path().join("data"))).expect("opens");
        let db = rookery.catalog().create("K").expect("creates");
        for i in 0..200u32 {
            db.store().put(&format!("k/{i:04}"), format!(r#"{{"n":{i}}}"#).as_bytes(), None).expect("put");
        }
        let folder = dir.path().join("sets");
        let options = BackupOptions { location: folder.display().to_string(), ..Default::default() };
        let summary = rookery.start_backup("K", options).expect("starts").wait().expect("backs up");
        let set_dir = summary.set_dir.expect("a folder set");
        let set = || {
            let scanned = location::scan(&Location::Folder(folder.clone())).expect("scans");
            scanned.chains[0].sets[0].clone()
        };
        let documents = set_dir.join("documents-0001.zst");
        // Its hash is kept once the file has settled (as a set that took
        // longer to finish than the file to write has it kept at once).
        while age(&documents) < super::super::kept_hashes::SETTLED {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        keep_hashes(&set_dir, &set().manifest.files);
        assert!(location::verify_set(&set(), Depth::ChecksumsOrKept).is_empty());

        // Damaged in place, with its modification time put back: the kept
        // hash still stands for it (the check does not read it), but a
        // verification and a restore read every byte and refuse it.
        let modified = std::fs::metadata(&documents).and_then(|m| m.modified()).expect("mtime");
        let mut bytes = std::fs::read(&documents).expect("reads");
        bytes[12] ^= 1;
        std::fs::write(&documents, &bytes).expect("writes");
        std::fs::File::options().write(true).open(&documents).and_then(|f| f.set_modified(modified)).expect("mtime put back");
        assert!(location::verify_set(&set(), Depth::ChecksumsOrKept).is_empty(), "the kept hash was not used");
        let found = location::verify_set(&set(), Depth::Checksums);
        assert!(found.iter().any(|f| f.message.contains("documents-0001.zst")), "{found:?}");
        let request =
            RestoreRequest { backup_location: folder.display().to_string(), database_name: Some("Copy".into()), ..Default::default() };
        let refused = rookery.start_restore(&request, false).and_then(|job| job.wait());
        assert!(refused.is_err(), "a damaged set restored");

        // Written again later (its modification time moves): read again.
        std::fs::write(&documents, &bytes).expect("writes");
        std::fs::File::options()
            .write(true)
            .open(&documents)
            .and_then(|f| f.set_modified(modified + std::time::Duration::from_secs(1)))
            .expect("mtime");
        let found = location::verify_set(&set(), Depth::ChecksumsOrKept);
        assert!(found.iter().any(|f| f.message.contains("documents-0001.zst")), "{found:?}");
    }

    /// The bytes of `file` in the page cache, as `fincore` (util-linux)
    /// sees them without reading the file; `None` where it cannot tell.
    fn cached_bytes(file: &std::path::Path) -> Option<u64> {
        let out = std::process::Command::new("fincore").args(["--bytes", "--noheadings", "--output", "RES"]).arg(file).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    }

    /// A full backup reads every document once: the tables it brought into
    /// the page cache leave it behind the scan (a large database's backup
    /// would otherwise fill the memory with pages nothing reads again).
    #[test]
    fn a_full_backup_leaves_the_tables_it_read_out_of_the_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rookery = Rookery::open(Config::for_tests(&dir.path().join("data"))).expect("opens");
        let db = rookery.catalog().create("Cold").expect("creates");
        // Bodies that do not compress: the table is as large as they are.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..4000u32 {
            let text: String = (0..1000)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    char::from(b'a' + (seed >> 59) as u8)
                })
                .collect();
            db.store().put(&format!("d/{i:05}"), format!(r#"{{"text":"{text}"}}"#).as_bytes(), None).expect("put");
        }
        db.store().compact().expect("compacts");
        db.store().persist().expect("persists");
        // The documents' table: the largest file of the database.
        let mut files: Vec<(u64, std::path::PathBuf)> = walkdir(dir.path().join("data").as_path())
            .into_iter()
            .filter(|p| p.components().any(|c| c.as_os_str() == "tables"))
            .map(|p| (std::fs::metadata(&p).map_or(0, |m| m.len()), p))
            .collect();
        files.sort();
        drop(db);
        let (size, table) = files.pop().expect("a table");
        assert!(size > 2 << 20, "the documents are in a table of their own: {size} bytes");
        // Out of the page cache before the backup (where it can be seen).
        let Some(_) = cached_bytes(&table) else {
            eprintln!("skipped: fincore cannot tell what is cached");
            return;
        };
        let drop_all = || {
            (0..20).any(|_| {
                crate::storage::drop_behind::drop_cached(&table);
                cached_bytes(&table) == Some(0)
            })
        };
        if !drop_all() {
            eprintln!("skipped: the page cache of {} cannot be emptied here (tmpfs?)", table.display());
            return;
        }
        // The backup samples whether a table is cached with reads that start
        // the kernel's readahead, which on a loaded machine can make a cold
        // table look warm (left alone, the safe side): three tries, each
        // from a cold table. A backup that never drops behind fails all three.
        // (Each from a server opened again: the last one's block cache
        // would serve the reads without the file.)
        let mut left = Vec::new();
        let mut rookery = Some(rookery);
        for attempt in 0..3 {
            if attempt > 0 {
                drop(rookery.take());
                assert!(drop_all(), "the table cannot be dropped again");
                rookery = Some(Rookery::open(Config::for_tests(&dir.path().join("data"))).expect("opens again"));
            }
            let rookery = rookery.as_ref().expect("open");
            let options = BackupOptions { location: dir.path().join("sets").display().to_string(), ..Default::default() };
            let summary = rookery.start_backup("Cold", options).expect("starts").wait().expect("backs up");
            assert_eq!(summary.documents, 4000);
            left.push(cached_bytes(&table).expect("fincore"));
            if left.last().is_some_and(|&bytes| bytes < size / 4) {
                return;
            }
        }
        panic!("every backup left most of the table's {size} bytes in the page cache: {left:?}");
    }

    fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walkdir(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
