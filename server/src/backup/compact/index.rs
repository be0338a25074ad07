//! Step 2 of a compaction: what the incrementals changed, sorted on local
//! disk by id (a throw-away `fjall` keyspace), bodies in a spill file; and
//! for step 4, the live documents written out, by etag ([`LiveLog`]: in
//! memory while they are few, in the same keyspace's database past that).

use super::super::format::{DataRecord, FileContent};
use super::super::BackupError;
use crate::jobs::CancelToken;
use crate::restore::error::RestoreError;
use crate::restore::read::{read_file, Source};

/// A document's state at the chain's end, for an id an incremental touched.
pub(crate) enum State {
    Document { etag: u64, modified_ms: i64, body: Vec<u8> },
    Deleted,
}

/// An index entry: a tombstone, or where the document's body is in the spill
/// file, so that the sorted index itself stays small (about 30 bytes an id).
fn encode_entry(state: &Entry) -> Vec<u8> {
    match state {
        Entry::Deleted => vec![b'X'],
        Entry::Document { etag, modified_ms, offset, len } => {
            let mut out = Vec::with_capacity(29);
            out.push(b'D');
            out.extend_from_slice(&etag.to_be_bytes());
            out.extend_from_slice(&modified_ms.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out
        }
    }
}

enum Entry {
    Document { etag: u64, modified_ms: i64, offset: u64, len: u32 },
    Deleted,
}

fn decode_entry(raw: &[u8]) -> Result<Entry, String> {
    let u64_at = |at: usize| raw.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    match raw.first() {
        Some(b'X') => Ok(Entry::Deleted),
        Some(b'D') if raw.len() == 29 => {
            let damaged = || "a damaged entry in the compaction index".to_string();
            let len = raw.get(25..29).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).ok_or_else(damaged)?;
            Ok(Entry::Document {
                etag: u64_at(1).ok_or_else(damaged)?,
                modified_ms: u64_at(9).map(|v| v as i64).ok_or_else(damaged)?,
                offset: u64_at(17).ok_or_else(damaged)?,
                len,
            })
        }
        _ => Err("a damaged entry in the compaction index".into()),
    }
}

/// What the incrementals changed, sorted on local disk (step 2).
pub(crate) struct ChangeIndex {
    db: fjall::Database,
    /// The bodies of the incrementals' documents, appended as they come.
    spill: std::cell::RefCell<std::io::BufWriter<std::fs::File>>,
    spilled: std::cell::Cell<u64>,
    /// id -> state at the chain's end.
    states: fjall::Keyspace,
    /// etag (big-endian) -> id, for the live documents written out, past
    /// what [`Held`] keeps in memory.
    live: fjall::Keyspace,
    /// The marks a [`LiveLog`] finished with in memory.
    held: std::sync::Arc<std::sync::Mutex<Held>>,
}

/// Marks a [`LiveLog`] keeps in memory (sorted by etag at the end) before
/// it writes any to the keyspace: a chain's restore or compaction whose
/// incrementals changed fewer documents never writes the index to disk.
const MAX_HELD_MARKS: usize = 500_000;
/// Bytes of ids kept in memory at most (ids may be up to 512 bytes).
const MAX_HELD_ID_BYTES: usize = 12 * 1024 * 1024;

/// Bytes of index entries written per batch.
const INDEX_BATCH_BYTES: usize = 8 * 1024 * 1024;

fn index_error(e: impl std::fmt::Display) -> BackupError {
    BackupError::Io(format!("compaction index: {e}"))
}

