//! The on-disk format of a backup set (see `README.md` beside this file).
//!
//! Data files are zstd streams of records. Every record starts with a tag byte:
//! - `D` document: `[id_len u32 LE][id][etag u64 LE][modified_ms i64 LE][body_len u32 LE][body]`
//! - `X` deletion: `[id_len u32 LE][id][etag u64 LE]`
//! - `E` change-log entry: `[etag u64 LE][id_len u32 LE][id]`
//! - `Z` end of file: `[record_count u64 LE]`, so that a stream cut short is
//!   detected even before checksums are compared.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::DigestKind;

/// The format written by this version. Readers accept every version up to it
/// and refuse newer ones with `UnsupportedFormatVersion`. Version 3 added
/// snapshot sets (`Kind: "Snapshot"`); version 4 documents files of
/// independent frames with an id index beside each (see `frames`), and
/// documents in id order in incrementals too; version 5 snapshot files
/// stored once for the whole location (`Shared`, see [`SHARED_TABLES`]);
/// version 6 index tops that name each frame's first id and, in an
/// incremental, hold a membership filter of each index block's ids (see
/// `frames` and `filter`): a lookup reads one frame per set that may hold
/// the id, and nothing of the sets that do not; version 7 a content digest
/// that sums XXH3 instead of SHA-256 (see `storage::digest`).
pub const FORMAT_VERSION: u32 = 7;
/// The newest format whose content digest sums SHA-256.
pub const LAST_SHA256_DIGEST_FORMAT: u32 = 6;
/// The folder (or prefix) of a location where shared snapshot tables are
/// kept, each under its SHA-256: `tables/<sha256>`. Not a set id, so no
/// listing takes it for a set.
pub const SHARED_TABLES: &str = "tables";

/// Whether `text` is a SHA-256 as a shared table's name: 64 lowercase hex digits.
#[must_use]
pub fn is_table_name(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
/// The manifest's file name inside a set folder.
pub const MANIFEST: &str = "manifest.json";
/// The checksum list, in `sha256sum` format.
pub const SHA256SUMS: &str = "SHA256SUMS";
/// The largest document body a set may hold (a request body is at most
/// `--max-body-bytes`, 16 MiB by default).
pub const MAX_RECORD_BODY: usize = 256 * 1024 * 1024;
/// Prefix of a set folder being written; never read as a set.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Whether `id` has the syntax of a set id: `YYYYMMDDTHHMMSSZ-full` (or
/// `-incremental`), with `.NN` after the `Z` for the second and later sets of
/// the same second (`20261126T050000Z.02-full`), so that ids sort by name in
/// creation order; sets written before that used `-N-` (`...Z-2-full`) and
/// are still read. Anything else read from a manifest, a request or internal
/// state is refused, so a set id can never carry a path.
#[must_use]
pub fn is_valid_set_id(id: &str) -> bool {
    let b = id.as_bytes();
    if b.len() < 18 || b.len() > 64 {
        return false;
    }
    let stamp_ok = b[..8].iter().all(u8::is_ascii_digit) && b[8] == b'T' && b[9..15].iter().all(u8::is_ascii_digit) && b[15] == b'Z';
    if !stamp_ok {
        return false;
    }
    let digits = |n: &str| !n.is_empty() && n.len() <= 9 && n.bytes().all(|c| c.is_ascii_digit());
    let rest = &id[16..];
    let kind = if let Some(after) = rest.strip_prefix('.') {
        match after.split_once('-') {
            Some((n, kind)) if digits(n) && n.len() >= 2 => kind,
            _ => return false,
        }
    } else if let Some(after) = rest.strip_prefix('-') {
        match after.split_once('-') {
            Some((n, kind)) if digits(n) && !n.starts_with('0') => kind,
            Some(_) => return false,
            None => after,
        }
    } else {
        return false;
    };
    SetKind::ALL.iter().any(|k| kind == k.suffix())
}

/// Whether `name` (a path inside a set) is one a writer of this format
/// gives a file: `manifest.json`, `SHA256SUMS`, the data files of a logical
/// set (`documents-NNNN.zst`, `changes.zst`, `deletions.zst`,
/// `credentials.zst`) or a storage file of a snapshot set. Clean-up removes
/// an abandoned set only when it holds nothing else.
#[must_use]
pub fn is_set_file_name(name: &str) -> bool {
    let documents = name
        .strip_prefix("documents-")
        .and_then(|n| n.strip_suffix(".zst").or_else(|| n.strip_suffix(".idx")).or_else(|| n.strip_suffix(".top")))
        .is_some_and(|n| n.len() >= 4 && n.bytes().all(|b| b.is_ascii_digit()));
    documents
        || matches!(name, MANIFEST | SHA256SUMS | "changes.zst" | "deletions.zst" | "credentials.zst")
        || crate::storage::files::is_storage_file_name(name)
}

/// Full (logical), snapshot (the database's own files) or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetKind {
    Full,
    Incremental,
    Snapshot,
}

