//! One Rookery database: documents by id with etags, on one fjall database.
//!
//! Keyspaces:
//! - `docs`: id -> [`Record`] (etag, modification time, JSON body).
//! - `changes`: etag -> id, one entry per *live* document at its current etag.
//!   A write removes the document's previous entry, so a range scan from an
//!   etag yields exactly the documents changed after it.
//! - `deletions`: etag -> id, one entry per delete: what was deleted after an etag.
//! - `meta`: `last_etag`, `doc_count`, `data_bytes`, `database_id`.
//! - `internal`: server bookkeeping (the catalog in the system database).
//!
//! Every write is one fjall batch over these keyspaces, made under the writer
//! lock, so etags are assigned and committed in the same order: a snapshot
//! that sees etag `n` sees every etag below it. That is what lets an
//! incremental backup start at the previous set's `ToEtag`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use fjall::config::BlockSizePolicy;
use fjall::{AbstractTree, Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use super::digest::{ContentDigest, DigestKind};
use super::tally::{Counted, Tally};

use super::error::StorageError;
use super::journal::Cut;
use super::record::{decode_etag_key, decode_header, encode_with_flags, etag_key, flags, Record, FLAG_ENCRYPTED, HEADER_LEN};
use crate::crypto::Key;

const META_LAST_ETAG: &[u8] = b"last_etag";
const META_DOC_COUNT: &[u8] = b"doc_count";
/// Bytes of the live documents as stored (ids and records): the data size.
const META_DATA_BYTES: &[u8] = b"data_bytes";
/// The content digest, summing XXH3 terms (see [`super::digest`]).
const META_DIGEST: &[u8] = b"content_digest.xxh3";
/// The SHA-256 digest kept before XXH3 took its place: dropped when a
/// store is opened and its XXH3 digest computed.
const META_DIGEST_SHA256: &[u8] = b"content_digest";
const META_DATABASE_ID: &[u8] = b"database_id";
const META_WRAPPED_KEY: &[u8] = b"encryption_key";

/// Largest document id, in bytes.
pub const MAX_ID_BYTES: usize = 512;

/// When an acknowledged write reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Durability {
    /// fsync the journal before acknowledging (group commit): survives power loss.
    #[default]
    Fsync,
    /// Hand the journal to the OS before acknowledging: survives a process crash
    /// (`kill -9`), not a power loss.
    Os,
}

/// What a successful put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOutcome {
    pub etag: u64,
    pub created: bool,
}

#[derive(Debug)]
struct WriterState {
    last_etag: u64,
    tally: Tally,
}

/// The digest, summing `kind`, of every document in `docs`.
fn digest_of(docs: &Keyspace, kind: DigestKind) -> Result<ContentDigest, StorageError> {
    let mut digest = ContentDigest::default();
    for guard in docs.iter() {
        let (k, v) = guard.into_inner()?;
        if let Some(t) = term_of(kind, &key_to_string(&k)?, &v) {
            digest.add(&t);
        }
    }
    Ok(digest)
}

/// A document as stored (`raw`: header and body) as the tally counts it:
/// its size (id and record) and its digest term (none for the server's own
/// `Raven/` documents).
fn counted(id: &str, raw: &[u8]) -> Counted {
    Counted { size: (id.len() + raw.len()) as u64, term: term_of(DigestKind::Xxh3, id, raw) }
}

/// A document's digest term under `kind` (see [`counted`]).
fn term_of(kind: DigestKind, id: &str, raw: &[u8]) -> Option<ContentDigest> {
    ContentDigest::term_of(kind, id, raw.get(HEADER_LEN..).unwrap_or_default())
}

/// Level-0 tables at which fjall's leveled compaction (its default
/// strategy, which the store keeps) merges them into level 1.
const LEVEL0_COMPACTION_TRIGGER: usize = 4;
/// How long fjall's compactions must stay idle for [`DocumentStore::settle`].
const SETTLED_FOR: std::time::Duration = std::time::Duration::from_millis(500);

/// A Rookery database on disk.
pub struct DocumentStore {
    db: Database,
    docs: Keyspace,
    changes: Keyspace,
    deletions: Keyspace,
    meta: Keyspace,
    internal: Keyspace,
    path: PathBuf,
    database_id: String,
    durability: Durability,
    writer: Mutex<WriterState>,
    committed_etag: AtomicU64,
    synced_etag: AtomicU64,
    sync_lock: Mutex<()>,
    /// The database key of an encrypted database, once unlocked.
    key: std::sync::OnceLock<Key>,
    encrypted: std::sync::atomic::AtomicBool,
    foreground: Foreground,
}

/// When a database last took a client's write, and how many bytes clients
/// have written: background work (a backup reading every document) yields
/// to the writes while they arrive.
#[derive(Debug, Clone)]
pub struct Foreground {
    base: std::time::Instant,
    /// Microseconds after `base` of the last write, plus one (0: none yet).
    last_write: Arc<AtomicU64>,
    /// Bytes of ids and bodies clients have written since the store opened.
    written: Arc<AtomicU64>,
}