impl ChangeIndex {
    pub(crate) fn open(dir: &std::path::Path) -> Result<Self, BackupError> {
        #[allow(deprecated)] // as in the store: the setter is marked "todo", not replaced.
        let db = fjall::Database::builder(dir.join("index"))
            .cache_size(8 * 1024 * 1024)
            .max_write_buffer_size(Some(16 * 1024 * 1024))
            .max_journaling_size(64 * 1024 * 1024)
            // A throw-away index: nothing is ever recovered from its journal.
            .manual_journal_persist(true)
            .journal_compression(fjall::CompressionType::None)
            .open()
            .map_err(index_error)?;
        let options = || fjall::KeyspaceCreateOptions::default().max_memtable_size(8 * 1024 * 1024);
        let states = db.keyspace("states", options).map_err(index_error)?;
        let live = db.keyspace("live", options).map_err(index_error)?;
        let spill = std::fs::File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(dir.join("bodies"))
            .map_err(|e| index_error(format!("cannot create the spill file: {e}")))?;
        Ok(Self {
            db,
            spill: std::cell::RefCell::new(std::io::BufWriter::with_capacity(1 << 20, spill)),
            spilled: std::cell::Cell::new(0),
            states,
            live,
            held: std::sync::Arc::default(),
        })
    }

    /// One incremental: its deletions, then its documents (as a restore applies them).
    pub(super) fn replay(&self, source: &Source<'_>, cancel: &CancelToken) -> Result<(), BackupError> {
        let set = source.set;
        // Written in batches: one journal write per batch, not per record.
        let mut batch = self.db.batch();
        let mut batched = 0usize;
        for content in [FileContent::Deletions, FileContent::Documents] {
            for file in set.manifest.files.iter().filter(|f| f.content == content) {
                read_file(source, &file.name, &file.sha256, &mut |record| {
                    if cancel.is_canceled() {
                        return Err(RestoreError::Canceled);
                    }
                    let (id, entry) = match record {
                        DataRecord::Deletion { id, .. } if content == FileContent::Deletions => (id, Entry::Deleted),
                        DataRecord::Document { id, etag, modified_ms, body } if content == FileContent::Documents => {
                            let offset = self.spilled.get();
                            let len = u32::try_from(body.len()).map_err(|_| index_error("a body larger than 4 GiB"))?;
                            std::io::Write::write_all(&mut *self.spill.borrow_mut(), &body).map_err(index_error)?;
                            self.spilled.set(offset + u64::from(len));
                            (id, Entry::Document { etag, modified_ms, offset, len })
                        }
                        _ => {
                            return Err(
                                BackupError::Corrupt(format!("{}/{}: a record of the wrong kind", set.manifest.set_id, file.name)).into()
                            )
                        }
                    };
                    let encoded = encode_entry(&entry);
                    batched += id.len() + encoded.len();
                    batch.insert(&self.states, id.into_bytes(), encoded);
                    if batched >= INDEX_BATCH_BYTES {
                        std::mem::replace(&mut batch, self.db.batch()).commit().map_err(index_error)?;
                        batched = 0;
                    }
                    Ok(())
                })?;
            }
        }
        batch.commit().map_err(index_error)
    }

    /// A writer of the live documents' (etag, id) for [`Self::take_live_by_etag`],
    /// to be used on any thread, one at a time.
    pub(crate) fn live_log(&self) -> LiveLog {
        self.live_log_holding(MAX_HELD_MARKS)
    }

    /// A [`LiveLog`] that keeps up to `max_held` marks in memory.
    fn live_log_holding(&self, max_held: usize) -> LiveLog {
        LiveLog {
            max_held,
            db: self.db.clone(),
            live: self.live.clone(),
            batch: self.db.batch(),
            bytes: 0,
            held: Held::default(),
            spilled: false,
            finished: self.held.clone(),
        }
    }

