//! Steps 3 and 4 of a restore: building the database in a staging folder, then moving it into place.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backup::copy::{copy_hashed, CopyJob};
use crate::backup::error::BackupError;
use crate::backup::format::{sha256_reader, DataRecord, FileContent, HashingReader, ManifestFile, SetKind, SetReader, StoredDocument};
use crate::backup::location::{io_error, StoredSet};
use crate::backup::sealed::{self, ChunkOpener};
use crate::failpoint;
use crate::jobs::CancelToken;
use crate::storage::record::{encode_with_flags, FLAG_ENCRYPTED, HEADER_LEN};
use crate::storage::store::BulkAccess;
use crate::storage::tally::Tally;
use crate::storage::{ContentDigest, DigestKind, DocumentStore, Durability, StorageError};

use super::error::RestoreError;
use super::plan::RestorePlan;
use super::read::{changed, corrupt, read_documents_file, read_file, unreadable, Source};
use super::stream::{side_by_side, Counters, LogBeside, Report, Written};

/// Documents applied per batch when replaying an incremental set.
const APPLY_BATCH: usize = 4096;
/// ... or once the batch holds this many bytes, whatever its count.
const APPLY_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// What a restore built.
#[derive(Debug, Clone)]
pub struct RestoreSummary {
    pub database_name: String,
    pub location: PathBuf,
    pub last_set_id: String,
    pub documents: u64,
    pub last_etag: u64,
}

/// Progress callback: (records applied, bytes read).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);
/// Progress that may stop the restore (a cancel).
type Checked<'a> = &'a mut dyn FnMut(u64, u64) -> Result<(), RestoreError>;

/// Step 3: builds the database of `plan` in `dir` (which must not exist or be empty).
///
/// # Errors
/// Checksum mismatches found while streaming, corrupt data, storage errors.
pub fn build(
    plan: &RestorePlan,
    dir: &Path,
    defrag: bool,
    master: Option<&crate::crypto::Key>,
    cancel: &CancelToken,
    progress: Progress<'_>,
) -> Result<RestoreSummary, RestoreError> {
    build_with(plan, dir, defrag, master, false, cancel, progress).map(|(summary, _)| summary)
}

/// [`build`], the database left open (persisted): a restore that built it
/// where it belongs serves it as it is, without closing and opening it again.
///
/// # Errors
/// As [`build`].
pub fn build_open(
    plan: &RestorePlan,
    dir: &Path,
    defrag: bool,
    master: Option<&crate::crypto::Key>,
    cancel: &CancelToken,
    progress: Progress<'_>,
) -> Result<(RestoreSummary, DocumentStore), RestoreError> {
    build_with(plan, dir, defrag, master, false, cancel, progress)
}

