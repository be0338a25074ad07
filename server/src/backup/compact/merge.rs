//! Step 3 of a compaction: the full set's documents merged with what the
//! incrementals changed, in id order, copying whole the frames no
//! incremental touched.
//!
//! A documents file of format 4 and later is a run of independent zstd
//! frames with an id index (`backup/frames.rs`). For each frame the index
//! gives its ids; when the change index holds no id between the frame's
//! first and last, nothing in the frame changed, and its compressed bytes go
//! into the new set as they are, with its index entries and its SHA-256 from
//! the top. A frame an incremental touched is merged entry by entry from its
//! index (each entry's id and etag): it is decompressed only when one of its
//! documents stands (none of a frame whose documents the incrementals all
//! replaced is kept, so nothing of it is decoded), and each record kept must
//! be the one its entry names. A file without an index (format 3 and
//! before) is merged record by record.
//!
//! Every byte of every input file is hashed as it streams and checked
//! against the manifest at the file's end, so a file changed since the
//! compaction's first step fails the job before the set is complete. A frame
//! is not also hashed on its own: nothing copied is kept unless its whole
//! file matched (the new set is committed only after every input file's
//! hash), so a second hash of the same bytes proved nothing more.

use std::io::Read;

use super::super::format::{DataRecord, FileContent, ManifestFile, SetReader, MAX_RECORD_BODY};
use super::super::frames::{self, decode_block, decode_frame, inflate, IndexEntry, IndexTop, FRAME_RAW_BYTES};
use super::super::location::StoredSet;
use super::super::logical::{DocumentFiles, FileSet};
use super::super::BackupError;
use super::chain::StatesMerge;
use super::index::State;
use crate::restore::error::RestoreError;
use crate::restore::read::{changed, corrupt, damaged, open_plain, read_file, unreadable, Source};

/// The largest top or index file a compaction reads whole (a 128 MiB
/// documents file of tiny documents stays far below).
const MAX_INDEX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// What a merge did.
pub(super) struct Merged {
    /// Frames written as they were, and frames decompressed to be merged.
    pub copied: u64,
    pub merged: u64,
    /// The etags of the full set's documents an incremental changed or
    /// deleted (their entries leave the change log), in order.
    pub superseded: Vec<u64>,
}

/// The incrementals' states, in id order, being merged into the new set.
pub(super) struct Merge<I: Iterator<Item = Result<(String, State), BackupError>>> {
    states: StatesMerge<I>,
    copied: u64,
    merged: u64,
    decompressor: zstd::bulk::Decompressor<'static>,
}

/// Writes a state into the new set (a document; a deletion writes nothing).
fn write_state(files: &mut FileSet<'_>, documents: &mut DocumentFiles, id: String, state: State) -> Result<(), BackupError> {
    match state {
        State::Document { etag, modified_ms, body } => documents.push(files, DataRecord::Document { id, etag, modified_ms, body }),
        State::Deleted => Ok(()),
    }
}

impl<I: Iterator<Item = Result<(String, State), BackupError>>> Merge<I> {
    pub(super) fn new(states: I) -> Result<Self, BackupError> {
        let decompressor = zstd::bulk::Decompressor::new().map_err(|e| BackupError::Io(format!("zstd: {e}")))?;
        Ok(Self { states: StatesMerge::new(states), copied: 0, merged: 0, decompressor })
    }

    /// What the merge did (once every file and [`Self::rest`] are merged).
    pub(super) fn finished(self) -> Merged {
        let (_, superseded) = self.states.finish();
        Merged { copied: self.copied, merged: self.merged, superseded }
    }

    /// Writes every state left.
    pub(super) fn rest(&mut self, files: &mut FileSet<'_>, documents: &mut DocumentFiles) -> Result<(), BackupError> {
        self.states.before(None, &mut |id, state| write_state(files, documents, id, state))
    }

    /// One document of the full set: the states before it, then its own
    /// state when an incremental changed it (the chain's end wins), else it.
    fn document(&mut self, files: &mut FileSet<'_>, documents: &mut DocumentFiles, record: DataRecord) -> Result<(), BackupError> {
        let DataRecord::Document { id, etag, .. } = &record else {
            return Err(BackupError::Corrupt("a non-document record in a documents file".into()));
        };
        if self.states.document(id, *etag, &mut |id, state| write_state(files, documents, id, state))? {
            return Ok(());
        }
        documents.push(files, record)
    }

    /// Merges one documents file of the full set.
    pub(super) fn file(
        &mut self,
        source: &Source<'_>,
        file: &ManifestFile,
        files: &mut FileSet<'_>,
        documents: &mut DocumentFiles,
    ) -> Result<(), BackupError> {
        let Some(mut frames) = FrameSource::open(source, file)? else {
            read_file(source, &file.name, &file.sha256, &mut |record| {
                self.document(files, documents, record).map_err(|e| match record_error(source.set, &file.name, e) {
                    BackupError::Canceled => RestoreError::Canceled,
                    other => other.into(),
                })
            })?;
            return Ok(());
        };
        while let Some(frame) = frames.next()? {
            self.frame(frame, source.set, &file.name, files, documents)?;
        }
        Ok(frames.finish()?)
    }

