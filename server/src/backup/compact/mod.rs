//! Compaction ("synthetic full"): a chain folded into one new full set, from
//! the sets alone, without touching the database.
//!
//! The argument, in order:
//! 1. The chain (the newest, or the one ending at `UpTo`) is chosen as a
//!    restore chooses it, and its structure is checked before a byte of the
//!    new set is written: the links, each manifest against its
//!    `SHA256SUMS`, every file present with the size its manifest gives.
//!    The data is not read here: every byte the fold reads is hashed as it
//!    streams and checked against the manifest before the new set is
//!    committed (a damaged input fails the job and the part written is
//!    removed), so hashing it first too would read every set twice (and, in
//!    object storage, download it twice). A fold that refuses what it read
//!    then hashes the chain, so that damage (a bit flipped mid-file, which
//!    zstd may notice before the file's hash does) is reported as a
//!    `ChecksumMismatch` naming the file, not as a set written wrong.
//! 2. The incrementals' states at the chain's end, in id order: for sets of
//!    format 4 and later (documents in id order) a merge of their sorted
//!    streams, newest set winning, decoded on a thread of its own
//!    (`chain.rs`); for older incrementals, a throw-away `fjall` keyspace
//!    keyed by id that they are replayed into first (`index.rs`). Either way
//!    only what the incrementals changed is held, never the full set.
//! 3. The full set's documents and those states are merged in id order
//!    (`merge.rs`): an id with a state takes it (a document, or nothing for a
//!    deletion), any other keeps the full set's record. A frame of the full
//!    set whose ids no state falls among is copied whole, still compressed.
//! 4. The change log: every full-set entry whose document no state replaced
//!    (by etag, in etag order, all at or below the full set's `ToEtag`), then
//!    the incrementals' documents written out, by etag (all above it). Their
//!    (etag, id) marks are kept in memory, up to 500,000 of them; each time
//!    that many are held, they are sorted and written to the scratch folder
//!    as a run, and the runs and what is held are merged at the end (an
//!    external merge sort), so memory stays bounded however much changed.
//! 5. The system database's credentials come from the newest set that has
//!    them; an encrypted database's key as the newest set carries it.
//! 6. The set is written like any set (`engine::Target`: a `.tmp-` folder
//!    renamed, or the manifest uploaded last), with `CompactedFrom`, the
//!    chain's `DatabaseId` and `ToEtag`, and the `Created` time of the point
//!    it holds, so that time-ordered choices (the newest chain, retention)
//!    see it where its data is.
//!
//! Every input byte is hashed as it streams (a damaged or changed file
//! fails the job before the set is complete).

use rookery_types::{JobStatus, Severity};

use super::format::new_set_id;
use super::format::{DataRecord, FileContent, Manifest, SetKind};
use super::location::{Depth, Finding, Location, StoredSet};
use super::logical::FileSet;
use super::sealed::{SetKey, SetSecret};
use super::target::{commit_set, with_target, Target};
use super::{BackupError, BackupSummary};
use crate::failpoint;
use crate::jobs::{CancelToken, StatusReporter};
use crate::restore::error::RestoreError;
use crate::restore::plan::{choose_chain, set_keys, ChainChoice};
use crate::restore::read::{read_file, Source};
use index::ChangeIndex;
use merge::Merge;

pub(crate) mod chain;
pub(crate) mod index;
mod merge;

/// What a compaction folds and how.
#[derive(Debug, Clone, Default)]
pub struct CompactOptions {
    /// Fold up to this set (default: the newest set of the newest chain).
    pub up_to: Option<String>,
    /// The key or passphrase of an encrypted chain.
    pub set_secret: Option<SetSecret>,
    /// The database whose chain to fold, when the location holds several.
    pub source_database: Option<String>,
    /// The task that runs this compaction (none: asked for by hand), for its records.
    pub task: Option<String>,
    /// S3 Object Lock on every object of the new set (a task destination's `ObjectLock`).
    pub object_lock: Option<rookery_types::ObjectLock>,
}

