//! A logical chain restored in one pass: the full set's documents and the
//! incrementals' states at the chain's end, merged in id order and ingested
//! once, as a compaction folds the same chain into a set.
//!
//! Replaying incrementals through the store's write path (a point read of
//! the old version, memtables, then leveled compactions of what they wrote
//! into the whole ingested database) made a chain's restore grow faster
//! than the data and its memory with it. Here:
//! 1. The incrementals' states (a document, or a deletion) come from the
//!    merge of their id-ordered streams, newest set winning, on a thread of
//!    their own (`backup::compact::chain`); every document among them is
//!    marked by etag, in memory up to a bound and past it in a throw-away
//!    index in the restore's staging folder (`backup::compact::index`).
//! 2. The full set's documents stream in id order: read, hashed and decoded
//!    on one thread, each into the value stored for it; merged with the
//!    states on another, where an id with a state takes it and any other
//!    keeps the full set's record, and what is kept gets its term of the
//!    content digest (a document a state replaced is never hashed);
//!    ingested as one sorted run on a third, with its count and bytes.
//! 3. The change log: the full set's whole log, ingested as one sorted run
//!    beside the merge (on the core the merge leaves); after the merge, a
//!    second run of tombstones for the entries of the full set's documents
//!    a state replaced (all at or below its `ToEtag`) and of the states'
//!    documents by etag (all above it).
//!
//! Only sets of format 4 and later (incrementals in id order) with few
//! enough deletions to hold take this path; any other chain is replayed.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::backup::compact::chain::{in_background, streams_sorted, ChainStates, StatesMerge};
use crate::backup::compact::index::{ChangeIndex, LiveLog, Marked, State};
use crate::backup::error::BackupError;
use crate::backup::format::{DataRecord, FileContent, ManifestFile, RecordReader, SetKind, StoredDocument};
use crate::backup::location::StoredSet;
use crate::failpoint;
use crate::storage::record::{etag_key, value_with_flags, HEADER_LEN};
use crate::storage::store::BulkAccess;
use crate::storage::tally::Tally;
use crate::storage::{ContentDigest, DocumentStore, StorageError};

use super::error::RestoreError;
use super::plan::RestorePlan;
use super::read::{corrupt, read_documents_file, Source};
use super::stream::{side_by_side, Counters, LogBeside, Report, Written};

/// Whether `chain` is restored by [`ingest`]: a full set, then incrementals
/// whose states can be merged as sorted streams.
pub(super) fn merges(chain: &[StoredSet]) -> bool {
    chain.len() >= 2 && chain[0].manifest.kind == SetKind::Full && streams_sorted(chain)
}