/// [`build`], and with `credentials` the users and API keys of a system
/// database set (from the newest set that carries them) go into the new
/// store's internal keyspace.
pub(super) fn build_with(
    plan: &RestorePlan,
    dir: &Path,
    defrag: bool,
    master: Option<&crate::crypto::Key>,
    credentials: bool,
    cancel: &CancelToken,
    progress: Progress<'_>,
) -> Result<(RestoreSummary, DocumentStore), RestoreError> {
    // A canceled restore stops at its next record (progress is reported per record).
    let mut checked = |done: u64, bytes: u64| -> Result<(), RestoreError> {
        if cancel.is_canceled() {
            return Err(RestoreError::Canceled);
        }
        progress(done, bytes);
        Ok(())
    };
    let progress: Checked<'_> = &mut checked;
    // A full set and incrementals in id order: merged and ingested once.
    let merged = super::chain::merges(&plan.chain);
    // That, or a full set alone, never reads the database it builds: what
    // it wrote can leave the cache behind it.
    let full_alone = matches!(plan.chain.as_slice(), [only] if only.manifest.kind == SetKind::Full);
    let _write_behind = super::write_behind::WriteBehind::start(dir, merged || full_alone);
    let mut done = 0u64;
    let mut bytes = 0u64;
    // A chain that starts with a snapshot: its files are the database's.
    if let (Some(first), Some(key)) = (plan.chain.first(), plan.set_keys.first()) {
        if first.manifest.kind == SetKind::Snapshot {
            place_storage_files(&Source { set: first, key: key.as_ref() }, dir, &mut done, &mut bytes, progress)?;
        }
    }
    let store = open_built(dir, plan.chain.first())?;
    if let Some(key) = &plan.database_key {
        let master = master.ok_or_else(|| StorageError::Locked("no master key to keep the database key".into()))?;
        // (A snapshot's own copy of the key is wrapped by its server's master key: replaced.)
        store.enable_encryption(key.clone(), master)?;
    }
    let flags = if plan.database_key.is_some() { FLAG_ENCRYPTED } else { 0 };
    let mut last_etag = 0;
    let mut internal: Option<Vec<(String, Vec<u8>)>> = None;
    let mut unread: Vec<(&StoredSet, &ManifestFile)> = Vec::new();
    if merged {
        super::chain::ingest(&store, plan, flags, cancel, &mut done, &mut bytes, progress)?;
    }
    for (set, set_key) in plan.chain.iter().zip(&plan.set_keys) {
        let source = Source { set, key: set_key.as_ref() };
        match set.manifest.kind {
            SetKind::Full | SetKind::Incremental if merged => {}
            SetKind::Full => {
                ingest_full(&store, &source, flags, cancel, &mut done, &mut bytes, progress)?;
            }
            SetKind::Incremental => apply_incremental(&store, &source, flags, &mut done, &mut bytes, progress)?,
            SetKind::Snapshot => check_snapshot(&store, set, plan.chain.len() == 1)?,
        }
        let mut streamed: Vec<&str> = set
            .manifest
            .files
            .iter()
            .filter(|f| match set.manifest.kind {
                SetKind::Full => matches!(f.content, FileContent::Documents | FileContent::ChangeLog),
                SetKind::Incremental => matches!(f.content, FileContent::Documents | FileContent::Deletions),
                SetKind::Snapshot => f.content == FileContent::Storage,
            })
            .map(|f| f.name.as_str())
            .collect();
        if credentials {
            if let Some(file) = set.manifest.files.iter().find(|f| f.content == FileContent::Credentials) {
                internal = Some(read_credentials(&source, &file.name, &file.sha256)?);
                streamed.push(file.name.as_str());
            }
        }
        unread.extend(set.manifest.files.iter().filter(|f| !streamed.contains(&f.name.as_str())).map(|f| (set, f)));
        last_etag = set.manifest.to_etag;
        failpoint::io_error("restore.write").map_err(|e| BackupError::Io(format!("cannot write the restored database: {e}")))?;
        failpoint::hit("restore.after_set");
        // A cancel between sets (a merged chain has streamed them all by now).
        progress(done, bytes)?;
    }
    hash_unread(&unread)?;
    if credentials {
        for (key, value) in internal.unwrap_or_default() {
            store.internal().insert(key, value).map_err(StorageError::from)?;
        }
    } else {
        // A named database comes back without its original's backup tasks
        // (a snapshot carries them in its files): the copy must never write
        // into the original's locations.
        store.bulk().clear_internal()?;
    }
    let bulk = store.bulk();
    bulk.finish(last_etag, None)?;
    // The result against what the newest set recorded of the whole database
    // (sets written before the digest existed carry none).
    if let Some(tip) = plan.chain.last() {
        check_digest(&store, tip, "the restored")?;
    }
    // `finish` made everything above durable; a defragmentation rewrites it.
    if defrag {
        store.compact()?;
        store.persist()?;
    }
    let summary = RestoreSummary {
        database_name: plan.database_name().to_string(),
        location: dir.to_path_buf(),
        last_set_id: plan.last_set_id().to_string(),
        documents: store.document_count(),
        last_etag,
    };
    Ok((summary, store))
}