impl Foreground {
    fn new() -> Self {
        Self { base: std::time::Instant::now(), last_write: Arc::new(AtomicU64::new(0)), written: Arc::default() }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn note_write(&self, bytes: usize) {
        self.last_write.store(self.now().saturating_add(1), Ordering::Relaxed);
        self.written.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Bytes of ids and bodies clients have written since the store opened.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Whether a write began within the last `window`.
    #[must_use]
    pub fn wrote_within(&self, window: std::time::Duration) -> bool {
        match self.last_write.load(Ordering::Relaxed) {
            0 => false,
            last => self.now().saturating_sub(last - 1) < u64::try_from(window.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

impl std::fmt::Debug for DocumentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// fjall's background threads per database (flushes and compactions).
///
/// fjall starts one per core, at most four, and its first worker, handed a
/// compaction while another worker may be running one, sends it back to the
/// queue and takes it again at once (fjall 3.1.13, `worker_pool.rs`): with
/// two workers, the second compacting, the first spins on a core for the
/// whole compaction. On two cores that was half the machine, after every
/// flush, beside the requests and backups (`perf` of a snapshot during a
/// compaction: 28% of all samples in that loop). With four, the first
/// worker finds another one idle to take the compaction and waits; it
/// spins only while three compactions or flushes run at once.
const FJALL_WORKERS: usize = 4;

/// How every database is opened: bounded memory per database (a server
/// holds many of them) and [`FJALL_WORKERS`].
fn database_builder(path: &Path) -> fjall::DatabaseBuilder<Database> {
    #[allow(deprecated)] // fjall marks the setter "todo", not replaced; it works.
    Database::builder(path)
        .cache_size(32 * 1024 * 1024)
        .max_write_buffer_size(Some(48 * 1024 * 1024))
        .max_journaling_size(256 * 1024 * 1024)
        .worker_threads(FJALL_WORKERS)
}

impl DocumentStore {
    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    /// Any fjall or I/O error, or a corrupt meta record.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, StorageError> {
        Self::open_with(path, durability, true)
    }

    /// The same store, its later writes acknowledged under `durability`
    /// (a restore builds a database with [`Durability::Os`], persists it
    /// whole, then serves it under the server's setting).
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens the database at `path` without fjall's background workers:
    /// nothing is flushed or compacted while it is open, so its tables stay
    /// the files it was opened with and everything written stays in its
    /// journal. For a pinned copy read and trimmed before it is shipped
    /// (see [`super::files`]), whose tables are links shared with the
    /// database and the set. Only small writes belong here: fjall halts a
    /// write while a keyspace has 4 sealed memtables or 30 tables at level
    /// 0, and without workers nothing would ever lower them.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub(crate) fn open_without_workers(path: &Path) -> Result<Self, StorageError> {
        Self::open_with(path, Durability::Os, false)
    }

    fn open_with(path: &Path, durability: Durability, workers: bool) -> Result<Self, StorageError> {
        std::fs::create_dir_all(path)?;
        // fjall's own tests open a database so (the setter is hidden from its
        // docs, not deprecated; fjall is pinned to one version, see `files`).
        let builder = if workers { database_builder(path) } else { database_builder(path).worker_threads_unchecked(0) };
        let db = builder.open()?;
        let options = || KeyspaceCreateOptions::default().max_memtable_size(16 * 1024 * 1024);
        // Documents in data blocks of 32 KiB, not fjall's 4 KiB: a backup
        // reads every block, one `pread` each, and 4 KiB blocks of 1 KB
        // documents made that a quarter of a million system calls per GB;
        // a point read copies 32 KiB from the cache instead of 4, a few
        // microseconds. Fixed when the keyspace is created (older
        // databases keep theirs).
        let docs = db.keyspace("docs", || options().data_block_size_policy(BlockSizePolicy::all(32 * 1024)))?;
        let changes = db.keyspace("changes", options)?;
        let deletions = db.keyspace("deletions", options)?;
        let meta = db.keyspace("meta", options)?;
        let internal = db.keyspace("internal", options)?;

        let last_etag = read_u64(&meta.get(META_LAST_ETAG)?)?;
        let doc_count = read_u64(&meta.get(META_DOC_COUNT)?)?;
        // Databases written before the counter existed: count once, keep it.
        let data_bytes = match meta.get(META_DATA_BYTES)? {
            Some(raw) => read_u64(&Some(raw))?,
            None => {
                let mut total = 0u64;
                for guard in docs.iter() {
                    let (k, v) = guard.into_inner()?;
                    total += (k.len() + v.len()) as u64;
                }
                meta.insert(META_DATA_BYTES, total.to_be_bytes())?;
                total
            }
        };
        let database_id = match meta.get(META_DATABASE_ID)? {
            Some(raw) => String::from_utf8(raw.to_vec()).map_err(|_| StorageError::Corrupt("database id".into()))?,
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                meta.insert(META_DATABASE_ID, id.as_bytes())?;
                db.persist(PersistMode::SyncAll)?;
                id
            }
        };

        // Databases written before the digest existed, or before it summed
        // XXH3: computed once, kept; the SHA-256 sum, if any, dropped (a
        // server that still reads it recomputes it when it finds none).
        let digest = match meta.get(META_DIGEST)?.and_then(|raw| ContentDigest::from_bytes(&raw)) {
            Some(d) => d,
            None => {
                let d = digest_of(&docs, DigestKind::Xxh3)?;
                let mut batch = db.batch();
                batch.insert(&meta, META_DIGEST, d.to_bytes());
                batch.remove(&meta, META_DIGEST_SHA256);
                batch.commit()?;
                d
            }
        };
        let encrypted = meta.get(META_WRAPPED_KEY)?.is_some();
        Ok(Self {
            db,
            docs,
            changes,
            deletions,
            meta,
            internal,
            path: path.to_path_buf(),
            database_id,
            durability,
            writer: Mutex::new(WriterState { last_etag, tally: Tally { documents: doc_count, data_bytes, digest } }),
            committed_etag: AtomicU64::new(last_etag),
            synced_etag: AtomicU64::new(last_etag),
            sync_lock: Mutex::new(()),
            key: std::sync::OnceLock::new(),
            encrypted: std::sync::atomic::AtomicBool::new(encrypted),
            foreground: Foreground::new(),
        })
    }

    /// When this database last took a write (see [`Foreground`]).
    #[must_use]
    pub fn foreground(&self) -> Foreground {
        self.foreground.clone()
    }

    /// Whether document bodies are encrypted at rest.
    #[must_use]
    pub fn is_encrypted(&self) -> bool {
        self.encrypted.load(Ordering::Acquire)
    }

    /// Unwraps the database key with the server's master key.
    ///
    /// # Errors
    /// `Crypto` when `master` is not the key that wrapped it.
    pub fn unlock(&self, master: &Key) -> Result<(), StorageError> {
        let wrapped = self.meta.get(META_WRAPPED_KEY)?.ok_or_else(|| StorageError::Locked("the database is not encrypted".into()))?;
        let key = master.unwrap_key(&wrapped)?;
        let _ = self.key.set(key);
        Ok(())
    }

    /// Makes an empty (new or being restored) database encrypted with `key`,
    /// stored wrapped by `master`.
    ///
    /// # Errors
    /// Storage errors.
    pub fn enable_encryption(&self, key: Key, master: &Key) -> Result<(), StorageError> {
        self.meta.insert(META_WRAPPED_KEY, master.wrap(&key))?;
        self.db.persist(PersistMode::SyncAll)?;
        let _ = self.key.set(key);
        self.encrypted.store(true, Ordering::Release);
        Ok(())
    }

    /// The database key (encrypted databases, once unlocked).
    #[must_use]
    pub fn database_key(&self) -> Option<&Key> {
        self.key.get()
    }

    /// The stored form of a body: sealed with the database key, bound to the id.
    fn seal<'b>(&self, id: &str, body: &'b [u8]) -> Result<(u8, std::borrow::Cow<'b, [u8]>), StorageError> {
        if !self.is_encrypted() {
            return Ok((0, std::borrow::Cow::Borrowed(body)));
        }
        let key = self.key.get().ok_or_else(|| StorageError::Locked("the master key is missing".into()))?;
        Ok((FLAG_ENCRYPTED, std::borrow::Cow::Owned(key.seal(id.as_bytes(), body))))
    }

    /// Decodes a stored record, opening an encrypted body.
    fn open_record(&self, id: &str, raw: &[u8]) -> Result<Record, StorageError> {
        let mut record = Record::decode(raw)?;
        if flags(raw) & FLAG_ENCRYPTED != 0 {
            let key = self.key.get().ok_or_else(|| StorageError::Locked("the master key is missing".into()))?;
            record.body = key.open(id.as_bytes(), &record.body)?;
        }
        Ok(record)
    }

    /// The folder of this database.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A random id given to the database when it was created (or restored):
    /// backup chains belong to one database id.
    #[must_use]
    pub fn database_id(&self) -> &str {
        &self.database_id
    }

    /// The newest etag of this database.
    #[must_use]
    pub fn last_etag(&self) -> u64 {
        self.committed_etag.load(Ordering::Acquire)
    }

    /// The number of documents (status documents included).
    #[must_use]
    pub fn document_count(&self) -> u64 {
        self.lock_writer().tally.documents
    }

    /// Bytes on disk (tables and journals, preallocated space included).
    #[must_use]
    pub fn size_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    /// Bytes of the live documents as stored (ids and records, sealed ones
    /// sealed): what the database holds, whatever the disk layout.
    #[must_use]
    pub fn data_bytes(&self) -> u64 {
        self.lock_writer().tally.data_bytes
    }

    /// The content digest of the documents now (see [`super::digest`]).
    #[must_use]
    pub fn content_digest(&self) -> ContentDigest {
        self.lock_writer().tally.digest
    }

    /// Reads a document.
    ///
    /// # Errors
    /// Storage errors.
    pub fn get(&self, id: &str) -> Result<Option<Record>, StorageError> {
        self.docs.get(id.as_bytes())?.map(|raw| self.open_record(id, &raw)).transpose()
    }

    /// Creates or replaces a document. `body` must be a JSON object's bytes.
    /// With `if_match`, the current etag must equal it (a missing document never matches).
    ///
    /// # Errors
    /// `InvalidId`, `ConcurrencyConflict`, storage errors.
    pub fn put(&self, id: &str, body: &[u8], if_match: Option<u64>) -> Result<PutOutcome, StorageError> {
        validate_client_id(id)?;
        self.foreground.note_write(id.len() + body.len());
        self.write_document(id, body, if_match.map_or(Expect::Any, Expect::Etag))
    }

    /// Creates a document that must not exist yet (`If-None-Match: *`).
    ///
    /// # Errors
    /// `ConcurrencyConflict` when it exists; as [`DocumentStore::put`].
    pub fn create(&self, id: &str, body: &[u8]) -> Result<PutOutcome, StorageError> {
        validate_client_id(id)?;
        self.foreground.note_write(id.len() + body.len());
        self.write_document(id, body, Expect::Absent)
    }

    /// Writes a server-owned document (`Raven/...`: status documents). Only
    /// the server's own jobs call this; clients go through [`DocumentStore::put`].
    ///
    /// # Errors
    /// `InvalidId` for an id that is not server-owned; storage errors.
    pub(crate) fn put_server_owned(&self, id: &str, body: &[u8]) -> Result<PutOutcome, StorageError> {
        if !rookery_types::is_server_owned(id) {
            return Err(StorageError::InvalidId(format!("'{}' is not a server-owned id", id.escape_debug())));
        }
        validate_id(id)?;
        self.write_document(id, body, Expect::Any)
    }

    fn write_document(&self, id: &str, body: &[u8], expect: Expect) -> Result<PutOutcome, StorageError> {
        let (flags, stored) = self.seal(id, body)?;
        let outcome = {
            let mut state = self.lock_writer();
            let found = self.current(id)?;
            let current = found.map(|(e, _)| e);
            match expect {
                Expect::Any => {}
                Expect::Etag(e) => check_if_match(Some(e), current)?,
                Expect::Absent => {
                    if let Some(actual) = current {
                        return Err(StorageError::ConcurrencyConflict { expected: 0, actual: Some(actual) });
                    }
                }
            }
            let etag = state.last_etag + 1;
            let mut batch = self.db.batch();
            let record = encode_with_flags(etag, now_ms(), flags, &stored);
            let mut tally = state.tally;
            tally.change(found.map(|(_, old)| old), Some(counted(id, &record)));
            batch.insert(&self.docs, id.as_bytes(), record);
            if let Some(old) = current {
                batch.remove(&self.changes, etag_key(old));
            }
            batch.insert(&self.changes, etag_key(etag), id.as_bytes());
            self.stage_meta(&mut batch, etag, &tally);
            batch.commit()?;
            state.last_etag = etag;
            state.tally = tally;
            self.committed_etag.store(etag, Ordering::Release);
            PutOutcome { etag, created: current.is_none() }
        };
        self.make_durable(outcome.etag)?;
        Ok(outcome)
    }

    /// Deletes a document and records the deletion; returns the deletion's etag.
    ///
    /// # Errors
    /// `NotFound`, `ConcurrencyConflict`, storage errors.
    pub fn delete(&self, id: &str, if_match: Option<u64>) -> Result<u64, StorageError> {
        validate_client_id(id)?;
        self.foreground.note_write(id.len());
        let etag = {
            let mut state = self.lock_writer();
            let Some((current, old)) = self.current(id)? else {
                return Err(StorageError::NotFound);
            };
            check_if_match(if_match, Some(current))?;
            let etag = state.last_etag + 1;
            let mut batch = self.db.batch();
            batch.remove(&self.docs, id.as_bytes());
            batch.remove(&self.changes, etag_key(current));
            batch.insert(&self.deletions, etag_key(etag), id.as_bytes());
            let mut tally = state.tally;
            tally.change(Some(old), None);
            self.stage_meta(&mut batch, etag, &tally);
            batch.commit()?;
            state.last_etag = etag;
            state.tally = tally;
            self.committed_etag.store(etag, Ordering::Release);
            etag
        };
        self.make_durable(etag)?;
        Ok(etag)
    }

    /// Writes many documents in one batch (one commit, one fsync): returns
    /// how many were written and how many skipped because they existed and
    /// `overwrite` is false. Ids must be valid; bodies JSON objects.
    ///
    /// # Errors
    /// `InvalidId`, storage errors.
    pub fn put_many(&self, documents: &[(String, Vec<u8>)], overwrite: bool) -> Result<(u64, u64), StorageError> {
        let (written, skipped) = self.put_many_unsynced(documents, overwrite)?;
        if written > 0 {
            self.make_all_durable()?;
        }
        Ok((written, skipped))
    }

    /// [`Self::put_many`] without waiting for the journal to reach the disk:
    /// for a bulk writer that acknowledges nothing until its end, and then
    /// calls [`Self::make_all_durable`] once (an import: one fsync, not one
    /// per batch). Until then, a crash may lose any of these writes, and
    /// keeps the ones it keeps whole: each batch is one commit.
    ///
    /// # Errors
    /// `InvalidId`, storage errors.
    pub fn put_many_unsynced(&self, documents: &[(String, Vec<u8>)], overwrite: bool) -> Result<(u64, u64), StorageError> {
        for (id, _) in documents {
            validate_client_id(id)?;
        }
        let mut state = self.lock_writer();
        let mut batch = self.db.batch();
        let mut etag = state.last_etag;
        let mut tally = state.tally;
        let (mut written, mut skipped) = (0, 0);
        // Ids repeated within the batch: the later one wins, as if written one by one.
        let mut in_batch: std::collections::HashMap<&str, (u64, Counted)> = std::collections::HashMap::new();
        let now = now_ms();
        for (id, body) in documents {
            let current = match in_batch.get(id.as_str()) {
                Some(found) => Some(*found),
                None => self.current(id)?,
            };
            if current.is_some() && !overwrite {
                skipped += 1;
                continue;
            }
            etag += 1;
            let (flags, stored) = self.seal(id, body)?;
            let record = encode_with_flags(etag, now, flags, &stored);
            let new = counted(id, &record);
            batch.insert(&self.docs, id.as_bytes(), record);
            if let Some((old, _)) = current {
                batch.remove(&self.changes, etag_key(old));
            }
            tally.change(current.map(|(_, old)| old), Some(new));
            batch.insert(&self.changes, etag_key(etag), id.as_bytes());
            in_batch.insert(id.as_str(), (etag, new));
            written += 1;
        }
        if written > 0 {
            self.stage_meta(&mut batch, etag, &tally);
            batch.commit()?;
            state.last_etag = etag;
            state.tally = tally;
            self.committed_etag.store(etag, Ordering::Release);
        }
        Ok((written, skipped))
    }

    /// The last etag known to be on stable storage.
    #[cfg(test)]
    pub(crate) fn durable_etag(&self) -> u64 {
        self.synced_etag.load(Ordering::Acquire)
    }

    /// Makes every write committed so far durable: one fsync of the
    /// journal, unless a write's acknowledgement has already done it.
    ///
    /// # Errors
    /// Storage errors.
    pub fn make_all_durable(&self) -> Result<(), StorageError> {
        self.make_durable(self.committed_etag.load(Ordering::Acquire))
    }

    /// A page of documents whose id starts with `prefix`, in id order, and the
    /// number of such documents.
    ///
    /// # Errors
    /// Storage errors.
    pub fn list(&self, prefix: &str, start: usize, page_size: usize) -> Result<(Vec<(String, Record)>, u64), StorageError> {
        let mut page = Vec::with_capacity(page_size.min(1024));
        let mut total = 0u64;
        let whole = prefix.is_empty();
        for guard in self.docs.prefix(prefix.as_bytes()) {
            let index = total as usize;
            total += 1;
            if index < start {
                if !whole {
                    guard.key()?;
                }
                continue;
            }
            if page.len() < page_size {
                let (key, value) = guard.into_inner()?;
                let id = key_to_string(&key)?;
                let record = self.open_record(&id, &value)?;
                page.push((id, record));
            } else if whole {
                // The exact count of the whole database is kept in meta.
                return Ok((page, self.document_count()));
            } else {
                guard.key()?;
            }
        }
        Ok((page, total))
    }

    /// Reads every entry of the documents, change log and deletion log back
    /// (each block's checksum checked by the storage engine as it is read):
    /// the number of documents, of change-log entries, and the content
    /// digest (summing `kind`, as the set to compare with does) recomputed
    /// from the documents themselves, not from `meta`.
    ///
    /// # Errors
    /// Storage errors: a damaged block, an id that is not UTF-8.
    pub fn read_back(&self, kind: DigestKind) -> Result<ReadBack, StorageError> {
        let mut out = ReadBack::default();
        for guard in self.docs.iter() {
            let (key, value) = guard.into_inner()?;
            let id = key_to_string(&key)?;
            decode_header(&value)?;
            if let Some(t) = term_of(kind, &id, &value) {
                out.digest.add(&t);
            }
            out.documents += 1;
        }
        for guard in self.changes.iter() {
            guard.into_inner()?;
            out.changes += 1;
        }
        for guard in self.deletions.iter() {
            guard.into_inner()?;
        }
        Ok(out)
    }

    /// A consistent, point-in-time view over every keyspace of the database.
    #[must_use]
    pub fn snapshot(&self) -> StoreSnapshot {
        StoreSnapshot {
            snapshot: self.db.snapshot(),
            docs: self.docs.clone(),
            changes: self.changes.clone(),
            deletions: self.deletions.clone(),
            meta: self.meta.clone(),
            internal: self.internal.clone(),
            key: self.key.get().cloned(),
        }
    }

    /// Hands the journal's buffer to the OS (no fsync): every batch
    /// committed so far is then in the journal files (see [`super::files`]).
    ///
    /// # Errors
    /// Storage errors.
    pub(crate) fn persist_buffer(&self) -> Result<(), StorageError> {
        self.db.persist(PersistMode::Buffer)?;
        Ok(())
    }

    /// Flushes the journal to stable storage.
    ///
    /// # Errors
    /// Storage errors.
    pub fn persist(&self) -> Result<(), StorageError> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Flushes every keyspace's memtable into a table and waits: what the
    /// journals hold is then only what is written after (a snapshot copies
    /// little journal, and its copy replays little when opened).
    ///
    /// # Errors
    /// Storage errors.
    pub fn flush_memtables(&self) -> Result<(), StorageError> {
        self.seal_memtables()?;
        self.wait_for_flushes(None);
        Ok(())
    }

    /// Flushes the memtables, then waits until fjall's compactions have
    /// caught up: none running, and fewer level-0 tables than start one,
    /// both for `SETTLED_FOR` on end. A database at rest, as one is once
    /// its writers have stopped for a while (the bench's load ends so, so
    /// that its first timed backup does not run beside the compactions of
    /// a gigabyte just written).
    ///
    /// # Errors
    /// Storage errors.
    pub fn settle(&self) -> Result<(), StorageError> {
        self.flush_memtables()?;
        let mut quiet_since = std::time::Instant::now();
        loop {
            if self.db.active_compactions() > 0 || self.most_level0_tables() >= LEVEL0_COMPACTION_TRIGGER {
                quiet_since = std::time::Instant::now();
            } else if quiet_since.elapsed() >= SETTLED_FOR {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// [`Self::flush_memtables`], waiting at most a minute for fjall's
    /// workers (`false` when they have not flushed every memtable by then:
    /// a pin goes on, and copies more journal).
    ///
    /// # Errors
    /// Storage errors.
    pub(crate) fn flush_for_pin(&self) -> Result<bool, StorageError> {
        self.seal_memtables()?;
        Ok(self.wait_for_flushes(Some(std::time::Duration::from_secs(60))))
    }

    /// What the keyspaces' tables hold now: per keyspace, the highest batch
    /// number in its tables (see [`Cut`]; fjall's recovery skips a journal's
    /// items by the same numbers).
    pub(crate) fn journal_cut(&self) -> Cut {
        Cut { persisted: self.keyspaces().iter().filter_map(|ks| ks.tree.get_highest_persisted_seqno().map(|n| (ks.id(), n))).collect() }
    }

    /// The bytes the keyspaces' active memtables hold (what a flush would
    /// put in tables, less any memtable fjall sealed and flushes already).
    pub(crate) fn memtable_bytes(&self) -> u64 {
        self.keyspaces().iter().map(|ks| ks.tree.active_memtable().size()).sum()
    }

    /// Seals every keyspace's active memtable (one that holds anything) and
    /// hands it to fjall's flush workers, all before waiting on any: the
    /// workers flush them side by side. (`Keyspace::rotate_memtable_and_wait`
    /// flushes one keyspace at a time, each waited on in steps of 10 ms.)
    fn seal_memtables(&self) -> Result<(), StorageError> {
        for ks in self.keyspaces() {
            // Hidden from fjall's docs, public, and what its
            // `rotate_memtable_and_wait` calls before it waits.
            ks.rotate_memtable()?;
        }
        Ok(())
    }

    /// Waits until no keyspace has a sealed memtable left; `false` when
    /// `limit` passed first.
    fn wait_for_flushes(&self, limit: Option<std::time::Duration>) -> bool {
        let started = std::time::Instant::now();
        while self.keyspaces().iter().any(|ks| ks.sealed_memtable_count() > 0) {
            if limit.is_some_and(|limit| started.elapsed() > limit) {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }

    /// The most tables any keyspace has at level 0.
    pub(crate) fn most_level0_tables(&self) -> usize {
        self.keyspaces().iter().map(|ks| ks.l0_table_count()).max().unwrap_or(0)
    }

    fn keyspaces(&self) -> [&Keyspace; 5] {
        [&self.docs, &self.changes, &self.deletions, &self.meta, &self.internal]
    }

    /// Compacts every keyspace fully (used by `defrag`).
    ///
    /// # Errors
    /// Storage errors.
    pub fn compact(&self) -> Result<(), StorageError> {
        for ks in [&self.docs, &self.changes, &self.deletions, &self.meta] {
            ks.rotate_memtable_and_wait()?;
            ks.major_compact()?;
        }
        Ok(())
    }

    /// The server's bookkeeping keyspace (used by the catalog in the system database).
    pub(crate) fn internal(&self) -> &Keyspace {
        &self.internal
    }

    /// The content digest summing `kind`, recomputed from the documents (not
    /// from `meta`): what a set written with that kind is compared with.
    ///
    /// # Errors
    /// Storage errors: a damaged block, an id that is not UTF-8.
    pub fn content_digest_of(&self, kind: DigestKind) -> Result<ContentDigest, StorageError> {
        digest_of(&self.docs, kind)
    }

    /// Bulk loading during a restore; see [`crate::restore`].
    pub(crate) fn bulk(&self) -> BulkAccess<'_> {
        BulkAccess { store: self }
    }

    /// A document's etag, and its size and digest term as the tally counts
    /// them, if it exists.
    fn current(&self, id: &str) -> Result<Option<(u64, Counted)>, StorageError> {
        match self.docs.get(id.as_bytes())? {
            Some(raw) => Ok(Some((decode_header(&raw)?.0, counted(id, &raw)))),
            None => Ok(None),
        }
    }

    fn stage_meta(&self, batch: &mut fjall::OwnedWriteBatch, etag: u64, tally: &Tally) {
        batch.insert(&self.meta, META_LAST_ETAG, etag.to_be_bytes());
        batch.insert(&self.meta, META_DOC_COUNT, tally.documents.to_be_bytes());
        batch.insert(&self.meta, META_DATA_BYTES, tally.data_bytes.to_be_bytes());
        batch.insert(&self.meta, META_DIGEST, tally.digest.to_bytes());
    }

    fn lock_writer(&self) -> MutexGuard<'_, WriterState> {
        // A panic while holding the lock leaves the state as valid as the last commit.
        self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Group commit: one fsync covers every write committed before it started.
    fn make_durable(&self, etag: u64) -> Result<(), StorageError> {
        if self.durability == Durability::Os || self.synced_etag.load(Ordering::Acquire) >= etag {
            return Ok(());
        }
        let _sync = self.sync_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.synced_etag.load(Ordering::Acquire) >= etag {
            return Ok(());
        }
        let upto = self.committed_etag.load(Ordering::Acquire);
        self.db.persist(PersistMode::SyncData)?;
        self.synced_etag.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }
}

/// What [`DocumentStore::read_back`] found.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadBack {
    /// Documents, server-owned ones included (as `meta`'s count).
    pub documents: u64,
    /// Change-log entries: one per live document.
    pub changes: u64,
    /// The content digest of the documents read.
    pub digest: ContentDigest,
}

/// A point-in-time view of a database, for backups. Hold it only while needed:
/// a held snapshot keeps old versions on disk.
pub struct StoreSnapshot {
    snapshot: fjall::Snapshot,
    docs: Keyspace,
    changes: Keyspace,
    deletions: Keyspace,
    meta: Keyspace,
    internal: Keyspace,
    key: Option<Key>,
}

impl StoreSnapshot {
    /// Server bookkeeping entries whose key starts with `prefix`, as `(key, value)`.
    pub fn internal_with_prefix<'a>(&'a self, prefix: &str) -> impl Iterator<Item = Result<(String, Vec<u8>), StorageError>> + 'a {
        self.snapshot.prefix(&self.internal, prefix.as_bytes()).map(|guard| {
            let (key, value) = guard.into_inner()?;
            Ok((key_to_string(&key)?, value.to_vec()))
        })
    }

    /// The plain body of a raw record of this snapshot (opened when encrypted).
    ///
    /// # Errors
    /// `Locked` without the key, `Crypto` for tampered data.
    pub fn body(&self, id: &str, raw: &[u8]) -> Result<Vec<u8>, StorageError> {
        let body = raw.get(HEADER_LEN..).ok_or_else(|| StorageError::Corrupt("document record".into()))?;
        if flags(raw) & FLAG_ENCRYPTED == 0 {
            return Ok(body.to_vec());
        }
        let key = self.key.as_ref().ok_or_else(|| StorageError::Locked("the master key is missing".into()))?;
        Ok(key.open(id.as_bytes(), body)?)
    }

    /// The newest etag visible in the snapshot.
    ///
    /// # Errors
    /// Storage errors.
    pub fn last_etag(&self) -> Result<u64, StorageError> {
        read_u64(&self.snapshot.get(&self.meta, META_LAST_ETAG)?)
    }

    /// The content digest of the snapshot's documents (see [`super::digest`]).
    ///
    /// # Errors
    /// Storage errors.
    pub fn content_digest(&self) -> Result<ContentDigest, StorageError> {
        let raw = self.snapshot.get(&self.meta, META_DIGEST)?;
        Ok(raw.and_then(|r| ContentDigest::from_bytes(&r)).unwrap_or_default())
    }

    /// The number of documents visible in the snapshot.
    ///
    /// # Errors
    /// Storage errors.
    pub fn document_count(&self) -> Result<u64, StorageError> {
        read_u64(&self.snapshot.get(&self.meta, META_DOC_COUNT)?)
    }

    /// Reads one document's raw record.
    ///
    /// # Errors
    /// Storage errors.
    pub fn get_raw(&self, id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.snapshot.get(&self.docs, id.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Every document as `(id, raw record)`, in id order.
    pub fn documents(&self) -> impl Iterator<Item = Result<(String, Vec<u8>), StorageError>> + '_ {
        self.documents_raw().map(|item| {
            let (key, value) = item?;
            Ok((key_to_string(&key)?, value.to_vec()))
        })
    }

    /// Every document as `(id, raw record)` in id order, in the storage's
    /// own buffers (the id is not checked to be UTF-8).
    pub fn documents_raw(&self) -> impl Iterator<Item = Result<(fjall::UserKey, fjall::UserValue), StorageError>> + '_ {
        self.snapshot.iter(&self.docs).map(|guard| guard.into_inner().map_err(StorageError::from))
    }

    /// [`Self::documents_raw`] for a pass that reads every document once (a
    /// full backup): each table the pass brings into the page cache leaves
    /// it once the pass is beyond its last id, and the rest at the end (see
    /// [`super::drop_behind`]).
    pub fn documents_raw_dropping_behind(&self) -> impl Iterator<Item = Result<(fjall::UserKey, fjall::UserValue), StorageError>> + '_ {
        super::drop_behind::along(self.documents_drop_behind(""), self.documents_raw(), |item| item.as_ref().ok().map(|(id, _)| &id[..]))
    }

    /// Every document from the id `from` on (at or after it), as `(id, raw record)`, in id order.
    pub fn documents_from<'a>(&'a self, from: &str) -> impl Iterator<Item = Result<(String, Vec<u8>), StorageError>> + 'a {
        self.snapshot.range(&self.docs, from.as_bytes().to_vec()..).map(|guard| {
            let (key, value) = guard.into_inner()?;
            Ok((key_to_string(&key)?, value.to_vec()))
        })
    }

