//! A database's own storage files, pinned at one point in time: what a
//! snapshot backup copies. This is the one module that knows fjall's file
//! layout; `tests::layout_is_what_the_pin_expects` fails loudly when an
//! upgrade of fjall changes it (fjall is pinned to an exact version in the
//! workspace's `Cargo.toml` for that reason).
//!
//! # The layout (fjall 3.1.13, lsm-tree 3.1.10)
//! - `version`: the format marker (`FJL` and the major version), never rewritten.
//! - `<n>.jnl`: the journals. The highest number is the active journal,
//!   appended to; the others are sealed (fsynced at rotation, never written
//!   again) and deleted once every keyspace has flushed past them.
//! - `keyspaces/<id>/current`: the id of the keyspace's current version and
//!   its checksum (25 bytes), replaced atomically (rename) when a version is
//!   committed, after the version file is written and fsynced.
//! - `keyspaces/<id>/v<n>`: a version (an `sfa` archive whose `tables` and
//!   `blob_files` sections name the live tables and blob files), written once.
//! - `keyspaces/<id>/tables/<n>`, `keyspaces/<id>/blobs/<n>`: written once,
//!   fsynced before any version names them, never changed, deleted when no
//!   version in use names them any more.
//! - `lock`: the process lock (an empty file, which must exist for fjall to
//!   open the database).
//!
//! # The pin, and why the copy is the database at one point in time
//! fjall has no checkpoint API, so [`pin`] builds one from those rules, in
//! a staging folder on the database's filesystem, without pausing writes:
//! 1. Hard-link every journal. A link keeps a journal's bytes even when
//!    fjall deletes it after a flush.
//! 2. Per keyspace: read `current`, link the version file it names, write
//!    `current` as read, parse the version and link every table and blob
//!    file it names. A link that finds its file gone (a compaction replaced
//!    the version meanwhile) starts the pin over.
//! 3. Hand the journal's buffer to the OS: every batch committed until now,
//!    so every write the tables of step 2 hold, is in a journal file.
//! 4. Link the journals created since step 1. The journals linked must be
//!    consecutive, else one was created and deleted between steps 1 and 4
//!    (flushed into tables newer than step 2's), and the pin starts over.
//! 5. Copy each linked journal into a real file (fjall truncates a journal
//!    in place when it recovers, so a journal must never stay a link),
//!    leaving out the leading batches the tables held before step 2
//!    ([`super::journal::Cut`], by the rule fjall's recovery skips them
//!    with): fjall rotates its journal only past 64 MB, so the copy would
//!    otherwise replay up to that much only to skip it.
//! 6. Open the copy: fjall replays the journals above what each keyspace's
//!    tables hold and cuts the last batch if the copy caught it half
//!    written. Take the server's status documents out, read the etag, the
//!    counts and the digest, and close it. A copy with short journals is
//!    opened without fjall's workers, so nothing flushes or compacts it
//!    and its tables stay the database's links; one with long journals is
//!    flushed into tables of its own and left an empty journal.
//!
//! The tables of step 2 hold only writes made before step 3, so the
//! journals copied in step 5 hold every one of them; every write not in
//! those tables is in a journal linked in step 1 or 4 (fjall deletes a
//! journal only once the tables hold all of it). A batch is in a journal
//! entirely or, cut, not at all. So the opened copy is the database after
//! some batch `B` with every keyspace at `B`: one point in time, whose etag
//! step 6 reads (the set's `ToEtag`).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::digest::ContentDigest;
use super::error::StorageError;
use super::journal::Cut;
use super::store::{DocumentStore, Durability};
use crate::failpoint;
use rookery_types::STATUS_DOCUMENT_IDS;

/// The storage format a snapshot set needs to be opened: fjall's major
/// version and this module's layout.
pub const STORAGE_FORMAT: &str = "fjall-3";
/// Pins tried before giving up (each starts over when fjall replaced a file
/// meanwhile; a pin takes milliseconds, so a second one almost always works).
const MAX_ATTEMPTS: usize = 50;
/// Bytes in the memtables above which a pin flushes them first (below, the
/// copy replays them from its journal in a few milliseconds).
const FLUSH_ABOVE_MEMTABLE_BYTES: u64 = 1024 * 1024;
/// The same while clients write ([`BUSY_WINDOW`]): a flush of the live
/// database then competes with the writers, adds a table at level 0 and
/// brings its compaction nearer (whose new tables the next snapshot hashes),
/// so the copy replays what the memtables hold instead, as fjall's own
/// flushes (a keyspace's memtable at 16 MiB) keep it short. Measured with
/// two writers and snapshots back to back on 1M documents: flushing above
/// 1 MiB made writes' p99 3.0-3.3x that without snapshots, and above this
/// 1.2-1.7x.
const FLUSH_ABOVE_MEMTABLE_BYTES_WHILE_BUSY: u64 = 32 * 1024 * 1024;
/// A database that took a client's write this recently is busy.
const BUSY_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);
/// Journal bytes (on disk) up to which a pinned copy is settled without
/// fjall's workers (far below a memtable's 16 MiB: replaying them seals none).
const QUIET_SETTLE_JOURNAL_BYTES: u64 = 8 * 1024 * 1024;
/// Tables at level 0 from which fjall slows writes down (20) and, at 30,
/// holds them until a compaction: a copy with as many is settled with workers.
const QUIET_SETTLE_MAX_LEVEL0_TABLES: usize = 20;
/// The journal extension.
const JOURNAL_EXT: &str = "jnl";