impl From<RestoreError> for BackupError {
    fn from(e: RestoreError) -> Self {
        match e {
            RestoreError::Backup(b) => b,
            RestoreError::Storage(s) => Self::Storage(s),
            RestoreError::SetNotFound(m) => Self::SetNotFound(m),
            RestoreError::BackupKeyRequired => {
                Self::InvalidEncryptionKey("The chain is encrypted: give BackupEncryptionKey or BackupPassphrase.".into())
            }
            RestoreError::InvalidEncryptionKey(m) => Self::InvalidEncryptionKey(m),
            RestoreError::Canceled => Self::Canceled,
            RestoreError::InvalidRequest(m) => Self::Unsupported(m),
            other => Self::Corrupt(other.to_string()),
        }
    }
}

/// A compaction checked and ready to run: the chain and its keys.
pub struct PreparedCompaction {
    pub location: Location,
    pub chain: Vec<StoredSet>,
    set_keys: Vec<Option<crate::crypto::Key>>,
    set_secret: Option<SetSecret>,
    pub set_id: String,
    /// Where its scratch folder goes (none: the system's temporary folder).
    scratch: Option<std::path::PathBuf>,
}

/// The prefix of a compaction's scratch folder (in a server's data
/// directory: removed at its next start after a stop).
pub const SCRATCH_PREFIX: &str = ".compact-";

impl PreparedCompaction {
    /// Keeps the scratch folder (the index of changes, whose size grows with
    /// the incrementals) in `dir`: a server's data directory, which its next
    /// start clears of what a stop left.
    #[must_use]
    pub fn with_scratch_in(mut self, dir: &std::path::Path) -> Self {
        self.scratch = Some(dir.to_path_buf());
        self
    }

    /// The sets folded, oldest first.
    #[must_use]
    pub fn set_ids(&self) -> Vec<String> {
        self.chain.iter().map(|s| s.manifest.set_id.clone()).collect()
    }
}

/// Chooses and checks the chain (links, presence, sizes, keys); no data file is read.
///
/// # Errors
/// `NoBackup`, `SetNotFound`, `BrokenChain`, `ChecksumMismatch`, `InvalidEncryptionKey`, storage errors.
pub fn prepare(location: Location, options: &CompactOptions) -> Result<PreparedCompaction, BackupError> {
    let chain = choose_chain(&location, ChainChoice { up_to: options.up_to.as_deref(), database: options.source_database.as_deref() })?;
    let set_keys = set_keys(&chain, options.set_secret.as_ref())?;
    if chain.len() < 2 {
        let only = chain.first().map_or("", |s| s.manifest.set_id.as_str());
        return Err(BackupError::NoBackup(format!("{only} is a full set with no incremental after it: there is nothing to compact")));
    }
    if let Some(first) = chain.first().filter(|s| s.manifest.kind == SetKind::Snapshot) {
        return Err(BackupError::Unsupported(format!(
            "{} is a snapshot set: compaction folds logical sets (a snapshot holds storage files, not documents); take a new snapshot instead",
            first.manifest.set_id
        )));
    }
    let names = location.names()?;
    let set_id = new_set_id(&names, SetKind::Full);
    Ok(PreparedCompaction { location, chain, set_keys, set_secret: options.set_secret.clone(), set_id, scratch: None })
}

/// Runs a prepared compaction to the end.
///
/// # Errors
/// Damage found in an input, storage and I/O errors, `Canceled`; what was
/// written is removed first.
pub fn run(prepared: &PreparedCompaction, reporter: &mut StatusReporter, cancel: &CancelToken) -> Result<BackupSummary, BackupError> {
    // Step 1: the chain's structure, before anything is written (every
    // byte is hashed as the fold reads it).
    let mut findings = super::location::verify_links(&prepared.chain);
    findings.extend(chain_findings(prepared, Depth::Structure, cancel)?);
    if let Some(first) = findings.into_iter().next() {
        return Err(first.into());
    }
    reporter.message(
        &format!(
            "The {} sets are whole (every file present, with its size); compacting into {}, every byte checked as it is read",
            prepared.chain.len(),
            prepared.set_id
        ),
        Severity::Information,
    );
    match fold(prepared, reporter, cancel) {
        Err(BackupError::Corrupt(why)) => Err(damage_in(prepared, cancel).unwrap_or(BackupError::Corrupt(why))),
        done => done,
    }
}