impl SetKind {
    /// Every kind.
    pub const ALL: [Self; 3] = [Self::Full, Self::Incremental, Self::Snapshot];

    /// The suffix of set ids of this kind.
    #[must_use]
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
            Self::Snapshot => "snapshot",
        }
    }

    /// Whether a set of this kind starts a chain (a whole database).
    #[must_use]
    pub fn starts_chain(self) -> bool {
        matches!(self, Self::Full | Self::Snapshot)
    }
}

/// What a data file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileContent {
    Documents,
    Deletions,
    ChangeLog,
    /// System database only: the server's users and API keys (hashes, never
    /// secrets), a whole copy in every set, as `D` records (id = key, body = value).
    Credentials,
    /// Version 4: the id index of the documents file of the same number
    /// (`documents-NNNN.idx`, see `frames`).
    DocumentIndex,
    /// Version 4: the table of a documents file's frames and its index's
    /// blocks (`documents-NNNN.top`).
    IndexTop,
    /// Snapshot sets: one of the database's storage files, byte for byte
    /// (sealed in an encrypted set); its name is its path in the database
    /// folder (see `storage::files`).
    Storage,
}

/// Internal entries of the system database that travel in its backups: the
/// users, the API keys and the system database's backup tasks. The registry of named databases does not (those are
/// restored from their own sets).
pub const BACKED_UP_INTERNAL_PREFIXES: [&str; 3] = ["auth/users/", "auth/apikeys/", "tasks/"];
/// The most credential entries a set may carry.
pub const MAX_CREDENTIALS: usize = 100_000;

/// One file of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    pub content: FileContent,
    pub records: u64,
    /// Stored once for the location, at `tables/<Sha256>`, not in the set
    /// (a snapshot's immutable table, shared by every set that holds it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Manifest {
    pub format_version: u32,
    pub server_version: String,
    pub set_id: String,
    pub database_name: String,
    pub database_id: String,
    pub kind: SetKind,
    pub base_set_id: Option<String>,
    pub from_etag: u64,
    pub to_etag: u64,
    pub document_count: u64,
    pub deletion_count: u64,
    pub created: String,
    pub compression: String,
    pub encryption: Option<serde_json::Value>,
    pub files: Vec<ManifestFile>,
    /// The database's content digest at `ToEtag` (see `storage::digest`):
    /// what a restore of the chain up to this set must reproduce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
    /// A full set written by compaction: the sets of the chain it folds, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted_from: Option<Vec<String>>,
    /// Snapshot sets: the storage format their files need (`fjall-3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_format: Option<String>,
    /// How long writing the set took, in milliseconds (sets written from
    /// now on; the studio's chart of backup durations reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Encrypted sets (version 2 on): a MAC of the manifest without this
    /// field, under the set key (see `sealed::manifest_mac`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Manifest {
    /// The bytes a manifest's MAC covers: the manifest without its `Mac`.
    ///
    /// # Errors
    /// Serialization errors.
    pub fn canonical_bytes(&self) -> serde_json::Result<Vec<u8>> {
        let mut copy = self.clone();
        copy.mac = None;
        serde_json::to_vec(&copy)
    }

    /// Which hash the set's `ContentDigest` sums.
    #[must_use]
    pub fn digest_kind(&self) -> DigestKind {
        if self.format_version > LAST_SHA256_DIGEST_FORMAT {
            DigestKind::Xxh3
        } else {
            DigestKind::Sha256
        }
    }

    /// The format a set carrying this set's digest is written in: a set
    /// that copies the digest of an older one (a compaction's) keeps its
    /// hash, and so the last format that sums it.
    #[must_use]
    pub fn format_for_its_digest(&self) -> u32 {
        match (&self.content_digest, self.digest_kind()) {
            (Some(_), DigestKind::Sha256) => LAST_SHA256_DIGEST_FORMAT,
            _ => FORMAT_VERSION,
        }
    }
}

