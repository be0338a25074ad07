//! What a pin knows of fjall's journal format (fjall 3.1.13): enough to
//! leave out of a copied journal the batches its pinned tables already hold.
//!
//! fjall rotates its journal only past 64 MB, however often the memtables
//! are flushed, so a journal can hold tens of megabytes that every table
//! already holds. A pin that copied it whole made the copy replay all of it
//! when opened (about 0.35 s for 60 MB here), only for fjall to skip every
//! batch. [`Cut`] drops those batches from the copy instead, by the rule
//! fjall's own recovery skips them with: an item is in the tables when its
//! batch's number is at most the highest one the keyspace's tables hold.
//!
//! # The format
//! A journal file is a sequence of batches from offset 0, no header, then
//! zeros (fjall gives the file its full size up front):
//! - `Start`: tag 1, item count (u32 LE), seqno (u64 LE);
//! - each `Item`: tag 2, value type (u8), compression (u8: 0 none, 1 lz4),
//!   keyspace id (u64 LE), key length (u16 LE), value length (u32 LE),
//!   stored length (u32 LE), the key, the stored value;
//! - `End`: tag 3, checksum (u64 LE), the magic `FJL\x03`.
//!
//! A `Clear` entry (tag 4) or anything else ends what the cut drops: only
//! batches read whole and understood are ever left out.
//!
//! # Each journal read once
//! A journal only grows while the database runs (batches are appended over
//! the zeros), and what a cut drops stays dropped by any later cut whose
//! keyspaces' tables hold at least as much. So where one pin's scan of a
//! journal stopped is where the next pin's scan of the same file starts,
//! instead of reading up to 64 MB again: the file known by its device,
//! inode and birth time, the batch that ends there read back to check it
//! (see `Resume`). A cut that does not hold as much (a compaction that
//! dropped a keyspace's newest entry) scans from the start.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

const START: u8 = 1;
const ITEM: u8 = 2;
const END: u8 = 3;
const MAGIC: &[u8; 4] = b"FJL\x03";

/// The batches a pin may leave out of its journal copies: those each of
/// whose items is in a keyspace whose tables hold batches up to the item's
/// batch number (`persisted`: keyspace id and the highest batch number its
/// tables hold, read before the pin reads the keyspaces' versions, which
/// then name those tables or tables merged from them). A keyspace without
/// tables is not named, and keeps every batch that writes to it.
#[derive(Debug, Clone)]
pub struct Cut {
    pub persisted: Vec<(u64, u64)>,
}

impl Cut {
    /// The offset of the first batch of the journal at `path` to keep: the
    /// end of the leading run of batches this cut drops (0 when none).
    ///
    /// # Errors
    /// I/O errors other than the file's end.
    pub fn offset_in(&self, path: &Path) -> std::io::Result<u64> {
        let file = std::fs::File::open(path)?;
        let identity = Identity::of(&file.metadata()?);
        let from = identity.as_ref().and_then(|id| Resume::from_last_scan(id, self, &file)).unwrap_or(0);
        let mut reader = BufReader::with_capacity(1 << 20, file);
        reader.seek(SeekFrom::Start(from))?;
        let mut kept_from = from;
        loop {
            match self.droppable_batch(&mut reader) {
                Ok(Some(len)) => kept_from += len,
                Ok(None) => break,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            }
        }
        if let Some(identity) = identity {
            Resume::remember(identity, self, reader.get_ref(), kept_from);
        }
        Ok(kept_from)
    }

    /// Reads one batch: its length when this cut drops it, `None` when the
    /// journal's data ends here or the batch must be kept.
    fn droppable_batch(&self, reader: &mut (impl BufRead + Seek)) -> std::io::Result<Option<u64>> {
        if reader.fill_buf()?.is_empty() || byte(reader)? != START {
            return Ok(None);
        }
        let items = u32::from_le_bytes(array(reader)?);
        let seqno = u64::from_le_bytes(array(reader)?);
        let mut len = 1 + 4 + 8;
        for _ in 0..items {
            match self.item(reader, seqno)? {
                Some(item_len) => len += item_len,
                None => return Ok(None),
            }
        }
        if byte(reader)? != END {
            return Ok(None);
        }
        let _checksum: [u8; 8] = array(reader)?;
        if &array::<4>(reader)? != MAGIC {
            return Ok(None);
        }
        Ok(Some(len + 1 + 8 + 4))
    }