/// After a fold refused what it read: the first file of the chain whose
/// bytes are not its manifest's (a bit flipped, a file cut short), which is
/// damage to report as such, not a set written wrong.
fn damage_in(prepared: &PreparedCompaction, cancel: &CancelToken) -> Option<BackupError> {
    chain_findings(prepared, Depth::Checksums, cancel).ok()?.into_iter().next().map(BackupError::from)
}

/// What checking every set of the chain to `depth` found, two sets at a time.
fn chain_findings(prepared: &PreparedCompaction, depth: Depth, cancel: &CancelToken) -> Result<Vec<Finding>, BackupError> {
    let checked = super::concurrent::map(&prepared.chain, 2, |set| {
        if cancel.is_canceled() {
            return Err(BackupError::Canceled);
        }
        Ok(super::location::verify_set(set, depth))
    });
    let mut findings = Vec::new();
    for set in checked {
        findings.extend(set?);
    }
    Ok(findings)
}

/// Steps 2 to 6, on a chain whose structure step 1 checked (its bytes are
/// checked as they are read): the new set, or nothing written.
fn fold(prepared: &PreparedCompaction, reporter: &mut StatusReporter, cancel: &CancelToken) -> Result<BackupSummary, BackupError> {
    let mut builder = tempfile::Builder::new();
    let scratch = match &prepared.scratch {
        Some(dir) => builder.prefix(SCRATCH_PREFIX).tempdir_in(dir),
        None => builder.prefix("rookery-compact-").tempdir(),
    };
    let index_dir = scratch.map_err(|e| BackupError::Io(format!("cannot create a scratch folder: {e}")))?;
    let index = ChangeIndex::open(index_dir.path())?;
    // Sets of format 4 and later are merged as sorted streams (step 3);
    // older incrementals, not in id order, are sorted through the index first.
    let sorted = chain::streams_sorted(&prepared.chain);
    if !sorted {
        for (set, key) in prepared.chain.iter().zip(&prepared.set_keys).skip(1) {
            index.replay(&Source { set, key: key.as_ref() }, cancel)?;
        }
    }
    failpoint::hit("compact.after_index");

    with_target(&prepared.location, &prepared.set_id, cancel, |target| write(prepared, &index, sorted, target, reporter, cancel))
}

