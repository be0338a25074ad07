//! Documents files of format version 4: independent zstd frames, and an id
//! index beside each file, so that one document of a set can be read
//! without reading the set (time travel) and a frame can be copied whole.
//!
//! For `documents-NNNN.zst` a set holds:
//! - `documents-NNNN.zst`: the records in id order, cut into zstd frames of
//!   about [`FRAME_RAW_BYTES`] of records each; the last frame ends with the
//!   end record. The frames concatenated are one valid zstd stream, so a
//!   sequential reader (a restore) reads the file as before.
//! - `documents-NNNN.idx`: index blocks, each one zstd frame of up to
//!   [`BLOCK_ENTRIES`] entries `[id_len u32][id][etag u64][modified_ms i64]
//!   [body_len u32][frame u32]` in id order.
//! - `documents-NNNN.top`: the table of both (see [`IndexTop`]): each frame's
//!   offset, length, SHA-256 and (format version 6, top `RKTOP02`) first id,
//!   each block's offset, length, count, SHA-256, first and last id, and in
//!   an incremental of version 6 a membership filter of the block's ids
//!   ([`super::filter`]). Its own SHA-256 is in the manifest, like every file's.
//!
//! A lookup reads the top (checked against the manifest), then in version 6
//! the one frame whose first id is the last at or before the id (checked
//! against the top), and before version 6 one block and the frame its entry
//! names (each checked against the top): a damaged byte is a checksum
//! mismatch naming the file, never a wrong document. Offsets
//! are of the zstd bytes; in an encrypted set they are of the plaintext
//! under the sealed chunks, and a ranged read opens only the chunks it needs.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::filter::{IdFilter, IdHash};
use super::format::{encode_document, invalid, DataRecord};

/// Records are cut into a new frame after this many uncompressed bytes.
pub const FRAME_RAW_BYTES: usize = 64 * 1024;
/// Entries per index block.
pub const BLOCK_ENTRIES: usize = 512;
/// The magic first line of a top file of format 4 and 5.
const TOP_MAGIC: &[u8; 8] = b"RKTOP01\n";
/// The magic first line of a top file of format 6: each frame's first id,
/// and each block's filter (empty in a full set).
const TOP_MAGIC_KEYED: &[u8; 8] = b"RKTOP02\n";
/// The most frames or blocks a top may list (a 128 MiB file of tiny documents stays far below).
const MAX_TOP_ITEMS: usize = 4_000_000;

/// The index file's name beside a documents file (`documents-0001.idx`).
#[must_use]
pub fn index_name(documents: &str) -> Option<String> {
    documents.strip_suffix(".zst").map(|stem| format!("{stem}.idx"))
}

/// The top file's name beside a documents file (`documents-0001.top`).
#[must_use]
pub fn top_name(documents: &str) -> Option<String> {
    documents.strip_suffix(".zst").map(|stem| format!("{stem}.top"))
}

/// One frame of a documents file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRef {
    pub offset: u64,
    pub len: u32,
    pub sha256: [u8; 32],
    /// The id of its first document (format 6; empty in older tops, and
    /// for a last frame that holds only the end record).
    pub first_id: String,
}

/// One block of an index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRef {
    pub offset: u64,
    pub len: u32,
    pub count: u32,
    pub sha256: [u8; 32],
    pub first_id: String,
    pub last_id: String,
    /// The block's ids as a membership filter (empty: none).
    pub filter: IdFilter,
}

/// The table of a documents file's frames and its index's blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexTop {
    pub frames: Vec<FrameRef>,
    pub blocks: Vec<BlockRef>,
    /// Documents in the file.
    pub records: u64,
    /// Whether its frames carry their first ids (format 6, `RKTOP02`): a
    /// lookup then reads the one frame that may hold an id, without its
    /// index block.
    pub keyed: bool,
}

/// One document as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: String,
    pub etag: u64,
    pub modified_ms: i64,
    pub size: u32,
    pub frame: u32,
}

impl IndexTop {
    /// The block that would hold `id`, if any block's range covers it.
    #[must_use]
    pub fn block_for(&self, id: &str) -> Option<usize> {
        let i = self.blocks.partition_point(|b| b.last_id.as_str() < id);
        self.blocks.get(i).filter(|b| b.first_id.as_str() <= id).map(|_| i)
    }

    /// The block that may hold the id whose hash is `hash`: [`Self::block_for`],
    /// unless the block's filter says the id is certainly not there.
    #[must_use]
    pub fn candidate(&self, id: &str, hash: IdHash) -> Option<usize> {
        self.block_for(id).filter(|&i| self.blocks[i].filter.may_hold(hash))
    }

    /// Whether the blocks have filters (then a lookup reads only the blocks they point to).
    #[must_use]
    pub fn has_filters(&self) -> bool {
        self.blocks.first().is_some_and(|b| !b.filter.is_empty())
    }

    /// The frame that holds `id` if the file does (a keyed top): the last
    /// frame whose first id is at most `id`, within a block's range.
    #[must_use]
    pub fn frame_for(&self, id: &str) -> Option<u32> {
        self.block_for(id)?;
        let after = self.frames.partition_point(|f| !f.first_id.is_empty() && f.first_id.as_str() <= id);
        after.checked_sub(1).and_then(|i| u32::try_from(i).ok())
    }

    /// The first block whose ids may be at or after `id`.
    #[must_use]
    pub fn first_block_from(&self, id: &str) -> usize {
        self.blocks.partition_point(|b| b.last_id.as_str() < id)
    }