/// Opens the database a restore builds. A snapshot's files come from
/// storage that is not trusted: whatever they hold, opening them fails
/// cleanly (a panic in the storage engine included) as a corrupt set.
fn open_built(dir: &Path, first: Option<&StoredSet>) -> Result<DocumentStore, RestoreError> {
    let opened = std::panic::catch_unwind(|| DocumentStore::open(dir, Durability::Os));
    match (opened, first) {
        (Ok(Ok(store)), _) => Ok(store),
        (Ok(Err(e)), Some(set)) if set.manifest.kind == SetKind::Snapshot => {
            Err(corrupt(set, "manifest.json", &format!("its storage files do not open as a database: {e}")))
        }
        (Ok(Err(e)), _) => Err(e.into()),
        (Err(_), Some(set)) => Err(corrupt(set, "manifest.json", "its storage files do not open as a database")),
        (Err(_), None) => Err(BackupError::Io("the storage engine failed opening a new database".into()).into()),
    }
}

/// Copies the storage files of a snapshot set into `dir`, each hashed (and
/// opened, in an encrypted set) while it streams and fsynced; a file that
/// differs from its checksum fails the restore before anything opens.
fn place_storage_files(
    source: &Source<'_>,
    dir: &Path,
    done: &mut u64,
    bytes: &mut u64,
    progress: Checked<'_>,
) -> Result<(), RestoreError> {
    let set = source.set;
    let total = set.manifest.files.iter().fold(0u64, |sum, f| sum.saturating_add(f.size)).max(1);
    std::fs::create_dir_all(dir).map_err(|e| BackupError::Io(format!("cannot create '{}': {e}", dir.display())))?;
    for file in &set.manifest.files {
        // Checked when the manifest was read; again here, before a path is made of it.
        if file.content != FileContent::Storage || !crate::storage::files::is_storage_file_name(&file.name) {
            return Err(corrupt(set, &file.name, "not a storage file of a snapshot set"));
        }
    }
    let mismatch = |name: &str| -> RestoreError { changed(set, name).into() };
    match (set.location.folder(), source.key) {
        // A plain set in a folder: copied in the kernel, each copy hashed.
        (Some(_), None) => {
            // Tables and blob files never change: linked back when the set is
            // on the database's filesystem; the rest (journals) copied.
            let mut placed = 0u64;
            let to_copy = link_written_once(set, dir, &mut |size| {
                placed += size;
                *bytes += size;
                *done = share(set.manifest.document_count, placed, total);
                progress(*done, *bytes)
            })?;
            let jobs: Vec<CopyJob> =
                to_copy.iter().map(|f| CopyJob { from: in_set(set, &f.name), to: dir.join(&f.name), known_sha: None }).collect();
            // A cancel (or any refusal of the progress callback) stops the copy at the next file.
            let stopped: std::cell::RefCell<Option<RestoreError>> = std::cell::RefCell::new(None);
            let results = copy_hashed(&jobs, &|| stopped.borrow().is_some(), &mut |_, size| {
                placed += size;
                *bytes += size;
                *done = share(set.manifest.document_count, placed, total);
                if let Err(e) = progress(*done, *bytes) {
                    *stopped.borrow_mut() = Some(e);
                }
            });
            if let Some(e) = stopped.into_inner() {
                return Err(e);
            }
            let results = results.map_err(|e| -> RestoreError {
                io_error(&e, |m| BackupError::ChecksumMismatch(format!("{}: a storage file cannot be copied ({m})", set.manifest.set_id)))
                    .into()
            })?;
            for (file, (_, sha)) in to_copy.iter().zip(results) {
                if sha != file.sha256 {
                    return Err(mismatch(&file.name));
                }
            }
        }
        _ => {
            let mut placed = 0u64;
            for file in &set.manifest.files {
                let name = &file.name;
                let unreadable = |e: std::io::Error| -> RestoreError { unreadable(set, name, &e).into() };
                let unwritable = |e: std::io::Error| -> RestoreError { BackupError::Io(format!("cannot write {name}: {e}")).into() };
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(unwritable)?;
                }
                let hashing = HashingReader::new(BufReader::with_capacity(1 << 20, set.open(name).map_err(unreadable)?));
                let mut under = match source.key {
                    Some(key) => SetReader::Sealed(ChunkOpener::new(
                        hashing,
                        key.clone(),
                        &sealed::chunk_file_id(set.manifest.format_version, &set.manifest.set_id, name),
                    )),
                    None => SetReader::Plain(hashing),
                };
                let mut out = std::fs::File::create(&path).map_err(unwritable)?;
                let copied = std::io::copy(&mut under, &mut out);
                let (size, actual) = under.into_hashing().finish().map_err(unreadable)?;
                if actual != file.sha256 {
                    return Err(mismatch(name));
                }
                // Bytes that match the manifest but do not open (a sealed chunk
                // that fails): a set written wrong or forged.
                copied.map_err(|e| corrupt(set, name, &e.to_string()))?;
                out.sync_all().map_err(unwritable)?;
                failpoint::hit("restore.document");
                placed += size;
                *bytes += size;
                *done = share(set.manifest.document_count, placed, total);
                progress(*done, *bytes)?;
            }
        }
    }
    let mut dirs: Vec<PathBuf> = set.manifest.files.iter().filter_map(|f| dir.join(&f.name).parent().map(Path::to_path_buf)).collect();
    dirs.sort();
    dirs.dedup();
    // Side by side: a folder's fsync waits for a journal commit and a cache
    // flush of its own, and the filesystem folds fsyncs that wait together
    // into one commit (the 14 folders of a restored database took 4 ms one
    // after another here).
    crate::backup::concurrent::try_map(&dirs, crate::backup::concurrent::FOLDER_WORKERS, |d| {
        crate::durable::sync_dir(d).map_err(|e| BackupError::Io(format!("cannot sync '{}': {e}", d.display())))
    })?;
    crate::backup::kept_hashes::save();
    *done = set.manifest.document_count;
    Ok(())
}

