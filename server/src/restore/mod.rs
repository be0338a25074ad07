//! Restore: a backup chain into a new database, verified before anything
//! becomes visible.
//!
//! The order of operations, and why nothing half-made is ever served:
//! 1. [`plan`] reads the location, picks the newest complete chain (or the one
//!    ending at `RestoreUpTo`) and verifies every link and every file's SHA-256.
//! 2. The catalog reserves the name and the location (a registry entry in the
//!    `Restoring` state): the name is taken, but no database is served.
//! 3. [`build`] creates the database in a staging folder beside the
//!    destination: bulk ingestion of the full set (sorted streams), then each
//!    incremental in order, deletions first. Every file is hashed again while
//!    it streams, so a file changed since step 1 fails the restore.
//! 4. The staging folder is fsynced and renamed to the destination.
//! 5. The catalog opens it and marks the entry `Ready`: only now is it visible.
//!
//! A failure at any step removes the staging folder, the destination if the
//! restore made it, and the reservation. A crash does the same at the next
//! start, since the registry entry is still `Restoring`.

pub mod job;
pub mod prove;

pub use job::RestoreHandle;
pub use prove::prove_chain;

use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::backup::copy::{copy_hashed, CopyJob};
use crate::backup::format::{sha256_reader, DataRecord, FileContent, HashingReader, RecordReader, SetKind, SetReader};
use crate::backup::location::{io_error, scan, verify_links, verify_set, Depth, Location, StoredSet};
use crate::backup::sealed::{self, ChunkOpener, SetKey, SetSecret};
use crate::backup::BackupError;
use crate::failpoint;
use crate::jobs::CancelToken;
use crate::storage::record::{encode_with_flags, etag_key, FLAG_ENCRYPTED};
use crate::storage::{ContentDigest, DocumentStore, Durability, StorageError};

/// Documents applied per batch when replaying an incremental set.
const APPLY_BATCH: usize = 4096;
/// ... or once the batch holds this many bytes, whatever its count.
const APPLY_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// What can go wrong with a restore.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("Another restore is still running after waiting {0} s; try again later or raise RestoreStartTimeout.")]
    AlreadyRunning(u64),
    #[error("{0}")]
    SetNotFound(String),
    #[error("{0}")]
    InvalidRequest(String),

    #[error("{0}")]
    InvalidDatabaseLocation(String),
    #[error("{0}")]
    InsufficientSpace(String),
    #[error("The restore was canceled; no database and no files were left.")]
    Canceled,
    #[error("The backup is of an encrypted database and leaves its key out: give the database key as EncryptionKey.")]
    EncryptionKeyRequired,
    #[error("{0}")]
    InvalidEncryptionKey(String),
    #[error("The backup set is encrypted: give BackupEncryptionKey or BackupPassphrase.")]
    BackupKeyRequired,
}

impl RestoreError {
    /// The stable error code.
    #[must_use]
    pub fn code(&self) -> rookery_types::ErrorCode {
        use rookery_types::ErrorCode;
        match self {
            Self::Backup(b) => b.code(),
            Self::Storage(s) => s.code(),
            Self::AlreadyRunning(_) => ErrorCode::RestoreAlreadyRunning,
            Self::SetNotFound(_) => ErrorCode::SetNotFound,
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::InvalidDatabaseLocation(_) => ErrorCode::InvalidDatabaseLocation,
            Self::InsufficientSpace(_) => ErrorCode::InsufficientSpace,
            Self::Canceled => ErrorCode::Canceled,
            Self::EncryptionKeyRequired | Self::BackupKeyRequired => ErrorCode::EncryptionKeyRequired,
            Self::InvalidEncryptionKey(_) => ErrorCode::InvalidEncryptionKey,
        }
    }
}

/// A verified chain, ready to restore.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub location: Location,
    /// The full set first, then its incrementals in order.
    pub chain: Vec<StoredSet>,
    /// The database key, when the backup is of an encrypted database.
    pub database_key: Option<crate::crypto::Key>,
    /// The key of each set of `chain` that is encrypted.
    pub set_keys: Vec<Option<crate::crypto::Key>>,
}

impl RestorePlan {
    /// The name of the database in the backup.
    #[must_use]
    pub fn database_name(&self) -> &str {
        self.chain.first().map_or("", |s| s.manifest.database_name.as_str())
    }

    /// The newest set that will be applied.
    #[must_use]
    pub fn last_set_id(&self) -> &str {
        self.chain.last().map_or("", |s| s.manifest.set_id.as_str())
    }

    /// Records to apply, for progress.
    #[must_use]
    pub fn total_records(&self) -> u64 {
        self.chain.iter().fold(0u64, |sum, s| sum.saturating_add(s.manifest.document_count).saturating_add(s.manifest.deletion_count))
    }
}

/// What a restore built.
#[derive(Debug, Clone)]
pub struct RestoreSummary {
    pub database_name: String,
    pub location: PathBuf,
    pub last_set_id: String,
    pub documents: u64,
    pub last_etag: u64,
}

/// Which chain of a location, and how far: the newest, the one of a named
/// database, or the one ending at a set (or at the newest set created at
/// or before a time).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChainChoice<'a> {
    /// A set id, or an RFC 3339 time.
    pub up_to: Option<&'a str>,
    /// The name of the database in the sets (`SourceDatabaseName`).
    pub database: Option<&'a str>,
}