    /// Every touched id in id order with its state, bodies read back from the spill file.
    pub(super) fn documents_in_order(&self) -> Result<impl Iterator<Item = Result<(String, State), String>> + '_, BackupError> {
        std::io::Write::flush(&mut *self.spill.borrow_mut()).map_err(index_error)?;
        let file = self.spill.borrow().get_ref().try_clone().map_err(index_error)?;
        Ok(self.states.iter().map(move |guard| {
            let (key, value) = guard.into_inner().map_err(|e| e.to_string())?;
            let id = String::from_utf8(key.to_vec()).map_err(|e| e.to_string())?;
            let state = match decode_entry(&value)? {
                Entry::Deleted => State::Deleted,
                Entry::Document { etag, modified_ms, offset, len } => {
                    let mut body = vec![0u8; len as usize];
                    std::os::unix::fs::FileExt::read_exact_at(&file, &mut body, offset).map_err(|e| e.to_string())?;
                    State::Document { etag, modified_ms, body }
                }
            };
            Ok((id, state))
        }))
    }

    /// Every mark of the [`LiveLog`]s, by etag: those kept in memory merged
    /// with those in the keyspace. The ones in memory are handed over: a
    /// second call yields only the keyspace's.
    pub(crate) fn take_live_by_etag(&self) -> impl Iterator<Item = Result<(u64, String), BackupError>> + '_ {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let stored = self.live.iter().map(|guard| {
            let (key, value) = guard.into_inner().map_err(index_error)?;
            let etag = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| index_error("an etag key"))?);
            Ok((etag, String::from_utf8(value.to_vec()).map_err(index_error)?))
        });
        ByEtag { held: held.into_by_etag().peekable(), stored: stored.peekable() }
    }
}

/// (etag, id) marks in memory: the ids end to end in one string.
#[derive(Default)]
struct Held {
    etags: Vec<u64>,
    ends: Vec<u32>,
    ids: String,
}

impl Held {
    fn push(&mut self, etag: u64, id: &str) {
        self.ids.push_str(id);
        self.etags.push(etag);
        self.ends.push(u32::try_from(self.ids.len()).unwrap_or(u32::MAX));
    }

    fn is_full(&self, max_marks: usize) -> bool {
        self.etags.len() >= max_marks || self.ids.len() >= MAX_HELD_ID_BYTES
    }

    /// The `i`-th mark's id.
    fn id(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |before| self.ends[before] as usize);
        &self.ids[start..self.ends[i] as usize]
    }

    /// Every mark, in the order given.
    fn marks(&self) -> impl Iterator<Item = (u64, &str)> {
        (0..self.etags.len()).map(|i| (self.etags[i], self.id(i)))
    }

    fn append(&mut self, other: &Held) {
        for (etag, id) in other.marks() {
            self.push(etag, id);
        }
    }

    /// The marks in etag order.
    fn into_by_etag(self) -> impl Iterator<Item = (u64, String)> {
        let mut order: Vec<u32> = (0..u32::try_from(self.etags.len()).unwrap_or(u32::MAX)).collect();
        order.sort_unstable_by_key(|&i| self.etags[i as usize]);
        order.into_iter().map(move |i| (self.etags[i as usize], self.id(i as usize).to_string()))
    }
}

/// Two runs of marks in etag order, merged (a mark is in one of them).
struct ByEtag<H: Iterator<Item = (u64, String)>, S: Iterator<Item = Result<(u64, String), BackupError>>> {
    held: std::iter::Peekable<H>,
    stored: std::iter::Peekable<S>,
}

impl<H: Iterator<Item = (u64, String)>, S: Iterator<Item = Result<(u64, String), BackupError>>> Iterator for ByEtag<H, S> {
    type Item = Result<(u64, String), BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        let stored_first = match (self.held.peek(), self.stored.peek()) {
            (_, Some(Err(_))) | (None, Some(_)) => true,
            (Some((held, _)), Some(Ok((stored, _)))) => stored < held,
            (_, None) => false,
        };
        if stored_first {
            self.stored.next()
        } else {
            self.held.next().map(Ok)
        }
    }
}

/// Records the documents written from the incrementals, by etag (see
/// [`ChangeIndex::live_log`]): in memory up to [`MAX_HELD_MARKS`], then
/// every mark in the keyspace.
pub(crate) struct LiveLog {
    max_held: usize,
    db: fjall::Database,
    live: fjall::Keyspace,
    batch: fjall::OwnedWriteBatch,
    bytes: usize,
    held: Held,
    spilled: bool,
    finished: std::sync::Arc<std::sync::Mutex<Held>>,
}