/// The path of a file of a set in a folder (a shared table's in `tables/`).
fn in_set(set: &StoredSet, name: &str) -> std::path::PathBuf {
    set.path_of(name).unwrap_or_default()
}

/// Hard-links the files of a plain snapshot set in a folder that fjall
/// never writes into (tables, blob files, versions, `current`: see
/// [`crate::storage::files::is_never_written_into`]) into `dir`, each checked
/// against the manifest first: by its kept hash while its inode, size and
/// modification time are unchanged, read in full otherwise. The database
/// and the set share them safely (a compaction of the database unlinks its
/// names only). The checks run side by side on a few threads (a table read
/// in full is hashed on every core; a kept hash waits on the disk only for
/// the table's inode, and asks for the table's end to be read ahead for the
/// database's open), each file linked as soon as it is checked. What cannot
/// be linked and every other file is returned, to be copied; a set on
/// another filesystem than `dir` is returned whole, its tables not read first.
fn link_written_once<'a>(
    set: &'a StoredSet,
    dir: &Path,
    placed: &mut dyn FnMut(u64) -> Result<(), RestoreError>,
) -> Result<Vec<&'a ManifestFile>, RestoreError> {
    use std::os::unix::fs::MetadataExt;
    let (tables, mut rest): (Vec<&ManifestFile>, Vec<&ManifestFile>) =
        set.manifest.files.iter().partition(|f| crate::storage::files::is_never_written_into(&f.name));
    if !on_the_same_filesystem(set, dir) {
        // Nothing can be linked: every file is copied, each copy hashed as
        // it is made; no table read a first time only to be checked.
        for file in &tables {
            let meta = std::fs::symlink_metadata(in_set(set, &file.name))
                .map_err(|e| -> RestoreError { unreadable(set, &file.name, &e).into() })?;
            shaped_as_listed(set, file, &meta)?;
        }
        rest.extend(tables);
        return Ok(rest);
    }
    let mut parents: Vec<PathBuf> = tables.iter().filter_map(|f| dir.join(&f.name).parent().map(Path::to_path_buf)).collect();
    parents.sort();
    parents.dedup();
    for parent in &parents {
        std::fs::create_dir_all(parent).map_err(|e| BackupError::Io(format!("cannot create '{}': {e}", parent.display())))?;
    }
    // A few threads check (a kept hash waits on the disk for the table's
    // inode only, a table read in full is hashed on every core); this one
    // links each table as soon as it is checked.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<std::fs::Metadata, RestoreError>)>();
    std::thread::scope(|scope| -> Result<(), RestoreError> {
        for _ in 0..crate::backup::concurrent::FOLDER_WORKERS.min(tables.len()) {
            let (tx, next, tables) = (tx.clone(), &next, &tables);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(file) = tables.get(i) else { return };
                if tx.send((i, check_linkable(set, file, &in_set(set, &file.name)))).is_err() {
                    return; // the linking stopped, and returns why
                }
            });
        }
        drop(tx);
        // Dropped on the way out, the receiver stops every checker at its next table.
        for (i, checked) in rx {
            let (file, checked) = (tables[i], checked?);
            let (from, to) = (in_set(set, &file.name), dir.join(&file.name));
            match std::fs::hard_link(&from, &to) {
                Ok(()) => {
                    // The name linked must still be the file checked (not one
                    // put in its place meanwhile).
                    let linked =
                        std::fs::symlink_metadata(&to).map_err(|e| BackupError::Io(format!("cannot read '{}': {e}", to.display())))?;
                    if (linked.dev(), linked.ino()) != (checked.dev(), checked.ino()) {
                        return Err(corrupt(set, &file.name, "the file changed while it was restored"));
                    }
                    placed(file.size)?;
                }
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) || e.kind() == std::io::ErrorKind::PermissionDenied => rest.push(file),
                Err(e) => return Err(BackupError::Io(format!("cannot link '{}': {e}", to.display())).into()),
            }
        }
        Ok(())
    })?;
    Ok(rest)
}