/// Step 1: picks the chain to restore from `location` and verifies it fully.
///
/// # Errors
/// `NoBackup`, `SetNotFound`, `AmbiguousBackup`, `BrokenChain`, `ChecksumMismatch`, `UnsupportedFormatVersion`.
pub fn plan(
    location: &Location,
    choice: ChainChoice<'_>,
    encryption_key: Option<&str>,
    set_secret: Option<&SetSecret>,
) -> Result<RestorePlan, RestoreError> {
    let chain = choose_chain(location, choice)?;
    let set_keys = set_keys(&chain, set_secret)?;
    let database_key = database_key(&chain, &set_keys, encryption_key)?;
    Ok(RestorePlan { location: location.clone(), chain, database_key, set_keys })
}

/// The chain to restore from `location` (see [`ChainChoice`]), its links,
/// file presence and sizes checked.
///
/// # Errors
/// `NoBackup`, `SetNotFound`, `AmbiguousBackup`, `BrokenChain`, `ChecksumMismatch`, `UnsupportedFormatVersion`.
pub fn choose_chain(location: &Location, choice: ChainChoice<'_>) -> Result<Vec<StoredSet>, RestoreError> {
    if let Some(folder) = location.folder() {
        if !folder.is_dir() {
            return Err(BackupError::NoBackup(format!("'{}' is not a folder holding a backup", folder.display())).into());
        }
    }
    let mut scanned = scan(location)?;
    if let Some(name) = choice.database {
        let found = database_names(&scanned.chains);
        scanned.chains.retain(|c| c.database_name.eq_ignore_ascii_case(name));
        if scanned.chains.is_empty() {
            return Err(BackupError::NoBackup(format!(
                "'{location}' holds no chain of a database named '{}'{}",
                name.escape_debug(),
                if found.is_empty() { String::new() } else { format!(" (it holds {})", found.join(", ")) }
            ))
            .into());
        }
    }
    let by_set = choice.up_to.filter(|p| crate::backup::format::is_valid_set_id(p));
    // Without a set id, "the newest chain" or "the newest set before a time"
    // must be of one database: sets of a restored copy written into its
    // original's location never stand in for the original's.
    if by_set.is_none() {
        let ids: std::collections::BTreeSet<&str> = scanned.chains.iter().map(|c| c.database_id.as_str()).collect();
        if ids.len() > 1 {
            return Err(BackupError::Ambiguous(format!(
                "'{location}' holds backups of more than one database ({}): say which with SourceDatabaseName, or name a set with RestoreUpTo",
                database_names(&scanned.chains).join(", ")
            ))
            .into());
        }
    }
    // A time instead of a set id: the newest set created at or before it.
    let by_time;
    let up_to = match choice.up_to {
        Some(point) if by_set.is_none() => {
            let at: jiff::Timestamp = point.parse().map_err(|e| {
                RestoreError::InvalidRequest(format!(
                    "RestoreUpTo '{}' is neither a set id nor an RFC 3339 time: {e}",
                    point.escape_debug()
                ))
            })?;
            let created = |s: &StoredSet| s.manifest.created.parse::<jiff::Timestamp>().ok();
            by_time = scanned
                .chains
                .iter()
                .flat_map(|c| c.sets.iter())
                .filter_map(|s| created(s).filter(|c| *c <= at).map(|c| (c, s.manifest.set_id.clone())))
                .max()
                .map(|(_, id)| id)
                .ok_or_else(|| RestoreError::SetNotFound(format!("no complete set in '{location}' was created at or before {at}")))?;
            Some(by_time.as_str())
        }
        other => other,
    };
    let chain = match up_to {
        Some(set_id) => {
            let chain = scanned
                .chains
                .iter()
                .find(|c| c.sets.iter().any(|s| s.manifest.set_id == set_id))
                .ok_or_else(|| RestoreError::SetNotFound(format!("no complete chain in '{location}' holds the set '{set_id}'")))?;
            let end = chain.sets.iter().position(|s| s.manifest.set_id == set_id).unwrap_or(0);
            chain.sets[..=end].to_vec()
        }
        None => {
            let Some(chain) = scanned.newest_chain() else {
                if let Some(orphan) = scanned.orphans.first() {
                    return Err(BackupError::BrokenChain(format!(
                        "{}: its base set {} is missing",
                        orphan.manifest.set_id,
                        orphan.manifest.base_set_id.as_deref().unwrap_or("?")
                    ))
                    .into());
                }
                if let Some(problem) = scanned.problems.first() {
                    return Err(BackupError::from(problem.clone()).into());
                }
                return Err(BackupError::NoBackup(format!("no complete backup set in '{location}'")).into());
            };
            // Anything damaged in the location makes "the newest chain" uncertain:
            // restoring an older chain silently would restore old data. Refuse,
            // naming the damage; RestoreUpTo still restores a chosen set.
            if let Some(orphan) = scanned.orphans.first() {
                return Err(BackupError::BrokenChain(format!(
                    "{}: its base set {} is missing, so the newest chain may be incomplete; restore an earlier set with RestoreUpTo",
                    orphan.manifest.set_id,
                    orphan.manifest.base_set_id.as_deref().unwrap_or("?")
                ))
                .into());
            }
            if let Some(problem) = scanned.problems.first() {
                let mut problem = problem.clone();
                problem
                    .message
                    .push_str("; the newest chain may be incomplete: repair the location or restore an earlier set with RestoreUpTo");
                return Err(BackupError::from(problem).into());
            }
            chain.sets.clone()
        }
    };
    // What the chain adds up to must add up (progress, free space).
    let totals = chain.iter().try_fold((0u64, 0u64), |(bytes, records), set| {
        let m = &set.manifest;
        let set_bytes = m.files.iter().try_fold(0u64, |sum, f| sum.checked_add(f.size))?;
        Some((bytes.checked_add(set_bytes)?, records.checked_add(m.document_count)?.checked_add(m.deletion_count)?))
    });
    if totals.is_none() {
        return Err(BackupError::Corrupt(format!("'{location}': the chain's sizes or counts add up beyond any backup")).into());
    }
    // Cheap checks only (the 202 comes at once): links, presence and sizes of
    // every file, the checksum list against the manifest. Every file's hash is
    // checked by the job, once, while it streams (see `build`).
    let mut findings = verify_links(&chain);
    for set in &chain {
        findings.extend(verify_set(set, Depth::Structure));
    }
    if let Some(first) = findings.into_iter().next() {
        return Err(BackupError::from(first).into());
    }
    Ok(chain)
}