    /// Reads one item of batch `seqno`: its length, `None` when its keyspace's
    /// tables may not hold it or it is not in a form this module knows.
    fn item(&self, reader: &mut (impl BufRead + Seek), seqno: u64) -> std::io::Result<Option<u64>> {
        if byte(reader)? != ITEM {
            return Ok(None);
        }
        let _value_type = byte(reader)?;
        if byte(reader)? > 1 {
            return Ok(None); // a compression this module does not know
        }
        let keyspace = u64::from_le_bytes(array(reader)?);
        if !self.persisted.iter().any(|&(id, persisted)| id == keyspace && seqno <= persisted) {
            return Ok(None);
        }
        let key_len = u64::from(u16::from_le_bytes(array(reader)?));
        let _value_len: [u8; 4] = array(reader)?;
        let stored_len = u64::from(u32::from_le_bytes(array(reader)?));
        skip(reader, key_len + stored_len)?;
        Ok(Some(1 + 1 + 1 + 8 + 2 + 4 + 4 + key_len + stored_len))
    }
}

/// A journal file: device, inode and birth time (ns), so that a file made
/// later at a reused inode is another file. `None` where the file system
/// does not record birth times: such journals are scanned whole every time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity(u64, u64, i128);

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Option<Self> {
        let born = meta.created().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(Self(meta.dev(), meta.ino(), i128::try_from(born.as_nanos()).ok()?))
    }
}

/// The bytes that end every batch's trailer: its checksum and the magic.
const TRAILER: usize = 8 + 4;
/// Journals remembered at most (a few per database).
const REMEMBERED: usize = 256;

/// Where a scan of a journal stopped, under which cut, and the trailer of
/// the batch that ends there.
#[derive(Debug, Clone)]
struct Resume {
    offset: u64,
    persisted: Vec<(u64, u64)>,
    trailer: [u8; TRAILER],
}

impl Resume {
    fn all() -> std::sync::MutexGuard<'static, HashMap<Identity, Resume>> {
        static ALL: OnceLock<Mutex<HashMap<Identity, Resume>>> = OnceLock::new();
        ALL.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The offset the last scan of this very file stopped at, if `cut`
    /// drops all it dropped and the batch ending there is still there.
    fn from_last_scan(identity: &Identity, cut: &Cut, file: &std::fs::File) -> Option<u64> {
        let last = Self::all().get(identity).cloned()?;
        let holds_as_much = last.persisted.iter().all(|&(id, old)| cut.persisted.iter().any(|&(k, new)| k == id && new >= old));
        (holds_as_much && trailer_at(file, last.offset)? == last.trailer).then_some(last.offset)
    }

    fn remember(identity: Identity, cut: &Cut, file: &std::fs::File, offset: u64) {
        let Some(trailer) = trailer_at(file, offset) else { return };
        let mut all = Self::all();
        if all.len() >= REMEMBERED {
            all.clear();
        }
        all.insert(identity, Self { offset, persisted: cut.persisted.clone(), trailer });
    }
}

/// The trailer of the batch that ends at `offset` (`None` at the start).
fn trailer_at(file: &std::fs::File, offset: u64) -> Option<[u8; TRAILER]> {
    let mut trailer = [0u8; TRAILER];
    file.read_exact_at(&mut trailer, offset.checked_sub(TRAILER as u64)?).ok()?;
    Some(trailer)
}

fn byte(reader: &mut impl Read) -> std::io::Result<u8> {
    Ok(array::<1>(reader)?[0])
}