fn write(
    prepared: &PreparedCompaction,
    index: &ChangeIndex,
    sorted: bool,
    target: &Target,
    reporter: &mut StatusReporter,
    cancel: &CancelToken,
) -> Result<BackupSummary, BackupError> {
    let full = &prepared.chain[0];
    let tip = &prepared.chain[prepared.chain.len() - 1];
    let full_key = prepared.set_keys[0].as_ref();
    let new_key = match &prepared.set_secret {
        Some(secret) if prepared.set_keys.iter().any(Option::is_some) => {
            Some(SetKey::for_new_set(secret).map_err(BackupError::InvalidEncryptionKey)?)
        }
        _ => None,
    };
    let estimate = prepared.chain[1..].iter().fold(full.manifest.document_count, |sum, s| sum.saturating_add(s.manifest.document_count));
    reporter.set_total(estimate);
    let mut files = FileSet::new(target, &prepared.set_id, reporter, cancel, new_key.as_ref().map(|k| k.key.clone()));

    // Step 3: the full set's documents merged with the index, in id order.
    let mut documents = files.documents()?;
    let full_source = Source { set: full, key: full_key };
    let merge = std::thread::scope(|scope| -> Result<_, BackupError> {
        // Every document state is written out: its (etag, id) goes into the
        // live log as it is produced, for the change log (step 4).
        let live = index.live_log();
        let states: Box<dyn Iterator<Item = Result<(String, index::State), BackupError>> + '_> = if sorted {
            let streams = chain::ChainStates::open(&prepared.chain[1..], &prepared.set_keys[1..])?;
            Box::new(chain::in_background(scope, index::Marked::new(streams, live))?)
        } else {
            Box::new(index::Marked::new(index.documents_in_order()?.map(|r| r.map_err(BackupError::Io)), live))
        };
        let mut merge = Merge::new(states)?;
        for file in full.manifest.files.iter().filter(|f| f.content == FileContent::Documents) {
            merge.file(&full_source, file, &mut files, &mut documents)?;
        }
        merge.rest(&mut files, &mut documents)?;
        Ok(merge.finished())
    })?;
    files.reporter.message(
        &format!(
            "{} frames of the full set copied as they were (no incremental changed them), {} merged with the changes",
            merge.copied, merge.merged
        ),
        Severity::Information,
    );
    let document_count = documents.finish(&mut files)?;
    let superseded = merge.superseded;

    // Step 4: the change log, in etag order.
    let mut changes = files.open("changes.zst")?;
    let write_error = |e: std::io::Error| BackupError::Io(format!("cannot write changes.zst: {e}"));
    chain::standing_changes(&full_source, &superseded, &mut |etag, id| {
        changes.write(&DataRecord::Change { etag, id }).map_err(write_error)?;
        Ok(())
    })?;
    for entry in index.take_live_by_etag()? {
        let (etag, id) = entry?;
        changes.write(&DataRecord::Change { etag, id }).map_err(write_error)?;
    }
    files.close("changes.zst".to_string(), changes, FileContent::ChangeLog)?;

    // Step 5: credentials (the system database) from the newest set that has them.
    if let Some((set, key, file)) = prepared
        .chain
        .iter()
        .zip(&prepared.set_keys)
        .rev()
        .find_map(|(set, key)| set.manifest.files.iter().find(|f| f.content == FileContent::Credentials).map(|f| (set, key, f)))
    {
        let mut entries = Vec::new();
        read_file(&Source { set, key: key.as_ref() }, &file.name, &file.sha256, &mut |record| {
            if entries.len() >= super::format::MAX_CREDENTIALS {
                return Err(
                    BackupError::Corrupt(format!("{}/{}: more credentials than any server holds", set.manifest.set_id, file.name)).into()
                );
            }
            entries.push(Ok(record));
            Ok(())
        })?;
        files.write_file("credentials.zst", FileContent::Credentials, entries.into_iter())?;
    }
    failpoint::hit("compact.before_manifest");

    // Step 6: the manifest.
    let (manifest_files, bytes_written) = files.into_files();
    let mut manifest = Manifest {
        format_version: tip.manifest.format_for_its_digest(),
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        set_id: prepared.set_id.clone(),
        database_name: tip.manifest.database_name.clone(),
        database_id: tip.manifest.database_id.clone(),
        kind: SetKind::Full,
        base_set_id: None,
        from_etag: 0,
        to_etag: tip.manifest.to_etag,
        document_count,
        deletion_count: 0,
        created: tip.manifest.created.clone(),
        compression: "zstd".to_string(),
        encryption: encryption(prepared, new_key.as_ref())?,
        files: manifest_files,
        content_digest: tip.manifest.content_digest.clone(),
        compacted_from: Some(prepared.set_ids()),
        storage_format: None,
        duration_ms: None,
        mac: None,
    };
    let final_dir = commit_set(target, &mut manifest, new_key.as_ref().map(|k| &k.key), cancel)?;
    Ok(BackupSummary {
        set_id: prepared.set_id.clone(),
        kind: SetKind::Full,
        location: prepared.location.clone(),
        set_dir: prepared.location.folder().map(|_| final_dir),
        documents: document_count,
        deletions: 0,
        bytes_written,
        from_etag: 0,
        to_etag: tip.manifest.to_etag,
    })
}

