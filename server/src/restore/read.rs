//! Reading a stored set's files: each one opened as its plaintext and
//! hashed while it streams, its records decoded, and the errors that name a
//! set's file (damage, a changed file, a storage that fails). The restore,
//! the compaction and point reads of a set all read through here.

use std::io::BufReader;

use crate::backup::error::BackupError;
use crate::backup::format::{DataRecord, Decoded, HashingReader, RecordReader, SetReader, StoredDocument};
use crate::backup::location::{io_error, StoredSet};
use crate::backup::sealed::{self, ChunkOpener};

use super::error::RestoreError;

/// A set to read, with its key when it is encrypted.
pub(crate) struct Source<'a> {
    pub(crate) set: &'a StoredSet,
    pub(crate) key: Option<&'a crate::crypto::Key>,
}

/// Streams one data file's records into `apply`, hashing it on the way; a
/// file whose bytes differ from the manifest fails after its last record. A
/// file that cannot be decoded is a `ChecksumMismatch` when its bytes differ
/// from the manifest (damage), a `CorruptBackup` when they match (a set that
/// was written wrong, or forged with checksums that agree).
pub(crate) fn read_file(
    source: &Source<'_>,
    name: &str,
    sha256: &str,
    apply: &mut dyn FnMut(DataRecord) -> Result<(), RestoreError>,
) -> Result<u64, RestoreError> {
    read_file_as(source, name, sha256, &mut RecordReader::next_record, apply)
}

/// [`read_file`] for a documents file, each document read as the value
/// the storage keeps ([`RecordReader::next_stored_document`] with `flags`).
pub(crate) fn read_documents_file(
    source: &Source<'_>,
    name: &str,
    sha256: &str,
    flags: u8,
    apply: &mut dyn FnMut(StoredDocument) -> Result<(), RestoreError>,
) -> Result<u64, RestoreError> {
    read_file_as(source, name, sha256, &mut |reader| reader.next_stored_document(flags), apply)
}

/// The records of a set's file as `next` reads them: see [`read_file`].
fn read_file_as<T>(
    source: &Source<'_>,
    name: &str,
    sha256: &str,
    next: &mut dyn FnMut(&mut RecordReader<Plain>) -> std::io::Result<Option<T>>,
    apply: &mut dyn FnMut(T) -> Result<(), RestoreError>,
) -> Result<u64, RestoreError> {
    let set = source.set;
    let unreadable = |e: std::io::Error| -> RestoreError { unreadable(set, name, &e).into() };
    let under = open_plain(source, name, 1 << 20).map_err(unreadable)?;
    let mut reader = RecordReader::new(under).map_err(|e| corrupt(set, name, &e.to_string()))?;
    // A record the caller refuses (out of order, of the wrong kind) may come
    // from damaged bytes that still decode: the rest of the file is hashed
    // before the refusal is believed, so damage is reported as damage.
    let decoded: Result<(), RestoreError> = loop {
        match next(&mut reader) {
            Ok(Some(record)) => match apply(record) {
                Ok(()) => {}
                Err(RestoreError::Canceled) => return Err(RestoreError::Canceled),
                Err(refused) => break Err(refused),
            },
            Ok(None) => break Ok(()),
            Err(e) => break Err(corrupt(set, name, &e.to_string())),
        }
    };
    let (size, actual) = reader.into_inner().into_hashing().finish().map_err(unreadable)?;
    if actual != sha256 {
        return Err(changed(set, name).into());
    }
    decoded?;
    Ok(size)
}

/// A set's file as [`open_plain`] gives it, decoded by [`RecordReader`].
type Plain = Decoded<SetReader<BufReader<Box<dyn std::io::Read + Send>>>>;

/// One file of a set as its plaintext (opened with the set key when the set
/// is encrypted), read `buffer` bytes at a time, hashing the stored bytes as they are read: its
/// `into_hashing().finish()` gives the size and SHA-256 to check against the manifest.
///
/// # Errors
/// The storage's errors.
pub(crate) fn open_plain(
    source: &Source<'_>,
    name: &str,
    buffer: usize,
) -> std::io::Result<SetReader<BufReader<Box<dyn std::io::Read + Send>>>> {
    let set = source.set;
    let hashing = HashingReader::new(BufReader::with_capacity(buffer, set.open(name)?));
    Ok(match source.key {
        Some(key) => SetReader::Sealed(ChunkOpener::new(
            hashing,
            key.clone(),
            &sealed::chunk_file_id(set.manifest.format_version, &set.manifest.set_id, name),
        )),
        None => SetReader::Plain(hashing),
    })
}

pub(crate) fn corrupt(set: &StoredSet, name: &str, why: &str) -> RestoreError {
    damaged(set, name, why).into()
}

/// A file of `set` written wrong, or forged with checksums that agree: `CorruptBackup` naming it.
pub(crate) fn damaged(set: &StoredSet, name: &str, why: &str) -> BackupError {
    BackupError::Corrupt(format!("{}/{name}: {why}", set.manifest.set_id))
}

/// A file of `set` whose bytes are not those its manifest records.
pub(crate) fn changed(set: &StoredSet, name: &str) -> BackupError {
    BackupError::ChecksumMismatch(format!("{}/{name}: checksum mismatch (the file was changed or damaged)", set.manifest.set_id))
}

/// A file of `set` that cannot be read: a storage that fails is not damage
/// (`BackupStorageError`), anything else is a `ChecksumMismatch` naming it.
pub(crate) fn unreadable(set: &StoredSet, name: &str, e: &std::io::Error) -> BackupError {
    io_error(e, |m| BackupError::ChecksumMismatch(format!("{}/{name}: cannot be read ({m})", set.manifest.set_id)))
}
