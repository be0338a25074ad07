//! Step 2 of a compaction: what the incrementals changed, sorted on local
//! disk by id (a throw-away `fjall` keyspace), bodies in a spill file; and
//! for step 4, the live documents written out, by etag ([`LiveLog`]: in
//! memory while they are few; past that, in runs sorted in memory and
//! written to the scratch folder, merged when they are read back).

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
    /// Runs of (etag, id) marks of the live documents written out, each
    /// sorted by etag, for what [`Held`] did not keep in memory.
    runs: std::sync::Arc<Runs>,
    /// The marks a [`LiveLog`] finished with in memory.
    held: std::sync::Arc<std::sync::Mutex<Held>>,
}

/// The files of sorted runs of marks, in the scratch folder.
struct Runs {
    dir: std::path::PathBuf,
    files: std::sync::Mutex<Vec<std::path::PathBuf>>,
}

impl Runs {
    /// Writes `held`'s marks, sorted by etag, as a run of its own:
    /// `etag (u64 BE) ‖ id length (u32 BE) ‖ id`, one after another.
    fn write(&self, held: Held) -> Result<(), BackupError> {
        let mut files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = self.dir.join(format!("marks-{:04}", files.len()));
        let file = std::fs::File::options()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| index_error(format!("cannot create a run of marks: {e}")))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        for (etag, id) in held.by_etag() {
            let len = u32::try_from(id.len()).map_err(|_| index_error("an id longer than 4 GiB"))?;
            for part in [&etag.to_be_bytes()[..], &len.to_be_bytes()[..], id.as_bytes()] {
                std::io::Write::write_all(&mut out, part).map_err(index_error)?;
            }
        }
        std::io::Write::flush(&mut out).map_err(index_error)?;
        files.push(path);
        Ok(())
    }

    /// Each run, read back in etag order.
    fn readers(&self) -> Result<Vec<RunReader>, BackupError> {
        let files = self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        files
            .iter()
            .map(|path| {
                let file = std::fs::File::open(path).map_err(|e| index_error(format!("cannot open a run of marks: {e}")))?;
                Ok(RunReader(std::io::BufReader::with_capacity(256 * 1024, file)))
            })
            .collect()
    }
}

/// The marks of one run, in the order written (by etag).
struct RunReader(std::io::BufReader<std::fs::File>);

impl RunReader {
    fn read_mark(&mut self) -> Result<Option<(u64, String)>, BackupError> {
        use std::io::{BufRead, Read};
        if self.0.fill_buf().map_err(index_error)?.is_empty() {
            return Ok(None);
        }
        let mut head = [0u8; 12];
        self.0.read_exact(&mut head).map_err(index_error)?;
        let (etag, len) = head.split_at(8);
        let etag = u64::from_be_bytes(etag.try_into().map_err(index_error)?);
        let len = u32::from_be_bytes(len.try_into().map_err(index_error)?) as usize;
        let mut id = vec![0u8; len];
        self.0.read_exact(&mut id).map_err(index_error)?;
        Ok(Some((etag, String::from_utf8(id).map_err(index_error)?)))
    }
}

impl Iterator for RunReader {
    type Item = Result<(u64, String), BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_mark().transpose()
    }
}