/// One file of a pinned copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedFile {
    /// The path inside the database folder (`keyspaces/3/tables/7`).
    pub name: String,
    pub size: u64,
    /// Never changed after it was written: a link to it may be shared
    /// (tables, blob files, versions), as opposed to the copies the pin
    /// makes (journals, `current`, `version`), which are its own.
    pub shared: bool,
}

/// The database's files at one etag, in a staging folder.
pub struct Pinned {
    pub files: Vec<PinnedFile>,
    pub state: PinnedState,
    /// Pins that were started over.
    pub retries: usize,
}

/// What a pinned copy holds (the server's status documents taken out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedState {
    pub last_etag: u64,
    pub document_count: u64,
    pub digest: ContentDigest,
}

impl PinnedState {
    /// What the opened copy `copy` holds now.
    fn of(copy: &DocumentStore) -> Self {
        Self { last_etag: copy.last_etag(), document_count: copy.document_count(), digest: copy.content_digest() }
    }
}

/// Pins the files of `store` into `staging` (created; must not exist).
///
/// # Errors
/// I/O errors; a version file fjall wrote in a layout this module does not
/// know; a database whose files changed under every attempt.
/// With `flush`, the memtables are always flushed first (a snapshot shipped
/// off-site, whose tables are stored once per location: the journals, sent
/// whole each time, then hold only what was written during the pin).
/// Without `flush`, the memtables are flushed first when they hold more
/// than `FLUSH_ABOVE_MEMTABLE_BYTES` (more than
/// `FLUSH_ABOVE_MEMTABLE_BYTES_WHILE_BUSY` while clients write). Either way the pinned copy
/// ends with a short journal or none to replay: a restore of the set opens
/// at once instead of replaying up to a journal's worth of writes (fjall
/// rotates its journal only at 64 MiB); see `settle`.
pub fn pin(store: &DocumentStore, staging: &Path, flush: bool) -> Result<Pinned, StorageError> {
    // Not needed for consistency; for speed: the tables are linked for free,
    // the journals are copied and replayed, so memtables that hold more
    // than a little are flushed into tables first, and the journal copies
    // leave out every batch the tables hold (see `journal::Cut`).
    let busy = store.foreground().wrote_within(BUSY_WINDOW);
    let above = if busy { FLUSH_ABOVE_MEMTABLE_BYTES_WHILE_BUSY } else { FLUSH_ABOVE_MEMTABLE_BYTES };
    if (flush || store.memtable_bytes() > above) && !store.flush_for_pin()? {
        tracing::debug!("the memtables were not all flushed within a minute: the pin copies more journal");
    }
    // Read before any attempt reads the keyspaces' versions (step 2).
    let cut = store.journal_cut();
    for attempt in 0..MAX_ATTEMPTS {
        if staging.exists() {
            std::fs::remove_dir_all(staging)?;
        }
        std::fs::create_dir_all(staging)?;
        if try_pin(store, staging, &cut)? {
            tear_for_tests(staging, attempt)?;
            match settle(staging) {
                Ok(state) => {
                    let files = list(staging)?;
                    return Ok(Pinned { files, state, retries: attempt });
                }
                Err(e) if caught_mid_write(&e) => {
                    tracing::debug!(attempt, error = %e, "a journal copy caught a batch half-written; starting over");
                }
                Err(e) => return Err(e),
            }
            continue;
        }
        tracing::debug!(attempt, "the database's files changed during a pin; starting over");
    }
    Err(StorageError::Io(std::io::Error::other(format!(
        "the database's files changed during each of {MAX_ATTEMPTS} attempts to copy them"
    ))))
}

/// Whether opening a pinned copy failed on a journal batch that does not
/// check out. The journals are copied while writers append to them, and a
/// read racing a write can see a page before the write and the next one
/// after it: the copy's last batch then ends well but holds bytes of
/// neither, and fjall refuses it (a checksum mismatch, or a count of items
/// that does not match) rather than cut it as a torn tail. Every batch the
/// pin needs was written before the copy began; another attempt copies
/// them again, and a journal damaged on the database's own disk fails
/// every attempt.
fn caught_mid_write(e: &StorageError) -> bool {
    matches!(e, StorageError::Engine(fjall::Error::JournalRecovery(_)))
}

/// Failpoints builds: `snapshot.torn_journal=value:N` breaks the checksum
/// of the last batch of the newest journal copy in each of the first `N`
/// attempts, as a copy that caught a batch being written can be.
fn tear_for_tests(staging: &Path, attempt: usize) -> std::io::Result<()> {
    if attempt as u64 >= failpoint::value("snapshot.torn_journal", 0) {
        return Ok(());
    }
    let Some(&id) = journal_ids(staging)?.last() else { return Ok(()) };
    let path = staging.join(journal_name(id));
    let mut bytes = std::fs::read(&path)?;
    // A batch ends with tag 3, its checksum (8 bytes) and the magic.
    if let Some(magic) = bytes.windows(4).rposition(|w| w == b"FJL\x03") {
        bytes[magic - 1] ^= 0xff;
        std::fs::write(&path, bytes)?;
    }
    Ok(())
}