    /// The bytes of a top file.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = if self.keyed { TOP_MAGIC_KEYED } else { TOP_MAGIC }.to_vec();
        out.extend_from_slice(&self.records.to_le_bytes());
        out.extend_from_slice(&(self.frames.len() as u64).to_le_bytes());
        for f in &self.frames {
            out.extend_from_slice(&f.offset.to_le_bytes());
            out.extend_from_slice(&f.len.to_le_bytes());
            out.extend_from_slice(&f.sha256);
            if self.keyed {
                put_str(&mut out, &f.first_id);
            }
        }
        out.extend_from_slice(&(self.blocks.len() as u64).to_le_bytes());
        for b in &self.blocks {
            out.extend_from_slice(&b.offset.to_le_bytes());
            out.extend_from_slice(&b.len.to_le_bytes());
            out.extend_from_slice(&b.count.to_le_bytes());
            out.extend_from_slice(&b.sha256);
            put_str(&mut out, &b.first_id);
            put_str(&mut out, &b.last_id);
            if self.keyed {
                out.extend_from_slice(&(b.filter.as_bytes().len() as u32).to_le_bytes());
                out.extend_from_slice(b.filter.as_bytes());
            }
        }
        out
    }

    /// Parses a top file, refusing anything inconsistent (frames and blocks
    /// out of order or overlapping, frames' and blocks' ids that do not
    /// increase).
    ///
    /// # Errors
    /// `InvalidData` naming what is wrong.
    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        let mut r = Cursor { bytes, at: 0 };
        let keyed = match r.take(8)? {
            m if m == TOP_MAGIC => false,
            m if m == TOP_MAGIC_KEYED => true,
            _ => return Err(invalid("not an index top file")),
        };
        let records = r.u64()?;
        let frames_len = r.count()?;
        let mut frames = Vec::with_capacity(frames_len.min(65_536));
        let mut end = 0u64;
        for i in 0..frames_len {
            let frame =
                FrameRef { offset: r.u64()?, len: r.u32()?, sha256: r.hash()?, first_id: if keyed { r.string()? } else { String::new() } };
            if frame.offset != end || frame.len == 0 {
                return Err(invalid("the frames of a documents file do not follow each other"));
            }
            // Each frame but a last one of only the end record starts with a
            // document, after the previous frame's first.
            let follows = if frame.first_id.is_empty() {
                i + 1 == frames_len
            } else {
                frames.last().is_none_or(|prev: &FrameRef| prev.first_id < frame.first_id)
            };
            if keyed && !follows {
                return Err(invalid("the frames' first ids do not increase"));
            }
            end = frame.offset + u64::from(frame.len);
            frames.push(frame);
        }
        let blocks_len = r.count()?;
        let mut blocks: Vec<BlockRef> = Vec::with_capacity(blocks_len.min(65_536));
        let mut block_end = 0u64;
        let mut entries = 0u64;
        for _ in 0..blocks_len {
            let mut block = BlockRef {
                offset: r.u64()?,
                len: r.u32()?,
                count: r.u32()?,
                sha256: r.hash()?,
                first_id: r.string()?,
                last_id: r.string()?,
                filter: IdFilter::default(),
            };
            if keyed {
                block.filter = r.filter(block.count)?;
            }
            let ordered = blocks.last().is_none_or(|prev| prev.last_id < block.first_id) && block.first_id <= block.last_id;
            if block.offset != block_end || block.len == 0 || block.count == 0 || !ordered {
                return Err(invalid("the blocks of an index file are out of order"));
            }
            block_end = block.offset + u64::from(block.len);
            entries += u64::from(block.count);
            blocks.push(block);
        }
        if r.at != bytes.len() || entries != records {
            return Err(invalid("an index top file does not add up"));
        }
        Ok(Self { frames, blocks, records, keyed })
    }
}

/// Decodes one index block (already checked against its hash and decompressed).
///
/// # Errors
/// `InvalidData` for entries out of id order or beyond the block.
pub fn decode_block(raw: &[u8], block: &BlockRef, frames: usize) -> io::Result<Vec<IndexEntry>> {
    Ok(Block::parse(raw.to_vec(), block, frames)?.entries())
}

/// An index block (already checked against its hash and decompressed),
/// checked entry by entry and kept as its bytes with where each entry
/// starts: a lookup decodes only the entries its binary search looks at. A
/// read of 100 documents through a chain of 24 incrementals looks in nearly
/// every block of every incremental for ids that are not there, and
/// decoding each of their entries into its own `String` took more of it
/// than decompressing the blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    raw: Vec<u8>,
    starts: Vec<u32>,
}

impl Block {
    /// Checks every entry of `raw` (ids in strictly increasing order and
    /// valid UTF-8, frames within the file's, the count and first and last
    /// ids the top lists) and notes where each starts.
    ///
    /// # Errors
    /// `InvalidData` for entries out of id order or beyond the block.
    pub fn parse(raw: Vec<u8>, block: &BlockRef, frames: usize) -> io::Result<Self> {
        let mut starts: Vec<u32> = Vec::with_capacity(block.count as usize);
        {
            let mut r = Cursor { bytes: &raw, at: 0 };
            let mut previous: Option<&str> = None;
            let mut first: Option<&str> = None;
            while r.at < raw.len() {
                starts.push(u32::try_from(r.at).map_err(|_| invalid("an index block larger than any"))?);
                let id = r.str()?;
                if !block.filter.is_empty() && !block.filter.may_hold(IdHash::of(id)) {
                    return Err(invalid("an index block's filter does not hold its ids"));
                }
                r.take(8 + 8 + 4)?;
                let frame = r.u32()?;
                if previous.is_some_and(|p| p >= id) || frame as usize >= frames {
                    return Err(invalid("an index block's entries are out of order"));
                }
                first.get_or_insert(id);
                previous = Some(id);
            }
            let bounds = first == Some(block.first_id.as_str()) && previous == Some(block.last_id.as_str());
            if starts.len() != block.count as usize || !bounds {
                return Err(invalid("an index block does not match its table"));
            }
        }
        Ok(Self { raw, starts })
    }