    /// Documents whose id starts with `prefix`, as `(id, raw record)`, in id order.
    pub fn documents_with_prefix<'a>(&'a self, prefix: &str) -> impl Iterator<Item = Result<(String, Vec<u8>), StorageError>> + 'a {
        self.snapshot.prefix(&self.docs, prefix.as_bytes()).map(|guard| {
            let (key, value) = guard.into_inner()?;
            Ok((key_to_string(&key)?, value.to_vec()))
        })
    }

    /// The documents' tables that hold ids starting with `prefix`, for a
    /// scan of them in id order to drop behind it (see [`super::drop_behind`]).
    /// They are those of the newest version, a hint: a table compacted away
    /// since the snapshot was taken is skipped.
    #[must_use]
    pub fn documents_drop_behind(&self, prefix: &str) -> super::drop_behind::DropBehind {
        let prefix = prefix.as_bytes();
        let version = self.docs.tree.current_version();
        let tables = version.iter_tables().filter_map(|t| {
            let (first, last) = (t.metadata.key_range.min(), t.metadata.key_range.max());
            super::drop_behind::may_hold_prefix(first, last, prefix).then(|| (t.path.to_path_buf(), last.to_vec()))
        });
        super::drop_behind::DropBehind::new(tables)
    }

    /// Live documents changed after `etag`, as `(etag, id)` in etag order.
    pub fn changes_after(&self, etag: u64) -> impl Iterator<Item = Result<(u64, String), StorageError>> + '_ {
        etag_range(&self.snapshot, &self.changes, etag)
    }

    /// Deletions after `etag`, as `(etag, id)` in etag order.
    pub fn deletions_after(&self, etag: u64) -> impl Iterator<Item = Result<(u64, String), StorageError>> + '_ {
        etag_range(&self.snapshot, &self.deletions, etag)
    }
}