/// A record of a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataRecord {
    Document { id: String, etag: u64, modified_ms: i64, body: Vec<u8> },
    Deletion { id: String, etag: u64 },
    Change { etag: u64, id: String },
}

const TAG_DOCUMENT: u8 = b'D';
const TAG_DELETION: u8 = b'X';
const TAG_CHANGE: u8 = b'E';
const TAG_END: u8 = b'Z';

/// Counts and hashes what goes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner, hasher: Sha256::new(), written: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The inner writer, the byte count and the hex SHA-256.
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.written, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts and hashes what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, hasher: Sha256::new(), read: 0 }
    }

    /// Reads what is left (so that the hash covers the whole file), then
    /// returns the byte count and the hex SHA-256.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(self) -> io::Result<(u64, String)> {
        // What is left after a stream was read is short: a small buffer.
        self.finish_through(&mut [0u8; 8 * 1024])
    }

    /// [`Self::finish`], reading into `buffer` and hashing there.
    fn finish_through(mut self, buffer: &mut [u8]) -> io::Result<(u64, String)> {
        loop {
            match self.read(buffer) {
                Ok(0) => return Ok((self.read, hex::encode(self.hasher.finalize()))),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// The SHA-256 (hex) of everything `reader` yields, read 1 MiB at a time.
///
/// # Errors
/// I/O errors.
pub fn sha256_reader(reader: impl io::Read) -> io::Result<String> {
    // Read straight into one large buffer and hashed there, with no buffered
    // reader between (which copied every byte once more: 3% of a linked
    // snapshot's CPU).
    HashingReader::new(reader).finish_through(&mut vec![0u8; WHOLE_FILE_READ]).map(|(_, sha)| sha)
}

/// The reads of [`sha256_reader`].
const WHOLE_FILE_READ: usize = 1 << 20;

/// The bytes under the compressor: plain, or sealed in chunks (an encrypted
/// set); hashed either way, so checksums are of what is on disk.
pub enum SetWriter<W: Write> {
    Plain(HashingWriter<W>),
    Sealed(super::sealed::ChunkSealer<HashingWriter<W>>),
}

impl<W: Write> SetWriter<W> {
    /// Bytes on disk so far.
    pub fn written(&self) -> u64 {
        match self {
            Self::Plain(h) => h.written(),
            Self::Sealed(s) => s.get_ref().written(),
        }
    }

    /// Seals the last chunk (if sealed) and returns the hashing writer.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(self) -> io::Result<HashingWriter<W>> {
        match self {
            Self::Plain(h) => Ok(h),
            Self::Sealed(s) => s.finish(),
        }
    }
}

impl<W: Write> Write for SetWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(h) => h.write(buf),
            Self::Sealed(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(h) => h.flush(),
            Self::Sealed(s) => s.flush(),
        }
    }
}

/// The reading side of [`SetWriter`].
pub enum SetReader<R: Read> {
    Plain(HashingReader<R>),
    Sealed(super::sealed::ChunkOpener<HashingReader<R>>),
}

impl<R: Read> SetReader<R> {
    /// The hashing reader under it.
    pub fn into_hashing(self) -> HashingReader<R> {
        match self {
            Self::Plain(h) => h,
            Self::Sealed(o) => o.into_inner(),
        }
    }
}

impl<R: Read> Read for SetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(h) => h.read(buf),
            Self::Sealed(o) => o.read(buf),
        }
    }
}

/// Writes records into a zstd stream.
pub struct RecordWriter<W: Write> {
    encoder: zstd::Encoder<'static, W>,
    /// Records encoded and not yet handed to the compressor: one call into
    /// zstd per [`PENDING_BYTES`], not one per record (a change log's
    /// records are about 30 bytes each).
    pending: Vec<u8>,
    records: u64,
    raw_bytes: u64,
}

/// Encoded records held before they go to the compressor.
const PENDING_BYTES: usize = 64 * 1024;