    /// The entries in the block.
    #[must_use]
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether the block holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The entry holding `id`, if the block has one.
    #[must_use]
    pub fn find(&self, id: &str) -> Option<IndexEntry> {
        let i = self.starts.binary_search_by(|&at| self.cursor(at).str().unwrap_or_default().cmp(id)).ok()?;
        self.entry(i)
    }

    /// Every entry, decoded, in id order.
    #[must_use]
    pub fn entries(&self) -> Vec<IndexEntry> {
        (0..self.len()).filter_map(|i| self.entry(i)).collect()
    }

    /// Entry `i`, decoded (its bytes were checked by [`Self::parse`]).
    fn entry(&self, i: usize) -> Option<IndexEntry> {
        let mut r = self.cursor(*self.starts.get(i)?);
        let id = r.str().ok()?.to_string();
        Some(IndexEntry { id, etag: r.u64().ok()?, modified_ms: r.u64().ok()? as i64, size: r.u32().ok()?, frame: r.u32().ok()? })
    }

    fn cursor(&self, at: u32) -> Cursor<'_> {
        Cursor { bytes: &self.raw, at: at as usize }
    }
}

/// The document records of one frame (decompressed), the end record allowed last.
///
/// # Errors
/// `InvalidData` for a frame that does not decode.
pub fn decode_frame(raw: &[u8]) -> io::Result<Vec<DataRecord>> {
    let mut reader = super::format::RecordReader::raw(raw);
    let mut out = Vec::new();
    while let Some(record) = reader.next_record()? {
        out.push(record);
    }
    Ok(out)
}

/// A frame's documents, kept as the frame's decompressed bytes (checked
/// once, record by record, when kept): finding one id among a frame's
/// documents reads past the others in place instead of giving each of
/// them an id and a body of its own, as [`decode_frame`] does.
#[derive(Debug)]
pub struct FrameDocuments(Vec<u8>);

impl FrameDocuments {
    /// Checks every record of a decompressed frame and keeps its bytes.
    ///
    /// # Errors
    /// As [`decode_frame`].
    pub fn parse(raw: Vec<u8>) -> io::Result<Self> {
        let mut reader = super::format::RecordReader::raw(&raw);
        while reader.next_document_in_place()?.is_some() {}
        Ok(Self(raw))
    }

    /// The frame's documents, in its order.
    pub fn documents(&self) -> impl Iterator<Item = super::format::DocumentAt<'_>> {
        let mut reader = super::format::RecordReader::raw(&self.0);
        // Checked whole by `parse`: no record of it fails.
        std::iter::from_fn(move || reader.next_document_in_place().ok().flatten())
    }

    /// The bytes it keeps.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.0.len()
    }
}

/// One zstd frame of at most `limit` bytes once decompressed, with a reused
/// context when the frame states its size (every frame a set writer makes).
///
/// # Errors
/// A frame that does not decode, or decodes to more than `limit` bytes.
pub fn inflate(decompressor: &mut zstd::bulk::Decompressor<'static>, bytes: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    match zstd::zstd_safe::get_frame_content_size(bytes) {
        Ok(Some(size)) if size <= limit as u64 => {
            let mut out = Vec::with_capacity(size as usize);
            decompressor.decompress_to_buffer(bytes, &mut out)?;
            Ok(out)
        }
        _ => {
            let mut out = Vec::new();
            zstd::Decoder::new(bytes)?.take(limit as u64).read_to_end(&mut out)?;
            Ok(out)
        }
    }
}

/// [`inflate`] with this thread's own decompression context (made once per
/// thread): decoding many small blocks or frames, one context each was most
/// of the cost.
///
/// # Errors
/// As [`inflate`].
pub fn inflate_here(bytes: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with(|context| {
        let mut context = context.borrow_mut();
        if context.is_none() {
            *context = Some(zstd::bulk::Decompressor::new()?);
        }
        inflate(context.as_mut().expect("made above"), bytes, limit)
    })
}