/// One attempt; `None` when a file was replaced meanwhile.
fn try_pin(store: &DocumentStore, staging: &Path, cut: &Cut) -> Result<bool, StorageError> {
    let root = store.path();
    let link_suffix = ".link";
    // Step 1.
    let mut linked: BTreeSet<u64> = BTreeSet::new();
    for id in journal_ids(root)? {
        if !link(&root.join(journal_name(id)), &staging.join(format!("{}{link_suffix}", journal_name(id))))? {
            continue; // deleted since the listing: flushed, so not needed
        }
        linked.insert(id);
    }
    failpoint::hit("snapshot.after_journals");
    // Step 2.
    let keyspaces = root.join("keyspaces");
    for entry in std::fs::read_dir(&keyspaces)? {
        let entry = entry?;
        let name = entry.file_name().to_str().map(str::to_string).unwrap_or_default();
        if !is_number(&name) || !entry.file_type()?.is_dir() {
            return Err(layout(&format!("keyspaces/{name} is not a keyspace folder")));
        }
        let Some(current) = read_current(&entry.path())? else {
            continue; // a keyspace being created: fjall removes it when it recovers
        };
        let dir = format!("keyspaces/{name}");
        std::fs::create_dir_all(staging.join(&dir).join("tables"))?;
        let version = format!("{dir}/v{}", current.version);
        if !link(&root.join(&version), &staging.join(&version))? {
            return Ok(false);
        }
        let refs = read_version(&staging.join(&version))?;
        for table in refs.tables {
            let table = format!("{dir}/tables/{table}");
            if !link(&root.join(&table), &staging.join(&table))? {
                return Ok(false);
            }
        }
        if !refs.blobs.is_empty() {
            std::fs::create_dir_all(staging.join(&dir).join("blobs"))?;
        }
        for blob in refs.blobs {
            let blob = format!("{dir}/blobs/{blob}");
            if !link(&root.join(&blob), &staging.join(&blob))? {
                return Ok(false);
            }
        }
        let current_name = format!("{dir}/current");
        write_synced(&staging.join(&current_name), &current.bytes)?;
    }
    failpoint::hit("snapshot.after_tables");
    // Step 3: every batch committed so far (all that the tables above hold
    // among them) is in the journal files, not in a buffer.
    store.persist_buffer()?;
    // Step 4.
    for id in journal_ids(root)? {
        if !linked.contains(&id) {
            if !link(&root.join(journal_name(id)), &staging.join(format!("{}{link_suffix}", journal_name(id))))? {
                return Ok(false);
            }
            linked.insert(id);
        }
    }
    let (Some(&first), Some(&last)) = (linked.first(), linked.last()) else {
        return Err(layout("the database has no journal"));
    };
    if linked.len() as u64 != last - first + 1 {
        return Ok(false);
    }
    // Step 5.
    for &id in &linked {
        let from = staging.join(format!("{}{link_suffix}", journal_name(id)));
        let from_offset = cut.offset_in(&from)?;
        copy_sparse(&from, &staging.join(journal_name(id)), from_offset)?;
        std::fs::remove_file(&from)?;
    }
    let marker = std::fs::read(root.join("version"))?;
    write_synced(&staging.join("version"), &marker)?;
    // fjall opens a database only where its lock file exists (empty).
    write_synced(&staging.join("lock"), b"")?;
    failpoint::hit("snapshot.after_pin");
    Ok(true)
}

/// Step 6: opens the copy (fjall replays its journals and cuts the batch
/// the copy caught half-written, if any), removes the server's status
/// documents from it, and reads what it holds.
///
/// A copy whose journals are short (the pin flushed the database's
/// memtables first, or they held little) is opened without fjall's
/// workers ([`settle_quietly`]): its tables stay the database's own, linked,
/// and its journals keep the little the tables do not hold, which a restore
/// replays in a moment. A copy with long journals is flushed into tables of
/// its own and left one empty journal instead ([`settle_flushed`]).
fn settle(staging: &Path) -> Result<PinnedState, StorageError> {
    if journal_bytes(staging)? <= QUIET_SETTLE_JOURNAL_BYTES {
        if let Some(state) = settle_quietly(staging)? {
            return Ok(state);
        }
    }
    settle_flushed(staging)
}

/// Opens the copy without fjall's workers, so that nothing flushes or
/// compacts it (a compaction would rewrite linked tables into new files,
/// and closing the copy would wait for it), and takes the status documents
/// out; the small batch that does so stays in the journal. `None`, with
/// nothing written to the copy, when a keyspace has so many tables at level
/// 0 that fjall would hold the write until a compaction that never comes.
fn settle_quietly(staging: &Path) -> Result<Option<PinnedState>, StorageError> {
    let copy = DocumentStore::open_without_workers(staging)?;
    if copy.most_level0_tables() >= QUIET_SETTLE_MAX_LEVEL0_TABLES {
        return Ok(None);
    }
    take_status_out(&copy)?;
    copy.persist()?;
    Ok(Some(PinnedState::of(&copy)))
}

