//! Time travel: a backup chain read at any point without restoring it. One
//! document, a page of a point's documents, the ids that changed between
//! two points, and a restore of chosen documents into a live database
//! ([`selective`]); the REST handlers, the CLI and the studio call these.
//!
//! Everything reads through the sets' id indexes ([`point::PointReader`]):
//! a lookup reads the index tops of the chain once, then one index block
//! and one frame, in a folder or with ranged `GET`s in object storage.

pub mod cache;
pub mod point;
pub mod selective;

use std::sync::Arc;

use rookery_types::{BackupDocument, BackupDocumentPage, DiffEntry, DiffPage, DocumentChange};

use crate::backup::frames::IndexEntry;
use crate::backup::location::{Location, StoredSet};
use crate::backup::sealed::SetSecret;
use crate::restore::plan::{plan_reads, ChainChoice};
use crate::restore::RestoreError;
pub use point::{PointReader, State};

/// The most results of one page.
pub const MAX_PAGE_SIZE: usize = 1024;

/// Where and how far to read: a location, a point, and the secrets of an encrypted chain.
#[derive(Debug, Clone, Copy, Default)]
pub struct PointChoice<'a> {
    /// A set id or an RFC 3339 time (default: the newest set).
    pub up_to: Option<&'a str>,
    /// The database's name in the sets, when the location holds several.
    pub database: Option<&'a str>,
    /// The database key, when the set left it out.
    pub encryption_key: Option<&'a str>,
    pub secret: Option<&'a SetSecret>,
    /// Where a snapshot set at the start of the chain is placed to be read
    /// (on the location's filesystem its tables are hard links); none: such
    /// a chain is refused.
    pub scratch: Option<&'a std::path::Path>,
}

/// Opens the chain of `location` at the point `choice` names.
///
/// # Errors
/// As a restore's plan (`NoBackup`, `SetNotFound`, `AmbiguousBackup`,
/// `BrokenChain`, key errors); `InvalidRequest` for a chain without an id
/// index (a snapshot set, or sets older than format 4).
pub fn open(location: &Location, choice: PointChoice<'_>) -> Result<PointReader, RestoreError> {
    let planned =
        plan_reads(location, ChainChoice { up_to: choice.up_to, database: choice.database }, choice.encryption_key, choice.secret)?;
    let base = match planned.chain.first() {
        Some(first) if first.manifest.kind == crate::backup::SetKind::Snapshot => {
            Some(point::SnapshotBase::build(&planned, choice.scratch)?)
        }
        _ => None,
    };
    PointReader::new(planned, base)
}

/// A document at the point: its body (opened), entry and the set it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDocument {
    pub set_id: String,
    pub entry: IndexEntry,
    pub body: Vec<u8>,
}

/// One document at the newest point of `reader`'s chain: `Ok(Err(message))`
/// when it did not exist there (the message names the set that deleted it).
///
/// # Errors
/// `ChecksumMismatch` naming a damaged file; storage errors.
pub fn get(reader: &mut PointReader, id: &str) -> Result<Result<FoundDocument, String>, RestoreError> {
    Ok(get_many(reader, &[id])?.pop().unwrap_or_else(|| Err(format!("'{id}' is not in the backup"))))
}

/// Many documents at the newest point, in the order given (each as
/// [`get`] answers it). Their index blocks and frames are read side by
/// side, so in object storage 100 documents cost a few round trips.
///
/// # Errors
/// As [`get`].
pub fn get_many(reader: &mut PointReader, ids: &[&str]) -> Result<Vec<Result<FoundDocument, String>>, RestoreError> {
    let newest = reader.set_id(reader.chain().len().saturating_sub(1)).to_string();
    let states = reader.states(ids)?;
    let found: Vec<(usize, usize, &IndexEntry)> = states
        .iter()
        .filter_map(|s| match s {
            State::Document { set, file, entry } => Some((*set, *file, entry)),
            _ => None,
        })
        .collect();
    let mut bodies = reader.bodies(&found)?.into_iter();
    Ok(ids
        .iter()
        .zip(&states)
        .map(|(id, state)| match state {
            State::Document { set, entry, .. } => {
                Ok(FoundDocument { set_id: reader.set_id(*set).to_string(), entry: entry.clone(), body: bodies.next().unwrap_or_default() })
            }
            State::Deleted { set } => {
                Err(format!("'{id}' was deleted by set {} and is not in the backup at {newest}", reader.set_id(*set)))
            }
            State::Absent => Err(format!("'{id}' is not in the backup at {newest}")),
        })
        .collect())
}

/// The ids of one set in id order from a given id on, read block by block
/// (a snapshot base: batch by batch).
struct Cursor {
    base: bool,
    set: usize,
    from: String,
    blocks_per_file: Vec<usize>,
    file: usize,
    block: usize,
    entries: Arc<Vec<IndexEntry>>,
    pos: usize,
}