/// The SHA-256 of `bytes` as 32 bytes.
#[must_use]
pub fn sha256_of(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// What the frame thread is given: records to compress into a frame, or a
/// frame already compressed (copied from another set) with its SHA-256.
enum Chunk {
    Raw(Vec<u8>),
    Compressed(Vec<(Vec<u8>, [u8; 32])>),
}

/// Copied frames are handed to the frame thread this many bytes at a time
/// (one wake-up of the thread per batch, not per frame).
const COPY_BATCH_BYTES: usize = 256 * 1024;

/// The thread that compresses frames: where frames go, and its end
/// (the documents file's writer and the table of its frames).
type Worker<W> = (SyncSender<Chunk>, JoinHandle<io::Result<(W, Vec<FrameRef>)>>);

/// Writes a documents file as frames, its index blocks and its top.
///
/// Frames are compressed on a worker thread while the caller reads the next
/// records (a backup then uses both cores of a small machine).
pub struct FramedWriter<W: Write + Send + 'static, X: Write> {
    worker: Option<Worker<W>>,
    written: Arc<AtomicU64>,
    index: X,
    index_written: u64,
    compressor: zstd::bulk::Compressor<'static>,
    raw: Vec<u8>,
    /// Copied frames not yet handed to the frame thread, and their bytes.
    copied: Vec<(Vec<u8>, [u8; 32])>,
    copied_bytes: usize,
    /// Frames compressed on this thread while the frame thread was busy,
    /// not yet handed to it, and their bytes.
    compressed_here: Vec<(Vec<u8>, [u8; 32])>,
    compressed_here_bytes: usize,
    /// Frames compressed on this thread so far.
    frames_compressed_here: u64,
    /// Whether this thread compresses frames while the frame thread is busy.
    share: bool,
    frames: u32,
    /// The first id of each frame handed to the frame thread, in order, and
    /// of the frame being gathered.
    frame_ids: Vec<String>,
    gathering: Option<String>,
    block: Vec<u8>,
    block_ids: (String, String),
    block_count: u32,
    /// The hashes of the block's ids, when its blocks get filters.
    block_hashes: Option<Vec<IdHash>>,
    blocks: Vec<BlockRef>,
    records: u64,
    raw_bytes: u64,
    last_id: Option<String>,
}