fn etag_range<'a>(
    snapshot: &'a fjall::Snapshot,
    keyspace: &'a Keyspace,
    after: u64,
) -> impl Iterator<Item = Result<(u64, String), StorageError>> + 'a {
    let iter = after.checked_add(1).map(|from| snapshot.range(keyspace, etag_key(from)..));
    iter.into_iter().flatten().map(|guard| {
        let (key, value) = guard.into_inner()?;
        Ok((decode_etag_key(&key)?, key_to_string(&value)?))
    })
}

/// Writes that a restore makes into a database nobody can see yet: bulk
/// ingestion of sorted streams, then etag-preserving batches for incrementals.
pub(crate) struct BulkAccess<'a> {
    store: &'a DocumentStore,
}

impl BulkAccess<'_> {
    /// The documents keyspace, for `start_ingestion` of `(id, raw record)`
    /// pairs in ascending id order.
    pub fn documents(&self) -> &Keyspace {
        &self.store.docs
    }

    /// The change log keyspace, for `start_ingestion` of `(etag key, id)`
    /// pairs in ascending etag order.
    pub fn changes(&self) -> &Keyspace {
        &self.store.changes
    }

    /// Applies one incremental batch: deletions first, then documents with the
    /// etags they had in the source database.
    pub fn apply(&self, deletions: &[String], documents: &[(String, Vec<u8>)]) -> Result<(), StorageError> {
        let store = self.store;
        let mut state = store.lock_writer();
        let mut batch = store.db.batch();
        let mut tally = state.tally;
        // Within one batch, later reads must see earlier writes of the same batch;
        // track the ids removed and added here.
        let mut removed = std::collections::HashSet::new();
        for id in deletions {
            // An id deleted twice after the base set (deleted, re-created,
            // deleted) is in the deletion log twice: count it once.
            if removed.contains(id.as_str()) {
                continue;
            }
            if let Some((old, counted)) = store.current(id)? {
                batch.remove(&store.docs, id.as_bytes());
                batch.remove(&store.changes, etag_key(old));
                tally.change(Some(counted), None);
                removed.insert(id.as_str());
            }
        }
        for (id, raw) in documents {
            let (etag, _) = decode_header(raw)?;
            let existing = if removed.contains(id.as_str()) { None } else { store.current(id)? };
            if let Some((old, _)) = existing {
                batch.remove(&store.changes, etag_key(old));
            }
            tally.change(existing.map(|(_, old)| old), Some(counted(id, raw)));
            batch.insert(&store.docs, id.as_bytes(), raw.clone());
            batch.insert(&store.changes, etag_key(etag), id.as_bytes());
        }
        store.stage_meta(&mut batch, state.last_etag, &tally);
        batch.commit()?;
        state.tally = tally;
        Ok(())
    }

    /// Removes every entry of the server's bookkeeping keyspace (a restored
    /// named database starts with none: no backup tasks of its original).
    pub fn clear_internal(&self) -> Result<u64, StorageError> {
        let keys: Vec<fjall::Slice> = self.store.internal.iter().map(|g| g.key()).collect::<Result<_, _>>()?;
        for key in &keys {
            self.store.internal.remove(key.clone())?;
        }
        Ok(keys.len() as u64)
    }

    /// Gives the database a new id (a restored copy of another database's files).
    pub fn renew_database_id(&self) -> Result<(), StorageError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.store.meta.insert(META_DATABASE_ID, id.as_bytes())?;
        Ok(())
    }

    /// Sets the counters (documents, data bytes and digest, when given) once
    /// everything is loaded, and syncs to disk.
    pub fn finish(&self, last_etag: u64, counts: Option<Tally>) -> Result<(), StorageError> {
        let store = self.store;
        let mut state = store.lock_writer();
        let tally = counts.unwrap_or(state.tally);
        let mut batch = store.db.batch();
        store.stage_meta(&mut batch, last_etag, &tally);
        batch.commit()?;
        store.db.persist(PersistMode::SyncAll)?;
        state.last_etag = last_etag;
        state.tally = tally;
        store.committed_etag.store(last_etag, Ordering::Release);
        store.synced_etag.store(last_etag, Ordering::Release);
        Ok(())
    }
}