/// Marks a [`LiveLog`] keeps in memory (sorted by etag at the end) before
/// it writes them as a run: a chain's restore or compaction whose
/// incrementals changed fewer documents never writes a mark to disk.
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
            runs: std::sync::Arc::new(Runs { dir: dir.to_path_buf(), files: std::sync::Mutex::default() }),
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
        LiveLog { max_held, runs: self.runs.clone(), held: Held::default(), finished: self.held.clone() }
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
    /// with the runs written. The ones in memory are handed over: a second
    /// call yields only the runs'.
    ///
    /// # Errors
    /// A run cannot be opened.
    pub(crate) fn take_live_by_etag(&self) -> Result<ByEtag, BackupError> {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut sources: Vec<MarkRun> = self.runs.readers()?.into_iter().map(|r| Box::new(r) as MarkRun).collect();
        sources.push(Box::new(held.into_by_etag().map(Ok)));
        Ok(ByEtag::new(sources))
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

    /// The order of the marks by etag.
    fn etag_order(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..u32::try_from(self.etags.len()).unwrap_or(u32::MAX)).collect();
        order.sort_unstable_by_key(|&i| self.etags[i as usize]);
        order
    }

    /// The marks in etag order, borrowed.
    fn by_etag(&self) -> impl Iterator<Item = (u64, &str)> {
        self.etag_order().into_iter().map(move |i| (self.etags[i as usize], self.id(i as usize)))
    }

    /// The marks in etag order.
    fn into_by_etag(self) -> impl Iterator<Item = (u64, String)> {
        let order = self.etag_order();
        order.into_iter().map(move |i| (self.etags[i as usize], self.id(i as usize).to_string()))
    }
}

/// A run of marks in etag order.
type MarkRun = Box<dyn Iterator<Item = Result<(u64, String), BackupError>>>;

/// Runs of marks, each in etag order, merged into one (a mark is in one of
/// them): the smallest etag at the head of a run comes next.
pub(crate) struct ByEtag {
    sources: Vec<MarkRun>,
    /// The head mark of each source, by etag (smallest first), with its source.
    heads: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize, String)>>,
    /// A failure read at the head of a source: the merge ends with it.
    failed: Option<BackupError>,
}

impl ByEtag {
    fn new(sources: Vec<MarkRun>) -> Self {
        let mut merge = Self { sources, heads: std::collections::BinaryHeap::new(), failed: None };
        for source in 0..merge.sources.len() {
            merge.advance(source);
        }
        merge
    }

    /// Reads the next head of `source`.
    fn advance(&mut self, source: usize) {
        match self.sources[source].next() {
            Some(Ok((etag, id))) => self.heads.push(std::cmp::Reverse((etag, source, id))),
            Some(Err(e)) => {
                self.failed.get_or_insert(e);
            }
            None => {}
        }
    }
}

impl Iterator for ByEtag {
    type Item = Result<(u64, String), BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.heads.clear();
            return Some(Err(e));
        }
        let std::cmp::Reverse((etag, source, id)) = self.heads.pop()?;
        self.advance(source);
        Some(Ok((etag, id)))
    }
}

/// Records the documents written from the incrementals, by etag (see
/// [`ChangeIndex::live_log`]): in memory up to [`MAX_HELD_MARKS`]; each
/// time that many are held, they are sorted and written as a run.
pub(crate) struct LiveLog {
    max_held: usize,
    runs: std::sync::Arc<Runs>,
    held: Held,
    finished: std::sync::Arc<std::sync::Mutex<Held>>,
}

impl LiveLog {
    /// `id` is written out with `etag`.
    pub(super) fn mark(&mut self, id: &str, etag: u64) -> Result<(), BackupError> {
        self.held.push(etag, id);
        if self.held.is_full(self.max_held) {
            self.runs.write(std::mem::take(&mut self.held))?;
        }
        Ok(())
    }

    /// Hands what is held to the index.
    pub(super) fn finish(&mut self) -> Result<(), BackupError> {
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
            let on_disk: usize = index.runs.readers().expect("runs").into_iter().map(Iterator::count).sum();
            let spilled = if max_held < split { split / max_held * max_held } else { 0 };
            assert_eq!(on_disk, spilled, "limit {max_held}: only a log past its limit writes, a run each time it is full");
            let read: Vec<(u64, String)> = index.take_live_by_etag().expect("runs").map(|r| r.expect("a mark")).collect();
            assert_eq!(read, expected, "limit {max_held}, {split} marks in the first log");
            let again = index.take_live_by_etag().expect("runs").count();
            assert_eq!(again, on_disk, "what was held is handed over once");
        }
    }
}