impl<W: Write> RecordWriter<W> {
    /// Starts a compressed stream at `level`.
    ///
    /// # Errors
    /// zstd initialisation errors.
    pub fn new(inner: W, level: i32) -> io::Result<Self> {
        let mut encoder = zstd::Encoder::new(inner, level)?;
        // Compress on a zstd worker thread while the caller reads the next
        // records: a backup then uses both of a small machine's cores.
        encoder.multithread(1)?;
        Ok(Self { encoder, pending: Vec::with_capacity(PENDING_BYTES), records: 0, raw_bytes: 0 })
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Uncompressed bytes written so far.
    pub fn raw_bytes(&self) -> u64 {
        self.raw_bytes
    }

    /// Appends one record.
    ///
    /// # Errors
    /// I/O errors; ids and bodies over 4 GiB.
    pub fn write(&mut self, record: &DataRecord) -> io::Result<()> {
        let before = self.pending.len();
        if let Err(e) = encode_record(record, &mut self.pending) {
            self.pending.truncate(before);
            return Err(e);
        }
        self.raw_bytes += (self.pending.len() - before) as u64;
        self.records += 1;
        if self.pending.len() >= PENDING_BYTES {
            self.encoder.write_all(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Writes the end record and closes the compressed stream.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        encode_end(self.records, &mut self.pending);
        self.encoder.write_all(&self.pending)?;
        Ok((self.encoder.finish()?, self.records))
    }
}

/// Appends the bytes of one record to `buf`.
///
/// # Errors
/// Ids and bodies over 4 GiB.
pub fn encode_record(record: &DataRecord, buf: &mut Vec<u8>) -> io::Result<()> {
    match record {
        DataRecord::Document { id, etag, modified_ms, body } => encode_document(id, *etag, *modified_ms, body, buf)?,
        DataRecord::Deletion { id, etag } => {
            buf.push(TAG_DELETION);
            put_bytes(buf, id.as_bytes())?;
            buf.extend_from_slice(&etag.to_le_bytes());
        }
        DataRecord::Change { etag, id } => {
            buf.push(TAG_CHANGE);
            buf.extend_from_slice(&etag.to_le_bytes());
            put_bytes(buf, id.as_bytes())?;
        }
    }
    Ok(())
}

/// Appends a document record from its parts (as [`encode_record`] does a
/// [`DataRecord::Document`]).
///
/// # Errors
/// Ids and bodies over 4 GiB.
pub fn encode_document(id: &str, etag: u64, modified_ms: i64, body: &[u8], buf: &mut Vec<u8>) -> io::Result<()> {
    buf.push(TAG_DOCUMENT);
    put_bytes(buf, id.as_bytes())?;
    buf.extend_from_slice(&etag.to_le_bytes());
    buf.extend_from_slice(&modified_ms.to_le_bytes());
    buf.extend_from_slice(&len_u32(body.len())?.to_le_bytes());
    buf.extend_from_slice(body);
    Ok(())
}

/// Appends the end record of a file of `records` records.
pub fn encode_end(records: u64, buf: &mut Vec<u8>) {
    buf.push(TAG_END);
    buf.extend_from_slice(&records.to_le_bytes());
}

/// Reads records from a zstd stream; fails on a stream cut short.
pub struct RecordReader<S: Read> {
    decoder: S,
    records: u64,
    ended: bool,
    /// One frame of a file: it may end without the end record, and an end
    /// record in it counts the whole file's records.
    frame: bool,
}

/// A compressed stream's decoder, read through a buffer: a record's fields
/// are small reads, each of which would otherwise be a call into zstd.
pub type Decoded<R> = io::BufReader<zstd::Decoder<'static, io::BufReader<R>>>;

/// A document's body up to this size is allocated whole before it is read;
/// a larger one grows with what is read.
const EXACT_BODY: usize = 1 << 20;

/// A record cut short by the end of its file: damage, named as such.
fn cut_short(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        invalid("the file ends inside a record")
    } else {
        e
    }
}

/// A document record as the storage keeps it: [`RecordReader::next_stored_document`].
#[derive(Debug)]
pub struct StoredDocument {
    pub id: String,
    pub etag: u64,
    /// The record header (etag, modification time, flags), then the body.
    pub value: byteview::ByteView,
}

/// Decompressed bytes buffered ahead of the record being read: more than a
/// frame of a set's documents file holds (a frame is cut once it passes
/// 64 KiB of records, so it is a little over), and zstd then decodes each
/// frame in one pass straight into this buffer instead of through its own
/// window and a copy out of it. With 64 KiB here, every frame took the copy:
/// decoding the 930 MB of a 1M-document full set's documents files took
/// 0.40 s on one core, and 0.38 s with this (four rounds each).
const DECODED_BUFFER: usize = 128 * 1024;

impl<R: Read> RecordReader<Decoded<R>> {
    /// Opens a compressed stream.
    ///
    /// # Errors
    /// zstd initialisation errors.
    pub fn new(inner: R) -> io::Result<Self> {
        let decoder = io::BufReader::with_capacity(DECODED_BUFFER, zstd::Decoder::new(inner)?);
        Ok(Self { decoder, records: 0, ended: false, frame: false })
    }

    /// The reader under the decompressor.
    pub fn into_inner(self) -> R {
        self.decoder.into_inner().finish().into_inner()
    }
}

impl<'a> RecordReader<&'a [u8]> {
    /// Reads the records of bytes already decompressed (one frame).
    #[must_use]
    pub fn raw(bytes: &'a [u8]) -> Self {
        Self { decoder: bytes, records: 0, ended: false, frame: true }
    }

    /// Whether every byte was read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.decoder.is_empty()
    }

    /// The next document, borrowed from the bytes, with the checks of
    /// [`Self::next_record`]; the records of other kinds are read past.
    /// `None` after the end.
    ///
    /// # Errors
    /// As [`Self::next_record`].
    pub fn next_document_in_place(&mut self) -> io::Result<Option<DocumentAt<'a>>> {
        let next = self.document_in_place();
        // After an error nothing more is read, as after the end.
        self.ended |= next.is_err();
        next
    }