impl Cursor {
    fn open(reader: &mut PointReader, set: usize, from: &str) -> Result<Self, RestoreError> {
        let base = reader.is_base(set);
        let blocks_per_file = if base { Vec::new() } else { reader.shape(set)? };
        let mut cursor =
            Self { base, set, from: from.to_string(), blocks_per_file, file: 0, block: 0, entries: Arc::new(Vec::new()), pos: 0 };
        if base {
            cursor.entries = Arc::new(reader.base_batch(from)?);
        } else {
            cursor.seek_file(reader)?;
        }
        Ok(cursor)
    }

    fn head(&self) -> Option<&IndexEntry> {
        self.entries.get(self.pos)
    }

    /// Moves to the first entry at or after `from` in this file or a later one.
    fn seek_file(&mut self, reader: &mut PointReader) -> Result<(), RestoreError> {
        while self.file < self.blocks_per_file.len() {
            self.block = reader.first_block_from(self.set, self.file, &self.from)?;
            if self.seek_block(reader)? {
                return Ok(());
            }
            self.file += 1;
        }
        self.entries = Arc::new(Vec::new());
        self.pos = 0;
        Ok(())
    }

    /// Moves to the first entry at or after `from` in this block or a later
    /// one of the same file; false at the file's end.
    fn seek_block(&mut self, reader: &mut PointReader) -> Result<bool, RestoreError> {
        while self.block < self.blocks_per_file[self.file] {
            self.entries = reader.block(self.set, self.file, self.block)?;
            self.pos = self.entries.partition_point(|e| e.id < self.from);
            if self.pos < self.entries.len() {
                return Ok(true);
            }
            self.block += 1;
        }
        Ok(false)
    }

    fn advance(&mut self, reader: &mut PointReader) -> Result<(), RestoreError> {
        let Some(head) = self.head() else { return Ok(()) };
        // The smallest id after this one.
        self.from = format!("{}\0", head.id);
        self.pos += 1;
        if self.pos < self.entries.len() {
            return Ok(());
        }
        if self.base {
            self.entries = Arc::new(reader.base_batch(&self.from)?);
            self.pos = 0;
            return Ok(());
        }
        self.block += 1;
        if self.seek_block(reader)? {
            return Ok(());
        }
        self.file += 1;
        self.seek_file(reader)
    }
}

/// The ids, in id order from `from`, that the sets `sets` (indexes into the
/// chain) hold as documents or deletions, each with the newest of those
/// sets that mentions it; `visit` returns false to stop.
fn merge(
    reader: &mut PointReader,
    sets: std::ops::Range<usize>,
    from: &str,
    visit: &mut dyn FnMut(&mut PointReader, Mention) -> Result<bool, RestoreError>,
) -> Result<(), RestoreError> {
    let mut cursors = Vec::new();
    let mut deletions: Vec<(usize, Vec<String>, usize)> = Vec::new();
    for set in sets.clone() {
        cursors.push(Cursor::open(reader, set, from)?);
        let deleted: Vec<String> = reader.deletions(set)?.range(from.to_string()..).map(|(id, _)| id.clone()).collect();
        deletions.push((set, deleted, 0));
    }
    loop {
        let doc_min = cursors.iter().filter_map(|c| c.head().map(|e| e.id.clone())).min();
        let del_min = deletions.iter().filter_map(|(_, ids, pos)| ids.get(*pos).cloned()).min();
        let Some(id) = [doc_min, del_min].into_iter().flatten().min() else { return Ok(()) };
        let newest_doc = cursors.iter().filter(|c| c.head().is_some_and(|e| e.id == id)).map(|c| (c.set, c.head().cloned())).next_back();
        let newest_del = deletions.iter().filter(|(_, ids, pos)| ids.get(*pos) == Some(&id)).map(|(set, ..)| *set).next_back();
        let mention = match (newest_doc, newest_del) {
            (Some((doc_set, Some(entry))), del) if del.is_none_or(|d| d < doc_set) => Mention::Document { entry },
            (_, Some(_)) => Mention::Deleted { id: id.clone() },
            _ => return Ok(()),
        };
        for cursor in &mut cursors {
            if cursor.head().is_some_and(|e| e.id == id) {
                cursor.advance(reader)?;
            }
        }
        for (_, ids, pos) in &mut deletions {
            if ids.get(*pos) == Some(&id) {
                *pos += 1;
            }
        }
        if !visit(reader, mention)? {
            return Ok(());
        }
    }
}

/// What the newest set of a range says of an id.
enum Mention {
    Document { entry: IndexEntry },
    Deleted { id: String },
}

impl Mention {
    fn id(&self) -> &str {
        match self {
            Self::Document { entry, .. } => &entry.id,
            Self::Deleted { id, .. } => id,
        }
    }
}