/// Restores the chain of `plan` (see [`merges`]) into the empty `store`;
/// sets its counters to the chain's end.
///
/// The full set's documents files hold consecutive id ranges: with up to
/// [`MAX_SPLIT_INCREMENTALS`] incrementals, the first half of them and the
/// second are merged and ingested as two runs of tables whose ids do not
/// overlap, side by side (fjall writes a run on one thread, and one run
/// cannot keep both cores busy). The second half starts at the first id of
/// its first file; each half merges the states of its own ids (the second
/// skips those before it).
///
/// # Errors
/// Damage found while streaming, storage errors, `Canceled`.
pub(super) fn ingest(
    store: &DocumentStore,
    plan: &RestorePlan,
    flags: u8,
    cancel: &crate::jobs::CancelToken,
    done: &mut u64,
    bytes: &mut u64,
    progress: &mut dyn FnMut(u64, u64) -> Result<(), RestoreError>,
) -> Result<(), RestoreError> {
    let (chain, keys) = (&plan.chain, &plan.set_keys);
    let (Some(full), Some(tip)) = (chain.first(), chain.last()) else {
        return Ok(());
    };
    let source = Source { set: full, key: keys.first().and_then(Option::as_ref) };
    // In the folder the database is built in: removed with it whatever happens.
    let dir = store.path();
    let work = tempfile::Builder::new()
        .prefix(".chain-")
        .tempdir_in(dir)
        .map_err(|e| BackupError::Io(format!("cannot create a folder in '{}': {e}", dir.display())))?;
    let index = ChangeIndex::open(work.path())?;
    let bulk = store.bulk();
    let files: Vec<&ManifestFile> = full.manifest.files.iter().filter(|f| f.content == FileContent::Documents).collect();
    let (mut head, mut tail) = files.split_at(files.len().div_ceil(2));
    let split = chain.len() - 1 <= MAX_SPLIT_INCREMENTALS;
    let boundary = tail.first().filter(|_| split).and_then(|file| first_id(&source, file));
    if boundary.is_none() {
        (head, tail) = (&files[..], &[]);
    }
    let counters = Counters::default();
    let stop = AtomicBool::new(false);
    let (base_done, base_bytes) = (*done, *bytes);
    let shared = Shared { bulk: &bulk, source: &source, incrementals: &chain[1..], keys: &keys[1..], flags, counters: &counters };
    let (stop, shared) = (&stop, &shared);
    let (merged, log_bytes) = std::thread::scope(|scope| -> Result<(Merged, u64), RestoreError> {
        // The full set's whole change log, beside the merge (step 3).
        let full_log = LogBeside::start(scope, shared.bulk, shared.source, stop)?;
        let second = boundary.as_deref().map(|from| {
            let log = index.live_log();
            move |stopped: Report<'_>| merge_half(scope, shared, log, tail, Ids { from: Some(from), to: None }, stopped)
        });
        let mut report = || {
            if stop.load(Ordering::Relaxed) {
                return Err(RestoreError::Canceled);
            }
            progress(
                base_done + shared.counters.documents.load(Ordering::Relaxed),
                base_bytes + shared.counters.bytes.load(Ordering::Relaxed),
            )
        };
        let ids = Ids { from: None, to: boundary.as_deref() };
        let log = index.live_log();
        let halves = side_by_side(scope, stop, cancel, second, || merge_half(scope, shared, log, head, ids, &mut report));
        let log_bytes = full_log.join();
        let (first, second) = halves?;
        Ok((first.and(second), log_bytes?))
    })?;
    if merged.read != full.manifest.document_count {
        return Err(corrupt(full, "manifest.json", "DocumentCount does not match the documents in the set"));
    }
    *done = base_done + merged.read + merged.taken;
    *bytes = base_bytes + counters.bytes.load(Ordering::Relaxed) + log_bytes;
    ingest_changes(&bulk, full, &merged.superseded, &index)?;
    bulk.finish(tip.manifest.to_etag, Some(merged.tally))?;
    progress(*done, *bytes)
}

/// The most incrementals a chain may have for its merge to run in two
/// halves. Each half reads every incremental through a decoder of its own:
/// with 24 incrementals of 5M documents, two halves took the restore's
/// peak memory from 215 to 314 MB (about 4 MB more per incremental) for
/// 10% less time. Longer chains merge in one half, as before.
const MAX_SPLIT_INCREMENTALS: usize = 4;

/// The ids a half of the merge owns: from `from` (inclusive) to `to` (exclusive).
#[derive(Clone, Copy)]
struct Ids<'a> {
    from: Option<&'a str>,
    to: Option<&'a str>,
}

impl Ids<'_> {
    fn holds(&self, id: &str) -> bool {
        self.from.is_none_or(|from| id >= from) && self.to.is_none_or(|to| id < to)
    }
}

/// The first id of a documents file (the rest of it is read, and hashed,
/// by the half that starts there, which must begin with this id). None
/// when it cannot be read: the merge then runs as one, and the read of the
/// whole file reports the damage as damage.
fn first_id(source: &Source<'_>, file: &ManifestFile) -> Option<String> {
    let plain = super::read::open_plain(source, &file.name, 64 * 1024).ok()?;
    match RecordReader::new(plain).ok()?.next_record() {
        Ok(Some(DataRecord::Document { id, .. })) => Some(id),
        _ => None,
    }
}

/// What both halves of the merge read from.
struct Shared<'a> {
    bulk: &'a BulkAccess<'a>,
    /// The full set.
    source: &'a Source<'a>,
    incrementals: &'a [StoredSet],
    keys: &'a [Option<crate::crypto::Key>],
    flags: u8,
    counters: &'a Counters,
}

