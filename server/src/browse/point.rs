//! A chain opened at one point in time, read through the sets' id indexes
//! (format version 4, see `backup/frames.rs`) without restoring anything.
//!
//! The state of an id at the point is decided by the newest set of the chain
//! (up to the point) that mentions it: a document there is its version, a
//! deletion there means it did not exist, and an id no set mentions never
//! existed. Every byte read is checked before it is believed: a top file
//! against the manifest's SHA-256, a block and a frame against the top.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;

use crate::backup::concurrent;
use crate::backup::error::BackupError;
use crate::backup::filter::IdHash;
use crate::backup::format::{DataRecord, FileContent, ManifestFile, SetKind, MAX_RECORD_BODY};
use crate::backup::frames::{self, sha256_of, Block, FrameDocuments, IndexEntry, IndexTop, FRAME_RAW_BYTES};
use crate::backup::location::{io_error, StoredSet};
use crate::backup::sealed::{chunk_file_id, read_sealed_range};
use crate::restore::plan::RestorePlan;
use crate::restore::read::{read_file, Source};
use crate::restore::RestoreError;
use crate::storage::record::decode_header;
use crate::storage::{DocumentStore, Durability};

/// The largest top file a reader accepts (a 128 MiB documents file of tiny documents stays far below).
const MAX_TOP_BYTES: u64 = 256 * 1024 * 1024;
/// Decoded index blocks kept between lookups.
const BLOCK_CACHE: usize = 1024;
/// In object storage, an index file without filters up to this size is
/// read whole at its first lookup (one request instead of one per block).
const WHOLE_INDEX_BYTES: u64 = 4 * 1024 * 1024;
/// In a folder, only up to this size: a read of a block costs no round
/// trip there, and 100 lookups in a 1M-document full set read 3.6 MB of
/// index files whole where their 100 blocks are 180 KB (measured with
/// `rookery-bench --phase chain-reads`: the chain's index reads before the
/// lookups took 10.7 ms, and 3.8 ms reading those blocks alone).
const WHOLE_INDEX_BYTES_IN_A_FOLDER: u64 = 64 * 1024;

/// What an id was at the point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// A document: the set (index in the chain) and file that hold this version.
    Document { set: usize, file: usize, entry: IndexEntry },
    /// Deleted by this set (index in the chain), and not created again after it.
    Deleted { set: usize },
    /// No set up to the point holds it.
    Absent,
}

/// The file index of a document held by a snapshot base (not in any documents file).
pub const BASE_FILE: usize = usize::MAX;
/// Ids a base batch holds (a cursor reads the base this many at a time).
const BASE_BATCH: usize = 512;

/// A snapshot set at the start of a chain: its storage files placed in a
/// scratch folder (hard links when the set is a folder on the same
/// filesystem, checked as a restore checks them) and opened as a database,
/// read only; the folder goes when the reader does.
pub struct SnapshotBase {
    store: DocumentStore,
    _scratch: tempfile::TempDir,
}

/// The prefix of a scratch folder of a snapshot base (removed at start after a crash).
pub const SCRATCH_PREFIX: &str = ".browse-";

impl SnapshotBase {
    /// Places and opens the first set of `plan` (a snapshot set) in a new folder under `scratch`.
    ///
    /// # Errors
    /// `InvalidRequest` without a scratch folder or for an encrypted
    /// database; every error of a restore of the set.
    pub fn build(plan: &RestorePlan, scratch: Option<&std::path::Path>) -> Result<Self, RestoreError> {
        let first = plan.chain.first().ok_or_else(|| RestoreError::InvalidRequest("an empty chain".into()))?;
        let Some(scratch) = scratch else {
            return Err(BackupError::Unsupported(format!(
                "{} is a snapshot set: reading it needs a scratch folder",
                first.manifest.set_id
            ))
            .into());
        };
        if plan.database_key.is_some() {
            return Err(BackupError::Unsupported(format!(
                "{} is a snapshot of an encrypted database: its documents are read by restoring it",
                first.manifest.set_id
            ))
            .into());
        }
        let dir = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempdir_in(scratch)
            .map_err(|e| BackupError::Io(format!("cannot make a scratch folder in '{}': {e}", scratch.display())))?;
        let only = RestorePlan {
            location: plan.location.clone(),
            chain: vec![first.clone()],
            database_key: None,
            set_keys: vec![plan.set_keys[0].clone()],
        };
        let db = dir.path().join("db");
        crate::restore::build::build(&only, &db, false, None, &crate::jobs::CancelToken::default(), &mut |_, _| {})?;
        let store = DocumentStore::open(&db, Durability::Os)?;
        Ok(Self { store, _scratch: dir })
    }