    /// One frame: copied when no state falls among its ids, else merged.
    fn frame(
        &mut self,
        frame: Frame,
        set: &StoredSet,
        name: &str,
        files: &mut FileSet<'_>,
        documents: &mut DocumentFiles,
    ) -> Result<(), BackupError> {
        if let (Some(first), Some(last)) = (frame.entries.first(), frame.entries.last()) {
            self.states.before(Some(&first.id), &mut |id, state| write_state(files, documents, id, state))?;
            // The file's last frame also holds its end record: always merged.
            if !frame.last && self.states.next_id()?.is_none_or(|next| next > last.id.as_str()) {
                self.copied += 1;
                return documents.push_frame(files, frame.compressed, frame.sha256, &frame.entries);
            }
        }
        self.merged += 1;
        // A document a state replaces needs nothing of the frame (its etag
        // is in the index), so a frame is decompressed only when one of its
        // documents stands; the file's last frame (its end record) always is.
        let mut decoded = if frame.last || frame.entries.is_empty() { Some(self.decode(&frame, set, name)?) } else { None };
        for (i, entry) in frame.entries.iter().enumerate() {
            let replaced = self.states.document(&entry.id, entry.etag, &mut |id, state| write_state(files, documents, id, state));
            if replaced.map_err(|e| record_error(set, name, e))? {
                continue;
            }
            if decoded.is_none() {
                decoded = Some(self.decode(&frame, set, name)?);
            }
            let record = decoded.as_mut().and_then(|(records, next)| {
                let record = records.nth(i - *next);
                *next = i + 1;
                record
            });
            match record {
                Some(record @ DataRecord::Document { .. }) if record_is(&record, entry) => {
                    documents.push(files, record).map_err(|e| record_error(set, name, e))?;
                }
                _ => return Err(damaged(set, name, "a frame does not hold the documents its index lists")),
            }
        }
        Ok(())
    }

    /// A frame's records, as many as its index lists, and the index of the next one.
    fn decode(&mut self, frame: &Frame, set: &StoredSet, name: &str) -> Result<(std::vec::IntoIter<DataRecord>, usize), BackupError> {
        let raw = inflate(&mut self.decompressor, &frame.compressed, FRAME_RAW_BYTES + MAX_RECORD_BODY + 64 * 1024)
            .map_err(|e| damaged(set, name, &format!("a frame does not decode: {e}")))?;
        let records = decode_frame(&raw).map_err(|e| damaged(set, name, &e.to_string()))?;
        if records.len() != frame.entries.len() {
            return Err(damaged(set, name, "a frame does not hold the documents its index lists"));
        }
        Ok((records.into_iter(), 0))
    }
}

/// The record is the document its index entry names.
fn record_is(record: &DataRecord, entry: &IndexEntry) -> bool {
    matches!(record, DataRecord::Document { id, etag, .. } if *id == entry.id && *etag == entry.etag)
}

/// Names the file in a refusal of one of its records.
fn record_error(set: &StoredSet, name: &str, e: BackupError) -> BackupError {
    match e {
        BackupError::Corrupt(why) => damaged(set, name, &why),
        other => other,
    }
}

/// One frame of a documents file, with the index entries of its documents.
pub(super) struct Frame {
    compressed: Vec<u8>,
    sha256: [u8; 32],
    entries: Vec<IndexEntry>,
    /// The file's last frame (it holds the end record).
    last: bool,
}

/// The frames of one documents file read in order, each with its entries.
struct FrameSource<'a> {
    set: &'a StoredSet,
    file: &'a ManifestFile,
    reader: SetReader<std::io::BufReader<Box<dyn Read + Send>>>,
    top: IndexTop,
    /// The index file (its blocks decoded one at a time), the next block,
    /// and the entries of the decoded blocks not yet given to a frame.
    index: &'a ManifestFile,
    index_bytes: Vec<u8>,
    next_block: usize,
    entries: std::collections::VecDeque<IndexEntry>,
    decompressor: zstd::bulk::Decompressor<'static>,
    next_frame: usize,
    /// Where the next frame starts: the bytes of the frames before it.
    position: u64,
}