/// One half of the merge: the full set's `files`, and the states of the
/// ids it owns, merged and ingested as one run; `report` every
/// [`super::stream::REPORT_EVERY`] documents read.
fn merge_half<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    shared: &'scope Shared<'scope>,
    log: LiveLog,
    files: &[&ManifestFile],
    ids: Ids<'_>,
    report: Report<'_>,
) -> Result<Merged, RestoreError> {
    let Shared { bulk, source, incrementals, keys, flags, counters } = *shared;
    let full = source.set;
    // The states of the ids this half owns (an error passes, to be reported).
    let (from, to) = (ids.from.map(str::to_owned), ids.to.map(str::to_owned));
    let states = ChainStates::open(incrementals, keys)?
        .skip_while(move |s| matches!(s, Ok((id, _)) if from.as_deref().is_some_and(|from| id.as_str() < from)))
        .take_while(move |s| !matches!(s, Ok((id, _)) if to.as_deref().is_some_and(|to| id.as_str() >= to)));
    let states = in_background(scope, Marked::new(states, log))?;
    let mut merging = Merging::new(states, flags);
    let mut ingestion = bulk.documents().start_ingestion().map_err(StorageError::from)?;
    let mut written = Written::default();
    let mut write = |id: String, value: byteview::ByteView| -> Result<(), RestoreError> {
        if !written.follows(&id, value.len()) {
            return Err(BackupError::Corrupt(format!("the chain's documents are not in id order at '{id}'")).into());
        }
        ingestion.write(id.as_bytes(), value).map_err(StorageError::from)?;
        written.wrote(id);
        Ok(())
    };
    let (mut read, mut unreported) = (0u64, 0u64);
    for file in files {
        // The full set's documents read as the values stored for them; on
        // the staging thread, the merge and the digest of what it keeps (a
        // replaced document is never hashed).
        let mut stage = |record: StoredDocument| -> Result<Vec<Ready>, RestoreError> {
            if !ids.holds(&record.id) {
                return Err(corrupt(full, &file.name, "documents are not in id order"));
            }
            let mut ready = Vec::new();
            merging.full_record(record, &mut |id, value| {
                ready.push((id, value));
                Ok(())
            })?;
            Ok(ready)
        };
        let read_all = |each: &mut dyn FnMut(StoredDocument) -> Result<(), RestoreError>| {
            read_documents_file(source, &file.name, &file.sha256, flags, each)
        };
        let size = super::stream::read_in_parallel(read_all, &mut stage, &mut |ready| {
            for (id, value) in ready? {
                write(id, value)?;
            }
            failpoint::hit("restore.document");
            read += 1;
            counters.document(&mut unreported, report)
        })?;
        counters.file_read(&mut unreported, size, report)?;
    }
    merging.rest(&mut write)?;
    ingestion.finish().map_err(StorageError::from)?;
    let (taken, digest, superseded) = merging.finish();
    let tally = Tally { documents: written.count, data_bytes: written.data_bytes, digest };
    Ok(Merged { read, taken, tally, superseded })
}

/// A document ready for the ingestion: its id and stored value.
type Ready = (String, byteview::ByteView);

/// Hands a document the merge keeps to the ingestion (or to the batch bound for it).
type Keep<'a> = &'a mut dyn FnMut(String, byteview::ByteView) -> Result<(), RestoreError>;

/// What the merge wrote: documents, their stored bytes and digest, and the
/// etags of the full set's documents a state replaced or deleted, in order;
/// the full set's documents read and the states taken.
#[derive(Default)]
struct Merged {
    read: u64,
    taken: u64,
    tally: Tally,
    superseded: Vec<u64>,
}

impl Merged {
    /// Two halves as one (`next` holds the later ids).
    fn and(mut self, next: Self) -> Self {
        self.read += next.read;
        self.taken += next.taken;
        self.tally.add(&next.tally);
        self.superseded.extend(next.superseded);
        self.superseded.sort_unstable();
        self
    }
}

/// The merge of the full set's documents with the states, and the digest
/// of what it keeps.
struct Merging<I: Iterator<Item = Result<(String, State), BackupError>>> {
    states: StatesMerge<I>,
    flags: u8,
    digest: ContentDigest,
}