/// The databases whose chains are in a listing: `Name` (and the start of its
/// id where two databases share a name), sorted.
fn database_names(chains: &[crate::backup::location::Chain]) -> Vec<String> {
    let mut ids: Vec<(&str, &str)> = chains.iter().map(|c| (c.database_name.as_str(), c.database_id.as_str())).collect();
    ids.sort_unstable();
    ids.dedup();
    let shared = |name: &str| ids.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count() > 1;
    ids.iter()
        .map(|(name, id)| if shared(name) { format!("{name} (id {})", id.get(..8).unwrap_or(id)) } else { (*name).to_string() })
        .collect()
}

/// The key of every encrypted set of the chain, checked before anything is written.
pub(crate) fn set_keys(chain: &[StoredSet], secret: Option<&SetSecret>) -> Result<Vec<Option<crate::crypto::Key>>, RestoreError> {
    // A chain is encrypted throughout or not at all: a plain set inside an
    // encrypted chain, or a plain chain where a key was given, is a set put
    // there by someone without the key.
    let sealed = |s: &StoredSet| s.manifest.encryption.as_ref().is_some_and(|e| e.get("Set").is_some());
    if let Some(plain) = chain.iter().find(|s| !sealed(s)) {
        if secret.is_some() || chain.iter().any(sealed) {
            return Err(BackupError::Corrupt(format!(
                "{}: a set that is not encrypted in a chain that should be (a key or passphrase was given, or other sets are encrypted); the location was tampered with",
                plain.manifest.set_id
            ))
            .into());
        }
    }
    chain
        .iter()
        .map(|set| match set.manifest.encryption.as_ref().and_then(|e| e.get("Set")) {
            None => Ok(None),
            Some(description) => {
                let secret = secret.ok_or(RestoreError::BackupKeyRequired)?;
                let key = SetKey::for_existing_set(description, secret)
                    .map_err(|e| RestoreError::InvalidEncryptionKey(format!("{}: {e}", set.manifest.set_id)))?;
                check_mac(set, &key)?;
                Ok(Some(key))
            }
        })
        .collect()
}

/// An encrypted set of format version 2 or later carries a MAC of its
/// manifest under the set key: without it, or with one that does not match,
/// the manifest was changed (counts, etags, links, file hashes): tampering.
fn check_mac(set: &StoredSet, key: &crate::crypto::Key) -> Result<(), RestoreError> {
    if set.manifest.format_version < 2 {
        return Ok(());
    }
    let tampered = |why: &str| -> RestoreError {
        BackupError::Corrupt(format!("{}/manifest.json: {why}; the set was tampered with", set.manifest.set_id)).into()
    };
    let mac = set.manifest.mac.as_deref().ok_or_else(|| tampered("an encrypted set without its Mac"))?;
    let canonical = set.manifest.canonical_bytes().map_err(|e| tampered(&e.to_string()))?;
    sealed::check_manifest_mac(key, &canonical, mac).map_err(|e| tampered(&e))
}

/// The key of an encrypted database's chain: from the request, else from the
/// set; checked against the set's key check before anything is written.
fn database_key(
    chain: &[StoredSet],
    set_keys: &[Option<crate::crypto::Key>],
    given: Option<&str>,
) -> Result<Option<crate::crypto::Key>, RestoreError> {
    let described = |s: &StoredSet| s.manifest.encryption.as_ref().and_then(|e| e.get("Database")).cloned();
    let Some(first) = chain.first().and_then(described) else {
        return Ok(None);
    };
    let check = first.get("KeyCheck").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let plain = chain.iter().filter_map(described).find_map(|d| d.get("Key").and_then(|k| k.as_str()).map(str::to_string));
    // In an encrypted set, the database key is sealed with the set key.
    let sealed = chain.iter().zip(set_keys).find_map(|(set, key)| {
        let sealed = described(set)?.get("SealedKey")?.as_str()?.to_string();
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sealed).ok()?;
        let opened = key.as_ref()?.open(crate::backup::sealed::SEALED_DATABASE_KEY_AAD, &raw).ok()?;
        String::from_utf8(opened).ok()
    });
    let from_set = plain.or(sealed);
    let text = match (given, from_set) {
        (Some(g), _) => g.to_string(),
        (None, Some(k)) => k,
        (None, None) => return Err(RestoreError::EncryptionKeyRequired),
    };
    let key = crate::crypto::Key::from_base64(&text).map_err(|e| RestoreError::InvalidEncryptionKey(format!("EncryptionKey: {e}")))?;
    if key.check() != check {
        return Err(RestoreError::InvalidEncryptionKey("This is not the key of the backed-up database.".into()));
    }
    Ok(Some(key))
}