/// Opens the copy with fjall's workers, takes the status documents out,
/// reads what it holds, then flushes its memtables into tables too and
/// replaces its journals, all then redundant, by an empty one (see
/// [`empty_journals`]): a restore opens without replaying them.
fn settle_flushed(staging: &Path) -> Result<PinnedState, StorageError> {
    let copy = DocumentStore::open(staging, Durability::Os)?;
    take_status_out(&copy)?;
    copy.persist()?;
    let state = PinnedState::of(&copy);
    copy.flush_memtables()?;
    copy.persist()?;
    drop(copy);
    if let Err(e) = empty_journals(staging, &state) {
        tracing::warn!(error = %e, "the snapshot keeps its journals: they could not be emptied");
    }
    Ok(state)
}

/// Removes the server's status documents from a pinned copy (by key: an
/// encrypted database's bodies cannot be opened here).
fn take_status_out(copy: &DocumentStore) -> Result<(), StorageError> {
    let view = copy.snapshot();
    let status: Vec<String> =
        STATUS_DOCUMENT_IDS.iter().filter(|id| matches!(view.get_raw(id), Ok(Some(_)))).map(|id| (*id).to_string()).collect();
    drop(view);
    if !status.is_empty() {
        copy.bulk().apply(&status, &[])?;
    }
    Ok(())
}

/// Replaces the journals of a copy whose memtables were all flushed with one
/// empty journal, then opens the copy to prove it holds the same state (the
/// same last etag, count and content digest); if it does not, the journals
/// are put back as they were.
fn empty_journals(staging: &Path, state: &PinnedState) -> Result<(), StorageError> {
    let ids = journal_ids(staging)?;
    let Some(&active) = ids.last() else { return Ok(()) };
    let kept = staging.join("journals.kept");
    std::fs::create_dir(&kept)?;
    for id in &ids {
        std::fs::rename(staging.join(journal_name(*id)), kept.join(journal_name(*id)))?;
    }
    write_synced(&staging.join(journal_name(active)), b"")?;
    let reopened = DocumentStore::open(staging, Durability::Os).map(|copy| {
        let same = PinnedState::of(&copy);
        drop(copy);
        same
    });
    if reopened.as_ref().is_ok_and(|same| same == state) {
        std::fs::remove_dir_all(&kept)?;
        return Ok(());
    }
    for id in journal_ids(staging)? {
        std::fs::remove_file(staging.join(journal_name(id)))?;
    }
    for id in &ids {
        std::fs::rename(kept.join(journal_name(*id)), staging.join(journal_name(*id)))?;
    }
    std::fs::remove_dir_all(&kept)?;
    Err(StorageError::Io(std::io::Error::other(match reopened {
        Ok(other) => format!("the copy without its journals differs ({other:?} against {state:?})"),
        Err(e) => format!("the copy without its journals does not open: {e}"),
    })))
}

fn journal_name(id: u64) -> String {
    format!("{id}.{JOURNAL_EXT}")
}

/// The journal numbers in `root`, ascending.
fn journal_ids(root: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let name = entry?.file_name();
        if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".jnl")).filter(|n| is_number(n)).and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Hard-links `from` to `to`; `false` when `from` no longer exists.
fn link(from: &Path, to: &Path) -> std::io::Result<bool> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Copies `from`, from byte `skip` on, into a new file `to` and fsyncs
/// it, holes left as holes: fjall gives a journal its full size up front (a
/// sparse file) and fills it as it goes, so a journal is mostly hole and
/// only its data is copied. `to` keeps the size of `from`.
///
/// Each piece copied is queued for writeback at once ([`start_writeback`]),
/// so the disk takes the copy in small pieces between the clients' commits
/// and the closing fsync finds little left to write: with two writers of
/// 1 KB documents on 2 cores and snapshots back to back, their p99 was
/// 1.08-1.54 ms this way against 1.18-2.27 ms with one fsync at the end
/// (lower in each of seven alternating pairs; throughput the same).
fn copy_sparse(from: &Path, to: &Path, skip: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    let source = File::open(from)?;
    let len = source.metadata()?.len();
    let out = File::create(to)?;
    let mut pos = skip;
    let mut buf = vec![0u8; 1 << 20];
    while pos < len {
        let data = match rustix::fs::seek(&source, rustix::fs::SeekFrom::Data(pos)) {
            Ok(at) => at,
            Err(rustix::io::Errno::NXIO) => break, // only a hole is left
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) => {
                // A filesystem without SEEK_DATA: copy it all.
                let mut whole = File::open(from)?;
                whole.seek(SeekFrom::Start(skip))?;
                let mut out = out;
                std::io::copy(&mut whole, &mut out)?;
                return out.sync_all();
            }
            Err(e) => return Err(e.into()),
        };
        let hole = rustix::fs::seek(&source, rustix::fs::SeekFrom::Hole(data)).map_err(std::io::Error::from)?.min(len);
        let mut at = data;
        while at < hole {
            let want = usize::try_from((hole - at).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = source.read_at(&mut buf[..want], at)?;
            if n == 0 {
                break; // the file was cut meanwhile
            }
            out.write_all_at(&buf[..n], at - skip)?;
            start_writeback(&out, at - skip, at - skip + n as u64);
            at += n as u64;
        }
        pos = hole;
    }
    out.set_len(len)?;
    out.sync_all()
}

/// The bytes the journals of the database in `root` take on disk.
fn journal_bytes(root: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for id in journal_ids(root)? {
        if let Ok(meta) = std::fs::metadata(root.join(journal_name(id))) {
            total += meta.blocks() * 512;
        }
    }
    Ok(total)
}