/// Checks a document id: non-empty UTF-8 of at most [`MAX_ID_BYTES`] bytes.
///
/// # Errors
/// `InvalidId` with the reason.
pub fn validate_id(id: &str) -> Result<(), StorageError> {
    if id.is_empty() {
        return Err(StorageError::InvalidId("a document id must not be empty".into()));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(StorageError::InvalidId(format!("a document id is at most {MAX_ID_BYTES} bytes; this one has {}", id.len())));
    }
    Ok(())
}

/// What a write expects of the document's current state.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Any,
    Etag(u64),
    Absent,
}

/// Checks an id a client writes: valid, and not server-owned.
///
/// # Errors
/// `InvalidId`, `ReservedDocument`.
pub fn validate_client_id(id: &str) -> Result<(), StorageError> {
    validate_id(id)?;
    if rookery_types::is_server_owned(id) {
        return Err(StorageError::ReservedDocument(id.to_string()));
    }
    Ok(())
}

fn check_if_match(expected: Option<u64>, actual: Option<u64>) -> Result<(), StorageError> {
    match expected {
        Some(e) if actual != Some(e) => Err(StorageError::ConcurrencyConflict { expected: e, actual }),
        _ => Ok(()),
    }
}

fn read_u64(raw: &Option<fjall::Slice>) -> Result<u64, StorageError> {
    match raw {
        None => Ok(0),
        Some(v) => Ok(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StorageError::Corrupt("meta counter".into()))?)),
    }
}