/// Refuses a restore into `location` when its filesystem has less free space
/// than the bytes of the chain's files (a lower bound of what the database
/// will take: the sets are compressed).
///
/// # Errors
/// `InsufficientSpace`.
pub fn check_free_space(plan: &RestorePlan, location: &Path) -> Result<(), RestoreError> {
    let needed = plan.chain.iter().flat_map(|s| &s.manifest.files).fold(0u64, |sum, f| sum.saturating_add(f.size));
    let mut probe = location;
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p,
            None => return Ok(()),
        }
    }
    let Ok(stats) = rustix::fs::statvfs(probe) else { return Ok(()) };
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    if free < needed {
        return Err(RestoreError::InsufficientSpace(format!(
            "'{}' has {free} bytes free; the sets to restore alone take {needed}: free some space or choose another DatabaseLocation",
            probe.display()
        )));
    }
    Ok(())
}

/// Progress callback: (records applied, bytes read).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);
/// Progress that may stop the restore (a cancel).
type Checked<'a> = &'a mut dyn FnMut(u64, u64) -> Result<(), RestoreError>;

/// Step 3: builds the database of `plan` in `dir` (which must not exist or be empty).
///
/// # Errors
/// Checksum mismatches found while streaming, corrupt data, storage errors.
pub fn build(
    plan: &RestorePlan,
    dir: &Path,
    defrag: bool,
    master: Option<&crate::crypto::Key>,
    cancel: &CancelToken,
    progress: Progress<'_>,
) -> Result<RestoreSummary, RestoreError> {
    build_with(plan, dir, defrag, master, false, cancel, progress)
}

/// [`build`], and with `credentials` the users and API keys of a system
/// database set (from the newest set that carries them) go into the new
/// store's internal keyspace.
fn build_with(
    plan: &RestorePlan,
    dir: &Path,
    defrag: bool,
    master: Option<&crate::crypto::Key>,
    credentials: bool,
    cancel: &CancelToken,
    progress: Progress<'_>,
) -> Result<RestoreSummary, RestoreError> {
    // A canceled restore stops at its next record (progress is reported per record).
    let mut checked = |done: u64, bytes: u64| -> Result<(), RestoreError> {
        if cancel.is_canceled() {
            return Err(RestoreError::Canceled);
        }
        progress(done, bytes);
        Ok(())
    };
    let progress: Checked<'_> = &mut checked;
    let mut done = 0u64;
    let mut bytes = 0u64;
    // A chain that starts with a snapshot: its files are the database's.
    if let (Some(first), Some(key)) = (plan.chain.first(), plan.set_keys.first()) {
        if first.manifest.kind == SetKind::Snapshot {
            place_storage_files(&Source { set: first, key: key.as_ref() }, dir, &mut done, &mut bytes, progress)?;
        }
    }
    let store = open_built(dir, plan.chain.first())?;
    if let Some(key) = &plan.database_key {
        let master = master.ok_or_else(|| StorageError::Locked("no master key to keep the database key".into()))?;
        // (A snapshot's own copy of the key is wrapped by its server's master key: replaced.)
        store.enable_encryption(key.clone(), master)?;
    }
    let flags = if plan.database_key.is_some() { FLAG_ENCRYPTED } else { 0 };
    let mut last_etag = 0;
    let mut internal: Option<Vec<(String, Vec<u8>)>> = None;
    for (set, set_key) in plan.chain.iter().zip(&plan.set_keys) {
        let source = Source { set, key: set_key.as_ref() };
        match set.manifest.kind {
            SetKind::Full => {
                ingest_full(&store, &source, flags, &mut done, &mut bytes, progress)?;
            }
            SetKind::Incremental => apply_incremental(&store, &source, flags, &mut done, &mut bytes, progress)?,
            SetKind::Snapshot => check_snapshot(&store, set, plan.chain.len() == 1)?,
        }
        let mut streamed: Vec<&str> = set
            .manifest
            .files
            .iter()
            .filter(|f| match set.manifest.kind {
                SetKind::Full => matches!(f.content, FileContent::Documents | FileContent::ChangeLog),
                SetKind::Incremental => matches!(f.content, FileContent::Documents | FileContent::Deletions),
                SetKind::Snapshot => f.content == FileContent::Storage,
            })
            .map(|f| f.name.as_str())
            .collect();
        if credentials {
            if let Some(file) = set.manifest.files.iter().find(|f| f.content == FileContent::Credentials) {
                internal = Some(read_credentials(&source, &file.name, &file.sha256)?);
                streamed.push(file.name.as_str());
            }
        }
        hash_unread(set, &streamed)?;
        last_etag = set.manifest.to_etag;
        failpoint::io_error("restore.write").map_err(|e| BackupError::Io(format!("cannot write the restored database: {e}")))?;
        failpoint::hit("restore.after_set");
    }
    if credentials {
        for (key, value) in internal.unwrap_or_default() {
            store.internal().insert(key, value).map_err(StorageError::from)?;
        }
    } else {
        // A named database comes back without its original's backup tasks
        // (a snapshot carries them in its files): the copy must never write
        // into the original's locations.
        store.bulk().clear_internal()?;
    }
    let bulk = store.bulk();
    bulk.finish(last_etag, None)?;
    // The result against what the newest set recorded of the whole database
    // (sets written before the digest existed carry none).
    if let Some(tip) = plan.chain.last() {
        check_digest(&store, tip, "the restored")?;
    }
    if defrag {
        store.compact()?;
    }
    store.persist()?;
    let count = store.document_count();
    drop(store);
    Ok(RestoreSummary {
        database_name: plan.database_name().to_string(),
        location: dir.to_path_buf(),
        last_set_id: plan.last_set_id().to_string(),
        documents: count,
        last_etag,
    })
}