/// Every file of a settled copy, which nothing changes any more; the
/// folders fsynced.
fn list(staging: &Path) -> Result<Vec<PinnedFile>, StorageError> {
    let mut files = Vec::new();
    let mut dirs = vec![staging.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = path.strip_prefix(staging).map_err(|_| layout("a file outside the copy"))?.to_string_lossy().replace('\\', "/");
            if !is_storage_file_name(&name) {
                return Err(layout(&format!("the copy holds a file named {name}")));
            }
            let shared = name.contains("/tables/") || name.contains("/blobs/");
            files.push(PinnedFile { name, size: entry.metadata()?.len(), shared });
        }
        File::open(&dir)?.sync_all()?;
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fn layout(why: &str) -> StorageError {
    StorageError::Corrupt(format!("the database's files are not in the layout this server knows ({STORAGE_FORMAT}): {why}"))
}

/// A keyspace's `current` file.
struct Current {
    version: u64,
    bytes: Vec<u8>,
}

/// The length of `current`: version id (u64), checksum (u128), checksum type (u8).
const CURRENT_LEN: usize = 8 + 16 + 1;

fn read_current(keyspace: &Path) -> Result<Option<Current>, StorageError> {
    let bytes = match std::fs::read(keyspace.join("current")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if bytes.len() != CURRENT_LEN {
        return Err(layout(&format!("{}/current has {} bytes, not {CURRENT_LEN}", keyspace.display(), bytes.len())));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[..8]);
    Ok(Some(Current { version: u64::from_le_bytes(id), bytes }))
}

/// What a version file names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct VersionRefs {
    pub tables: Vec<u64>,
    pub blobs: Vec<u64>,
}

/// Reads the table and blob file ids of a version file (lsm-tree's
/// `version::recovery` format: `tables` is levels of runs of
/// `(id u64, checksum type u8 = 0, checksum u128, global seqno u64)`,
/// `blob_files` is a count and `(id u64, checksum type u8 = 0, checksum u128)`).
///
/// # Errors
/// A file that is not such a version.
pub fn read_version(path: &Path) -> Result<VersionRefs, StorageError> {
    let bad = |why: &str| layout(&format!("{}: {why}", path.display()));
    let reader = sfa::Reader::new(path).map_err(|e| bad(&format!("not a version file ({e:?})")))?;
    let toc = reader.toc();
    let section = |name: &[u8]| -> Result<Vec<u8>, StorageError> {
        let entry = toc.section(name).ok_or_else(|| bad(&format!("no {} section", String::from_utf8_lossy(name))))?;
        let mut bytes = Vec::new();
        entry.buf_reader(path).map_err(|e| bad(&format!("{e:?}")))?.read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    let mut refs = VersionRefs::default();
    let tables = section(b"tables")?;
    let mut r = Cursor { bytes: &tables, at: 0 };
    let levels = r.u8().ok_or_else(|| bad("a cut tables section"))?;
    for _ in 0..levels {
        let runs = r.u8().ok_or_else(|| bad("a cut tables section"))?;
        for _ in 0..runs {
            let count = r.u32().ok_or_else(|| bad("a cut tables section"))?;
            for _ in 0..count {
                let id = r.u64().ok_or_else(|| bad("a cut tables section"))?;
                if r.u8() != Some(0) || r.skip(16 + 8).is_none() {
                    return Err(bad("a table entry of an unknown checksum type"));
                }
                refs.tables.push(id);
            }
        }
    }
    let blobs = section(b"blob_files")?;
    let mut r = Cursor { bytes: &blobs, at: 0 };
    let count = r.u32().ok_or_else(|| bad("a cut blob_files section"))?;
    for _ in 0..count {
        let id = r.u64().ok_or_else(|| bad("a cut blob_files section"))?;
        if r.u8() != Some(0) || r.skip(16).is_none() {
            return Err(bad("a blob file entry of an unknown checksum type"));
        }
        refs.blobs.push(id);
    }
    Ok(refs)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let slice = self.bytes.get(self.at..self.at + N)?;
        self.at += N;
        slice.try_into().ok()
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes.get(self.at..self.at + n)?;
        self.at += n;
        Some(())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
}

/// Whether `name` is a path a pinned copy can hold: `version`, `lock`, `<n>.jnl`,
/// `keyspaces/<n>/current`, `keyspaces/<n>/v<n>`,
/// `keyspaces/<n>/tables/<n>` or `keyspaces/<n>/blobs/<n>`. Anything else in
/// a snapshot set (from untrusted storage) is refused before a byte of it is
/// written.
#[must_use]
pub fn is_storage_file_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["version" | "lock"] => true,
        [journal] => journal.strip_suffix(".jnl").is_some_and(is_number),
        ["keyspaces", ks, "current"] => is_number(ks),
        ["keyspaces", ks, version] => is_number(ks) && version.strip_prefix('v').is_some_and(is_number),
        ["keyspaces", ks, "tables" | "blobs", id] => is_number(ks) && is_number(id),
        _ => false,
    }
}