/// Whether the set's folder and `dir` are on one filesystem (when either
/// cannot be read, links are tried, and fail over to copies one by one).
fn on_the_same_filesystem(set: &StoredSet, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(in_set(set, crate::backup::format::MANIFEST)), std::fs::metadata(dir)) {
        (Ok(set), Ok(dir)) => set.dev() == dir.dev(),
        _ => true,
    }
}

/// A set's table before it is linked: a regular file (never a symbolic
/// link), of the manifest's size and SHA-256. Its metadata, read from the
/// file opened (the link made next must be of this very file).
fn check_linkable(set: &StoredSet, file: &ManifestFile, from: &Path) -> Result<std::fs::Metadata, RestoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = &file.name;
    let unreadable = |e: std::io::Error| -> RestoreError { unreadable(set, name, &e).into() };
    let handle = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(from) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(not_a_table(set, name)),
        opened => opened.map_err(unreadable)?,
    };
    let meta = handle.metadata().map_err(unreadable)?;
    shaped_as_listed(set, file, &meta)?;
    if crate::backup::kept_hashes::get(&meta).as_deref() == Some(file.sha256.as_str()) {
        // Not read here: what the database's open reads of it, read ahead.
        crate::storage::files::read_tail_ahead(&handle, meta.len());
        return Ok(meta);
    }
    let sha = sha256_reader(handle).map_err(unreadable)?;
    if sha != file.sha256 {
        return Err(changed(set, name).into());
    }
    crate::backup::kept_hashes::remember(&meta, &sha);
    Ok(meta)
}

/// A set's table must be a regular file of the manifest's size.
fn shaped_as_listed(set: &StoredSet, file: &ManifestFile, meta: &std::fs::Metadata) -> Result<(), RestoreError> {
    if meta.file_type().is_file() && meta.len() == file.size {
        Ok(())
    } else {
        Err(not_a_table(set, &file.name))
    }
}

fn not_a_table(set: &StoredSet, name: &str) -> RestoreError {
    corrupt(set, name, "not a regular file of the manifest's size")
}