/// Opens the database a restore builds. A snapshot's files come from
/// storage that is not trusted: whatever they hold, opening them fails
/// cleanly (a panic in the storage engine included) as a corrupt set.
fn open_built(dir: &Path, first: Option<&StoredSet>) -> Result<DocumentStore, RestoreError> {
    let opened = std::panic::catch_unwind(|| DocumentStore::open(dir, Durability::Os));
    match (opened, first) {
        (Ok(Ok(store)), _) => Ok(store),
        (Ok(Err(e)), Some(set)) if set.manifest.kind == SetKind::Snapshot => {
            Err(corrupt(set, "manifest.json", &format!("its storage files do not open as a database: {e}")))
        }
        (Ok(Err(e)), _) => Err(e.into()),
        (Err(_), Some(set)) => Err(corrupt(set, "manifest.json", "its storage files do not open as a database")),
        (Err(_), None) => Err(BackupError::Io("the storage engine failed opening a new database".into()).into()),
    }
}

/// Copies the storage files of a snapshot set into `dir`, each hashed (and
/// opened, in an encrypted set) while it streams and fsynced; a file that
/// differs from its checksum fails the restore before anything opens.
fn place_storage_files(
    source: &Source<'_>,
    dir: &Path,
    done: &mut u64,
    bytes: &mut u64,
    progress: Checked<'_>,
) -> Result<(), RestoreError> {
    let set = source.set;
    let total = set.manifest.files.iter().fold(0u64, |sum, f| sum.saturating_add(f.size)).max(1);
    std::fs::create_dir_all(dir).map_err(|e| BackupError::Io(format!("cannot create '{}': {e}", dir.display())))?;
    for file in &set.manifest.files {
        // Checked when the manifest was read; again here, before a path is made of it.
        if file.content != FileContent::Storage || !crate::storage::files::is_storage_file_name(&file.name) {
            return Err(corrupt(set, &file.name, "not a storage file of a snapshot set"));
        }
    }
    let mismatch = |name: &str| -> RestoreError {
        BackupError::ChecksumMismatch(format!("{}/{name}: checksum mismatch (the file was changed or damaged)", set.manifest.set_id)).into()
    };
    match (set.location.folder(), source.key) {
        // A plain set in a folder: copied in the kernel, each copy hashed.
        (Some(location), None) => {
            let set_dir = location.join(&set.manifest.set_id);
            let jobs: Vec<CopyJob> = set
                .manifest
                .files
                .iter()
                .map(|f| CopyJob { from: set_dir.join(&f.name), to: dir.join(&f.name), known_sha: None })
                .collect();
            let mut placed = 0u64;
            // A cancel (or any refusal of the progress callback) stops the copy at the next file.
            let stopped: std::cell::RefCell<Option<RestoreError>> = std::cell::RefCell::new(None);
            let results = copy_hashed(&jobs, &|| stopped.borrow().is_some(), &mut |_, size| {
                placed += size;
                *bytes += size;
                *done = share(set.manifest.document_count, placed, total);
                if let Err(e) = progress(*done, *bytes) {
                    *stopped.borrow_mut() = Some(e);
                }
            });
            if let Some(e) = stopped.into_inner() {
                return Err(e);
            }
            let results = results.map_err(|e| -> RestoreError {
                io_error(&e, |m| BackupError::ChecksumMismatch(format!("{}: a storage file cannot be copied ({m})", set.manifest.set_id)))
                    .into()
            })?;
            for (file, (_, sha)) in set.manifest.files.iter().zip(results) {
                if sha != file.sha256 {
                    return Err(mismatch(&file.name));
                }
            }
        }
        _ => {
            let mut placed = 0u64;
            for file in &set.manifest.files {
                let name = &file.name;
                let unreadable = |e: std::io::Error| -> RestoreError {
                    io_error(&e, |m| BackupError::ChecksumMismatch(format!("{}/{name}: cannot be read ({m})", set.manifest.set_id))).into()
                };
                let unwritable = |e: std::io::Error| -> RestoreError { BackupError::Io(format!("cannot write {name}: {e}")).into() };
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(unwritable)?;
                }
                let hashing = HashingReader::new(BufReader::with_capacity(1 << 20, set.open(name).map_err(unreadable)?));
                let mut under = match source.key {
                    Some(key) => SetReader::Sealed(ChunkOpener::new(
                        hashing,
                        key.clone(),
                        &sealed::chunk_file_id(set.manifest.format_version, &set.manifest.set_id, name),
                    )),
                    None => SetReader::Plain(hashing),
                };
                let mut out = std::fs::File::create(&path).map_err(unwritable)?;
                let copied = std::io::copy(&mut under, &mut out);
                let (size, actual) = under.into_hashing().finish().map_err(unreadable)?;
                if actual != file.sha256 {
                    return Err(mismatch(name));
                }
                // Bytes that match the manifest but do not open (a sealed chunk
                // that fails): a set written wrong or forged.
                copied.map_err(|e| corrupt(set, name, &e.to_string()))?;
                out.sync_all().map_err(unwritable)?;
                failpoint::hit("restore.document");
                placed += size;
                *bytes += size;
                *done = share(set.manifest.document_count, placed, total);
                progress(*done, *bytes)?;
            }
        }
    }
    let mut dirs: Vec<PathBuf> = set.manifest.files.iter().filter_map(|f| dir.join(&f.name).parent().map(Path::to_path_buf)).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs.iter().rev() {
        crate::durable::sync_dir(d).map_err(|e| BackupError::Io(format!("cannot sync '{}': {e}", d.display())))?;
    }
    *done = set.manifest.document_count;
    Ok(())
}