/// Whether fjall never writes into the storage file `name` once it exists:
/// what a restore may hard-link instead of copy. Tables, blob files,
/// versions and the format marker are written once; `current` is replaced
/// by a new file renamed over it (the old file, and every other name for
/// it, keeps its bytes). Journals are appended to, and `lock` is locked by
/// the process that opens the database (two databases restored from one
/// set must not share it): both are copied.
#[must_use]
pub fn is_never_written_into(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["version"] => true,
        ["keyspaces", ks, "current"] => is_number(ks),
        ["keyspaces", ks, version] => is_number(ks) && version.strip_prefix('v').is_some_and(is_number),
        ["keyspaces", ks, "tables" | "blobs", id] => is_number(ks) && is_number(id),
        _ => false,
    }
}

/// The end of a table or blob file that opening a database reads: its
/// trailer, table of contents and metadata, the last kilobyte of a table
/// (its top-level index and filter, just before, are read on the first
/// lookups, not by the open).
const TABLE_TAIL: u64 = 8 * 1024;

/// Asks the kernel to read the end of a storage file ahead, without
/// waiting: opening a database reads a few bytes at the end of each of its
/// tables one after another, and on a cold cache each waits on the disk
/// (about 9 ms for the 60 tables of a million documents here, against 3 ms
/// warm). Hinted for every table while the files are placed, the reads run
/// side by side, and the open finds them in memory. Only what the open
/// reads: 64 KiB a table (its index and filter too) made 4 MB to read for
/// a million documents, and the open waited 16 ms for the disk to get
/// through them. A hint: it may do nothing.
pub fn read_tail_ahead(file: &std::fs::File, size: u64) {
    let start = size.saturating_sub(TABLE_TAIL);
    let _ = rustix::fs::fadvise(file, start, std::num::NonZeroU64::new(size - start), rustix::fs::Advice::WillNeed);
}

/// Starts writing `[from, to)` of `file` to disk without waiting for it: the
/// kernel queues the range's dirty pages for writeback at once and returns
/// (Linux does this for `POSIX_FADV_DONTNEED` before it drops the range's
/// clean pages; PostgreSQL's `pg_flush_data` uses it the same way where
/// `sync_file_range` is not at hand). Pages still being written are kept.
/// A hint: it may do nothing, and it never replaces an fsync.
pub fn start_writeback(file: &std::fs::File, from: u64, to: u64) {
    let _ = rustix::fs::fadvise(file, from, std::num::NonZeroU64::new(to.saturating_sub(from)), rustix::fs::Advice::DontNeed);
}

/// Where a pin stages its files for the database in `db_dir`: beside it, on
/// its filesystem (hard links cannot cross filesystems).
#[must_use]
pub fn staging_dir(db_dir: &Path) -> PathBuf {
    let parent = db_dir.parent().unwrap_or(db_dir);
    parent.join(format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4().simple()))
}

/// The name prefix of staging folders.
pub const STAGING_PREFIX: &str = ".snapshot-";