/// The new set's `Encryption`: the database key as the chain's newest set
/// carries it (re-sealed with the new set key when it was sealed), and the
/// new set key's description.
fn encryption(prepared: &PreparedCompaction, new_key: Option<&SetKey>) -> Result<Option<serde_json::Value>, BackupError> {
    let mut out = serde_json::Map::new();
    let newest = prepared
        .chain
        .iter()
        .zip(&prepared.set_keys)
        .rev()
        .find_map(|(set, key)| Some((set.manifest.encryption.as_ref()?.get("Database")?.clone(), key)));
    if let Some((mut database, old_key)) = newest {
        if let Some(sealed) = database.get("SealedKey").and_then(|v| v.as_str()).map(str::to_string) {
            let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sealed)
                .map_err(|e| BackupError::Corrupt(format!("SealedKey: {e}")))?;
            let (Some(old), Some(new)) = (old_key.as_ref(), new_key) else {
                return Err(BackupError::Corrupt("a sealed database key in a set that is not encrypted".into()));
            };
            let key = old
                .open(super::sealed::SEALED_DATABASE_KEY_AAD, &raw)
                .map_err(|_| BackupError::Corrupt("the sealed database key does not open with the chain's key".into()))?;
            let resealed = new.key.seal(super::sealed::SEALED_DATABASE_KEY_AAD, &key);
            database["SealedKey"] = serde_json::Value::String(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, resealed));
        }
        out.insert("Database".into(), database);
    }
    if let Some(key) = new_key {
        out.insert("Set".into(), key.description.clone());
    }
    Ok((!out.is_empty()).then_some(serde_json::Value::Object(out)))
}