/// A snapshot set, opened: the database it holds must be the one its
/// manifest describes (etag, count and, when no set follows, the digest,
/// which the end of the build checks), before anything is applied on it.
/// It gets a database id of its own, as any restored database.
fn check_snapshot(store: &DocumentStore, set: &StoredSet, tip: bool) -> Result<(), RestoreError> {
    let m = &set.manifest;
    if store.last_etag() != m.to_etag {
        return Err(corrupt(set, "manifest.json", &format!("the files hold etag {}, the manifest says {}", store.last_etag(), m.to_etag)));
    }
    if store.document_count() != m.document_count {
        return Err(corrupt(
            set,
            "manifest.json",
            &format!("the files hold {} documents, the manifest says {}", store.document_count(), m.document_count),
        ));
    }
    if !tip {
        check_digest(store, set, "the files'")?;
    }
    store.bulk().renew_database_id()?;
    Ok(())
}

/// `count * part / whole`, without overflow (`whole` at least 1).
fn share(count: u64, part: u64, whole: u64) -> u64 {
    u64::try_from(u128::from(count) * u128::from(part) / u128::from(whole.max(1))).unwrap_or(u64::MAX)
}

/// A set to read, with its key when it is encrypted.
pub(crate) struct Source<'a> {
    pub(crate) set: &'a StoredSet,
    pub(crate) key: Option<&'a crate::crypto::Key>,
}

fn ingest_full(
    store: &DocumentStore,
    source: &Source<'_>,
    flags: u8,
    done: &mut u64,
    bytes: &mut u64,
    progress: Checked<'_>,
) -> Result<u64, RestoreError> {
    let set = source.set;
    let bulk = store.bulk();
    let mut ingestion = bulk.documents().start_ingestion().map_err(StorageError::from)?;
    let mut last_id: Option<String> = None;
    let mut count = 0u64;
    let mut data_bytes = 0u64;
    let mut digest = ContentDigest::default();
    for file in set.manifest.files.iter().filter(|f| f.content == FileContent::Documents) {
        *bytes += read_file(source, &file.name, &file.sha256, &mut |record| {
            let DataRecord::Document { id, etag, modified_ms, body } = record else {
                return Err(corrupt(set, &file.name, "a non-document record in a documents file"));
            };
            if last_id.as_deref().is_some_and(|last| last >= id.as_str()) {
                return Err(corrupt(set, &file.name, "documents are not in id order"));
            }
            if !rookery_types::is_server_owned(&id) {
                digest.add(&ContentDigest::item(&id, &body));
            }
            let record = encode_with_flags(etag, modified_ms, flags, &body);
            data_bytes += (id.len() + record.len()) as u64;
            ingestion.write(id.as_bytes().to_vec(), record).map_err(StorageError::from)?;
            last_id = Some(id);
            failpoint::hit("restore.document");
            count += 1;
            *done += 1;
            progress(*done, *bytes)?;
            Ok(())
        })?;
    }
    ingestion.finish().map_err(StorageError::from)?;
    if count != set.manifest.document_count {
        return Err(corrupt(set, "manifest.json", "DocumentCount does not match the documents in the set"));
    }
    let mut changes = bulk.changes().start_ingestion().map_err(StorageError::from)?;
    let mut last_etag = 0u64;
    for file in set.manifest.files.iter().filter(|f| f.content == FileContent::ChangeLog) {
        *bytes += read_file(source, &file.name, &file.sha256, &mut |record| {
            let DataRecord::Change { etag, id } = record else {
                return Err(corrupt(set, &file.name, "a non-change record in the change log"));
            };
            if etag <= last_etag {
                return Err(corrupt(set, &file.name, "the change log is not in etag order"));
            }
            changes.write(etag_key(etag).to_vec(), id.into_bytes()).map_err(StorageError::from)?;
            last_etag = etag;
            Ok(())
        })?;
    }
    changes.finish().map_err(StorageError::from)?;
    bulk.finish(set.manifest.to_etag, Some((count, data_bytes, digest)))?;
    progress(*done, *bytes)?;
    Ok(count)
}