impl<I: Iterator<Item = Result<(String, State), BackupError>>> Merging<I> {
    fn new(states: I, flags: u8) -> Self {
        Self { states: StatesMerge::new(states), flags, digest: ContentDigest::default() }
    }

    /// One document of the full set (read as the value stored for it, with
    /// the restore's flags): the states before it, then its own state when
    /// an incremental changed it (the chain's end wins), else the document
    /// itself.
    fn full_record(&mut self, record: StoredDocument, keep: Keep<'_>) -> Result<(), RestoreError> {
        let StoredDocument { id, etag, value } = record;
        let (flags, digest) = (self.flags, &mut self.digest);
        if self.states.document(&id, etag, &mut |id, state| kept_state(flags, digest, keep, id, state))? {
            return Ok(());
        }
        kept(digest, keep, id, value)
    }

    /// Takes every state left.
    fn rest(&mut self, keep: Keep<'_>) -> Result<(), RestoreError> {
        let (flags, digest) = (self.flags, &mut self.digest);
        self.states.before(None, &mut |id, state| kept_state(flags, digest, keep, id, state))
    }

    /// The states taken (documents and deletions), the digest of what was
    /// kept, and the etags the states superseded.
    fn finish(self) -> (u64, ContentDigest, Vec<u64>) {
        let (taken, superseded) = self.states.finish();
        (taken, self.digest, superseded)
    }
}

/// A state taken: a document is kept, a deletion keeps nothing.
fn kept_state(flags: u8, digest: &mut ContentDigest, keep: Keep<'_>, id: String, state: State) -> Result<(), RestoreError> {
    match state {
        State::Document { etag, modified_ms, body } => kept(digest, keep, id, value_with_flags(etag, modified_ms, flags, &body)),
        State::Deleted => Ok(()),
    }
}

/// Adds a kept document (its stored value) to the digest (unless the
/// server owns it) and hands it on.
fn kept(digest: &mut ContentDigest, keep: Keep<'_>, id: String, value: byteview::ByteView) -> Result<(), RestoreError> {
    if let Some(term) = ContentDigest::term(&id, &value[HEADER_LEN..]) {
        digest.add(&term);
    }
    keep(id, value)
}