/// A snapshot set, opened: the database it holds must be the one its
/// manifest describes (etag, count and, when no set follows, the digest,
/// which the end of the build checks), before anything is applied on it.
/// It gets a database id of its own, as any restored database.
fn check_snapshot(store: &DocumentStore, set: &StoredSet, tip: bool) -> Result<(), RestoreError> {
    let m = &set.manifest;
    if store.last_etag() != m.to_etag {
        return Err(corrupt(set, "manifest.json", &format!("the files hold etag {}, the manifest says {}", store.last_etag(), m.to_etag)));
    }
    if store.document_count() != m.document_count {
        return Err(corrupt(
            set,
            "manifest.json",
            &format!("the files hold {} documents, the manifest says {}", store.document_count(), m.document_count),
        ));
    }
    if !tip {
        check_digest(store, set, "the files'")?;
    }
    store.bulk().renew_database_id()?;
    Ok(())
}

/// `count * part / whole`, without overflow (`whole` at least 1).
fn share(count: u64, part: u64, whole: u64) -> u64 {
    u64::try_from(u128::from(count) * u128::from(part) / u128::from(whole.max(1))).unwrap_or(u64::MAX)
}

/// A full set into the empty store: its documents and its change log are
/// sorted streams into two keyspaces, ingested side by side, then the
/// store's counters set. The documents files hold consecutive id ranges,
/// so the first half of them and the second half are two ingestions of
/// their own (two runs of tables whose ids do not overlap), each on its
/// own thread with its own reading and decoding: fjall writes a table on
/// one thread, and one ingestion cannot keep both cores busy. The change
/// log is a third thread.
fn ingest_full(
    store: &DocumentStore,
    source: &Source<'_>,
    flags: u8,
    cancel: &CancelToken,
    done: &mut u64,
    bytes: &mut u64,
    progress: Checked<'_>,
) -> Result<u64, RestoreError> {
    let set = source.set;
    let bulk = store.bulk();
    let stop = AtomicBool::new(false);
    let files: Vec<&ManifestFile> = set.manifest.files.iter().filter(|f| f.content == FileContent::Documents).collect();
    let (head, tail) = files.split_at(files.len().div_ceil(2));
    let counters = Counters::default();
    let (base_done, base_bytes) = (*done, *bytes);
    let (documents, changes) = std::thread::scope(|scope| {
        let changes = LogBeside::start(scope, &bulk, source, &stop)?;
        let second = (!tail.is_empty()).then_some(|stopped: Report<'_>| ingest_documents(&bulk, source, tail, flags, &counters, stopped));
        let mut report = || {
            if stop.load(Ordering::Relaxed) {
                return Err(RestoreError::Canceled);
            }
            progress(base_done + counters.documents.load(Ordering::Relaxed), base_bytes + counters.bytes.load(Ordering::Relaxed))
        };
        let halves = side_by_side(scope, &stop, cancel, second, || ingest_documents(&bulk, source, head, flags, &counters, &mut report));
        Ok::<_, RestoreError>((halves, changes.join()))
    })?;
    let (first, second) = documents?;
    let ingested = joined(set, tail.first(), first, second)?;
    if ingested.tally.documents != set.manifest.document_count {
        return Err(corrupt(set, "manifest.json", "DocumentCount does not match the documents in the set"));
    }
    *done = base_done + ingested.tally.documents;
    *bytes = base_bytes + counters.bytes.load(Ordering::Relaxed) + changes?;
    bulk.finish(set.manifest.to_etag, Some(ingested.tally))?;
    progress(*done, *bytes)?;
    Ok(ingested.tally.documents)
}

/// What one ingestion of documents files made.
#[derive(Default)]
struct Ingested {
    tally: Tally,
    /// The first and the last id, when there was any document.
    ids: Option<(String, String)>,
}

/// The two halves of a full set's documents as one; they must follow each
/// other in id order.
fn joined(set: &StoredSet, second_file: Option<&&ManifestFile>, first: Ingested, second: Ingested) -> Result<Ingested, RestoreError> {
    let ids = match (first.ids, second.ids) {
        (Some((a, last)), Some((first_of_b, b))) => {
            if last >= first_of_b {
                let name = second_file.map_or("manifest.json", |f| f.name.as_str());
                return Err(corrupt(set, name, "documents are not in id order"));
            }
            Some((a, b))
        }
        (a, b) => a.or(b),
    };
    let mut tally = first.tally;
    tally.add(&second.tally);
    Ok(Ingested { tally, ids })
}

/// Documents files (consecutive, in id order) into one ingestion of their
/// own; `report` every [`super::stream::REPORT_EVERY`] documents and at the
/// end of each file (progress, and the cancel it answers).
fn ingest_documents(
    bulk: &BulkAccess<'_>,
    source: &Source<'_>,
    files: &[&ManifestFile],
    flags: u8,
    counters: &Counters,
    report: Report<'_>,
) -> Result<Ingested, RestoreError> {
    let set = source.set;
    let mut ingestion = bulk.documents().start_ingestion().map_err(StorageError::from)?;
    let mut written = Written::default();
    let mut unreported = 0u64;
    let mut digest = ContentDigest::default();
    for file in files {
        // Each document read as the value stored for it; on a thread of its
        // own, the digest (an XXH3 term per document).
        let mut prepare = |record: StoredDocument| {
            if let Some(term) = ContentDigest::term(&record.id, &record.value[HEADER_LEN..]) {
                digest.add(&term);
            }
            record
        };
        let read = |each: &mut dyn FnMut(StoredDocument) -> Result<(), RestoreError>| {
            read_documents_file(source, &file.name, &file.sha256, flags, each)
        };
        let size = super::stream::read_in_parallel(read, &mut prepare, &mut |StoredDocument { id, value, .. }| {
            if !written.follows(&id, value.len()) {
                return Err(corrupt(set, &file.name, "documents are not in id order"));
            }
            ingestion.write(id.as_bytes(), value).map_err(StorageError::from)?;
            written.wrote(id);
            failpoint::hit("restore.document");
            counters.document(&mut unreported, report)
        })?;
        counters.file_read(&mut unreported, size, report)?;
    }
    ingestion.finish().map_err(StorageError::from)?;
    let tally = Tally { documents: written.count, data_bytes: written.data_bytes, digest };
    Ok(Ingested { tally, ids: written.ids() })
}

fn apply_incremental(
    store: &DocumentStore,
    source: &Source<'_>,
    flags: u8,
    done: &mut u64,
    bytes: &mut u64,
    progress: Checked<'_>,
) -> Result<(), RestoreError> {
    let set = source.set;
    let bulk = store.bulk();
    // Deletions first, then documents: see the backup engine's step 3.
    for file in set.manifest.files.iter().filter(|f| f.content == FileContent::Deletions) {
        let mut batch = Vec::new();
        *bytes += read_file(source, &file.name, &file.sha256, &mut |record| {
            let DataRecord::Deletion { id, .. } = record else {
                return Err(corrupt(set, &file.name, "a non-deletion record in a deletions file"));
            };
            batch.push(id);
            *done += 1;
            if batch.len() >= APPLY_BATCH {
                bulk.apply(&std::mem::take(&mut batch), &[])?;
                progress(*done, *bytes)?;
            }
            Ok(())
        })?;
        bulk.apply(&batch, &[])?;
    }
    for file in set.manifest.files.iter().filter(|f| f.content == FileContent::Documents) {
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        *bytes += read_file(source, &file.name, &file.sha256, &mut |record| {
            let DataRecord::Document { id, etag, modified_ms, body } = record else {
                return Err(corrupt(set, &file.name, "a non-document record in a documents file"));
            };
            let encoded = encode_with_flags(etag, modified_ms, flags, &body);
            batch_bytes += id.len() + encoded.len();
            batch.push((id, encoded));
            *done += 1;
            if batch.len() >= APPLY_BATCH || batch_bytes >= APPLY_BATCH_BYTES {
                batch_bytes = 0;
                bulk.apply(&[], &std::mem::take(&mut batch))?;
                progress(*done, *bytes)?;
            }
            Ok(())
        })?;
        bulk.apply(&[], &batch)?;
    }
    progress(*done, *bytes)?;
    Ok(())
}

/// The credential entries of a system database set, checked: only users and
/// API keys, a bounded number.
fn read_credentials(source: &Source<'_>, name: &str, sha256: &str) -> Result<Vec<(String, Vec<u8>)>, RestoreError> {
    let set = source.set;
    let mut entries = Vec::new();
    read_file(source, name, sha256, &mut |record| {
        let DataRecord::Document { id, body, .. } = record else {
            return Err(corrupt(set, name, "a non-credential record in the credentials file"));
        };
        if !crate::backup::format::BACKED_UP_INTERNAL_PREFIXES.iter().any(|p| id.starts_with(p)) {
            return Err(corrupt(set, name, "an entry that is not a user or an API key"));
        }
        if entries.len() >= crate::backup::format::MAX_CREDENTIALS {
            return Err(corrupt(set, name, "more credentials than any server holds"));
        }
        entries.push((id, body));
        Ok(())
    })?;
    Ok(entries)
}

/// Hashes the files of the sets that the build did not stream (the id
/// indexes of documents files, and whatever a set from a newer writer
/// carries), so every file is checked once. Side by side: each is a request
/// of its own in object storage, and one after another the 50 small files
/// of a chain of 25 sets took 2.2 s of its restore from a local Garage (the
/// bench's chain of 1M documents restored from moto in 3.3 to 3.4 s with
/// them one by one, 2.4 to 2.5 s side by side).
fn hash_unread(files: &[(&StoredSet, &ManifestFile)]) -> Result<(), RestoreError> {
    let in_objects = files.iter().any(|(set, _)| set.location.folder().is_none());
    let workers = if in_objects { crate::backup::concurrent::OBJECT_WORKERS } else { crate::backup::concurrent::FOLDER_WORKERS };
    crate::backup::concurrent::try_map(files, workers, |&(set, file)| {
        let actual = set.open(&file.name).and_then(sha256_reader).map_err(|e| unreadable(set, &file.name, &e))?;
        if actual == file.sha256 {
            Ok(())
        } else {
            Err(RestoreError::from(changed(set, &file.name)))
        }
    })
    .map(drop)
}

/// The database's content digest against the one `set` recorded (sets
/// written before the digest existed carry none); `whose` starts the message.
/// A set whose digest sums SHA-256 (formats before 7) is compared with that
/// sum recomputed over the restored documents; the store keeps its own.
fn check_digest(store: &DocumentStore, set: &StoredSet, whose: &str) -> Result<(), RestoreError> {
    if let Some(expected) = &set.manifest.content_digest {
        let actual = match set.manifest.digest_kind() {
            DigestKind::Xxh3 => store.content_digest(),
            kind => store.content_digest_of(kind)?,
        }
        .to_hex();
        if &actual != expected {
            return Err(corrupt(set, "manifest.json", &format!("{whose} content digest {actual} is not the {expected} the set recorded")));
        }
    }
    Ok(())
}

/// Step 4: moves a built database from `staging` to `destination` durably.
///
/// # Errors
/// I/O errors.
pub fn move_into_place(staging: &Path, destination: &Path) -> Result<(), RestoreError> {
    let io = |e: std::io::Error| BackupError::Io(format!("cannot move the restored database into '{}': {e}", destination.display()));
    crate::durable::sync_dir(staging).map_err(io)?;
    failpoint::hit("restore.before_move");
    std::fs::rename(staging, destination).map_err(io)?;
    if let Some(parent) = destination.parent() {
        crate::durable::sync_dir(parent).map_err(io)?;
    }
    failpoint::hit("restore.after_move");
    Ok(())
}

/// Step 4 for a database built at its destination (a folder the restore
/// made): the folder, and its name in its parent, made durable before the
/// catalog marks it `Ready`. (The failpoints are those of the move it
/// stands for.)
///
/// # Errors
/// I/O errors.
pub fn settle_in_place(destination: &Path) -> Result<(), RestoreError> {
    let io = |e: std::io::Error| BackupError::Io(format!("cannot sync the restored database in '{}': {e}", destination.display()));
    crate::durable::sync_dir(destination).map_err(io)?;
    failpoint::hit("restore.before_move");
    if let Some(parent) = destination.parent() {
        crate::durable::sync_dir(parent).map_err(io)?;
    }
    failpoint::hit("restore.after_move");
    Ok(())
}