fn array<const N: usize>(reader: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Moves past `len` bytes (inside the buffer, without copying them). Past
/// the file's end, the next read fails with `UnexpectedEof`, so a batch cut
/// short is never taken for a whole one.
fn skip(reader: &mut impl Seek, len: u64) -> std::io::Result<()> {
    reader.seek_relative(i64::try_from(len).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(out: &mut Vec<u8>, seqno: u64, items: &[(u64, &[u8], &[u8])]) {
        out.push(START);
        out.extend_from_slice(&u32::try_from(items.len()).expect("few").to_le_bytes());
        out.extend_from_slice(&seqno.to_le_bytes());
        for (keyspace, key, value) in items {
            out.extend_from_slice(&[ITEM, 0, 0]);
            out.extend_from_slice(&keyspace.to_le_bytes());
            out.extend_from_slice(&u16::try_from(key.len()).expect("short").to_le_bytes());
            out.extend_from_slice(&u32::try_from(value.len()).expect("short").to_le_bytes());
            out.extend_from_slice(&u32::try_from(value.len()).expect("short").to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(value);
        }
        out.push(END);
        out.extend_from_slice(&7u64.to_le_bytes());
        out.extend_from_slice(MAGIC);
    }

    fn offset(bytes: &[u8], cut: &Cut) -> u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.jnl");
        std::fs::write(&path, bytes).expect("writes");
        cut.offset_in(&path).expect("reads")
    }

    #[test]
    fn a_journal_scanned_before_is_read_on_from_where_the_scan_stopped() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("7.jnl");
        let mut journal = Vec::new();
        batch(&mut journal, 1, &[(3, b"a", b"one")]);
        batch(&mut journal, 2, &[(3, b"b", b"two")]);
        let first_two = journal.len() as u64;
        std::fs::write(&path, &journal).expect("writes");
        let cut = Cut { persisted: vec![(3, 2)] };
        assert_eq!(cut.offset_in(&path).expect("reads"), first_two);
        // The database appends a batch, and its tables come to hold it.
        let mut third = Vec::new();
        batch(&mut third, 3, &[(3, b"c", b"three")]);
        std::fs::OpenOptions::new().append(true).open(&path).expect("opens").write_all(&third).expect("appends");
        let whole = first_two + third.len() as u64;
        // The start made unreadable: only a scan that resumes gets past it.
        let file = std::fs::OpenOptions::new().write(true).open(&path).expect("opens");
        file.write_all_at(&[0], 0).expect("writes");
        let on = Cut { persisted: vec![(3, 3)] };
        let resumes = Identity::of(&file.metadata().expect("meta")).is_some();
        assert_eq!(on.offset_in(&path).expect("reads"), if resumes { whole } else { 0 }, "resumed where the last scan stopped");
        // A cut that holds less than the last one scans from the start.
        let less = Cut { persisted: vec![(3, 1)] };
        assert_eq!(less.offset_in(&path).expect("reads"), 0);
        // It does not replace what the last scan under a cut that holds as much remembered.
        assert_eq!(on.offset_in(&path).expect("reads"), if resumes { whole } else { 0 });
        // A file whose batch at the offset is not the one read there scans from the start.
        file.write_all_at(&[0], whole - 1).expect("writes");
        assert_eq!(on.offset_in(&path).expect("reads"), 0, "the trailer differs: read from the start");
    }

    #[test]
    fn a_cut_drops_only_whole_batches_its_keyspaces_tables_hold() {
        // Keyspace 3's tables hold batches up to 9, keyspace 4's up to 2.
        let cut = Cut { persisted: vec![(3, 9), (4, 2)] };
        let mut journal = Vec::new();
        batch(&mut journal, 1, &[(3, b"a", b"one"), (4, b"b", b"two")]);
        batch(&mut journal, 2, &[]);
        let first_two = journal.len() as u64;
        batch(&mut journal, 3, &[(3, b"c", b"three"), (4, b"d", b"four")]);
        let mut padded = journal.clone();
        padded.resize(journal.len() + 4096, 0);
        assert_eq!(offset(&padded, &cut), first_two, "batch 3 writes to keyspace 4 past what its tables hold");

        // Every batch held: all of it goes, the zeros after it end the data.
        let high = Cut { persisted: vec![(3, 9), (4, 3)] };
        assert_eq!(offset(&padded, &high), journal.len() as u64);
        // A batch past a keyspace's tables is kept, and all after it.
        let mut later = Vec::new();
        batch(&mut later, 8, &[(3, b"a", b"one")]);
        let one = later.len() as u64;
        batch(&mut later, 10, &[(3, b"a", b"one")]);
        batch(&mut later, 9, &[(3, b"a", b"one")]);
        assert_eq!(offset(&later, &cut), one, "batch 10 is past keyspace 3's tables");
        // A keyspace the cut does not name keeps its batch and all after it.
        let mut other = Vec::new();
        batch(&mut other, 1, &[(3, b"a", b"one")]);
        let one = other.len() as u64;
        batch(&mut other, 2, &[(3, b"a", b"one"), (9, b"x", b"y")]);
        batch(&mut other, 3, &[(3, b"a", b"one")]);
        assert_eq!(offset(&other, &cut), one);
        // A batch cut short by the file's end, or with a wrong trailer, is kept.
        assert_eq!(offset(&journal[..journal.len() - 2], &high), first_two);
        let mut forged = journal.clone();
        let end = forged.len() - 1;
        forged[end] = 0;
        assert_eq!(offset(&forged, &high), first_two);
        // An item whose bytes run past the file's end is not skipped over.
        let mut short = Vec::new();
        batch(&mut short, 1, &[(3, b"a", b"one")]);
        let whole = short.len() as u64;
        batch(&mut short, 2, &[(3, b"k", &[7u8; 600])]);
        assert_eq!(offset(&short[..short.len() - 300], &high), whole);
        assert_eq!(offset(&[], &cut), 0);
    }
}