/// Step 3: the change log. The full set's whole log was ingested beside
/// the merge (as a full set's restore does); this second run, registered
/// after it, removes the entries of the full set's documents a state
/// replaced or deleted (a tombstone for each of `superseded`, all at or
/// below the full set's `ToEtag`), then adds the states' documents by etag
/// (all above it). Nothing out of etag order is taken.
fn ingest_changes(bulk: &BulkAccess<'_>, full: &StoredSet, superseded: &[u64], index: &ChangeIndex) -> Result<(), RestoreError> {
    let mut changes = bulk.changes().start_ingestion().map_err(StorageError::from)?;
    let mut last_etag = 0u64;
    let mut next = |etag: u64| -> Result<Vec<u8>, RestoreError> {
        if etag <= last_etag {
            return Err(corrupt(full, "manifest.json", "the chain's change log is not in etag order"));
        }
        last_etag = etag;
        Ok(etag_key(etag).to_vec())
    };
    for &etag in superseded {
        changes.write_tombstone(next(etag)?).map_err(StorageError::from)?;
    }
    for entry in index.take_live_by_etag()? {
        let (etag, id) = entry?;
        changes.write(next(etag)?, id.into_bytes()).map_err(StorageError::from)?;
    }
    changes.finish().map_err(StorageError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::backup::BackupOptions;
    use crate::config::Config;
    use crate::engine::Rookery;
    use rookery_types::RestoreRequest;

    /// Every document (id, record) and change-log entry (etag, id) of a database.
    type Contents = (Vec<(String, Vec<u8>)>, Vec<(u64, String)>);

    /// The [`Contents`] of a database, server-owned documents left out.
    fn contents(rookery: &Rookery, name: &str) -> Contents {
        let db = rookery.catalog().get(name).expect("the database");
        let snapshot = db.store().snapshot();
        let ours = |id: &String| !rookery_types::is_server_owned(id);
        let documents = snapshot.documents().map(|r| r.expect("a record")).filter(|(id, _)| ours(id)).collect();
        let changes = snapshot.changes_after(0).map(|r| r.expect("an entry")).filter(|(_, id)| ours(id)).collect();
        (documents, changes)
    }

    /// Chains of random histories over ids spread across many frames
    /// (overwrites, deletions, re-creations, an id deleted and written again
    /// in one set): the merged restore holds exactly the database's
    /// documents, change log, count, digest and last etag at every set.
    #[test]
    fn a_merged_chain_restore_equals_the_database_at_every_set() {
        merged_chain_restores_equal_the_database(None);
    }

    /// The same with documents files of 16 KiB: a full set of many files,
    /// ingested in two halves, and chains of up to four incrementals merged
    /// in two halves whose states are split where the second half's first
    /// file starts (the chain of five, in one).
    #[test]
    fn a_chain_of_many_documents_files_restores_in_two_halves_equal_to_the_database() {
        merged_chain_restores_equal_the_database(Some(16 * 1024));
    }

    fn merged_chain_restores_equal_the_database(documents_file_bytes: Option<u64>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let rookery = Rookery::open(Config::for_tests(&dir.path().join("data"))).expect("opens");
        let db = rookery.catalog().create("M").expect("creates");
        let location = dir.path().join("sets").display().to_string();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut below = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let body = |i: u64, round: u64| format!(r#"{{"n":{i},"round":{round},"pad":"{}"}}"#, "y".repeat(300 + (i as usize * 13) % 500));
        for i in 0..3000 {
            db.store().put(&format!("d/{i:05}"), body(i, 0).as_bytes(), None).expect("put");
        }
        let mut expected = Vec::new();
        for round in 0..6u64 {
            if round > 0 {
                for _ in 0..below(400) + 1 {
                    let id = format!("d/{:05}", below(3400));
                    match below(10) {
                        0..=2 => {
                            let _ = db.store().delete(&id, None);
                        }
                        3 => {
                            let _ = db.store().delete(&id, None);
                            db.store().put(&id, body(below(9999), round).as_bytes(), None).expect("put");
                        }
                        _ => {
                            db.store().put(&id, body(below(9999), round).as_bytes(), None).expect("put");
                        }
                    }
                }
            }
            let options = BackupOptions { location: location.clone(), incremental: round > 0, documents_file_bytes, ..Default::default() };
            let set = rookery.start_backup("M", options).expect("starts").wait().expect("backs up");
            if round == 0 && documents_file_bytes.is_some() {
                let files = std::fs::read_dir(dir.path().join("sets").join(&set.set_id)).expect("the set").flatten();
                let documents = files.filter(|f| f.file_name().to_string_lossy().ends_with(".zst")).count();
                assert!(documents >= 8, "a full set of {documents} data files");
            }
            // (The server's own documents, such as the backup's status, are not in a set.)
            let (documents, changes) = contents(&rookery, "M");
            let count = documents.len() as u64;
            expected.push((set.set_id, (documents, changes), count, db.store().content_digest(), set.to_etag));
        }
        for (at, (set_id, (documents, changes), count, digest, last_etag)) in expected.into_iter().enumerate() {
            let name = format!("At{at}");
            let request = RestoreRequest {
                backup_location: location.clone(),
                database_name: Some(name.clone()),
                restore_up_to: Some(set_id),
                ..Default::default()
            };
            let summary = rookery.start_restore(&request, false).expect("starts").wait().expect("restores");
            let (got_documents, got_changes) = contents(&rookery, &name);
            assert_eq!(got_documents.len(), documents.len(), "set {at}: documents");
            assert!(got_documents == documents, "set {at}: the same records (etags, times, bodies)");
            assert_eq!(got_changes, changes, "set {at}: the change log");
            let restored = rookery.catalog().get(&name).expect("restored");
            assert_eq!((restored.store().document_count(), summary.documents), (count, count), "set {at}: the count");
            assert_eq!(restored.store().content_digest(), digest, "set {at}: the digest");
            assert_eq!((restored.store().last_etag(), summary.last_etag), (last_etag, last_etag), "set {at}: the last etag");
            // Writable, and its next write is after every restored etag.
            restored.store().put("after", b"{}", None).expect("writes");
            assert!(restored.store().last_etag() > last_etag);
        }
    }
}