    fn get(&self, id: &str) -> Result<Option<IndexEntry>, RestoreError> {
        if rookery_types::is_server_owned(id) {
            return Ok(None);
        }
        Ok(self.store.get(id)?.map(|r| IndexEntry {
            id: id.to_string(),
            etag: r.etag,
            modified_ms: r.modified_ms,
            size: r.body.len() as u32,
            frame: 0,
        }))
    }

    /// Up to [`BASE_BATCH`] documents from `from` on, in id order.
    fn batch(&self, from: &str) -> Result<Vec<IndexEntry>, RestoreError> {
        let snapshot = self.store.snapshot();
        let mut out = Vec::new();
        for item in snapshot.documents_from(from) {
            let (id, raw) = item?;
            if rookery_types::is_server_owned(&id) {
                continue;
            }
            let (etag, modified_ms) = decode_header(&raw)?;
            let size = raw.len().saturating_sub(crate::storage::record::HEADER_LEN) as u32;
            out.push(IndexEntry { id, etag, modified_ms, size, frame: 0 });
            if out.len() >= BASE_BATCH {
                break;
            }
        }
        Ok(out)
    }
}

/// One documents file of a set, with its table.
struct DocumentsFile {
    name: String,
    size: u64,
    index: ManifestFile,
    top: IndexTop,
}

impl DocumentsFile {
    /// The index file's plaintext length (its blocks end to end).
    fn plain_index_size(&self) -> u64 {
        self.top.blocks.last().map_or(0, |b| b.offset + u64::from(b.len))
    }
}

/// An index block: (set, file, block), indexes into the chain.
type BlockKey = (usize, usize, usize);
/// A frame of a documents file: (set, file, frame).
type FrameKey = (usize, usize, u32);

/// What a walk waits on: an index block, or (in a keyed top, format 6) the
/// frame that holds the id if its file does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Piece {
    Block(BlockKey),
    Frame(FrameKey),
}

/// Decoded frames kept between lookups, in their decompressed bytes.
const FRAME_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Lookups that walk the chain together (their blocks are read in rounds).
const WALKS_AT_ONCE: usize = 256;

/// A read of [`PointReader::prefetch`]: the top of one documents file (by
/// its place among the set's documents files), the end of a set's tops (they go to
/// the set in the manifest's order), or a set's deletions.
#[derive(Clone, Copy)]
enum Prefetch {
    Top(usize, usize),
    TopsEnd(usize),
    Deletions(usize),
}

/// What a [`Prefetch`] read.
enum Prefetched {
    Top(DocumentsFile),
    TopsEnd,
    Deletions(BTreeMap<String, u64>),
}

/// Where one id's walk down the chain stands: the sets still to look in
/// (the next is `sets - 1`) and the file of that set to look in next.
struct Walk {
    sets: usize,
    file: usize,
    hash: IdHash,
}

/// A walk's outcome so far: the state, or what it waits on.
enum Step {
    Done(State),
    Need(Piece),
}

/// A chain up to one point, read without restoring it (a snapshot set at
/// its start through a [`SnapshotBase`]).
pub struct PointReader {
    plan: RestorePlan,
    files: Vec<Option<Vec<DocumentsFile>>>,
    deletions: Vec<Option<BTreeMap<String, u64>>>,
    blocks: HashMap<(usize, usize, usize), Arc<Block>>,
    /// Frames read and checked (their decompressed bytes), and how many bytes they keep.
    frames: HashMap<FrameKey, Arc<FrameDocuments>>,
    frame_bytes: usize,
    /// Small index files read whole (plaintext), by (set, file).
    whole_indexes: HashMap<(usize, usize), Arc<Vec<u8>>>,
    /// The chain's first set when it is a snapshot set.
    base: Option<SnapshotBase>,
}