    fn document_in_place(&mut self) -> io::Result<Option<DocumentAt<'a>>> {
        loop {
            match self.decoder.first() {
                Some(&TAG_DOCUMENT) if !self.ended => {}
                _ => match self.next_record()? {
                    Some(_) => continue,
                    None => return Ok(None),
                },
            }
            self.decoder = &self.decoder[1..];
            let id = std::str::from_utf8(self.take_id()?).map_err(|_| invalid("a record id is not UTF-8"))?;
            let etag = self.read_u64()?;
            let modified_ms = self.read_u64()? as i64;
            let len = self.read_body_len()?;
            let body = self.take(len).ok_or_else(|| invalid("the file ends inside a record"))?;
            self.records += 1;
            return Ok(Some(DocumentAt { id, etag, modified_ms, body }));
        }
    }

    /// The next `len` bytes, if there are as many.
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.decoder.split_at_checked(len)?;
        self.decoder = rest;
        Some(taken)
    }

    fn take_id(&mut self) -> io::Result<&'a [u8]> {
        let len = self.read_id_len()?;
        self.take(len).ok_or_else(|| invalid("the file ends inside a record"))
    }
}

/// A document record borrowed from decompressed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentAt<'a> {
    pub id: &'a str,
    pub etag: u64,
    pub modified_ms: i64,
    pub body: &'a [u8],
}

impl<S: Read> RecordReader<S> {
    /// The next record, `None` after the end record.
    ///
    /// # Errors
    /// `InvalidData` for an unknown tag, a count mismatch or a missing end record.
    pub fn next_record(&mut self) -> io::Result<Option<DataRecord>> {
        let Some(tag) = self.next_tag()? else { return Ok(None) };
        let record = match tag {
            TAG_DOCUMENT => {
                let (id, etag, modified_ms, len) = self.document_head()?;
                let body = if len <= EXACT_BODY {
                    let mut body = vec![0u8; len];
                    self.decoder.read_exact(&mut body).map_err(cut_short)?;
                    body
                } else {
                    self.read_large_body(len)?
                };
                DataRecord::Document { id, etag, modified_ms, body }
            }
            TAG_DELETION => {
                let id = self.read_string()?;
                let etag = self.read_u64()?;
                DataRecord::Deletion { id, etag }
            }
            TAG_CHANGE => {
                let etag = self.read_u64()?;
                let id = self.read_string()?;
                DataRecord::Change { etag, id }
            }
            TAG_END => return self.end().map(|()| None),
            other => return Err(invalid(&format!("unknown record tag {other}"))),
        };
        self.records += 1;
        Ok(Some(record))
    }