fn apply_incremental(
    store: &DocumentStore,
    source: &Source<'_>,
    flags: u8,
    done: &mut u64,
    bytes: &mut u64,
    progress: Checked<'_>,
) -> Result<(), RestoreError> {
    let set = source.set;
    let bulk = store.bulk();
    // Deletions first, then documents: see the backup engine's step 3.
    for file in set.manifest.files.iter().filter(|f| f.content == FileContent::Deletions) {
        let mut batch = Vec::new();
        *bytes += read_file(source, &file.name, &file.sha256, &mut |record| {
            let DataRecord::Deletion { id, .. } = record else {
                return Err(corrupt(set, &file.name, "a non-deletion record in a deletions file"));
            };
            batch.push(id);
            *done += 1;
            if batch.len() >= APPLY_BATCH {
                bulk.apply(&std::mem::take(&mut batch), &[])?;
                progress(*done, *bytes)?;
            }
            Ok(())
        })?;
        bulk.apply(&batch, &[])?;
    }
    for file in set.manifest.files.iter().filter(|f| f.content == FileContent::Documents) {
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        *bytes += read_file(source, &file.name, &file.sha256, &mut |record| {
            let DataRecord::Document { id, etag, modified_ms, body } = record else {
                return Err(corrupt(set, &file.name, "a non-document record in a documents file"));
            };
            let encoded = encode_with_flags(etag, modified_ms, flags, &body);
            batch_bytes += id.len() + encoded.len();
            batch.push((id, encoded));
            *done += 1;
            if batch.len() >= APPLY_BATCH || batch_bytes >= APPLY_BATCH_BYTES {
                batch_bytes = 0;
                bulk.apply(&[], &std::mem::take(&mut batch))?;
                progress(*done, *bytes)?;
            }
            Ok(())
        })?;
        bulk.apply(&[], &batch)?;
    }
    progress(*done, *bytes)?;
    Ok(())
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
    let set = source.set;
    let mismatch = |why: &str| -> RestoreError { BackupError::ChecksumMismatch(format!("{}/{name}: {why}", set.manifest.set_id)).into() };
    // A storage that fails is not damage: BackupStorageError, not ChecksumMismatch.
    let unreadable = |e: std::io::Error| -> RestoreError {
        io_error(&e, |m| BackupError::ChecksumMismatch(format!("{}/{name}: cannot be read ({m})", set.manifest.set_id))).into()
    };
    let file = set.open(name).map_err(unreadable)?;
    let hashing = HashingReader::new(BufReader::with_capacity(1 << 20, file));
    let under = match source.key {
        Some(key) => SetReader::Sealed(ChunkOpener::new(
            hashing,
            key.clone(),
            &sealed::chunk_file_id(set.manifest.format_version, &set.manifest.set_id, name),
        )),
        None => SetReader::Plain(hashing),
    };
    let mut reader = RecordReader::new(under).map_err(|e| corrupt(set, name, &e.to_string()))?;
    // A record the caller refuses (out of order, of the wrong kind) may come
    // from damaged bytes that still decode: the rest of the file is hashed
    // before the refusal is believed, so damage is reported as damage.
    let decoded: Result<(), RestoreError> = loop {
        match reader.next_record() {
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
        return Err(mismatch("checksum mismatch (the file was changed or damaged)"));
    }
    decoded?;
    Ok(size)
}

/// The credential entries of a system database set, checked: only users and
/// API keys, a bounded number.
fn read_credentials(source: &Source<'_>, name: &str, sha256: &str) -> Result<Vec<(String, Vec<u8>)>, RestoreError> {
    let set = source.set;
    let mut entries = Vec::new();
    read_file(source, name, sha256, &mut |record| {
        let DataRecord::Document { id, body, .. } = record else {
            return Err(corrupt(set, name, "a non-credential record in the credentials file"));
        };
        if !crate::backup::format::BACKED_UP_INTERNAL_PREFIXES.iter().any(|p| id.starts_with(p)) {
            return Err(corrupt(set, name, "an entry that is not a user or an API key"));
        }
        if entries.len() >= crate::backup::format::MAX_CREDENTIALS {
            return Err(corrupt(set, name, "more credentials than any server holds"));
        }
        entries.push((id, body));
        Ok(())
    })?;
    Ok(entries)
}

/// Hashes the files of `set` that the build did not stream (none today; a
/// set from a newer writer may carry more), so every file is checked once.
fn hash_unread(set: &StoredSet, read: &[&str]) -> Result<(), RestoreError> {
    for file in set.manifest.files.iter().filter(|f| !read.contains(&f.name.as_str())) {
        let actual = set.open(&file.name).and_then(sha256_reader).map_err(|e| {
            io_error(&e, |m| BackupError::ChecksumMismatch(format!("{}/{}: cannot be read ({m})", set.manifest.set_id, file.name)))
        })?;
        if actual != file.sha256 {
            return Err(BackupError::ChecksumMismatch(format!(
                "{}/{}: checksum mismatch (the file was changed or damaged)",
                set.manifest.set_id, file.name
            ))
            .into());
        }
    }
    Ok(())
}

/// The database's content digest against the one `set` recorded (sets
/// written before the digest existed carry none); `whose` starts the message.
fn check_digest(store: &DocumentStore, set: &StoredSet, whose: &str) -> Result<(), RestoreError> {
    if let Some(expected) = &set.manifest.content_digest {
        let actual = store.content_digest().to_hex();
        if &actual != expected {
            return Err(corrupt(set, "manifest.json", &format!("{whose} content digest {actual} is not the {expected} the set recorded")));
        }
    }
    Ok(())
}

fn corrupt(set: &StoredSet, name: &str, why: &str) -> RestoreError {
    BackupError::Corrupt(format!("{}/{name}: {why}", set.manifest.set_id)).into()
}

/// Step 4: moves a built database from `staging` to `destination` durably.
///
/// # Errors
/// I/O errors.
pub fn move_into_place(staging: &Path, destination: &Path) -> Result<(), RestoreError> {
    let io = |e: std::io::Error| BackupError::Io(format!("cannot move the restored database into '{}': {e}", destination.display()));
    crate::durable::sync_dir(staging).map_err(io)?;
    failpoint::hit("restore.before_move");
    std::fs::rename(staging, destination).map_err(io)?;
    if let Some(parent) = destination.parent() {
        crate::durable::sync_dir(parent).map_err(io)?;
    }
    failpoint::hit("restore.after_move");
    Ok(())
}

/// How far, and with what key, [`restore_system_database`] restores.
#[derive(Debug, Clone, Default)]
pub struct SystemRestore {
    /// Restore only up to this set id, or RFC 3339 time.
    pub up_to: Option<String>,
    /// The key or passphrase of an encrypted set.
    pub set_secret: Option<SetSecret>,
    /// Compact the restored database fully before it is opened.
    pub defrag: bool,
}

/// Restores the system database offline into the data directory `data_dir`
/// (which must not exist or be empty): no server may be running there. The
/// users and API keys of the newest set come back with it.
///
/// # Errors
/// Every error of [`plan`] and [`build`]; `DestinationNotEmpty`; `CorruptBackup` for a snapshot set.
pub fn restore_system_database(
    source: &Location,
    data_dir: &Path,
    options: &SystemRestore,
    progress: Progress<'_>,
) -> Result<RestoreSummary, RestoreError> {
    // The system database is never encrypted at rest; its set may be.
    if crate::storage::catalog::is_non_empty_dir(data_dir) || (data_dir.exists() && !data_dir.is_dir()) {
        return Err(StorageError::DestinationNotEmpty(data_dir.to_path_buf()).into());
    }
    // Only a chain of the system database, and only a logical one: the
    // server never takes a snapshot of it (its internal keyspace holds the
    // registry of databases and their paths, which a snapshot would carry).
    let choice = ChainChoice { up_to: options.up_to.as_deref(), database: Some(rookery_types::SYSTEM_DATABASE) };
    let plan = plan(source, choice, None, options.set_secret.as_ref())?;
    if let Some(first) = plan.chain.first().filter(|s| s.manifest.kind == SetKind::Snapshot) {
        return Err(corrupt(
            first,
            "manifest.json",
            "a snapshot set cannot become the system database (the server backs the system database up logically only)",
        ));
    }
    let created = !data_dir.exists();
    std::fs::create_dir_all(data_dir).map_err(|e| BackupError::Io(format!("cannot create '{}': {e}", data_dir.display())))?;
    let staging = data_dir.join(format!(".System.restoring-{}", uuid::Uuid::new_v4().simple()));
    let result = build_with(&plan, &staging, options.defrag, None, true, &CancelToken::default(), progress).and_then(|mut summary| {
        let destination = data_dir.join("System");
        move_into_place(&staging, &destination)?;
        summary.location = destination;
        Ok(summary)
    });
    if result.is_err() {
        if created {
            let _ = std::fs::remove_dir_all(data_dir);
        } else if let Ok(entries) = std::fs::read_dir(data_dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_without_room_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest: crate::backup::format::Manifest = serde_json::from_value(serde_json::json!({
            "FormatVersion": 2, "ServerVersion": "t", "SetId": "20261126T050000Z-full", "DatabaseName": "D",
            "DatabaseId": "x", "Kind": "Full", "BaseSetId": null, "FromEtag": 0, "ToEtag": 1, "DocumentCount": 1,
            "DeletionCount": 0, "Created": "2026-11-26T05:00:00.000Z", "Compression": "zstd", "Encryption": null,
            "Files": [{"Name": "documents-0001.zst", "Size": u64::MAX / 2, "Sha256": "00", "Content": "Documents", "Records": 1}]
        }))
        .expect("a manifest");
        let set = StoredSet { location: Location::Folder(dir.path().to_path_buf()), manifest, size_bytes: 0 };
        let plan = RestorePlan {
            location: Location::Folder(dir.path().to_path_buf()),
            chain: vec![set],
            database_key: None,
            set_keys: vec![None],
        };
        let err = check_free_space(&plan, &dir.path().join("new/db")).expect_err("no room");
        assert_eq!(err.code(), rookery_types::ErrorCode::InsufficientSpace);
        assert!(!dir.path().join("new").exists());
        let mut small = plan.clone();
        small.chain[0].manifest.files[0].size = 10;
        check_free_space(&small, &dir.path().join("new/db")).expect("room for 10 bytes");
    }
}