impl PointReader {
    /// Opens a planned chain (its links, keys and file sizes already checked).
    ///
    /// # Errors
    /// `InvalidRequest` for a chain that starts with a snapshot set or holds
    /// sets written before format version 4 (no id index).
    pub fn new(plan: RestorePlan, base: Option<SnapshotBase>) -> Result<Self, RestoreError> {
        let needs_base = plan.chain.first().is_some_and(|s| s.manifest.kind == SetKind::Snapshot);
        if let Some(set) = plan.chain.iter().skip(usize::from(base.is_some() && needs_base)).find(|s| s.manifest.kind == SetKind::Snapshot)
        {
            return Err(BackupError::Unsupported(format!(
                "{} is a snapshot set: its documents are the database's own storage files, read by restoring it",
                set.manifest.set_id
            ))
            .into());
        }
        let no_index = |s: &&StoredSet| {
            s.manifest.files.iter().any(|f| f.content == FileContent::Documents)
                && !s.manifest.files.iter().any(|f| f.content == FileContent::IndexTop)
        };
        if let Some(set) = plan.chain.iter().find(no_index) {
            return Err(BackupError::Unsupported(format!(
                "{} was written before backup format 4 and has no id index: compact the chain (its compacted set has one) or restore it",
                set.manifest.set_id
            ))
            .into());
        }
        let n = plan.chain.len();
        Ok(Self {
            plan,
            files: (0..n).map(|_| None).collect(),
            deletions: (0..n).map(|_| None).collect(),
            blocks: HashMap::new(),
            frames: HashMap::new(),
            frame_bytes: 0,
            whole_indexes: HashMap::new(),
            base: base.filter(|_| needs_base),
        })
    }

    /// The sets of the chain, oldest first.
    #[must_use]
    pub fn chain(&self) -> &[StoredSet] {
        &self.plan.chain
    }

    /// The id of the set at `index` of the chain.
    #[must_use]
    pub fn set_id(&self, index: usize) -> &str {
        self.plan.chain.get(index).map_or("", |s| s.manifest.set_id.as_str())
    }

    /// The state of `id` at the newest point of the chain.
    ///
    /// # Errors
    /// `ChecksumMismatch` naming a damaged file; storage errors.
    pub fn state(&mut self, id: &str) -> Result<State, RestoreError> {
        self.state_up_to(self.plan.chain.len(), id)
    }

    /// The state of `id` after the first `sets` sets of the chain.
    ///
    /// # Errors
    /// As [`Self::state`].
    pub fn state_up_to(&mut self, sets: usize, id: &str) -> Result<State, RestoreError> {
        Ok(self.states_up_to(sets, &[id])?.pop().unwrap_or(State::Absent))
    }

    /// The states of many ids at the newest point, in the order given: the
    /// index blocks they need are read side by side (see [`Self::states_up_to`]).
    ///
    /// # Errors
    /// As [`Self::state`].
    pub fn states(&mut self, ids: &[&str]) -> Result<Vec<State>, RestoreError> {
        self.states_up_to(self.plan.chain.len(), ids)
    }

    /// The states of many ids after the first `sets` sets of the chain. Each
    /// id walks the chain from its newest set down; the walks advance
    /// together, and at each round the index blocks and frames they wait on
    /// are read at once ([`concurrent::map`]), so 100 lookups in object
    /// storage cost a few round trips, not 100 sequences of them. In a set
    /// of format 6 a walk reads the frame that would hold the id (its top
    /// lists each frame's first id), which is also where its body is: no
    /// index block, and no second read for the body.
    ///
    /// # Errors
    /// As [`Self::state`].
    pub fn states_up_to(&mut self, sets: usize, ids: &[&str]) -> Result<Vec<State>, RestoreError> {
        let sets = sets.min(self.plan.chain.len());
        self.prefetch(sets)?;
        let mut out = vec![State::Absent; ids.len()];
        let indexes: Vec<usize> = (0..ids.len()).collect();
        for chunk in indexes.chunks(WALKS_AT_ONCE) {
            self.read_candidates(sets, chunk.iter().map(|&i| ids[i]))?;
            let mut walks: Vec<(usize, Walk)> = chunk.iter().map(|&i| (i, Walk { sets, file: 0, hash: IdHash::of(ids[i]) })).collect();
            while !walks.is_empty() {
                let mut needed = Vec::new();
                let mut waiting = Vec::new();
                for (i, mut walk) in walks {
                    match self.walk(ids[i], &mut walk)? {
                        Step::Done(state) => out[i] = state,
                        Step::Need(block) => {
                            needed.push(block);
                            waiting.push((i, walk));
                        }
                    }
                }
                needed.sort_unstable();
                needed.dedup();
                self.fetch(&needed)?;
                walks = waiting;
            }
        }
        Ok(out)
    }