/// Every document at the newest point of `reader`'s chain whose id starts
/// with `prefix`, in id order, into `each` until it returns false.
///
/// # Errors
/// `ChecksumMismatch` naming a damaged file; storage errors.
pub fn each_document(reader: &mut PointReader, prefix: &str, each: &mut dyn FnMut(BackupDocument) -> bool) -> Result<(), RestoreError> {
    let sets = reader.chain().len();
    merge(reader, 0..sets, prefix, &mut |_, mention| {
        if !mention.id().starts_with(prefix) {
            return Ok(false);
        }
        Ok(match mention {
            Mention::Document { entry } => each(BackupDocument {
                last_modified: rfc3339_of_ms(entry.modified_ms),
                id: entry.id,
                etag: entry.etag,
                size_bytes: u64::from(entry.size),
            }),
            Mention::Deleted { .. } => true,
        })
    })
}

/// A page of [`each_document`]: after skipping `start`, at most `page_size`
/// (and at most [`MAX_PAGE_SIZE`]).
///
/// # Errors
/// As [`each_document`].
pub fn list(reader: &mut PointReader, prefix: &str, start: usize, page_size: usize) -> Result<BackupDocumentPage, RestoreError> {
    let page_size = page_size.min(MAX_PAGE_SIZE);
    let mut results = Vec::new();
    if page_size > 0 {
        let mut skipped = 0;
        each_document(reader, prefix, &mut |document| {
            if skipped < start {
                skipped += 1;
            } else {
                results.push(document);
            }
            results.len() < page_size
        })?;
    }
    Ok(BackupDocumentPage { set_id: reader.set_id(reader.chain().len().saturating_sub(1)).to_string(), results })
}

/// The index in `chain` of the set a point names: a set id, or the newest
/// set created at or before an RFC 3339 time.
///
/// # Errors
/// `SetNotFound` when no set of the chain matches; `InvalidRequest` for a point of neither form.
pub fn point_in(chain: &[StoredSet], point: &str) -> Result<usize, RestoreError> {
    if crate::backup::format::is_valid_set_id(point) {
        return chain
            .iter()
            .position(|s| s.manifest.set_id == point)
            .ok_or_else(|| RestoreError::SetNotFound(format!("the set '{point}' is not in the chain of the other point")));
    }
    let at: jiff::Timestamp = point
        .parse()
        .map_err(|e| RestoreError::InvalidRequest(format!("'{}' is neither a set id nor an RFC 3339 time: {e}", point.escape_debug())))?;
    chain
        .iter()
        .rposition(|s| s.manifest.created.parse::<jiff::Timestamp>().is_ok_and(|c| c <= at))
        .ok_or_else(|| RestoreError::SetNotFound(format!("no set of the chain was created at or before {at}")))
}

/// The ids created, changed and deleted between the point `from` (a set of
/// `reader`'s chain, see [`point_in`]) and the chain's newest point, from the
/// sets in between (their indexes and deletions), in id order, into `each`
/// until it returns false.
///
/// # Errors
/// `SetNotFound` when `from` is not a point of the chain; as [`each_document`].
pub fn each_change(reader: &mut PointReader, from: &str, each: &mut dyn FnMut(DiffEntry) -> bool) -> Result<(), RestoreError> {
    let sets = reader.chain().len();
    let before = point_in(reader.chain(), from)?;
    merge(reader, before + 1..sets, "", &mut |reader, mention| {
        let was = matches!(reader.state_up_to(before + 1, mention.id())?, State::Document { .. });
        let change = match (&mention, was) {
            (Mention::Document { .. }, true) => DocumentChange::Changed,
            (Mention::Document { .. }, false) => DocumentChange::Created,
            (Mention::Deleted { .. }, true) => DocumentChange::Deleted,
            (Mention::Deleted { .. }, false) => return Ok(true),
        };
        Ok(each(DiffEntry { id: mention.id().to_string(), change }))
    })
}

/// A page of [`each_change`]: after skipping `start`, at most `page_size`
/// (and at most [`MAX_PAGE_SIZE`]).
///
/// # Errors
/// As [`each_change`].
pub fn diff(reader: &mut PointReader, from: &str, start: usize, page_size: usize) -> Result<DiffPage, RestoreError> {
    let before = point_in(reader.chain(), from)?;
    let page_size = page_size.min(MAX_PAGE_SIZE);
    let mut results = Vec::new();
    if page_size > 0 {
        let mut skipped = 0;
        each_change(reader, from, &mut |entry| {
            if skipped < start {
                skipped += 1;
            } else {
                results.push(entry);
            }
            results.len() < page_size
        })?;
    }
    let newest = reader.chain().len().saturating_sub(1);
    Ok(DiffPage { from_set_id: reader.set_id(before).to_string(), to_set_id: reader.set_id(newest).to_string(), results })
}

/// Milliseconds since the epoch as RFC 3339 UTC.
#[must_use]
pub fn rfc3339_of_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map(crate::jobs::status::format_rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests;