    /// The next record of a documents file, with the checks of
    /// [`Self::next_record`], its document read straight into the value the
    /// storage keeps for it (the record header with `flags`, then the body:
    /// [`crate::storage::record::value_with_flags`]), one copy out of the
    /// decoder and no other. `None` after the end record.
    ///
    /// # Errors
    /// As [`Self::next_record`]; `InvalidData` for a record of another kind.
    pub fn next_stored_document(&mut self, flags: u8) -> io::Result<Option<StoredDocument>> {
        use crate::storage::record::{header, HEADER_LEN};
        match self.next_tag()? {
            None => Ok(None),
            Some(TAG_DOCUMENT) => {
                let (id, etag, modified_ms, len) = self.document_head()?;
                let header = header(etag, modified_ms, flags);
                let value = if len <= EXACT_BODY {
                    let mut stored = header.as_slice().chain((&mut self.decoder).take(len as u64));
                    byteview::ByteView::from_reader(&mut stored, HEADER_LEN + len).map_err(cut_short)?
                } else {
                    byteview::ByteView::fused(&header, &self.read_large_body(len)?)
                };
                self.records += 1;
                Ok(Some(StoredDocument { id, etag, value }))
            }
            Some(TAG_END) => self.end().map(|()| None),
            Some(TAG_DELETION | TAG_CHANGE) => Err(invalid("a non-document record in a documents file")),
            Some(other) => Err(invalid(&format!("unknown record tag {other}"))),
        }
    }