/// The status a compaction starts with.
#[must_use]
pub fn initial_status(prepared: &PreparedCompaction) -> JobStatus {
    JobStatus {
        backup_location: Some(prepared.location.to_string()),
        set_id: Some(prepared.set_id.clone()),
        database_name: prepared.chain.first().map(|s| s.manifest.database_name.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::BackupOptions;
    use crate::config::Config;
    use crate::engine::Rookery;
    use rookery_types::RestoreRequest;

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Every document of a database with its whole record (etag, time, body).
    fn records(rookery: &Rookery, name: &str) -> Vec<(String, Vec<u8>)> {
        let db = rookery.catalog().get(name).expect("the database");
        let snapshot = db.store().snapshot();
        snapshot.documents().map(|r| r.expect("a record")).collect()
    }

    /// The SHA-256 of every frame of a plain set's documents files (from its tops).
    fn frame_hashes(location: &str, set_id: &str) -> Vec<[u8; 32]> {
        let dir = std::path::Path::new(location).join(set_id);
        let mut tops: Vec<_> = std::fs::read_dir(&dir)
            .expect("the set's folder")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "top"))
            .collect();
        tops.sort();
        tops.iter()
            .flat_map(|top| super::super::frames::IndexTop::decode(&std::fs::read(top).expect("a top")).expect("decodes").frames)
            .map(|f| f.sha256)
            .collect()
    }

    /// Many frames, changes in a few id ranges: the frames no incremental
    /// touched go into the compacted set byte for byte, the rest are merged,
    /// and a restore of it equals the chain's, plain and encrypted.
    #[test]
    fn compaction_copies_the_frames_no_incremental_touched_and_equals_the_chain() {
        for secret in [None, Some(crate::backup::sealed::SetSecret::Passphrase("correct horse".into()))] {
            let dir = tempfile::tempdir().expect("tempdir");
            let rookery = Rookery::open(Config::for_tests(&dir.path().join("data"))).expect("opens");
            let db = rookery.catalog().create("F").expect("creates");
            let location = dir.path().join("sets").display().to_string();
            let body = |i: u32, round: u32| format!(r#"{{"n":{i},"round":{round},"pad":"{}"}}"#, "x".repeat(400 + (i as usize * 7) % 300));
            for i in 0..4000u32 {
                db.store().put(&format!("d/{i:05}"), body(i, 0).as_bytes(), None).expect("put");
            }
            let backup = |incremental: bool| {
                let options = BackupOptions { location: location.clone(), incremental, set_secret: secret.clone(), ..Default::default() };
                rookery.start_backup("F", options).expect("starts").wait().expect("backs up").set_id
            };
            let full = backup(false);
            for i in 1000..1100u32 {
                db.store().put(&format!("d/{i:05}"), body(i, 1).as_bytes(), None).expect("put");
            }
            for i in 2000..2010u32 {
                db.store().delete(&format!("d/{i:05}"), None).expect("delete");
            }
            db.store().put("d/02500-new", b"{\"new\":true}", None).expect("put");
            backup(true);
            for i in 3000..3050u32 {
                db.store().put(&format!("d/{i:05}"), body(i, 2).as_bytes(), None).expect("put");
            }
            let tip = backup(true);
            let options = CompactOptions { set_secret: secret.clone(), ..Default::default() };
            let compacted = rookery.start_compaction(&location, None, &options).expect("starts").wait().expect("compacts");
            assert_eq!(compacted.documents, 4000 - 10 + 1);
            let restore = |name: &str, up_to: &str| {
                let request = RestoreRequest {
                    backup_location: location.clone(),
                    database_name: Some(name.into()),
                    restore_up_to: Some(up_to.into()),
                    backup_passphrase: secret.as_ref().map(|_| "correct horse".into()),
                    ..Default::default()
                };
                rookery.start_restore(&request, false).expect("starts").wait().expect("restores")
            };
            restore("FromChain", &tip);
            restore("FromCompacted", &compacted.set_id);
            assert_eq!(records(&rookery, "FromChain"), records(&rookery, "FromCompacted"), "encrypted: {}", secret.is_some());
            let digest = |name: &str| rookery.catalog().get(name).expect("db").store().content_digest();
            assert_eq!(digest("FromChain"), digest("FromCompacted"));
            if secret.is_none() {
                // Every frame whole in both sets is a frame copied as it was.
                let (before, after) = (frame_hashes(&location, &full), frame_hashes(&location, &compacted.set_id));
                let copied = after.iter().filter(|h| before.contains(h)).count();
                assert!(before.len() >= 30, "the full set has many frames: {}", before.len());
                assert!(copied * 10 >= before.len() * 7, "{copied} of {} frames copied", before.len());
                assert!(copied < before.len(), "the touched frames were merged, not copied");
            }
        }
    }

    /// A file changed after step 1 verified it: a frame that would be copied
    /// as it is now differs from what the manifest hashed. The fold fails on
    /// the file's hash and leaves no set.
    #[test]
    fn a_frame_changed_after_the_check_fails_the_fold_and_leaves_no_set() {
        let (_dir, rookery, location) = four_thousand_documents();
        let db = rookery.catalog().get("F").expect("the database");
        let backup = |incremental: bool| backup_of(&rookery, &location, incremental);
        let full = backup(false);
        db.store().put("d/03999", b"{\"changed\":true}", None).expect("put");
        backup(true);
        let prepared = prepare(Location::Folder(location.clone().into()), &CompactOptions::default()).expect("prepares");
        // The first frame holds ids no incremental touched: it is copied, never decoded.
        let file = std::path::Path::new(&location).join(&full).join("documents-0001.zst");
        let mut bytes = std::fs::read(&file).expect("reads");
        let first = frame_lengths(&location, &full)[0];
        assert!(first < bytes.len() / 4, "the file has many frames");
        bytes[first / 2] ^= 0x01;
        std::fs::write(&file, bytes).expect("writes");
        let before = std::fs::read_dir(&location).expect("lists").count();
        let mut reporter = StatusReporter::detached("test", JobStatus::default(), Box::new(|_| {}));
        let error = fold(&prepared, &mut reporter, &CancelToken::default()).expect_err("a changed file fails the fold");
        assert!(matches!(error, BackupError::ChecksumMismatch(_)), "{error}");
        assert!(error.to_string().contains("documents-0001.zst"), "{error}");
        assert_eq!(std::fs::read_dir(&location).expect("lists").count(), before, "no set and no half set left");
    }

    /// A frame every document of which an incremental replaced is not
    /// decompressed (nothing of it is kept): a byte flipped in it is found by
    /// the file's hash at its end, where a frame that is decoded fails on the
    /// damage first, as a frame that does not decode. The byte is the
    /// frame's first: a byte in its middle may fall in a raw literal, which
    /// decodes (changed), and the file's hash then finds it either way.
    #[test]
    fn a_frame_whose_documents_were_all_replaced_is_not_decoded() {
        for (replaced_whole, expected) in [(true, "ChecksumMismatch"), (false, "Corrupt")] {
            let (_dir, rookery, location) = four_thousand_documents();
            let db = rookery.catalog().get("F").expect("the database");
            let backup = |incremental: bool| backup_of(&rookery, &location, incremental);
            let full = backup(false);
            let top = std::path::Path::new(&location).join(&full).join("documents-0001.top");
            let top = super::super::frames::IndexTop::decode(&std::fs::read(top).expect("a top")).expect("decodes");
            let number = |frame: usize| top.frames[frame].first_id["d/".len()..].parse::<u32>().expect("a number");
            let (first, next) = (number(5), number(6));
            let changed = if replaced_whole { first..next } else { first + 1..first + 2 };
            for i in changed {
                db.store().put(&format!("d/{i:05}"), b"{\"changed\":true}", None).expect("put");
            }
            backup(true);
            let prepared = prepare(Location::Folder(location.clone().into()), &CompactOptions::default()).expect("prepares");
            let file = std::path::Path::new(&location).join(&full).join("documents-0001.zst");
            let mut bytes = std::fs::read(&file).expect("reads");
            let frame = &top.frames[5];
            // The frame's magic number: a decoder always stops at it (a byte
            // in the middle may fall in a raw literal and decode, changed).
            bytes[frame.offset as usize] ^= 0x55;
            std::fs::write(&file, bytes).expect("writes");
            let mut reporter = StatusReporter::detached("test", JobStatus::default(), Box::new(|_| {}));
            let error = fold(&prepared, &mut reporter, &CancelToken::default()).expect_err("a damaged file fails the fold");
            let kind = if matches!(error, BackupError::ChecksumMismatch(_)) { "ChecksumMismatch" } else { "Corrupt" };
            assert_eq!(kind, expected, "whole frame replaced: {replaced_whole}: {error}");
        }
    }

    /// A server with database `F` of 4,000 documents of about 600 bytes (many
    /// frames), and a location for its sets.
    fn four_thousand_documents() -> (tempfile::TempDir, Rookery, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let rookery = Rookery::open(Config::for_tests(&dir.path().join("data"))).expect("opens");
        let db = rookery.catalog().create("F").expect("creates");
        let location = dir.path().join("sets").display().to_string();
        for i in 0..4000u32 {
            db.store().put(&format!("d/{i:05}"), format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(600)).as_bytes(), None).expect("put");
        }
        (dir, rookery, location)
    }

    /// A backup of `F` into `location`: its set id.
    fn backup_of(rookery: &Rookery, location: &str, incremental: bool) -> String {
        let options = BackupOptions { location: location.to_string(), incremental, ..Default::default() };
        rookery.start_backup("F", options).expect("starts").wait().expect("backs up").set_id
    }

    /// The length of every frame of a plain set's first documents file.
    fn frame_lengths(location: &str, set_id: &str) -> Vec<usize> {
        let top = std::path::Path::new(location).join(set_id).join("documents-0001.top");
        let top = super::super::frames::IndexTop::decode(&std::fs::read(top).expect("a top")).expect("decodes");
        top.frames.iter().map(|f| f.len as usize).collect()
    }

    #[test]
    fn compaction_equals_the_chain_at_every_point_over_random_histories() {
        for seed in 1..=16u64 {
            let dir = tempfile::tempdir().expect("tempdir");
            let rookery = Rookery::open(Config::for_tests(&dir.path().join("data"))).expect("opens");
            let db = rookery.catalog().create("P").expect("creates");
            let location = dir.path().join("sets").display().to_string();
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut set_ids = Vec::new();
            let rounds = 3 + rng.below(6);
            for round in 0..rounds {
                for _ in 0..rng.below(120) + 1 {
                    let id = format!("d/{:03}", rng.below(70));
                    match rng.below(10) {
                        // Deletes (of what may or may not exist), the rest puts: new ids, overwrites, re-creates.
                        0..=2 => {
                            let _ = db.store().delete(&id, None);
                        }
                        _ => {
                            let body = format!(r#"{{"round":{round},"v":{}}}"#, rng.below(1_000_000));
                            db.store().put(&id, body.as_bytes(), None).expect("put");
                        }
                    }
                }
                let options = BackupOptions { location: location.clone(), incremental: round > 0, ..Default::default() };
                let summary = rookery.start_backup("P", options).expect("starts").wait().expect("backs up");
                set_ids.push(summary.set_id);
            }
            // Fold up to a random point of the chain (the full alone is refused: nothing to fold).
            let point = 1 + rng.below(set_ids.len() as u64 - 1) as usize;
            let options = CompactOptions {
                up_to: Some(set_ids[point].clone()),
                set_secret: None,
                source_database: None,
                task: None,
                object_lock: None,
            };
            let compacted = rookery.start_compaction(&location, None, &options).expect("starts").wait().expect("compacts");
            let restore = |name: &str, up_to: &str| {
                let request = RestoreRequest {
                    backup_location: location.clone(),
                    database_name: Some(name.into()),
                    restore_up_to: Some(up_to.into()),
                    ..Default::default()
                };
                rookery.start_restore(&request, false).expect("starts").wait().expect("restores")
            };
            let from_chain = restore("FromChain", &set_ids[point]);
            let from_compacted = restore("FromCompacted", &compacted.set_id);
            assert_eq!(from_chain.last_etag, from_compacted.last_etag, "seed {seed}: ToEtag");
            let (a, b) = (records(&rookery, "FromChain"), records(&rookery, "FromCompacted"));
            let ids = |r: &Vec<(String, Vec<u8>)>| r.iter().map(|(id, _)| id.clone()).collect::<std::collections::BTreeSet<_>>();
            assert_eq!(ids(&a).symmetric_difference(&ids(&b)).collect::<Vec<_>>(), Vec::<&String>::new(), "seed {seed}: ids");
            assert_eq!(a, b, "seed {seed}: documents, etags, times");
            let digest = |name: &str| rookery.catalog().get(name).expect("db").store().content_digest();
            assert_eq!(digest("FromChain"), digest("FromCompacted"), "seed {seed}: content digests");
            assert_eq!(from_compacted.documents, a.len() as u64, "seed {seed}: count of the compacted restore");
            let counted = rookery.catalog().get("FromChain").expect("db").store().document_count();
            assert_eq!(counted, a.len() as u64, "seed {seed}: the chain restore's DocumentCount");
            assert_eq!(from_chain.documents, a.len() as u64, "seed {seed}: count of the chain restore");
            // An incremental after the compacted set continues from it, and restores to the database.
            let options = BackupOptions { location: location.clone(), incremental: true, ..Default::default() };
            let next = rookery.start_backup("P", options).expect("starts").wait().expect("backs up");
            if point == set_ids.len() - 1 {
                assert_eq!(next.kind, SetKind::Incremental, "seed {seed}");
                assert_eq!(next.from_etag, compacted.to_etag, "seed {seed}: the next incremental builds on the compacted set");
            }
            let latest = restore("Latest", &next.set_id);
            let (latest_records, source) = (records(&rookery, "Latest"), records(&rookery, "P"));
            let source: Vec<_> = source.into_iter().filter(|(id, _)| !id.starts_with("Raven/")).collect();
            assert_eq!(latest_records, source, "seed {seed}: the chain through the compacted set");
            assert_eq!(digest("Latest"), db.store().content_digest(), "seed {seed}: the restored digest is the database's");
            let tip_manifest = std::fs::read(std::path::Path::new(&location).join(&next.set_id).join("manifest.json")).expect("manifest");
            let tip_manifest: Manifest = serde_json::from_slice(&tip_manifest).expect("json");
            assert_eq!(tip_manifest.content_digest, Some(digest("Latest").to_hex()), "seed {seed}: the manifest's digest");
            assert_eq!(latest.documents, latest_records.len() as u64, "seed {seed}: the restore's count");
        }
    }
}