impl<W: Write + Send + 'static, X: Write> FramedWriter<W, X> {
    /// Starts a documents file into `data` and its index into `index`.
    ///
    /// # Errors
    /// zstd initialisation errors.
    pub fn new(data: W, index: X, level: i32) -> io::Result<Self> {
        let written = Arc::new(AtomicU64::new(0));
        let (tx, rx) = sync_channel::<Chunk>(2);
        let counter = written.clone();
        let handle = std::thread::Builder::new().name("backup-frames".into()).spawn(move || {
            let mut data = data;
            let mut compressor = zstd::bulk::Compressor::new(level)?;
            let mut frames = Vec::new();
            let mut offset = 0u64;
            for chunk in rx {
                let batch = match chunk {
                    Chunk::Raw(raw) => {
                        let compressed = compressor.compress(&raw)?;
                        let sha256 = sha256_of(&compressed);
                        vec![(compressed, sha256)]
                    }
                    Chunk::Compressed(frames) => frames,
                };
                for (compressed, sha256) in batch {
                    data.write_all(&compressed)?;
                    let len = u32::try_from(compressed.len()).map_err(|_| invalid("a frame over 4 GiB"))?;
                    frames.push(FrameRef { offset, len, sha256, first_id: String::new() });
                    offset += u64::from(len);
                }
                counter.store(offset, Ordering::Relaxed);
            }
            Ok((data, frames))
        })?;
        Ok(Self {
            worker: Some((tx, handle)),
            written,
            index,
            index_written: 0,
            compressor: zstd::bulk::Compressor::new(level)?,
            raw: Vec::with_capacity(FRAME_RAW_BYTES + 4096),
            copied: Vec::new(),
            copied_bytes: 0,
            compressed_here: Vec::new(),
            compressed_here_bytes: 0,
            frames_compressed_here: 0,
            share: true,
            frames: 0,
            frame_ids: Vec::new(),
            gathering: None,
            block: Vec::new(),
            block_ids: (String::new(), String::new()),
            block_count: 0,
            block_hashes: None,
            blocks: Vec::new(),
            records: 0,
            raw_bytes: 0,
            last_id: None,
        })
    }

    /// Gives every index block a membership filter of its ids (an
    /// incremental's: see [`super::filter`]).
    #[must_use]
    pub fn with_filters(mut self) -> Self {
        self.block_hashes = Some(Vec::with_capacity(BLOCK_ENTRIES));
        self
    }

    /// Documents written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Uncompressed bytes written so far.
    pub fn raw_bytes(&self) -> u64 {
        self.raw_bytes
    }

    /// Whether the calling thread compresses a frame itself while the
    /// frame thread is busy (the default), or waits for it: a backup that
    /// yields to clients' writes leaves the compression to the frame thread
    /// while it yields, as before the sharing (with the sharing on under
    /// writes, two bench runs saw the clients' p99 during backups rise).
    pub fn share_compression(&mut self, share: bool) {
        self.share = share;
    }

    /// See [`Self::share_compression`].
    pub fn shares_compression(&self) -> bool {
        self.share
    }

    /// Frames compressed on the calling thread so far (while the frame
    /// thread was busy).
    pub fn frames_compressed_here(&self) -> u64 {
        self.frames_compressed_here
    }

    /// Compressed bytes handed to the documents file so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Appends one document; documents must come in id order.
    ///
    /// # Errors
    /// I/O errors; a record that is not a document, or out of id order.
    pub fn write(&mut self, record: &DataRecord) -> io::Result<()> {
        let DataRecord::Document { id, etag, modified_ms, body } = record else {
            return Err(invalid("only documents go into a documents file"));
        };
        self.write_document(id, *etag, *modified_ms, body)
    }

    /// Appends one document from its parts; documents must come in id order.
    ///
    /// # Errors
    /// I/O errors; a document out of id order.
    pub fn write_document(&mut self, id: &str, etag: u64, modified_ms: i64, body: &[u8]) -> io::Result<()> {
        if self.last_id.as_deref().is_some_and(|last| last >= id) {
            return Err(invalid("documents must be written in id order"));
        }
        let before = self.raw.len();
        if self.gathering.is_none() {
            self.gathering = Some(id.to_owned());
        }
        encode_document(id, etag, modified_ms, body, &mut self.raw)?;
        self.raw_bytes += (self.raw.len() - before) as u64;
        self.index_entry(id, etag, modified_ms, body.len() as u32)?;
        if self.raw.len() >= FRAME_RAW_BYTES {
            self.flush_frame()?;
        }
        Ok(())
    }

    /// Appends a whole frame of another documents file as it is, without
    /// decompressing it: `compressed` is the frame, `sha256` its checksum
    /// (already checked against the bytes), `entries` its documents as that
    /// file's index lists them. The records gathered before it become a
    /// frame of their own first.
    ///
    /// # Errors
    /// I/O errors; entries out of id order, or a frame of no documents.
    pub fn copy_frame(&mut self, compressed: Vec<u8>, sha256: [u8; 32], entries: &[IndexEntry]) -> io::Result<()> {
        if entries.is_empty() {
            return Err(invalid("a copied frame holds no documents"));
        }
        if !self.raw.is_empty() {
            self.flush_frame()?;
        }
        for entry in entries {
            if self.last_id.as_deref().is_some_and(|last| last >= entry.id.as_str()) {
                return Err(invalid("documents must be written in id order"));
            }
            // As `encode_record` lays a document out: tag, id, etag, time, length, body.
            self.raw_bytes += (1 + 4 + entry.id.len() + 8 + 8 + 4) as u64 + u64::from(entry.size);
            self.index_entry(&entry.id, entry.etag, entry.modified_ms, entry.size)?;
        }
        self.copied_bytes += compressed.len();
        self.copied.push((compressed, sha256));
        self.frame_ids.push(entries[0].id.clone());
        self.frames += 1;
        if self.copied_bytes >= COPY_BATCH_BYTES {
            self.send_copied()?;
        }
        Ok(())
    }

    /// Hands the copied frames gathered to the frame thread.
    fn send_copied(&mut self) -> io::Result<()> {
        if self.copied.is_empty() {
            return Ok(());
        }
        self.copied_bytes = 0;
        let batch = std::mem::take(&mut self.copied);
        self.send(Chunk::Compressed(batch))
    }

    /// One document's entry in the index, in the frame being gathered.
    fn index_entry(&mut self, id: &str, etag: u64, modified_ms: i64, size: u32) -> io::Result<()> {
        put_str(&mut self.block, id);
        self.block.extend_from_slice(&etag.to_le_bytes());
        self.block.extend_from_slice(&modified_ms.to_le_bytes());
        self.block.extend_from_slice(&size.to_le_bytes());
        self.block.extend_from_slice(&self.frames.to_le_bytes());
        if self.block_count == 0 {
            id.clone_into(&mut self.block_ids.0);
        }
        if let Some(hashes) = &mut self.block_hashes {
            hashes.push(IdHash::of(id));
        }
        id.clone_into(&mut self.block_ids.1);
        self.block_count += 1;
        self.records += 1;
        match &mut self.last_id {
            Some(last) => id.clone_into(last),
            None => self.last_id = Some(id.to_owned()),
        }
        if self.block_count as usize >= BLOCK_ENTRIES {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_frame(&mut self) -> io::Result<()> {
        // Frames reach the file in the order they are numbered.
        self.send_copied()?;
        let raw = std::mem::replace(&mut self.raw, Vec::with_capacity(FRAME_RAW_BYTES + 4096));
        self.send_frame(raw)?;
        self.frame_ids.push(self.gathering.take().unwrap_or_default());
        self.frames += 1;
        Ok(())
    }

    /// Hands a gathered frame to the frame thread; while that thread is
    /// still busy with the frames before it (its queue full), compresses
    /// the frame here instead of waiting, so that the two threads share the
    /// compression (a frame takes longer to compress than to gather, and
    /// the gathering thread otherwise waited on the queue for most of a
    /// full backup's second half). Frames compressed here are handed over
    /// in batches, when the queue has room; frames reach the file in order.
    fn send_frame(&mut self, raw: Vec<u8>) -> io::Result<()> {
        let Some((tx, _)) = self.worker.as_ref().filter(|_| self.share) else { return self.send(Chunk::Raw(raw)) };
        let raw = if self.compressed_here.is_empty() {
            match tx.try_send(Chunk::Raw(raw)) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(Chunk::Raw(raw))) => raw,
                Err(TrySendError::Full(chunk) | TrySendError::Disconnected(chunk)) => return self.send(chunk),
            }
        } else {
            raw
        };
        let compressed = self.compressor.compress(&raw)?;
        let sha256 = sha256_of(&compressed);
        self.compressed_here_bytes += compressed.len();
        self.compressed_here.push((compressed, sha256));
        self.frames_compressed_here += 1;
        self.offer_compressed_here()
    }

    /// Hands the frames compressed here to the frame thread if its queue
    /// has room, or once they are [`COPY_BATCH_BYTES`] whatever it takes.
    fn offer_compressed_here(&mut self) -> io::Result<()> {
        let Some((tx, _)) = self.worker.as_ref() else { return self.send_compressed_here() };
        let batch = std::mem::take(&mut self.compressed_here);
        match tx.try_send(Chunk::Compressed(batch)) {
            Ok(()) => {
                self.compressed_here_bytes = 0;
                Ok(())
            }
            Err(TrySendError::Full(Chunk::Compressed(batch))) => {
                self.compressed_here = batch;
                if self.compressed_here_bytes >= COPY_BATCH_BYTES {
                    self.send_compressed_here()?;
                }
                Ok(())
            }
            Err(TrySendError::Full(chunk) | TrySendError::Disconnected(chunk)) => self.send_now(chunk),
        }
    }

    /// Hands the frames compressed here to the frame thread, waiting for room.
    fn send_compressed_here(&mut self) -> io::Result<()> {
        if self.compressed_here.is_empty() {
            return Ok(());
        }
        self.compressed_here_bytes = 0;
        let batch = std::mem::take(&mut self.compressed_here);
        self.send_now(Chunk::Compressed(batch))
    }

    /// Hands `chunk` to the frame thread after the frames compressed here.
    fn send(&mut self, chunk: Chunk) -> io::Result<()> {
        self.send_compressed_here()?;
        self.send_now(chunk)
    }

    fn send_now(&mut self, chunk: Chunk) -> io::Result<()> {
        let sent = self.worker.as_ref().is_some_and(|(tx, _)| tx.send(chunk).is_ok());
        if !sent {
            // The worker stopped on an error: it is returned by `finish`.
            return Err(self.stop_worker().err().unwrap_or_else(|| invalid("the frame writer stopped")));
        }
        Ok(())
    }

    fn stop_worker(&mut self) -> io::Result<(W, Vec<FrameRef>)> {
        let (tx, handle) = self.worker.take().ok_or_else(|| invalid("the frame writer stopped"))?;
        drop(tx);
        handle.join().map_err(|_| io::Error::other("the frame writer failed"))?
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if self.block_count == 0 {
            return Ok(());
        }
        let compressed = self.compressor.compress(&self.block)?;
        self.index.write_all(&compressed)?;
        let len = u32::try_from(compressed.len()).map_err(|_| invalid("an index block over 4 GiB"))?;
        let (first_id, last_id) = std::mem::take(&mut self.block_ids);
        self.blocks.push(BlockRef {
            offset: self.index_written,
            len,
            count: self.block_count,
            sha256: sha256_of(&compressed),
            first_id,
            last_id,
            filter: self.block_hashes.as_mut().map_or_else(IdFilter::default, |hashes| {
                let filter = IdFilter::build(hashes);
                hashes.clear();
                filter
            }),
        });
        self.index_written += u64::from(len);
        self.block.clear();
        self.block_count = 0;
        Ok(())
    }

    /// Writes the end record in the last frame and the last index block;
    /// returns the documents file's writer, the index's, the top and the count.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(mut self) -> io::Result<(W, X, IndexTop)> {
        super::format::encode_end(self.records, &mut self.raw);
        self.flush_frame()?;
        self.send_compressed_here()?;
        self.flush_block()?;
        let (data, mut frames) = self.stop_worker()?;
        if frames.len() != self.frame_ids.len() {
            return Err(invalid("the frame writer lost count of its frames"));
        }
        for (frame, id) in frames.iter_mut().zip(std::mem::take(&mut self.frame_ids)) {
            frame.first_id = id;
        }
        let top = IndexTop { frames, blocks: std::mem::take(&mut self.blocks), records: self.records, keyed: true };
        Ok((data, self.index, top))
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or_else(|| invalid("an index file is cut short"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| invalid("short"))?))
    }

    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| invalid("short"))?))
    }

    fn hash(&mut self) -> io::Result<[u8; 32]> {
        self.take(32)?.try_into().map_err(|_| invalid("short"))
    }

    fn count(&mut self) -> io::Result<usize> {
        let n = self.u64()?;
        usize::try_from(n).ok().filter(|n| *n <= MAX_TOP_ITEMS).ok_or_else(|| invalid("an index top file lists too many items"))
    }

    /// A block's filter: its length (0: none), then its bytes (at most four
    /// times the bits per id a writer gives, a bound on what a forged top
    /// makes a reader keep; sets written with fewer bits read as before).
    fn filter(&mut self, ids: u32) -> io::Result<IdFilter> {
        let len = self.u32()? as usize;
        if len > IdFilter::bytes_for(ids as usize * 4) {
            return Err(invalid("an index block's filter is not of its block's size"));
        }
        Ok(IdFilter::from_bytes(self.take(len)?.to_vec()))
    }

    fn string(&mut self) -> io::Result<String> {
        self.str().map(str::to_string)
    }

    fn str(&mut self) -> io::Result<&'a str> {
        let len = self.u32()? as usize;
        if len > 64 * 1024 {
            return Err(invalid("an id longer than any valid id"));
        }
        std::str::from_utf8(self.take(len)?).map_err(|_| invalid("an id is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn doc(i: u32) -> DataRecord {
        DataRecord::Document {
            id: format!("orders/{i:06}"),
            etag: u64::from(i) + 1,
            modified_ms: 5,
            body: vec![b'x'; 700 + (i % 9) as usize],
        }
    }

    fn write(n: u32) -> (Vec<u8>, Vec<u8>, IndexTop) {
        let mut w = FramedWriter::new(Vec::new(), Vec::new(), 1).expect("writer");
        for i in 0..n {
            w.write(&doc(i)).expect("writes");
        }
        w.finish().expect("finishes")
    }

    /// A documents file whose writes wait until the test opens its gate.
    struct Gated {
        gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
        bytes: Vec<u8>,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (open, opened) = &*self.gate;
            let _open = opened.wait_while(open.lock().expect("gate"), |open| !*open).expect("gate");
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// While the frame thread cannot write (its file held back), the frames
    /// gathered after the two its queue holds are compressed by the caller,
    /// and every frame still reaches the file in order.
    #[test]
    fn frames_compressed_by_the_caller_while_the_frame_thread_is_busy_reach_the_file_in_order() {
        let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let file = Gated { gate: gate.clone(), bytes: Vec::new() };
        let mut w = FramedWriter::new(file, Vec::new(), 1).expect("writer");
        let n = 1500;
        for i in 0..n {
            w.write(&doc(i)).expect("writes");
        }
        let gathered = u64::from(w.frames);
        assert!(gathered >= 12, "{gathered} frames");
        // One frame taken by the thread (stuck writing it), two queued.
        assert!(w.frames_compressed_here() >= gathered - 3, "{} of {gathered} compressed here", w.frames_compressed_here());
        let (open, opened) = &*gate;
        *open.lock().expect("gate") = true;
        opened.notify_all();
        let (file, _, top) = w.finish().expect("finishes");
        let data = file.bytes;
        let mut all = super::super::format::RecordReader::new(&data[..]).expect("reader");
        for i in 0..n {
            assert_eq!(all.next_record().expect("reads"), Some(doc(i)), "record {i}");
        }
        assert_eq!(all.next_record().expect("reads"), None);
        let mut next = 0;
        for f in &top.frames {
            let frame = zstd::bulk::decompress(&data[f.offset as usize..(f.offset + u64::from(f.len)) as usize], 1 << 20).expect("frame");
            assert_eq!(sha256_of(&data[f.offset as usize..(f.offset + u64::from(f.len)) as usize]), f.sha256);
            let records = decode_frame(&frame).expect("records");
            if let Some(DataRecord::Document { id, .. }) = records.first() {
                assert_eq!(id, &f.first_id, "each frame's first id in the top");
            }
            next += records.iter().filter(|r| matches!(r, DataRecord::Document { .. })).count();
        }
        assert_eq!(next, n as usize, "the frames hold every document once");
    }

    #[test]
    fn frames_read_as_one_stream_and_each_alone_through_the_index() {
        let (data, index, top) = write(3000);
        assert!(top.frames.len() > 20 && top.blocks.len() == 6, "{} frames, {} blocks", top.frames.len(), top.blocks.len());
        // A sequential reader sees one stream with its end record.
        let mut all = super::super::format::RecordReader::new(&data[..]).expect("reader");
        let mut n = 0;
        while all.next_record().expect("reads").is_some() {
            n += 1;
        }
        assert_eq!(n, 3000);
        // A lookup: block, entry, frame.
        let top = IndexTop::decode(&top.encode()).expect("round trip");
        let id = "orders/001234";
        let b = &top.blocks[top.block_for(id).expect("a block")];
        let block_bytes = &index[b.offset as usize..(b.offset + u64::from(b.len)) as usize];
        assert_eq!(sha256_of(block_bytes), b.sha256);
        let mut raw = Vec::new();
        zstd::Decoder::new(block_bytes).expect("zstd").read_to_end(&mut raw).expect("block");
        let entries = decode_block(&raw, b, top.frames.len()).expect("entries");
        let entry = entries.iter().find(|e| e.id == id).expect("entry");
        let f = &top.frames[entry.frame as usize];
        let frame = zstd::bulk::decompress(&data[f.offset as usize..(f.offset + u64::from(f.len)) as usize], 1 << 20).expect("frame");
        let records = decode_frame(&frame).expect("records");
        assert!(records.contains(&doc(1234)));
        assert_eq!(top.block_for("orders/999999"), None);
        assert_eq!(top.block_for("a"), None);
    }

    /// A block found into without decoding every entry: the same entries as
    /// a whole decode, every id found, ids between and beyond not, and a
    /// block whose entries were tampered with refused.
    #[test]
    fn a_block_finds_its_ids_and_refuses_damage() {
        let (_, index, top) = write(1200);
        let b = &top.blocks[1];
        let mut raw = Vec::new();
        zstd::Decoder::new(&index[b.offset as usize..(b.offset + u64::from(b.len)) as usize])
            .expect("zstd")
            .read_to_end(&mut raw)
            .expect("block");
        let block = Block::parse(raw.clone(), b, top.frames.len()).expect("a block");
        let entries = decode_block(&raw, b, top.frames.len()).expect("entries");
        assert_eq!(block.entries(), entries);
        assert_eq!(block.len(), b.count as usize);
        for entry in &entries {
            assert_eq!(block.find(&entry.id).as_ref(), Some(entry));
            assert_eq!(block.find(&format!("{}x", entry.id)), None, "an id between two");
        }
        assert_eq!(block.find("a"), None);
        assert_eq!(block.find("z"), None);
        // The first two entries swapped: out of order.
        let second = 4 + entries[0].id.len() + 24;
        let mut swapped = raw[second..2 * second].to_vec();
        swapped.extend_from_slice(&raw[..second]);
        swapped.extend_from_slice(&raw[2 * second..]);
        assert!(Block::parse(swapped, b, top.frames.len()).is_err());
        // An entry naming a frame beyond the file's.
        assert!(Block::parse(raw.clone(), b, 1).is_err());
        // Cut short, or not the count the top lists.
        assert!(Block::parse(raw[..raw.len() - 1].to_vec(), b, top.frames.len()).is_err());
        assert!(Block::parse(raw[second..].to_vec(), b, top.frames.len()).is_err());
    }

    #[test]
    fn a_forged_top_is_refused() {
        let (_, _, top) = write(1200);
        let mut bytes = top.encode();
        assert!(IndexTop::decode(&bytes[..bytes.len() - 1]).is_err());
        bytes[8] ^= 1; // the record count
        assert!(IndexTop::decode(&bytes).is_err());
        let mut swapped = top.clone();
        swapped.blocks.swap(0, 1);
        assert!(IndexTop::decode(&swapped.encode()).is_err());
    }

    /// A top of format 6 (`RKTOP02`): each frame's first id, and in an
    /// incremental each block's filter of its ids, which points a lookup
    /// away from ids it does not hold; it round-trips, a top of format 4 and
    /// 5 (`RKTOP01`) still decodes, and a filter longer than its block's,
    /// frames whose first ids do not increase, or a block whose filter does
    /// not hold its ids are refused.
    #[test]
    fn a_top_names_each_frame_s_first_id_and_an_incremental_s_blocks_carry_filters() {
        let mut w = FramedWriter::new(Vec::new(), Vec::new(), 1).expect("writer").with_filters();
        for i in (0..1200).map(|i| i * 3) {
            w.write(&doc(i)).expect("writes");
        }
        let (_, index, top) = w.finish().expect("finishes");
        assert!(top.keyed && top.has_filters());
        assert!(top.blocks.iter().all(|b| b.filter.as_bytes().len() == IdFilter::bytes_for(b.count as usize)));
        assert!(top.encode().starts_with(TOP_MAGIC_KEYED));
        assert_eq!(IndexTop::decode(&top.encode()).expect("round trip"), top);
        let held = |i: u32| top.candidate(&format!("orders/{i:06}"), IdHash::of(&format!("orders/{i:06}")));
        assert!((0..1200).all(|i| held(i * 3).is_some()), "no id of the file is filtered out");
        let skipped = (0..1200).filter(|i| held(i * 3 + 1).is_none()).count();
        assert!(skipped > 1150, "ids between the file's are mostly filtered out: {skipped} of 1200");
        // Every id's frame, as its index entry names it.
        let entries: Vec<IndexEntry> = top
            .blocks
            .iter()
            .flat_map(|b| {
                let raw =
                    zstd::bulk::decompress(&index[b.offset as usize..(b.offset + u64::from(b.len)) as usize], 1 << 20).expect("block");
                decode_block(&raw, b, top.frames.len()).expect("entries")
            })
            .collect();
        assert_eq!(entries.len(), 1200);
        assert!(entries.iter().all(|e| top.frame_for(&e.id) == Some(e.frame)), "each id's frame from the top alone");
        assert_eq!(top.frame_for("a"), None);
        assert_eq!(top.frame_for("orders/999999"), None);
        // A full set's top: first ids, no filters; one of format 5 still reads.
        let plain = write(1200).2;
        assert!(plain.keyed && !plain.has_filters() && plain.frames.iter().all(|f| !f.first_id.is_empty()));
        assert_eq!(IndexTop::decode(&plain.encode()).expect("a full set's top"), plain);
        let mut older = plain.clone();
        older.keyed = false;
        older.frames.iter_mut().for_each(|f| f.first_id.clear());
        assert!(older.encode().starts_with(TOP_MAGIC));
        assert_eq!(IndexTop::decode(&older.encode()).expect("a top of format 5"), older);
        // A filter longer than four times the bits per id; frames out of order.
        let mut forged = top.clone();
        forged.blocks[1].filter = IdFilter::from_bytes(vec![0xff; IdFilter::bytes_for(top.blocks[1].count as usize * 4) + 1]);
        assert!(IndexTop::decode(&forged.encode()).is_err(), "a filter too long");
        let mut forged = top.clone();
        forged.frames.swap(1, 2);
        (forged.frames[1].offset, forged.frames[2].offset) = (top.frames[1].offset, top.frames[2].offset);
        (forged.frames[1].len, forged.frames[2].len) = (top.frames[1].len, top.frames[2].len);
        assert!(IndexTop::decode(&forged.encode()).is_err(), "frames' first ids out of order");
        let mut forged = top.clone();
        forged.frames[0].first_id.clear();
        assert!(IndexTop::decode(&forged.encode()).is_err(), "a frame without a first id before the last");
        // A block whose filter does not hold its ids.
        let b = &top.blocks[0];
        let raw = zstd::bulk::decompress(&index[b.offset as usize..(b.offset + u64::from(b.len)) as usize], 1 << 20).expect("block");
        assert!(Block::parse(raw.clone(), b, top.frames.len()).is_ok());
        let mut emptied = b.clone();
        emptied.filter = IdFilter::from_bytes(vec![0; b.filter.as_bytes().len()]);
        let refused = Block::parse(raw, &emptied, top.frames.len()).expect_err("a filter that does not hold its ids");
        assert!(refused.to_string().contains("filter"), "{refused}");
    }

    #[test]
    fn out_of_order_documents_are_refused() {
        let mut w = FramedWriter::new(Vec::new(), Vec::new(), 1).expect("writer");
        w.write(&doc(2)).expect("writes");
        assert!(w.write(&doc(1)).is_err());
    }
}