    /// The next record's tag; `None` at the end of a frame, or after the end record.
    fn next_tag(&mut self) -> io::Result<Option<u8>> {
        if self.ended {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        if self.frame {
            if self.decoder.read(&mut tag)? == 0 {
                self.ended = true;
                return Ok(None);
            }
        } else if let Err(e) = self.decoder.read_exact(&mut tag) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof { invalid("the file ends before its end record") } else { e });
        }
        Ok(Some(tag[0]))
    }

    /// The end record, after its tag: its count must be the records read.
    fn end(&mut self) -> io::Result<()> {
        let count = self.read_u64()?;
        if count != self.records && !self.frame {
            return Err(invalid("the end record's count does not match the records read"));
        }
        self.ended = true;
        Ok(())
    }

    /// A document record after its tag, up to its body: the id, the etag,
    /// the modification time and the body's length.
    fn document_head(&mut self) -> io::Result<(String, u64, i64, usize)> {
        let id = self.read_string()?;
        let etag = self.read_u64()?;
        let modified_ms = self.read_u64()? as i64;
        Ok((id, etag, modified_ms, self.read_body_len()?))
    }

    /// A body's length, refused beyond any document's.
    fn read_body_len(&mut self) -> io::Result<usize> {
        let len = self.read_u32()? as usize;
        if len > MAX_RECORD_BODY {
            return Err(invalid("a record body is larger than any document"));
        }
        Ok(len)
    }

    /// A body over [`EXACT_BODY`]: beyond that, the buffer grows with the
    /// bytes actually read, so a lying length allocates little.
    fn read_large_body(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut body = Vec::with_capacity(EXACT_BODY);
        (&mut self.decoder).take(len as u64).read_to_end(&mut body)?;
        if body.len() != len {
            return Err(invalid("the file ends inside a record"));
        }
        Ok(body)
    }

    fn read_u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.decoder.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn read_u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.decoder.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// The length of the id that follows, refused beyond any valid id's.
    fn read_id_len(&mut self) -> io::Result<usize> {
        let len = self.read_u32()? as usize;
        if len > 64 * 1024 {
            return Err(invalid("a record id is longer than any valid id"));
        }
        Ok(len)
    }

    fn read_string(&mut self) -> io::Result<String> {
        let len = self.read_id_len()?;
        let mut b = vec![0u8; len];
        self.decoder.read_exact(&mut b)?;
        String::from_utf8(b).map_err(|_| invalid("a record id is not UTF-8"))
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    buf.extend_from_slice(&len_u32(bytes.len())?.to_le_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

fn len_u32(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| invalid("a field is over 4 GiB"))
}

pub(crate) fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// The content of `SHA256SUMS` for `files` (name, hex sha256), in `sha256sum` format.
#[must_use]
pub fn sha256sums(files: &[(String, String)]) -> String {
    files.iter().map(|(name, sha)| format!("{sha}  {name}\n")).collect()
}

/// Parses `SHA256SUMS` into (name, hex sha256) pairs.
///
/// # Errors
/// A message naming the malformed line.
pub fn parse_sha256sums(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let (sha, name) = line.split_once("  ").ok_or_else(|| format!("SHA256SUMS line {} is malformed", i + 1))?;
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("SHA256SUMS line {} has no valid SHA-256", i + 1));
            }
            Ok((name.to_string(), sha.to_ascii_lowercase()))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<DataRecord> {
        vec![
            DataRecord::Document { id: "users/1".into(), etag: 7, modified_ms: -1, body: br#"{"a":1}"#.to_vec() },
            DataRecord::Deletion { id: "users/2".into(), etag: 9 },
            DataRecord::Change { etag: 7, id: "users/1".into() },
        ]
    }

    fn encode(records: &[DataRecord]) -> Vec<u8> {
        let mut w = RecordWriter::new(Vec::new(), 3).expect("writer");
        for r in records {
            w.write(r).expect("writes");
        }
        w.finish().expect("finishes").0
    }

    #[test]
    fn records_round_trip() {
        let bytes = encode(&sample());
        let mut r = RecordReader::new(&bytes[..]).expect("reader");
        let mut back = Vec::new();
        while let Some(rec) = r.next_record().expect("reads") {
            back.push(rec);
        }
        assert_eq!(back, sample());
    }

    /// The records of `sample` as one frame's bytes (no compression), with
    /// a second document and the end record.
    fn raw_frame() -> Vec<u8> {
        let mut records = sample();
        records.push(DataRecord::Document { id: "users/3".into(), etag: 11, modified_ms: 5, body: vec![b'x'; 300] });
        let mut raw = Vec::new();
        for r in &records {
            encode_record(r, &mut raw).expect("encodes");
        }
        raw.push(TAG_END);
        raw.extend_from_slice(&4u64.to_le_bytes());
        raw
    }

    #[test]
    fn documents_read_in_place_are_the_documents_the_records_hold() {
        let raw = raw_frame();
        let mut owned = Vec::new();
        let mut reader = RecordReader::raw(&raw);
        while let Some(record) = reader.next_record().expect("reads") {
            if let DataRecord::Document { id, etag, modified_ms, body } = record {
                owned.push((id, etag, modified_ms, body));
            }
        }
        let mut in_place = Vec::new();
        let mut reader = RecordReader::raw(&raw);
        while let Some(d) = reader.next_document_in_place().expect("reads") {
            in_place.push((d.id.to_string(), d.etag, d.modified_ms, d.body.to_vec()));
        }
        assert_eq!(in_place, owned);
        assert_eq!(in_place.len(), 2);
        // Every cut of the frame reads the same documents both ways, then
        // fails or ends the same way (and nothing is read after a failure).
        for cut in 0..raw.len() {
            let bytes = &raw[..cut];
            let mut owned = Vec::new();
            let mut reader = RecordReader::raw(bytes);
            let owned_end = loop {
                match reader.next_record() {
                    Ok(Some(DataRecord::Document { id, .. })) => owned.push(id),
                    Ok(Some(_)) => {}
                    end => break end.is_ok(),
                }
            };
            let mut in_place = Vec::new();
            let mut reader = RecordReader::raw(bytes);
            let in_place_end = loop {
                match reader.next_document_in_place() {
                    Ok(Some(d)) => in_place.push(d.id.to_string()),
                    end => break end.is_ok(),
                }
            };
            assert_eq!((in_place, in_place_end), (owned, owned_end), "a frame cut at {cut} of {} bytes", raw.len());
            assert!(matches!(reader.next_document_in_place(), Ok(None)), "nothing after the end or a failure");
        }
        // A tag no record has is refused, as by `next_record`.
        let mut forged = raw.clone();
        forged[0] = b'?';
        assert!(RecordReader::raw(&forged).next_document_in_place().is_err());
        // An id that is not UTF-8.
        let mut forged = raw;
        forged[1 + 4] = 0xff;
        assert!(RecordReader::raw(&forged).next_document_in_place().is_err());
    }

    /// Documents only, as a documents file holds them, and the whole file compressed.
    fn documents_file(bodies: &[usize]) -> (Vec<DataRecord>, Vec<u8>) {
        let records: Vec<DataRecord> = bodies
            .iter()
            .enumerate()
            .map(|(i, &len)| DataRecord::Document {
                id: format!("users/{i}"),
                etag: 10 + i as u64,
                modified_ms: 1_700_000_000_000 + i as i64,
                body: (0..len).map(|b| (b * 7 + i) as u8).collect(),
            })
            .collect();
        let bytes = encode(&records);
        (records, bytes)
    }

    #[test]
    fn documents_read_as_stored_values_are_the_values_the_storage_keeps() {
        // Bodies on both sides of the size read whole, and none at all.
        let (records, bytes) = documents_file(&[0, 1, 1000, EXACT_BODY, EXACT_BODY + 1]);
        let mut reader = RecordReader::new(&bytes[..]).expect("reader");
        let mut stored = Vec::new();
        while let Some(d) = reader.next_stored_document(crate::storage::record::FLAG_ENCRYPTED).expect("reads") {
            assert_eq!(crate::storage::record::decode_header(&d.value).expect("a header").0, d.etag);
            stored.push((d.id, d.value));
        }
        let expected: Vec<_> = records
            .iter()
            .map(|r| {
                let DataRecord::Document { id, etag, modified_ms, body } = r else { unreachable!() };
                let value = crate::storage::record::value_with_flags(*etag, *modified_ms, crate::storage::record::FLAG_ENCRYPTED, body);
                (id.clone(), value)
            })
            .collect();
        assert_eq!(stored, expected);
        assert!(matches!(reader.next_stored_document(0), Ok(None)), "nothing after the end record");

        // A file cut anywhere fails, as it does for `next_record`.
        let (_, bytes) = documents_file(&[10, 2000, 30]);
        for cut in [1, bytes.len() / 3, bytes.len() / 2, bytes.len() - 6, bytes.len() - 1] {
            let mut reader = RecordReader::new(&bytes[..cut]).expect("reader");
            let failed = loop {
                match reader.next_stored_document(0) {
                    Ok(Some(_)) => {}
                    Ok(None) => break false,
                    Err(_) => break true,
                }
            };
            assert!(failed, "a documents file cut at {cut} of {} bytes must not read as complete", bytes.len());
        }

        // A record of another kind, or an end record that miscounts, is refused.
        let bytes = encode(&sample());
        let mut reader = RecordReader::new(&bytes[..]).expect("reader");
        let refused = loop {
            match reader.next_stored_document(0) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("a deletion and a change read as documents"),
                Err(e) => break e,
            }
        };
        assert!(refused.to_string().contains("non-document"), "{refused}");
        let mut raw = Vec::new();
        encode_document("users/1", 1, 2, b"{}", &mut raw).expect("encodes");
        encode_end(2, &mut raw);
        let mut reader = RecordReader::raw(&raw);
        reader.frame = false;
        assert!(reader.next_stored_document(0).expect("the document").is_some());
        let miscounted = reader.next_stored_document(0).expect_err("the end record counts one record, not two");
        assert!(miscounted.to_string().contains("count"), "{miscounted}");
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let bytes = encode(&sample());
        let cut = &bytes[..bytes.len() - 6];
        let mut r = RecordReader::new(cut).expect("reader");
        let mut failed = false;
        for _ in 0..10 {
            match r.next_record() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "a truncated stream must not read as complete");
    }

    #[test]
    fn set_ids_are_checked_by_syntax() {
        for good in [
            "20261126T050000Z-full",
            "20261126T050000Z-incremental",
            "20261126T050000Z.03-snapshot",
            "20261126T050000Z.02-full",
            "20261126T050000Z-12-full",
        ] {
            assert!(is_valid_set_id(good), "{good}");
        }
        for bad in [
            "",
            "x/../important",
            "20261126T050000Z-full/..",
            "20261126T050000Z-",
            "20261126T050000Z-0-full",
            "../20261126T050000Z-full",
            "20261126T050000Z-2-3-full",
            "20261126X050000Z-full",
            "20261126T050000Z.2-full",
            "20261126T050000Z.02/full",
            "20261126T050000Z.-full",
        ] {
            assert!(!is_valid_set_id(bad), "{bad}");
        }
    }

    #[test]
    fn sha256sums_round_trip_and_match_sha256sum_format() {
        let files = vec![("a.zst".to_string(), "ab".repeat(32))];
        let text = sha256sums(&files);
        assert_eq!(text, format!("{}  a.zst\n", "ab".repeat(32)));
        assert_eq!(parse_sha256sums(&text).expect("parses"), files);
        assert!(parse_sha256sums("zz  a\n").is_err());
    }

    #[test]
    fn set_ids_of_one_second_sort_in_creation_order_whatever_their_kinds() {
        let stamp = "20261126T050000Z";
        let kinds = [SetKind::Incremental, SetKind::Full, SetKind::Incremental, SetKind::Incremental, SetKind::Full];
        let mut taken = BTreeSet::new();
        let mut made = Vec::new();
        for kind in kinds {
            let id = set_id_at(&taken, stamp, kind);
            assert!(is_valid_set_id(&id), "{id}");
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