impl LiveLog {
    /// `id` is written out with `etag`.
    pub(super) fn mark(&mut self, id: &str, etag: u64) -> Result<(), BackupError> {
        if !self.spilled {
            self.held.push(etag, id);
            if !self.held.is_full(self.max_held) {
                return Ok(());
            }
            // Too many to keep: these and every mark after go to the keyspace.
            self.spilled = true;
            for (etag, id) in std::mem::take(&mut self.held).marks() {
                self.insert(id, etag)?;
            }
            return Ok(());
        }
        self.insert(id, etag)
    }

    fn insert(&mut self, id: &str, etag: u64) -> Result<(), BackupError> {
        self.batch.insert(&self.live, etag.to_be_bytes(), id.as_bytes());
        self.bytes += 8 + id.len();
        if self.bytes >= INDEX_BATCH_BYTES {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), BackupError> {
        self.bytes = 0;
        std::mem::replace(&mut self.batch, self.db.batch()).commit().map_err(index_error)
    }

    /// Commits what is marked, and hands what is held to the index.
    pub(super) fn finish(&mut self) -> Result<(), BackupError> {
        self.commit()?;
        let held = std::mem::take(&mut self.held);
        let mut finished = self.finished.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if finished.etags.is_empty() {
            *finished = held;
        } else {
            finished.append(&held);
        }
        Ok(())
    }
}

/// The states of `inner`, every document among them marked in a [`LiveLog`]
/// (every document state is written out), the log committed at the end.
pub(crate) struct Marked<I> {
    inner: I,
    log: Option<LiveLog>,
}

impl<I> Marked<I> {
    pub(crate) fn new(inner: I, log: LiveLog) -> Self {
        Self { inner, log: Some(log) }
    }
}

impl<I: Iterator<Item = Result<(String, State), BackupError>>> Iterator for Marked<I> {
    type Item = Result<(String, State), BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(item) = self.inner.next() else {
            return self.log.take().and_then(|mut log| log.finish().err()).map(Err);
        };
        if let (Ok((id, State::Document { etag, .. })), Some(log)) = (&item, self.log.as_mut()) {
            if let Err(e) = log.mark(id, *etag) {
                return Some(Err(e));
            }
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks come in id order with their etags in any order: whether a log
    /// keeps them in memory, spills them past its limit, or two logs do one
    /// of each, they read back once, every one, in etag order.
    #[test]
    fn marks_read_back_in_etag_order_whether_held_or_spilled() {
        let mark_all = |log: &mut LiveLog, marks: &[(u64, String)]| {
            for (etag, id) in marks {
                log.mark(id, *etag).expect("marks");
            }
            log.finish().expect("finishes");
        };
        // Etags scattered over ids (a multiplicative permutation of 0..1000).
        let marks: Vec<(u64, String)> = (0..1000u64).map(|i| ((i * 7919) % 1000 + 1, format!("d/{i:04}"))).collect();
        let mut expected = marks.clone();
        expected.sort_unstable();
        for (max_held, split) in [(5000, 1000), (100, 1000), (5000, 400), (100, 400)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let index = ChangeIndex::open(dir.path()).expect("opens");
            let (first, second) = marks.split_at(split);
            mark_all(&mut index.live_log_holding(max_held), first);
            mark_all(&mut index.live_log_holding(5000), second);
            let on_disk = index.live.iter().count();
            assert_eq!(on_disk, if max_held < split { split } else { 0 }, "limit {max_held}: only a log past its limit writes");
            let read: Vec<(u64, String)> = index.take_live_by_etag().map(|r| r.expect("a mark")).collect();
            assert_eq!(read, expected, "limit {max_held}, {split} marks in the first log");
            let again = index.take_live_by_etag().count();
            assert_eq!(again, on_disk, "what was held is handed over once");
        }
    }
}