    /// Reads side by side, before the walks start, what every set that
    /// could hold one of `ids` would be asked for, as far as its filters say
    /// it may hold the id (an incremental) or its index file is already in
    /// memory (no request is made), as many as one round of walks may wait
    /// on, newest sets first. A walk looks at one set per round, and with
    /// every set's candidate read first, most walks end in their first round
    /// or two instead of one round per set of the chain.
    fn read_candidates<'a>(&mut self, sets: usize, ids: impl Iterator<Item = &'a str>) -> Result<(), RestoreError> {
        let mut keys = Vec::new();
        for id in ids {
            let hash = IdHash::of(id);
            for set in (0..sets).filter(|&set| !self.is_base(set)) {
                for (file, docs) in self.files[set].iter().flatten().enumerate() {
                    let Some(block) = docs.top.candidate(id, hash) else { continue };
                    if !docs.top.has_filters() && !self.whole_indexes.contains_key(&(set, file)) {
                        continue;
                    }
                    let piece = match docs.top.keyed.then(|| docs.top.frame_for(id)) {
                        Some(Some(frame)) => Piece::Frame((set, file, frame)),
                        Some(None) => continue,
                        None => Piece::Block((set, file, block)),
                    };
                    if !self.holds(piece) {
                        keys.push(piece);
                    }
                }
            }
        }
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.dedup();
        // As many as one round of walks may wait on (a frame may be large).
        keys.truncate(WALKS_AT_ONCE);
        self.fetch(&keys)
    }

    /// Whether `piece` is read and kept.
    fn holds(&self, piece: Piece) -> bool {
        match piece {
            Piece::Block(key) => self.blocks.contains_key(&key),
            Piece::Frame(key) => self.frames.contains_key(&key),
        }
    }

    /// Advances one id's walk as far as the cached blocks allow.
    fn walk(&mut self, id: &str, walk: &mut Walk) -> Result<Step, RestoreError> {
        while walk.sets > 0 {
            let set = walk.sets - 1;
            if walk.file == 0 {
                if let (0, Some(base)) = (set, &self.base) {
                    return Ok(Step::Done(base.get(id)?.map_or(State::Absent, |entry| State::Document { set, file: BASE_FILE, entry })));
                }
                if self.deletions(set)?.contains_key(id) {
                    return Ok(Step::Done(State::Deleted { set }));
                }
            }
            self.load_files(set)?;
            let files = self.files[set].as_ref().expect("loaded");
            while let Some(docs) = files.get(walk.file) {
                let block = docs.top.candidate(id, walk.hash);
                let found = match (block, docs.top.keyed) {
                    (None, _) => None,
                    (Some(_), true) => match docs.top.frame_for(id) {
                        None => None,
                        Some(frame) => match self.frames.get(&(set, walk.file, frame)) {
                            None => return Ok(Step::Need(Piece::Frame((set, walk.file, frame)))),
                            Some(documents) => entry_in(documents, id, frame),
                        },
                    },
                    (Some(block), false) => match self.blocks.get(&(set, walk.file, block)) {
                        None => return Ok(Step::Need(Piece::Block((set, walk.file, block)))),
                        Some(entries) => entries.find(id),
                    },
                };
                if let Some(entry) = found {
                    return Ok(Step::Done(State::Document { set, file: walk.file, entry }));
                }
                walk.file += 1;
            }
            walk.sets -= 1;
            walk.file = 0;
        }
        Ok(Step::Done(State::Absent))
    }

    /// Reads, concurrently, what the first `sets` sets need before any
    /// lookup: their index tops, deletions and small index files.
    ///
    /// # Errors
    /// `ChecksumMismatch` naming a damaged file; storage errors.
    pub fn prefetch(&mut self, sets: usize) -> Result<(), RestoreError> {
        let sets = sets.min(self.plan.chain.len());
        // One read per top and one per deletions file: a full set's tops
        // are most of the bytes, and read one after another they were the
        // longest of the readers' queues.
        let mut todo = Vec::new();
        for set in (0..sets).filter(|&set| !self.is_base(set)) {
            if self.files[set].is_none() {
                todo.extend((0..self.documents_files(set).count()).map(|i| Prefetch::Top(set, i)));
                todo.push(Prefetch::TopsEnd(set));
            }
            if self.deletions[set].is_none() {
                todo.push(Prefetch::Deletions(set));
            }
        }
        let read = concurrent::try_map(&todo, self.plan.location.readers(), |&job| {
            Ok::<_, RestoreError>(match job {
                Prefetch::Top(set, i) => {
                    let file = self.documents_files(set).nth(i).expect("counted above");
                    Prefetched::Top(self.documents_file(set, file)?)
                }
                Prefetch::TopsEnd(_) => Prefetched::TopsEnd,
                Prefetch::Deletions(set) => Prefetched::Deletions(self.read_deletions(set)?),
            })
        })?;
        let mut tops = Vec::new();
        for (job, done) in todo.into_iter().zip(read) {
            match (job, done) {
                (_, Prefetched::Top(file)) => tops.push(file),
                (Prefetch::TopsEnd(set), _) => self.files[set] = Some(std::mem::take(&mut tops)),
                (Prefetch::Deletions(set), Prefetched::Deletions(deletions)) => self.deletions[set] = Some(deletions),
                _ => unreachable!("each read answers with its own kind"),
            }
        }
        let small: Vec<(usize, usize)> = (0..sets)
            .filter(|&set| !self.is_base(set))
            .flat_map(|set| (0..self.files[set].as_ref().map_or(0, Vec::len)).map(move |file| (set, file)))
            .filter(|&(set, file)| self.reads_whole(set, file) && !self.whole_indexes.contains_key(&(set, file)))
            // A lookup in a keyed top (format 6) reads frames, not blocks.
            .filter(|&(set, file)| self.files[set].as_ref().is_some_and(|f| !f[file].top.keyed))
            .collect();
        self.read_whole_indexes(&small)
    }

    /// Reads small index files whole, concurrently.
    fn read_whole_indexes(&mut self, files: &[(usize, usize)]) -> Result<(), RestoreError> {
        let read = concurrent::try_map(files, self.plan.location.readers(), |&(set, file)| {
            let docs = &self.files[set].as_ref().expect("loaded")[file];
            self.read_range(set, &docs.index.name, docs.index.size, 0, docs.plain_index_size())
        })?;
        for (key, bytes) in files.iter().zip(read) {
            self.whole_indexes.insert(*key, Arc::new(bytes));
        }
        Ok(())
    }

    /// Whether the index of file `file` of set `set` is read whole when a
    /// block of it is needed (a small one: one request instead of one per
    /// block). Lookups in a top without first ids or filters (format 5 and
    /// before) need blocks of nearly every such file, which [`Self::prefetch`]
    /// reads first; listings and diffs read blocks of any set.
    fn reads_whole(&self, set: usize, file: usize) -> bool {
        let most = if self.plan.location.folder().is_some() { WHOLE_INDEX_BYTES_IN_A_FOLDER } else { WHOLE_INDEX_BYTES };
        self.files[set].as_ref().is_some_and(|f| f[file].plain_index_size() <= most)
    }

    /// Reads, checks and keeps index blocks and frames, concurrently (their tops already loaded).
    fn fetch(&mut self, pieces: &[Piece]) -> Result<(), RestoreError> {
        let blocks: Vec<BlockKey> = pieces.iter().filter_map(|p| if let Piece::Block(k) = p { Some(*k) } else { None }).collect();
        let frames: Vec<FrameKey> = pieces.iter().filter_map(|p| if let Piece::Frame(k) = p { Some(*k) } else { None }).collect();
        if !blocks.is_empty() {
            self.fetch_blocks(&blocks)?;
        }
        self.fetch_frames(&frames)
    }

    /// Reads, checks, decodes and keeps frames, concurrently.
    fn fetch_frames(&mut self, keys: &[FrameKey]) -> Result<(), RestoreError> {
        let keys: Vec<FrameKey> = keys.iter().filter(|k| !self.frames.contains_key(k)).copied().collect();
        if keys.is_empty() {
            return Ok(());
        }
        for &(set, ..) in &keys {
            self.load_files(set)?;
        }
        let read = concurrent::try_map(&keys, self.plan.location.readers(), |&(set, file, frame)| self.read_frame(set, file, frame))?;
        let bytes: usize = read.iter().map(FrameDocuments::bytes).sum();
        if self.frame_bytes + bytes > FRAME_CACHE_BYTES {
            self.frames.clear();
            self.frame_bytes = 0;
        }
        self.frame_bytes += bytes;
        for (key, records) in keys.into_iter().zip(read) {
            self.frames.insert(key, Arc::new(records));
        }
        Ok(())
    }

    /// Reads, checks and caches index blocks, concurrently (their tops already loaded).
    fn fetch_blocks(&mut self, keys: &[BlockKey]) -> Result<(), RestoreError> {
        let mut whole: Vec<(usize, usize)> = keys
            .iter()
            .map(|&(set, file, _)| (set, file))
            .filter(|&(set, file)| self.reads_whole(set, file) && !self.whole_indexes.contains_key(&(set, file)))
            .collect();
        whole.dedup();
        self.read_whole_indexes(&whole)?;
        let decoded = concurrent::try_map(keys, self.plan.location.readers(), |&(set, file, block)| self.read_block(set, file, block))?;
        if self.blocks.len() + keys.len() > BLOCK_CACHE {
            self.blocks.clear();
        }
        for (key, block) in keys.iter().zip(decoded) {
            self.blocks.insert(*key, Arc::new(block));
        }
        Ok(())
    }

    /// Reads and checks one index block.
    fn read_block(&self, set: usize, file: usize, block: usize) -> Result<Block, RestoreError> {
        let docs = &self.files[set].as_ref().expect("loaded")[file];
        let (index, b) = (&docs.index, &docs.top.blocks[block]);
        let bytes = match self.whole_indexes.get(&(set, file)) {
            Some(whole) => {
                let range = usize::try_from(b.offset).ok().zip(usize::try_from(b.offset + u64::from(b.len)).ok());
                range
                    .and_then(|(a, z)| whole.get(a..z))
                    .ok_or_else(|| self.damaged(set, &index.name, "an index block beyond the file"))?
                    .to_vec()
            }
            None => self.read_range(set, &index.name, index.size, b.offset, u64::from(b.len))?,
        };
        if sha256_of(&bytes) != b.sha256 {
            return Err(self.damaged(set, &index.name, &format!("the index block at offset {} does not match its checksum", b.offset)));
        }
        let raw = frames::inflate_here(&bytes, 64 * 1024 * 1024)
            .map_err(|e| self.damaged(set, &index.name, &format!("an index block does not decode: {e}")))?;
        Block::parse(raw, b, docs.top.frames.len()).map_err(|e| self.damaged(set, &index.name, &e.to_string()))
    }

    /// The body of a document found by [`Self::state`], opened with the
    /// database key when the database is encrypted.
    ///
    /// # Errors
    /// `ChecksumMismatch` when the frame does not hold what the index says.
    pub fn body(&mut self, set: usize, file: usize, entry: &IndexEntry) -> Result<Vec<u8>, RestoreError> {
        Ok(self.bodies(&[(set, file, entry)])?.pop().unwrap_or_default())
    }

    /// The bodies of many documents found by [`Self::states`], in the order
    /// given; the frames that hold them are read side by side, each once.
    ///
    /// # Errors
    /// As [`Self::body`].
    pub fn bodies(&mut self, wanted: &[(usize, usize, &IndexEntry)]) -> Result<Vec<Vec<u8>>, RestoreError> {
        let mut frames: Vec<FrameKey> =
            wanted.iter().filter(|(_, file, _)| *file != BASE_FILE).map(|&(set, file, entry)| (set, file, entry.frame)).collect();
        frames.sort_unstable();
        frames.dedup();
        // The frames a lookup already read are kept; the others are read
        // here (all of them, should they no longer be kept).
        let missing: Vec<FrameKey> = frames.iter().filter(|k| !self.frames.contains_key(k)).copied().collect();
        let mut records: HashMap<FrameKey, Arc<FrameDocuments>> =
            frames.iter().filter_map(|k| self.frames.get(k).map(|r| (*k, r.clone()))).collect();
        for &(set, ..) in &missing {
            self.load_files(set)?;
        }
        let read = concurrent::try_map(&missing, self.plan.location.readers(), |&(set, file, frame)| self.read_frame(set, file, frame))?;
        records.extend(missing.into_iter().zip(read.into_iter().map(Arc::new)));
        wanted.iter().map(|&(set, file, entry)| self.body_in(&records, set, file, entry)).collect()
    }

    /// One wanted body, from the frames read for it (or the snapshot base).
    fn body_in(
        &self,
        records: &HashMap<FrameKey, Arc<FrameDocuments>>,
        set: usize,
        file: usize,
        entry: &IndexEntry,
    ) -> Result<Vec<u8>, RestoreError> {
        if let (BASE_FILE, Some(base)) = (file, &self.base) {
            let record =
                base.store.get(&entry.id)?.ok_or_else(|| self.damaged(set, "manifest.json", "a document vanished from the snapshot"))?;
            return Ok(record.body);
        }
        let name = &self.files[set].as_ref().expect("loaded")[file].name;
        let body = records
            .get(&(set, file, entry.frame))
            .and_then(|found| found.documents().find(|d| d.id == entry.id && d.etag == entry.etag).map(|d| d.body));
        let body = body.ok_or_else(|| self.damaged(set, name, &format!("the frame does not hold {} as its index says", entry.id)))?;
        match &self.plan.database_key {
            Some(key) => key.open(entry.id.as_bytes(), body).map_err(|_| self.damaged(set, name, "a sealed document does not open")),
            None => Ok(body.to_vec()),
        }
    }

    /// Reads, checks and decodes one frame of a documents file.
    fn read_frame(&self, set: usize, file: usize, frame: u32) -> Result<FrameDocuments, RestoreError> {
        let docs = &self.files[set].as_ref().expect("loaded")[file];
        let name = &docs.name;
        let frame = docs.top.frames.get(frame as usize).ok_or_else(|| self.damaged(set, name, "an index entry names no frame"))?;
        let bytes = self.read_range(set, name, docs.size, frame.offset, u64::from(frame.len))?;
        if sha256_of(&bytes) != frame.sha256 {
            return Err(self.damaged(set, name, &format!("the frame at offset {} does not match its checksum", frame.offset)));
        }
        let raw = frames::inflate_here(&bytes, FRAME_RAW_BYTES + MAX_RECORD_BODY + 64 * 1024)
            .map_err(|e| self.damaged(set, name, &format!("a frame does not decode: {e}")))?;
        FrameDocuments::parse(raw).map_err(|e| self.damaged(set, name, &e.to_string()))
    }

    /// Whether set `set` is read from a snapshot base (through [`Self::base_batch`]).
    pub(super) fn is_base(&self, set: usize) -> bool {
        set == 0 && self.base.is_some()
    }

    /// Up to a batch of the base's documents from `from` on, in id order.
    pub(super) fn base_batch(&self, from: &str) -> Result<Vec<IndexEntry>, RestoreError> {
        self.base.as_ref().map_or_else(|| Ok(Vec::new()), |b| b.batch(from))
    }

    /// Files of set `set` and the blocks of each, for cursors.
    pub(super) fn shape(&mut self, set: usize) -> Result<Vec<usize>, RestoreError> {
        self.load_files(set)?;
        Ok(self.files[set].as_ref().map(|f| f.iter().map(|d| d.top.blocks.len()).collect()).unwrap_or_default())
    }

    /// The first block of file `file` of set `set` that may hold ids at or after `id`.
    pub(super) fn first_block_from(&mut self, set: usize, file: usize, id: &str) -> Result<usize, RestoreError> {
        self.load_files(set)?;
        Ok(self.files[set].as_ref().map_or(0, |f| f[file].top.first_block_from(id)))
    }

    /// The entries of block `block` of file `file` of set `set`, checked and decoded.
    pub(super) fn block(&mut self, set: usize, file: usize, block: usize) -> Result<Arc<Vec<IndexEntry>>, RestoreError> {
        if !self.blocks.contains_key(&(set, file, block)) {
            self.load_files(set)?;
            self.fetch_blocks(&[(set, file, block)])?;
        }
        Ok(Arc::new(self.blocks[&(set, file, block)].entries()))
    }

    /// The ids set `set` deletes (an incremental's deletions file), read once and checked.
    pub(super) fn deletions(&mut self, set: usize) -> Result<&BTreeMap<String, u64>, RestoreError> {
        if self.deletions[set].is_none() {
            self.deletions[set] = Some(self.read_deletions(set)?);
        }
        Ok(self.deletions[set].as_ref().expect("just read"))
    }

    fn read_deletions(&self, set: usize) -> Result<BTreeMap<String, u64>, RestoreError> {
        let stored = &self.plan.chain[set];
        let source = Source { set: stored, key: self.plan.set_keys[set].as_ref() };
        let mut out = BTreeMap::new();
        // A deletions file the manifest counts no records in is not read (in
        // object storage, a request per incremental that only updated).
        for file in stored.manifest.files.iter().filter(|f| f.content == FileContent::Deletions && f.records > 0) {
            read_file(&source, &file.name, &file.sha256, &mut |record| match record {
                DataRecord::Deletion { id, etag } => {
                    out.insert(id, etag);
                    Ok(())
                }
                _ => Err(BackupError::Corrupt(format!("{}/{}: a non-deletion record", stored.manifest.set_id, file.name)).into()),
            })?;
        }
        Ok(out)
    }

    /// Reads and checks the tops of set `set`'s documents files, once.
    fn load_files(&mut self, set: usize) -> Result<(), RestoreError> {
        if self.files[set].is_none() {
            self.files[set] = Some(self.files_of(set)?);
        }
        Ok(())
    }

    /// Set `set`'s documents files with their tops, read and checked.
    fn files_of(&self, set: usize) -> Result<Vec<DocumentsFile>, RestoreError> {
        self.documents_files(set).map(|file| self.documents_file(set, file)).collect()
    }

    /// The documents files set `set`'s manifest lists, in its order.
    fn documents_files(&self, set: usize) -> impl Iterator<Item = &ManifestFile> {
        self.plan.chain[set].manifest.files.iter().filter(|f| f.content == FileContent::Documents)
    }

    /// One documents file of set `set` with its top, read and checked.
    fn documents_file(&self, set: usize, file: &ManifestFile) -> Result<DocumentsFile, RestoreError> {
        let stored = &self.plan.chain[set];
        let find = |name: &str| stored.manifest.files.iter().find(|f| f.name == name).cloned();
        let missing = |what: &str| self.damaged(set, &file.name, &format!("its {what} is not in the manifest"));
        let index = frames::index_name(&file.name).and_then(|n| find(&n)).filter(|f| f.content == FileContent::DocumentIndex);
        let top_file = frames::top_name(&file.name).and_then(|n| find(&n)).filter(|f| f.content == FileContent::IndexTop);
        let (index, top_file) = (index.ok_or_else(|| missing("index"))?, top_file.ok_or_else(|| missing("top"))?);
        let top = self.read_top(set, &top_file)?;
        if top.records != file.records {
            return Err(self.damaged(set, &top_file.name, "its count is not the documents file's"));
        }
        Ok(DocumentsFile { name: file.name.clone(), size: file.size, index, top })
    }

    fn read_top(&self, set: usize, file: &ManifestFile) -> Result<IndexTop, RestoreError> {
        if file.size > MAX_TOP_BYTES {
            return Err(BackupError::Corrupt(format!("{}/{}: larger than any index top", self.set_id(set), file.name)).into());
        }
        let stored = &self.plan.chain[set];
        let source = Source { set: stored, key: self.plan.set_keys[set].as_ref() };
        let bytes = stored.read_range(&file.name, 0, file.size).map_err(|e| self.unreadable(set, &file.name, &e))?;
        if hex::encode(sha256_of(&bytes)) != file.sha256 {
            return Err(self.damaged(set, &file.name, "checksum mismatch (the file was changed or damaged)"));
        }
        let plain = if let Some(key) = source.key.cloned() {
            let mut out = Vec::new();
            crate::backup::sealed::ChunkOpener::new(
                &bytes[..],
                key,
                &chunk_file_id(stored.manifest.format_version, &stored.manifest.set_id, &file.name),
            )
            .read_to_end(&mut out)
            .map_err(|e| self.damaged(set, &file.name, &e.to_string()))?;
            out
        } else {
            bytes
        };
        IndexTop::decode(&plain).map_err(|e| BackupError::Corrupt(format!("{}/{}: {e}", self.set_id(set), file.name)).into())
    }

    /// Plaintext bytes of a file of set `set` (opening only the chunks that cover them in an encrypted set).
    fn read_range(&self, set: usize, name: &str, size: u64, offset: u64, len: u64) -> Result<Vec<u8>, RestoreError> {
        let stored = &self.plan.chain[set];
        let set_id = &stored.manifest.set_id;
        let result = match self.plan.set_keys[set].as_ref() {
            None => stored.read_range(name, offset, len),
            Some(key) => read_sealed_range(
                &|o, l| stored.read_range(name, o, l),
                size,
                key,
                &chunk_file_id(stored.manifest.format_version, set_id, name),
                offset,
                len,
            ),
        };
        result.map_err(|e| self.unreadable(set, name, &e))
    }

    fn unreadable(&self, set: usize, name: &str, e: &std::io::Error) -> RestoreError {
        io_error(e, |m| BackupError::ChecksumMismatch(format!("{}/{name}: cannot be read ({m})", self.set_id(set)))).into()
    }

    fn damaged(&self, set: usize, name: &str, why: &str) -> RestoreError {
        BackupError::ChecksumMismatch(format!("{}/{name}: {why}", self.set_id(set))).into()
    }
}

/// The entry of `id` in a frame, if the frame holds it.
fn entry_in(frame_documents: &FrameDocuments, id: &str, frame: u32) -> Option<IndexEntry> {
    frame_documents.documents().find(|d| d.id == id).map(|d| IndexEntry {
        id: id.to_string(),
        etag: d.etag,
        modified_ms: d.modified_ms,
        size: d.body.len() as u32,
        frame,
    })
}
