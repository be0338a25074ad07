//! What a pin knows of fjall's journal format (fjall 3.1.13): enough to
//! leave out of a copied journal the batches its pinned tables already hold.
//!
//! fjall rotates its journal only past 64 MB, however often the memtables
//! are flushed, so a journal can hold tens of megabytes that every table
//! already holds. A pin that copied it whole made the copy replay all of it
//! when opened (about 0.35 s for 60 MB here), only for fjall to skip every
//! batch. [`Cut`] drops those batches from the copy instead.
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

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

const START: u8 = 1;
const ITEM: u8 = 2;
const END: u8 = 3;
const MAGIC: &[u8; 4] = b"FJL\x03";

/// The batches a pin may leave out of its journal copies: those numbered
/// below `below` whose every item is in one of `keyspaces`, all of whose
/// memtables holding them were flushed into tables before the pin read the
/// keyspaces' versions (see [`super::DocumentStore::flush_memtables`]).
#[derive(Debug, Clone)]
pub struct Cut {
    pub below: u64,
    pub keyspaces: Vec<u64>,
}

impl Cut {
    /// The offset of the first batch of the journal at `path` to keep: the
    /// end of the leading run of batches this cut drops (0 when none).
    ///
    /// # Errors
    /// I/O errors other than the file's end.
    pub fn offset_in(&self, path: &Path) -> std::io::Result<u64> {
        let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        let mut kept_from = 0u64;
        loop {
            match self.droppable_batch(&mut reader) {
                Ok(Some(len)) => kept_from += len,
                Ok(None) => return Ok(kept_from),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(kept_from),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one batch: its length when this cut drops it, `None` when the
    /// journal's data ends here or the batch must be kept.
    fn droppable_batch(&self, reader: &mut impl BufRead) -> std::io::Result<Option<u64>> {
        if reader.fill_buf()?.is_empty() || byte(reader)? != START {
            return Ok(None);
        }
        let items = u32::from_le_bytes(array(reader)?);
        let seqno = u64::from_le_bytes(array(reader)?);
        if seqno >= self.below {
            return Ok(None);
        }
        let mut len = 1 + 4 + 8;
        for _ in 0..items {
            match self.item(reader)? {
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

    /// Reads one item: its length, `None` when it is not an item of one of
    /// the cut's keyspaces in a form this module knows.
    fn item(&self, reader: &mut impl BufRead) -> std::io::Result<Option<u64>> {
        if byte(reader)? != ITEM {
            return Ok(None);
        }
        let _value_type = byte(reader)?;
        if byte(reader)? > 1 {
            return Ok(None); // a compression this module does not know
        }
        let keyspace = u64::from_le_bytes(array(reader)?);
        if !self.keyspaces.contains(&keyspace) {
            return Ok(None);
        }
        let key_len = u64::from(u16::from_le_bytes(array(reader)?));
        let _value_len: [u8; 4] = array(reader)?;
        let stored_len = u64::from(u32::from_le_bytes(array(reader)?));
        skip(reader, key_len + stored_len)?;
        Ok(Some(1 + 1 + 1 + 8 + 2 + 4 + 4 + key_len + stored_len))
    }
}

fn byte(reader: &mut impl Read) -> std::io::Result<u8> {
    Ok(array::<1>(reader)?[0])
}

fn array<const N: usize>(reader: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn skip(reader: &mut impl Read, len: u64) -> std::io::Result<()> {
    let skipped = std::io::copy(&mut reader.take(len), &mut std::io::sink())?;
    if skipped < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
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
    fn a_cut_drops_only_whole_batches_below_its_seqno_in_its_keyspaces() {
        let cut = Cut { below: 10, keyspaces: vec![3, 4] };
        let mut journal = Vec::new();
        batch(&mut journal, 1, &[(3, b"a", b"one"), (4, b"b", b"two")]);
        batch(&mut journal, 2, &[]);
        let first_two = journal.len() as u64;
        batch(&mut journal, 10, &[(3, b"c", b"three")]);
        let mut padded = journal.clone();
        padded.resize(journal.len() + 4096, 0);
        assert_eq!(offset(&padded, &cut), first_two, "the batch at the cut's seqno is kept");

        // Every batch below: all of it goes, the zeros after it end the data.
        let low = Cut { below: 11, ..cut.clone() };
        assert_eq!(offset(&padded, &low), journal.len() as u64);
        // A keyspace the cut does not name keeps its batch and all after it.
        let mut other = Vec::new();
        batch(&mut other, 1, &[(3, b"a", b"one")]);
        let one = other.len() as u64;
        batch(&mut other, 2, &[(3, b"a", b"one"), (9, b"x", b"y")]);
        batch(&mut other, 3, &[(3, b"a", b"one")]);
        assert_eq!(offset(&other, &cut), one);
        // A batch cut short by the file's end, or with a wrong trailer, is kept.
        assert_eq!(offset(&journal[..journal.len() - 2], &low), first_two);
        let mut forged = journal.clone();
        let end = forged.len() - 1;
        forged[end] = 0;
        assert_eq!(offset(&forged, &low), first_two);
        assert_eq!(offset(&[], &cut), 0);
    }
}
