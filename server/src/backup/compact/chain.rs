//! Step 2 of a compaction of sets of format 4 and later: the incrementals'
//! states at the chain's end, in id order, streamed.
//!
//! Since format 4 every incremental's documents are in id order, so the
//! state of every id the incrementals touched is a merge of their sorted
//! streams, newest set first: nothing is sorted on disk and nothing is held
//! but one decoder per set and each set's deletions (sorted in memory: they
//! are written in etag order). Within one set a document wins over a
//! deletion of the same id, as a restore applies deletions first.
//!
//! Every file is hashed as it streams and checked against its manifest at
//! its end; documents out of id order are refused as damage.

use std::collections::VecDeque;
use std::io::BufReader;

use super::super::format::{DataRecord, Decoded, FileContent, ManifestFile, RecordReader, SetKind, SetReader};
use super::super::location::StoredSet;
use super::super::BackupError;
use super::index::State;
use crate::crypto::Key;
use crate::restore::error::RestoreError;
use crate::restore::read::{changed, corrupt, damaged, open_plain, read_file, unreadable, Source};

/// The most deletions (over the whole chain) held in memory; a chain with
/// more is folded through the on-disk index instead.
const MAX_HELD_DELETIONS: u64 = 1_000_000;

/// Whether the incrementals of `chain` (after its full set) can be merged as
/// sorted streams: every one of format 4 or later, and their deletions few
/// enough to hold.
pub(crate) fn streams_sorted(chain: &[StoredSet]) -> bool {
    let incrementals = chain.get(1..).unwrap_or_default();
    let deletions = incrementals.iter().fold(0u64, |sum, s| sum.saturating_add(s.manifest.deletion_count));
    deletions <= MAX_HELD_DELETIONS
        && incrementals.iter().all(|s| s.manifest.format_version >= 4 && s.manifest.kind == SetKind::Incremental)
}

/// The records of one file of a set, decoded as they are read.
type FileRecords = RecordReader<Decoded<SetReader<BufReader<Box<dyn std::io::Read + Send>>>>>;

/// One set's documents, read in order across its documents files.
struct Documents<'a> {
    set: &'a StoredSet,
    key: Option<&'a Key>,
    files: VecDeque<&'a ManifestFile>,
    reader: Option<(&'a ManifestFile, FileRecords)>,
    head: Option<Document>,
}

/// A document of an incremental: id, etag, modification time, body.
type Document = (String, u64, i64, Vec<u8>);

impl<'a> Documents<'a> {
    fn open(source: &Source<'a>) -> Result<Self, BackupError> {
        let files = source.set.manifest.files.iter().filter(|f| f.content == FileContent::Documents).collect();
        let mut out = Self { set: source.set, key: source.key, files, reader: None, head: None };
        out.head = out.read_next()?;
        Ok(out)
    }

    /// The head, replaced by the set's next document (which must come after it).
    fn pop(&mut self) -> Result<Option<Document>, BackupError> {
        let next = self.read_next()?;
        if let (Some((head, ..)), Some((id, ..)), Some((file, _))) = (&self.head, &next, &self.reader) {
            if head >= id {
                return Err(damaged(self.set, &file.name, "its documents are not in id order"));
            }
        }
        Ok(std::mem::replace(&mut self.head, next))
    }

    /// The next document of the set's documents files, each file checked at its end.
    fn read_next(&mut self) -> Result<Option<Document>, BackupError> {
        loop {
            if self.reader.is_none() {
                let Some(file) = self.files.pop_front() else {
                    return Ok(None);
                };
                let source = Source { set: self.set, key: self.key };
                // Read in small steps: one reader per set of the chain is open at once.
                let plain = open_plain(&source, &file.name, 128 * 1024).map_err(|e| unreadable(self.set, &file.name, &e))?;
                let reader = RecordReader::new(plain).map_err(|e| damaged(self.set, &file.name, &e.to_string()))?;
                self.reader = Some((file, reader));
            }
            let (file, reader) = self.reader.as_mut().expect("opened above");
            let file = *file;
            match reader.next_record() {
                Ok(Some(DataRecord::Document { id, etag, modified_ms, body })) => return Ok(Some((id, etag, modified_ms, body))),
                Ok(Some(_)) => return Err(damaged(self.set, &file.name, "a non-document record in a documents file")),
                Ok(None) => {
                    let (_, reader) = self.reader.take().expect("opened above");
                    let (_, sha256) = reader.into_inner().into_hashing().finish().map_err(|e| unreadable(self.set, &file.name, &e))?;
                    if sha256 != file.sha256 {
                        return Err(changed(self.set, &file.name));
                    }
                }
                Err(e) => return Err(damaged(self.set, &file.name, &e.to_string())),
            }
        }
    }
}