/// Whether `path` is what [`staging_dir`] makes (crash recovery removes only those).
#[must_use]
pub fn is_staging_dir(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(STAGING_PREFIX))
        .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Durability;

    /// Documents `users/<n>` of about 1 KB for `ids`.
    fn documents(ids: std::ops::Range<usize>) -> Vec<(String, Vec<u8>)> {
        ids.map(|i| (format!("users/{i:06}"), format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(900)).into_bytes())).collect()
    }

    fn filled(dir: &Path, docs: usize) -> DocumentStore {
        let store = DocumentStore::open(dir, Durability::Os).expect("opens");
        let batch = documents(0..docs);
        for chunk in batch.chunks(1000) {
            store.put_many(chunk, true).expect("writes");
        }
        store
    }

    /// The layout the pin relies on. When this fails after an upgrade of
    /// fjall, read the new layout, adapt the pin and `STORAGE_FORMAT`, and
    /// only then change this test.
    #[test]
    fn layout_is_what_the_pin_expects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let store = filled(&path, 30_000);
        store.compact().expect("flushes into tables");
        assert_eq!(std::fs::read(path.join("version")).expect("marker"), b"FJL\x03", "the format marker of fjall 3");
        let mut tables = 0;
        for entry in std::fs::read_dir(&path).expect("lists") {
            let name = entry.expect("entry").file_name().to_string_lossy().to_string();
            assert!(name == "keyspaces" || is_storage_file_name(&name), "an unknown file in the database folder: {name}");
        }
        for ks in std::fs::read_dir(path.join("keyspaces")).expect("keyspaces") {
            let ks = ks.expect("entry").path();
            let current = read_current(&ks).expect("reads").expect("every keyspace has a current version");
            let refs = read_version(&ks.join(format!("v{}", current.version))).expect("a version file this module reads");
            for t in &refs.tables {
                assert!(ks.join("tables").join(t.to_string()).is_file(), "a table the version names is missing");
            }
            tables += refs.tables.len();
        }
        assert!(tables > 0, "the documents were flushed into tables");
        // Every file, in the keyspaces too, is a name the pin knows (what `list` checks of a copy).
        list(&path).expect("no file the pin does not know");
    }

    #[test]
    fn a_pinned_copy_opens_as_the_database_at_its_etag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let store = filled(&path, 5_000);
        let staging = dir.path().join("pin");
        let pinned = pin(&store, &staging, false).expect("pins");
        let (etag, count) = (pinned.state.last_etag, pinned.state.document_count);
        assert_eq!(etag, store.last_etag(), "nothing was written during the pin");
        drop(pinned);
        // Writes after the pin are not in the copy.
        store.put("users/after", b"{}", None).expect("writes");
        drop(store);
        let copy = DocumentStore::open(&staging, Durability::Os).expect("the copy opens");
        assert_eq!(copy.last_etag(), etag);
        assert_eq!(copy.document_count(), count);
        assert!(copy.get("users/after").expect("reads").is_none());
        assert!(copy.get("users/004999").expect("reads").is_some());
    }

    #[test]
    fn a_flushed_pin_ships_an_empty_journal_and_opens_as_the_same_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = filled(&dir.path().join("db"), 5_000);
        store.put("users/late", b"{\"Late\": true}", None).expect("writes");
        let staging = dir.path().join("pin");
        let pinned = pin(&store, &staging, true).expect("pins");
        let journals: Vec<&PinnedFile> = pinned.files.iter().filter(|f| f.name.ends_with(".jnl")).collect();
        assert!(!journals.is_empty() && journals.iter().all(|f| f.size == 0), "{journals:?}");
        assert!(!staging.join("journals.kept").exists());
        drop(store);
        let copy = DocumentStore::open(&staging, Durability::Os).expect("the copy opens");
        assert_eq!(
            (copy.last_etag(), copy.document_count(), copy.content_digest()),
            (pinned.state.last_etag, pinned.state.document_count, pinned.state.digest)
        );
        assert!(copy.get("users/late").expect("reads").is_some());
        // Writable, and fjall's sequence numbers go on from the tables' (an
        // overwrite of a flushed key must win over it).
        copy.put("users/late", b"{\"Late\": false}", None).expect("writes");
        let read = copy.get("users/late").expect("reads").expect("there");
        assert_eq!((read.body.as_slice(), read.etag > pinned.state.last_etag), (&b"{\"Late\": false}"[..], true));
    }

    /// Writers and compactions running through each pin: every copy is the
    /// database at its etag, every write up to it and none after.
    #[test]
    fn pins_under_concurrent_writes_and_compactions_are_each_one_point_in_time() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(filled(&dir.path().join("db"), 2_000));
        let base = store.last_etag();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!("{{\"n\":{n},\"pad\":\"{}\"}}", "y".repeat(2000));
                    store.put(&format!("w/{n:08}"), body.as_bytes(), None).expect("writes");
                    n += 1;
                }
            })
        };
        let compactor = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    store.compact().expect("compacts");
                }
            })
        };
        for round in 0..6 {
            let staging = dir.path().join(format!("pin-{round}"));
            // Every other pin flushes first and leaves out of its journal
            // copies what the flush put in tables (see `journal::Cut`).
            let pinned = pin(&store, &staging, round % 2 == 1).expect("pins");
            let etag = pinned.state.last_etag;
            drop(pinned);
            let copy = DocumentStore::open(&staging, Durability::Os).expect("the copy opens");
            assert_eq!(copy.last_etag(), etag, "round {round}");
            // One put per etag after the base: exactly the writes up to the etag.
            let written = etag - base;
            assert_eq!(copy.document_count(), 2_000 + written, "round {round}");
            if written > 0 {
                assert!(copy.get(&format!("w/{:08}", written - 1)).expect("reads").is_some(), "round {round}");
            }
            assert!(copy.get(&format!("w/{written:08}")).expect("reads").is_none(), "round {round}");
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer");
        compactor.join().expect("compactor");
    }

    #[test]
    fn storage_file_names_are_checked() {
        for good in ["version", "12.jnl", "keyspaces/3/current", "keyspaces/3/v14", "keyspaces/0/tables/7", "keyspaces/2/blobs/1"] {
            assert!(is_storage_file_name(good), "{good}");
        }
        for bad in [
            "locks",
            "../x",
            "keyspaces/a/current",
            "keyspaces/3/tables/../7",
            "keyspaces/3/vx",
            "x.jnl",
            "keyspaces/3/other/1",
            "/version",
        ] {
            assert!(!is_storage_file_name(bad), "{bad}");
        }
    }

    /// A pin copies only the journal's tail: the batches its tables hold
    /// (flushed by an earlier pin, here) are left out, the ones after are
    /// kept, and the copy opens as the database.
    #[test]
    fn a_pin_copies_only_the_journal_its_tables_do_not_hold() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let store = filled(&path, 5_000);
        assert!(store.flush_for_pin().expect("flushes"), "flushed within a minute");
        // Written after the flush: in the journal's tail and in no table.
        store.put("users/after-flush", b"{\"Late\": true}", None).expect("writes");
        store.delete("users/000001", None).expect("deletes");
        let cut = store.journal_cut();
        let journal = path.join(journal_name(*journal_ids(&path).expect("journals").last().expect("one")));
        let offset = cut.offset_in(&journal).expect("reads the journal");
        assert!(offset > 4_000_000, "the 5,000 documents before the flush are left out, not only {offset} bytes");

        let staging = dir.path().join("pin");
        std::fs::create_dir_all(&staging).expect("creates");
        assert!(try_pin(&store, &staging, &cut).expect("pins"), "nothing replaced a file meanwhile");
        let copied = journal_bytes(&staging).expect("journals");
        assert!(copied < 64 * 1024, "the copied journals hold {copied} bytes");
        let state = (store.last_etag(), store.document_count(), store.content_digest());
        drop(store);
        let copy = DocumentStore::open(&staging, Durability::Os).expect("the copy opens");
        assert_eq!((copy.last_etag(), copy.document_count(), copy.content_digest()), state);
        assert!(copy.get("users/after-flush").expect("reads").is_some());
        assert!(copy.get("users/000001").expect("reads").is_none());
        assert!(copy.get("users/004999").expect("reads").is_some());
    }

    /// The tables of a pinned copy with a short journal are the database's
    /// own files (nothing flushed or compacted them while it was settled),
    /// and its journal holds what they do not, the status documents' removal
    /// included.
    #[test]
    fn a_copy_with_a_short_journal_keeps_the_database_tables() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let store = filled(&path, 3_000);
        store.flush_memtables().expect("flushes");
        store.put_server_owned(rookery_types::STATUS_DOCUMENT_IDS[0], b"{\"Status\": 1}").expect("writes");
        store.put("users/late", b"{\"Late\": true}", None).expect("writes");
        let pinned = pin(&store, &dir.path().join("pin"), false).expect("pins");
        let tables: Vec<&PinnedFile> = pinned.files.iter().filter(|f| f.shared).collect();
        assert!(!tables.is_empty(), "the copy has tables");
        for table in &tables {
            let (ours, theirs) = (std::fs::metadata(dir.path().join("pin").join(&table.name)), std::fs::metadata(path.join(&table.name)));
            assert_eq!(ours.expect("in the copy").ino(), theirs.expect("in the database").ino(), "{} is the database's file", table.name);
        }
        let journals = journal_bytes(&dir.path().join("pin")).expect("journals");
        assert!(journals > 0 && journals < 64 * 1024, "the copy's journal holds the late writes only ({journals} bytes)");
        let copy = DocumentStore::open(&dir.path().join("pin"), Durability::Os).expect("opens");
        assert_eq!(copy.last_etag(), pinned.state.last_etag);
        assert_eq!(copy.document_count(), 3_001);
        assert_eq!(copy.content_digest(), pinned.state.digest);
        assert!(copy.get("users/late").expect("reads").is_some());
        assert!(copy.get(rookery_types::STATUS_DOCUMENT_IDS[0]).expect("reads").is_none(), "status documents are taken out");
    }

    /// A pin flushes an idle database's memtables first (its copy's journal
    /// is then nearly empty) and leaves a busy one's to fjall (its copy
    /// replays them): both copies are the database.
    #[test]
    fn an_idle_database_is_flushed_before_its_pin_and_a_busy_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let store = DocumentStore::open(&path, Durability::Os).expect("opens");
        // Written as a restore writes (records with their etags): no client's
        // write, so the database is idle.
        let records: Vec<(String, Vec<u8>)> = documents(0..3_000)
            .into_iter()
            .enumerate()
            .map(|(i, (id, body))| (id, crate::storage::record::encode_parts(i as u64 + 1, 5, &body)))
            .collect();
        store.bulk().apply(&[], &records).expect("writes");
        assert!(store.memtable_bytes() > FLUSH_ABOVE_MEMTABLE_BYTES);
        let idle = pin(&store, &dir.path().join("idle"), false).expect("pins");
        assert!(store.memtable_bytes() < 64 * 1024, "flushed: {} bytes left in the memtables", store.memtable_bytes());
        assert!(journal_bytes(&dir.path().join("idle")).expect("journals") < 64 * 1024);
        assert_eq!(idle.state.document_count, 3_000);

        for (id, body) in documents(3_000..6_000) {
            store.put(&id, &body, None).expect("a client's write");
        }
        let before = store.memtable_bytes();
        assert!(before > FLUSH_ABOVE_MEMTABLE_BYTES && before < FLUSH_ABOVE_MEMTABLE_BYTES_WHILE_BUSY);
        let busy = pin(&store, &dir.path().join("busy"), false).expect("pins");
        assert!(store.memtable_bytes() >= before, "a busy database's memtables are left to fjall");
        assert_eq!((busy.state.last_etag, busy.state.document_count), (store.last_etag(), 6_000));
        let copy = DocumentStore::open(&dir.path().join("busy"), Durability::Os).expect("opens");
        assert_eq!((copy.document_count(), copy.content_digest()), (6_000, store.content_digest()));
    }

    /// A copy whose journal is long (every batch kept: no cut here) is
    /// flushed into tables of its own and left one empty journal.
    #[test]
    fn a_copy_with_a_long_journal_is_flushed_and_left_an_empty_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let store = filled(&path, 12_000);
        let staging = dir.path().join("pin");
        std::fs::create_dir_all(&staging).expect("creates");
        assert!(try_pin(&store, &staging, &Cut { persisted: Vec::new() }).expect("pins"));
        assert!(journal_bytes(&staging).expect("journals") > QUIET_SETTLE_JOURNAL_BYTES, "a long journal");
        let state = settle(&staging).expect("settles");
        assert_eq!(journal_bytes(&staging).expect("journals"), 0, "one empty journal");
        assert_eq!((state.last_etag, state.document_count), (store.last_etag(), 12_000));
        let copy = DocumentStore::open(&staging, Durability::Os).expect("opens");
        assert_eq!((copy.last_etag(), copy.document_count(), copy.content_digest()), (state.last_etag, 12_000, state.digest));
    }
}