impl<'a> FrameSource<'a> {
    /// Reads and checks the file's top and index; `None` for a file without them.
    fn open(source: &Source<'a>, file: &'a ManifestFile) -> Result<Option<Self>, RestoreError> {
        let set = source.set;
        let find = |name: Option<String>, content: FileContent| {
            name.and_then(|n| set.manifest.files.iter().find(|f| f.name == n && f.content == content))
        };
        let (Some(index), Some(top_file)) =
            (find(frames::index_name(&file.name), FileContent::DocumentIndex), find(frames::top_name(&file.name), FileContent::IndexTop))
        else {
            return Ok(None);
        };
        let top = IndexTop::decode(&read_whole(source, top_file)?).map_err(|e| corrupt(set, &top_file.name, &e.to_string()))?;
        if top.records != file.records {
            return Err(corrupt(set, &top_file.name, "its count is not the documents file's"));
        }
        let index_bytes = read_whole(source, index)?;
        let decompressor = zstd::bulk::Decompressor::new().map_err(|e| corrupt(set, &index.name, &e.to_string()))?;
        let reader = open_plain(source, &file.name, 1 << 20).map_err(|e| RestoreError::from(unreadable(set, &file.name, &e)))?;
        Ok(Some(Self {
            set,
            file,
            reader,
            top,
            index,
            index_bytes,
            next_block: 0,
            entries: std::collections::VecDeque::new(),
            decompressor,
            next_frame: 0,
            position: 0,
        }))
    }

    /// Decodes the next index block into `entries`; false when none is left.
    fn decode_block(&mut self) -> Result<bool, RestoreError> {
        let (set, name) = (self.set, &self.index.name);
        let Some(block) = self.top.blocks.get(self.next_block) else {
            return Ok(false);
        };
        self.next_block += 1;
        let range = usize::try_from(block.offset).ok().zip(usize::try_from(block.offset + u64::from(block.len)).ok());
        let bytes =
            range.and_then(|(a, z)| self.index_bytes.get(a..z)).ok_or_else(|| corrupt(set, name, "an index block beyond the file"))?;
        let raw = inflate(&mut self.decompressor, bytes, 64 * 1024 * 1024)
            .map_err(|e| corrupt(set, name, &format!("an index block does not decode: {e}")))?;
        self.entries.extend(decode_block(&raw, block, self.top.frames.len()).map_err(|e| corrupt(set, name, &e.to_string()))?);
        Ok(true)
    }

    /// The next frame (its bytes are proven by the file's hash, at [`Self::finish`]).
    fn next(&mut self) -> Result<Option<Frame>, RestoreError> {
        let Some(frame) = self.top.frames.get(self.next_frame).cloned() else {
            return Ok(None);
        };
        let index = self.next_frame;
        self.next_frame += 1;
        if frame.offset != self.position {
            return Err(corrupt(self.set, &self.file.name, "its top lists frames that do not follow one another"));
        }
        self.position += u64::from(frame.len);
        let mut compressed = vec![0u8; frame.len as usize];
        self.reader.read_exact(&mut compressed).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                BackupError::ChecksumMismatch(format!("{}/{}: shorter than its index says", self.set.manifest.set_id, self.file.name))
            }
            _ => unreadable(self.set, &self.file.name, &e),
        })?;
        let mut entries = Vec::new();
        loop {
            match self.entries.front().map(|e| (e.frame as usize).cmp(&index)) {
                Some(std::cmp::Ordering::Equal) => entries.extend(self.entries.pop_front()),
                Some(std::cmp::Ordering::Less) => {
                    return Err(corrupt(self.set, &self.file.name, "its index lists documents out of frame order"));
                }
                Some(std::cmp::Ordering::Greater) => break,
                None if self.decode_block()? => {}
                None => break,
            }
        }
        Ok(Some(Frame { compressed, sha256: frame.sha256, entries, last: self.next_frame == self.top.frames.len() }))
    }

    /// Checks that every entry was in a frame and that the file's bytes are the manifest's.
    fn finish(self) -> Result<(), RestoreError> {
        let (set, name) = (self.set, &self.file.name);
        if !self.entries.is_empty() || self.next_block != self.top.blocks.len() {
            return Err(corrupt(set, name, "its index lists documents beyond its frames"));
        }
        let (_, sha256) = self.reader.into_hashing().finish().map_err(|e| RestoreError::from(unreadable(set, name, &e)))?;
        if sha256 != self.file.sha256 {
            return Err(changed(set, name).into());
        }
        Ok(())
    }
}

/// A small file of a set (a top, an index) whole, as plaintext, checked against the manifest.
fn read_whole(source: &Source<'_>, file: &ManifestFile) -> Result<Vec<u8>, RestoreError> {
    let set = source.set;
    if file.size > MAX_INDEX_FILE_BYTES {
        return Err(corrupt(set, &file.name, "larger than any index file"));
    }
    let mut reader = open_plain(source, &file.name, 1 << 20).map_err(|e| RestoreError::from(unreadable(set, &file.name, &e)))?;
    let mut out = Vec::new();
    let read = (&mut reader).take(MAX_INDEX_FILE_BYTES).read_to_end(&mut out);
    let (_, sha256) = reader.into_hashing().finish().map_err(|e| RestoreError::from(unreadable(set, &file.name, &e)))?;
    if sha256 != file.sha256 {
        return Err(changed(set, &file.name).into());
    }
    read.map_err(|e| corrupt(set, &file.name, &e.to_string()))?;
    Ok(out)
}