/// One incremental: its documents streamed, its deletions sorted.
struct SetStream<'a> {
    documents: Documents<'a>,
    deletions: VecDeque<String>,
}

impl SetStream<'_> {
    /// The smallest id this set still holds.
    fn head(&self) -> Option<&str> {
        let document = self.documents.head.as_ref().map(|(id, ..)| id.as_str());
        match (document, self.deletions.front().map(String::as_str)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The incrementals' states at the chain's end, in id order.
pub(crate) struct ChainStates<'a> {
    sets: Vec<SetStream<'a>>,
}

impl<'a> ChainStates<'a> {
    /// Opens every incremental of `chain` (its full set excluded), `keys` beside them.
    pub(crate) fn open(incrementals: &'a [StoredSet], keys: &'a [Option<Key>]) -> Result<Self, BackupError> {
        let mut sets = Vec::with_capacity(incrementals.len());
        for (set, key) in incrementals.iter().zip(keys) {
            let source = Source { set, key: key.as_ref() };
            let mut deletions = Vec::new();
            for file in set.manifest.files.iter().filter(|f| f.content == FileContent::Deletions) {
                read_file(&source, &file.name, &file.sha256, &mut |record| {
                    let why = match record {
                        DataRecord::Deletion { id, .. } if (deletions.len() as u64) < set.manifest.deletion_count => {
                            deletions.push(id);
                            return Ok(());
                        }
                        DataRecord::Deletion { .. } => "more deletions than its manifest counts",
                        _ => "a record that is not a deletion",
                    };
                    Err(BackupError::Corrupt(format!("{}/{}: {why}", set.manifest.set_id, file.name)).into())
                })?;
            }
            deletions.sort_unstable();
            deletions.dedup();
            sets.push(SetStream { documents: Documents::open(&source)?, deletions: deletions.into() });
        }
        Ok(Self { sets })
    }

    fn next_state(&mut self) -> Result<Option<(String, State)>, BackupError> {
        let Some(id) = self.sets.iter().filter_map(SetStream::head).min().map(str::to_string) else {
            return Ok(None);
        };
        let mut state = None;
        // Oldest to newest: a newer set's state replaces an older one's.
        for set in &mut self.sets {
            if set.deletions.front() == Some(&id) {
                set.deletions.pop_front();
                state = Some(State::Deleted);
            }
            if set.documents.head.as_ref().is_some_and(|(head, ..)| *head == id) {
                if let Some((_, etag, modified_ms, body)) = set.documents.pop()? {
                    state = Some(State::Document { etag, modified_ms, body });
                }
            }
        }
        Ok(state.map(|s| (id, s)))
    }
}

impl Iterator for ChainStates<'_> {
    type Item = Result<(String, State), BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_state().transpose()
    }
}

/// States handed over per batch: at most 1024, or 512 KiB of bodies, two batches waiting.
const STATE_BATCHES: super::super::concurrent::Batches = super::super::concurrent::Batches { items: 1024, bytes: 512 * 1024, in_flight: 2 };

/// `states` produced on a thread of its own within `scope` (a compaction
/// then decodes the incrementals on one core while it merges on the other),
/// handed over in small batches; the thread stops when the receiver goes.
pub(crate) fn in_background<'scope, I>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    states: I,
) -> Result<impl Iterator<Item = Result<(String, State), BackupError>> + 'scope, BackupError>
where
    I: Iterator<Item = Result<(String, State), BackupError>> + Send + 'scope,
{
    let bytes = |(id, state): &(String, State)| match state {
        State::Document { body, .. } => id.len() + body.len(),
        State::Deleted => 0,
    };
    super::super::concurrent::beside(scope, "compact-reads", states, STATE_BATCHES, bytes)
        .map_err(|e| BackupError::Io(format!("cannot start a thread: {e}")))
}