fn key_to_string(key: &[u8]) -> Result<String, StorageError> {
    id_str(key).map(str::to_owned)
}

/// A stored document id as text.
///
/// # Errors
/// `Corrupt` when it is not UTF-8.
pub fn id_str(key: &[u8]) -> Result<&str, StorageError> {
    std::str::from_utf8(key).map_err(|_| StorageError::Corrupt("document id is not UTF-8".into()))
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A store on a temp dir, for unit tests of this crate.
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, DocumentStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DocumentStore::open(dir.path(), Durability::Os).expect("opens");
    (dir, store)
}

#[cfg(test)]
mod tests {
    use super::temp_store as store;
    use super::*;

    /// CPU time (ns) of each of this process's fjall workers, by thread id.
    fn fjall_worker_cpu() -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for task in std::fs::read_dir("/proc/self/task").expect("lists threads").flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim() == "fjall:worker" {
                let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
                let ns = stat.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                out.insert(task.file_name().to_string_lossy().to_string(), ns);
            }
        }
        out
    }

    /// The CPU time (ns) fjall's workers spend on twelve flushes of one
    /// keyspace and the compactions they start, in a database opened by `open`.
    fn compaction_workload(open: impl Fn(&Path) -> fjall::DatabaseBuilder<Database>) -> u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = fjall_worker_cpu();
        let db = open(dir.path()).open().expect("opens");
        let ks = db.keyspace("docs", KeyspaceCreateOptions::default).expect("a keyspace");
        // Each flush hands a compaction of the keyspace to every worker;
        // one compaction of a keyspace runs at a time.
        let body = vec![b'x'; 1024];
        for round in 0..12u32 {
            for i in 0..3000u32 {
                ks.insert(format!("{i:08}-{round:02}"), &body).expect("inserts");
            }
            ks.rotate_memtable_and_wait().expect("flushes");
        }
        let mut quiet = 0;
        while quiet < 20 {
            quiet = if db.active_compactions() == 0 { quiet + 1 } else { 0 };
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let after = fjall_worker_cpu();
        after.iter().map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0))).sum()
    }

    /// Runs in a process of its own (the test starts itself again with
    /// `ROOKERY_FJALL_PROBE`), so that no other test's database has workers.
    #[test]
    fn fjall_workers_wait_while_another_compacts_instead_of_spinning() {
        if std::env::var_os("ROOKERY_FJALL_PROBE").is_none() {
            let name = "storage::store::tests::fjall_workers_wait_while_another_compacts_instead_of_spinning";
            let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
                .args([name, "--exact", "--nocapture", "--test-threads=1"])
                .env("ROOKERY_FJALL_PROBE", "1")
                .output()
                .expect("runs");
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success() && text.contains("1 passed"), "{text}");
            println!("{}", text.lines().filter(|l| l.contains("CPU of")).collect::<Vec<_>>().join("\n"));
            return;
        }
        // The same flushes and compactions with one worker (which cannot
        // spin: it does every task itself), then as every database opens;
        // each the least of two runs, since the other unit tests share the
        // cores meanwhile (a rehearsal of CI saw one pool run at 1.53x).
        let least = |open: &dyn Fn(&Path) -> fjall::DatabaseBuilder<Database>| compaction_workload(open).min(compaction_workload(open));
        let alone = least(&|path| database_builder(path).worker_threads(1));
        let pool = least(&database_builder);
        println!("CPU of fjall's workers: {} ms with one worker, {} ms with {FJALL_WORKERS}", alone / 1_000_000, pool / 1_000_000);
        assert!(alone >= 50_000_000, "too little work to see anything: {alone} ns");
        assert!(pool < alone + alone / 2, "the pool spent {pool} ns where one worker spent {alone}: a worker spins while another compacts");
    }

    #[test]
    fn put_get_delete_with_increasing_etags() {
        let (_dir, store) = store();
        let a = store.put("users/1", br#"{"n":1}"#, None).expect("put");
        assert!(a.created);
        let b = store.put("users/1", br#"{"n":2}"#, None).expect("put");
        assert!(!b.created);
        assert!(b.etag > a.etag);
        assert_eq!(store.get("users/1").expect("get").expect("exists").body, br#"{"n":2}"#);
        assert_eq!(store.document_count(), 1);
        let d = store.delete("users/1", None).expect("delete");
        assert!(d > b.etag);
        assert!(store.get("users/1").expect("get").is_none());
        assert_eq!(store.document_count(), 0);
        assert!(matches!(store.delete("users/1", None), Err(StorageError::NotFound)));
    }

    #[test]
    fn a_client_s_write_marks_the_foreground_busy_and_the_server_s_own_does_not() {
        let (_dir, store) = store();
        let foreground = store.foreground();
        let hour = std::time::Duration::from_secs(3600);
        assert!(!foreground.wrote_within(hour), "no write yet");
        store.put_server_owned("Raven/Backup/Status", b"{}").expect("a status document");
        assert!(!foreground.wrote_within(hour), "a job's own status is not a client's write");
        assert_eq!(foreground.written(), 0, "nor are its bytes");
        store.put("a", b"{}", None).expect("put");
        assert!(foreground.wrote_within(hour));
        assert!(!foreground.wrote_within(std::time::Duration::ZERO), "nothing is within no time");
        store.delete("a", None).expect("delete");
        assert_eq!(foreground.written(), 4, "the id and body of the put, the id of the delete");
    }

    #[test]
    fn if_match_conflicts() {
        let (_dir, store) = store();
        let a = store.put("a", b"{}", None).expect("put");
        assert!(matches!(store.put("a", b"{}", Some(a.etag + 5)), Err(StorageError::ConcurrencyConflict { .. })));
        assert!(store.put("a", b"{}", Some(a.etag)).is_ok());
        assert!(matches!(store.put("new", b"{}", Some(1)), Err(StorageError::ConcurrencyConflict { .. })));
    }

    #[test]
    fn change_log_holds_latest_etag_per_live_document() {
        let (_dir, store) = store();
        store.put("a", b"{}", None).expect("put");
        let b1 = store.put("b", b"{}", None).expect("put");
        store.put("a", b"{}", None).expect("put");
        store.delete("b", None).expect("delete");
        let snap = store.snapshot();
        let changes: Vec<_> = snap.changes_after(0).map(|r| r.expect("reads")).collect();
        assert_eq!(changes, vec![(3, "a".to_string())]);
        let deletions: Vec<_> = snap.deletions_after(b1.etag).map(|r| r.expect("reads")).collect();
        assert_eq!(deletions, vec![(4, "b".to_string())]);
        assert_eq!(snap.last_etag().expect("meta"), 4);
    }

    #[test]
    fn snapshot_is_point_in_time() {
        let (_dir, store) = store();
        store.put("a", br#"{"v":1}"#, None).expect("put");
        let snap = store.snapshot();
        store.put("a", br#"{"v":2}"#, None).expect("put");
        store.put("b", b"{}", None).expect("put");
        let docs: Vec<_> = snap.documents().map(|r| r.expect("reads")).collect();
        assert_eq!(docs.len(), 1);
        assert_eq!(Record::decode(&docs[0].1).expect("decodes").body, br#"{"v":1}"#);
        assert_eq!(snap.document_count().expect("meta"), 1);
    }

    #[test]
    fn etags_and_counts_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = {
            let store = DocumentStore::open(dir.path(), Durability::Fsync).expect("opens");
            store.put("a", b"{}", None).expect("put");
            store.put("b", b"{}", None).expect("put");
            store.database_id().to_string()
        };
        let store = DocumentStore::open(dir.path(), Durability::Fsync).expect("reopens");
        assert_eq!(store.last_etag(), 2);
        assert_eq!(store.document_count(), 2);
        assert_eq!(store.database_id(), id);
        assert_eq!(store.put("c", b"{}", None).expect("put").etag, 3);
    }

    /// Every kind of write keeps the tally (count, bytes, digest) equal to
    /// a recount of the documents, in memory and in `meta` after a reopen.
    #[test]
    fn every_kind_of_write_keeps_the_tally_equal_to_a_recount() {
        let dir = tempfile::tempdir().expect("tempdir");
        let recount = |store: &DocumentStore| {
            let read = store.read_back(DigestKind::Xxh3).expect("reads back");
            let mut bytes = 0;
            for guard in store.docs.iter() {
                let (key, value) = guard.into_inner().expect("reads");
                bytes += (key.len() + value.len()) as u64;
            }
            (read.documents, bytes, read.digest)
        };
        let tally = |store: &DocumentStore| (store.document_count(), store.data_bytes(), store.content_digest());
        let written = {
            let store = DocumentStore::open(dir.path(), Durability::Fsync).expect("opens");
            store.put("a", br#"{"v":1}"#, None).expect("put");
            store.put("b", br#"{"v":2}"#, None).expect("put");
            store.put("a", br#"{"v":"longer than before"}"#, None).expect("overwrite");
            store.create("c", br#"{"v":3}"#).expect("create");
            store.put_server_owned("Raven/status", br#"{"state":"running"}"#).expect("the server's own");
            store.delete("b", None).expect("delete");
            let batch =
                |docs: &[(&str, &str)]| docs.iter().map(|(id, body)| (id.to_string(), body.as_bytes().to_vec())).collect::<Vec<_>>();
            store.put_many(&batch(&[("d", "{}"), ("e", "{}"), ("d", r#"{"again":true}"#), ("a", "[]")]), true).expect("put_many");
            assert_eq!(store.put_many(&batch(&[("e", r#"{"skipped":1}"#), ("f", "{}")]), false).expect("put_many"), (1, 1));
            store.delete("Raven/status", None).expect_err("the server's own is not a client's to delete");
            assert_eq!(tally(&store), recount(&store));
            assert_eq!(store.document_count(), 6, "a, c, d, e, f and the server's own");
            tally(&store)
        };
        let store = DocumentStore::open(dir.path(), Durability::Fsync).expect("reopens");
        assert_eq!(tally(&store), written, "the tally kept in meta");
        assert_eq!(tally(&store), recount(&store));
    }

    #[test]
    fn listing_pages_by_prefix() {
        let (_dir, store) = store();
        for i in 0..10 {
            store.put(&format!("users/{i}"), b"{}", None).expect("put");
        }
        store.put("orders/1", b"{}", None).expect("put");
        let (page, total) = store.list("users/", 2, 3).expect("lists");
        assert_eq!(total, 10);
        let ids: Vec<_> = page.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["users/2", "users/3", "users/4"]);
        let (page, total) = store.list("", 0, 5).expect("lists");
        assert_eq!((page.len(), total), (5, 11));
    }

    /// The documents keyspace is read in 32 KiB blocks, one `pread` each: a
    /// scan of 2 MB of documents from a fresh open (no block cached) takes
    /// about 64 reads, where fjall's default 4 KiB blocks took over 500.
    #[test]
    fn documents_are_read_in_blocks_of_32_kib() {
        /// Read system calls made by this thread so far.
        fn reads_by_this_thread() -> u64 {
            let io = std::fs::read_to_string("/proc/thread-self/io").expect("per-thread I/O counters");
            io.lines().find_map(|l| l.strip_prefix("syscr: ")).expect("syscr").trim().parse().expect("a count")
        }
        let (dir, store) = store();
        let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000));
        for i in 0..2000 {
            store.put(&format!("docs/{i:05}"), body.as_bytes(), None).expect("put");
        }
        store.flush_memtables().expect("flushes");
        drop(store);
        let store = DocumentStore::open(dir.path(), Durability::Os).expect("reopens");
        let before = reads_by_this_thread();
        store.content_digest_of(DigestKind::Xxh3).expect("scans");
        let reads = reads_by_this_thread() - before;
        assert!(reads < 200, "{reads} reads to scan 2 MB of documents: blocks of 4 KiB again?");
        assert_eq!(store.content_digest_of(DigestKind::Xxh3).expect("scans"), store.content_digest());
    }

    #[test]
    fn ids_are_validated() {
        let (_dir, store) = store();
        assert!(matches!(store.put("", b"{}", None), Err(StorageError::InvalidId(_))));
        assert!(matches!(store.put(&"x".repeat(513), b"{}", None), Err(StorageError::InvalidId(_))));
        assert!(store.put(&"x".repeat(512), b"{}", None).is_ok());
    }
}