/// The full set's change-log entries (etag, id) whose document no state
/// replaced or deleted, in etag order: one walk through the log and
/// `superseded` (from [`StatesMerge::finish`]), both ascending. A log out
/// of etag order is refused as damage. Returns the bytes of the log read.
///
/// # Errors
/// Damage, storage errors, and what `keep` failed with.
pub(crate) fn standing_changes(
    full: &Source<'_>,
    superseded: &[u64],
    keep: &mut dyn FnMut(u64, String) -> Result<(), RestoreError>,
) -> Result<u64, RestoreError> {
    let set = full.set;
    let (mut last_etag, mut next, mut bytes) = (0, superseded.iter().copied().peekable(), 0);
    for file in set.manifest.files.iter().filter(|f| f.content == FileContent::ChangeLog) {
        bytes += read_file(full, &file.name, &file.sha256, &mut |record| {
            let DataRecord::Change { etag, id } = record else {
                return Err(corrupt(set, &file.name, "a non-change record in the change log"));
            };
            if etag <= last_etag {
                return Err(corrupt(set, &file.name, "the change log is not in etag order"));
            }
            last_etag = etag;
            while next.next_if(|s| *s < etag).is_some() {}
            if next.next_if_eq(&etag).is_some() {
                return Ok(());
            }
            keep(etag, id)
        })?;
    }
    Ok(bytes)
}

/// The chain's states (from [`ChainStates`]) as a merge with the full set's
/// documents, in id order, takes them: the states of ids before each full-set
/// document, then its own state when an incremental changed it (the chain's
/// end wins). A compaction writes what it takes into a new set; a chain's
/// restore into the storage's ingestion.
pub(crate) struct StatesMerge<I: Iterator<Item = Result<(String, State), BackupError>>> {
    states: std::iter::Peekable<I>,
    taken: u64,
    superseded: Vec<u64>,
}

impl<I: Iterator<Item = Result<(String, State), BackupError>>> StatesMerge<I> {
    pub(crate) fn new(states: I) -> Self {
        Self { states: states.peekable(), taken: 0, superseded: Vec::new() }
    }

    /// The id of the next state.
    ///
    /// # Errors
    /// What reading the states failed with.
    pub(crate) fn next_id(&mut self) -> Result<Option<&str>, BackupError> {
        if let Some(Err(_)) = self.states.peek() {
            return Err(self.states.next().and_then(Result::err).unwrap_or_else(|| BackupError::Io("the states ended".into())));
        }
        Ok(self.states.peek().and_then(|r| r.as_ref().ok()).map(|(id, _)| id.as_str()))
    }

    /// Hands `take` the next state (a document, or a deletion).
    fn take_next<E: From<BackupError>>(&mut self, take: &mut impl FnMut(String, State) -> Result<(), E>) -> Result<(), E> {
        let (id, state) = self.states.next().ok_or_else(|| BackupError::Io("the states ended".into()))??;
        self.taken += 1;
        take(id, state)
    }

    /// Hands `take` every state of an id before `bound` (every state left without one).
    ///
    /// # Errors
    /// What reading the states or `take` failed with.
    pub(crate) fn before<E: From<BackupError>>(
        &mut self,
        bound: Option<&str>,
        take: &mut impl FnMut(String, State) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.next_id()?.is_some_and(|id| bound.is_none_or(|bound| id < bound)) {
            self.take_next(take)?;
        }
        Ok(())
    }

    /// A document of the full set: hands `take` the states before it, then
    /// its own state when an incremental changed it (its etag recorded as
    /// superseded). False when none did: the full set's record stands.
    ///
    /// # Errors
    /// What reading the states or `take` failed with.
    pub(crate) fn document<E: From<BackupError>>(
        &mut self,
        id: &str,
        etag: u64,
        take: &mut impl FnMut(String, State) -> Result<(), E>,
    ) -> Result<bool, E> {
        self.before(Some(id), take)?;
        if self.next_id()? != Some(id) {
            return Ok(false);
        }
        self.superseded.push(etag);
        self.take_next(take)?;
        Ok(true)
    }

    /// The states taken, and the etags of the full set's documents a state
    /// replaced or deleted, in order (their change-log entries go).
    pub(crate) fn finish(mut self) -> (u64, Vec<u64>) {
        self.superseded.sort_unstable();
        (self.taken, self.superseded)
    }
}
