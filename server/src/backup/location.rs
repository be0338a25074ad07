//! A backup location (a folder, or a prefix in object storage): validating
//! what a client gave, reading the sets in it, grouping them into chains and
//! verifying them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::object::{self, ObjectLocation};
use rookery_types::S3Settings;

use super::error::BackupError;
use super::format::{parse_sha256sums, sha256_reader, Manifest, SetKind, FORMAT_VERSION, MANIFEST, SHA256SUMS, SHARED_TABLES, TEMP_PREFIX};
pub use crate::paths::resolve;
use rookery_types::{BackupChainInfo, BackupListing, BackupSetInfo};

/// Checks a client-given location before anything touches the disk: absolute,
/// no `..`, not a filesystem root, not inside the data directory (symlinks
/// resolved), and inside one of `roots` when roots are configured.
///
/// # Errors
/// `InvalidLocation` with the reason.
pub fn validate_location(raw: &str, data_dir: &Path, roots: &[PathBuf]) -> Result<PathBuf, BackupError> {
    let invalid = |why: &str| BackupError::InvalidLocation(format!("'{}' {why}", raw.escape_debug()));
    if raw.trim().is_empty() {
        return Err(BackupError::InvalidLocation("BackupLocation is required: give an absolute folder on the server".into()));
    }
    if raw.contains('\0') {
        return Err(invalid("contains a NUL character"));
    }
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(invalid("is not an absolute path"));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Err(invalid("must not contain '.' or '..' components"));
    }
    let resolved = resolve(path).map_err(|e| invalid(&format!("cannot be resolved: {e}")))?;
    if resolved.parent().is_none() {
        return Err(invalid("is a filesystem root"));
    }
    let data = resolve(data_dir).map_err(|e| BackupError::Io(format!("data directory: {e}")))?;
    if resolved.starts_with(&data) {
        return Err(invalid("is inside the server's data directory"));
    }
    if !roots.is_empty() {
        let inside = roots.iter().any(|root| resolve(root).map(|r| resolved.starts_with(r)).unwrap_or(false));
        if !inside {
            let list: Vec<_> = roots.iter().map(|r| r.display().to_string()).collect();
            return Err(invalid(&format!("is outside every backup root ({})", list.join(", "))));
        }
    }
    Ok(resolved)
}

/// Where a backup is read or written.
#[derive(Debug, Clone)]
pub enum Location {
    /// A folder on this machine, validated and resolved.
    Folder(PathBuf),
    /// A prefix in S3-compatible object storage (see [`super::object`]).
    Objects(Arc<ObjectLocation>),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Folder(path) => write!(f, "{}", path.display()),
            Self::Objects(o) => write!(f, "{o}"),
        }
    }
}

/// Checks a client-given location, folder or `s3://`, against the server's
/// rules and roots; an `s3://` location is connected (no request is made).
///
/// # Errors
/// `InvalidLocation` with the reason; `StorageUnavailable` for settings that make no client.
pub fn open_location(
    raw: &str,
    data_dir: &Path,
    folder_roots: &[PathBuf],
    object_roots: &[(String, String)],
    s3: Option<&S3Settings>,
) -> Result<Location, BackupError> {
    if raw.starts_with(object::SCHEME) {
        let (bucket, prefix) =
            object::parse_url(raw).map_err(|e| BackupError::InvalidLocation(format!("'{}': {e}", raw.escape_debug())))?;
        if object_roots.is_empty() {
            return Err(BackupError::InvalidLocation(format!(
                "'{}' is in object storage, and this server has no s3:// backup root (--backup-root=s3://bucket[/prefix])",
                raw.escape_debug()
            )));
        }
        if !object_roots.iter().any(|(b, p)| object::is_inside((&bucket, &prefix), (b, p))) {
            let list: Vec<_> = object_roots.iter().map(|(b, p)| format!("{}{b}/{p}", object::SCHEME)).collect();
            return Err(BackupError::InvalidLocation(format!(
                "'{}' is outside every object storage backup root ({})",
                raw.escape_debug(),
                list.join(", ")
            )));
        }
        return connect(&bucket, &prefix, s3);
    }
    if folder_roots.is_empty() {
        return Err(BackupError::InvalidLocation(format!(
            "'{}' is a folder, and this server keeps backups only in object storage (its backup roots are s3:// URLs)",
            raw.escape_debug()
        )));
    }
    validate_location(raw, data_dir, folder_roots).map(Location::Folder)
}

/// A location given on a command line, where the operator is the authority:
/// a folder as given, or an `s3://` URL connected from the `AWS_*` variables.
///
/// # Errors
/// A malformed `s3://` URL.
pub fn location_from_cli(raw: &str) -> Result<Location, BackupError> {
    if raw.starts_with(object::SCHEME) {
        let (bucket, prefix) = object::parse_url(raw).map_err(BackupError::InvalidLocation)?;
        return connect(&bucket, &prefix, None);
    }
    Ok(Location::Folder(PathBuf::from(raw)))
}

fn connect(bucket: &str, prefix: &str, s3: Option<&S3Settings>) -> Result<Location, BackupError> {
    ObjectLocation::connect(bucket, prefix, s3).map(|o| Location::Objects(Arc::new(o))).map_err(|e| match e {
        object::ConnectError::CredentialsRequired(m) => BackupError::Unsupported(m),
        object::ConnectError::Unusable(m) => BackupError::StorageUnavailable(m),
    })
}

/// An I/O error of a location: a wait its job's cancel cut short, a
/// storage fault (object storage), or `what`.
pub fn io_error(e: &std::io::Error, what: impl FnOnce(String) -> BackupError) -> BackupError {
    if object::is_canceled(e) {
        return BackupError::Canceled;
    }
    match object::fault_of(e) {
        Some(fault) => BackupError::StorageUnavailable(fault.0.clone()),
        None => what(e.to_string()),
    }
}

/// What a location holds at its top level: names that are set ids, nothing
/// else. A location may hold other things (another location nested in it,
/// files of the operator's): they are never read, listed or removed as sets.
#[derive(Debug, Default)]
struct Entries {
    /// Set ids that may be sets: folders, or prefixes in object storage
    /// (those without a manifest turn out unfinished when read).
    sets: Vec<String>,
    /// Folders of sets being written or left by a crash (`.tmp-<SetId>`).
    unfinished: Vec<String>,
}

impl Entries {
    /// Every set name, finished or not (what a new set id must not take).
    fn names(&self) -> BTreeSet<String> {
        self.sets.iter().cloned().chain(self.unfinished.iter().map(|u| u.strip_prefix(TEMP_PREFIX).unwrap_or(u).to_string())).collect()
    }
}

impl Location {
    /// This location with `lock` on every set written into it (a
    /// destination's `ObjectLock`); nothing changes without one.
    ///
    /// # Errors
    /// `Unsupported` for a folder: only object storage locks.
    pub fn with_lock(self, lock: Option<&rookery_types::ObjectLock>) -> Result<Self, BackupError> {
        match (self, lock) {
            (location, None) => Ok(location),
            (Self::Objects(o), Some(lock)) => Ok(Self::Objects(Arc::new(Arc::unwrap_or_clone(o).with_lock(*lock)))),
            (Self::Folder(path), Some(_)) => Err(BackupError::Unsupported(format!(
                "'{}' is a folder: ObjectLock is for s3:// locations (S3 Object Lock)",
                path.display()
            ))),
        }
    }

    /// The lock of each listed set (by its manifest's), for the sets that
    /// have one: none in a folder or a bucket without object lock.
    ///
    /// # Errors
    /// `StorageUnavailable`.
    pub fn set_locks(&self, set_ids: &[String]) -> Result<BTreeMap<String, super::object_lock::Retention>, BackupError> {
        let Self::Objects(o) = self else { return Ok(BTreeMap::new()) };
        let keys: Vec<String> = set_ids.iter().map(|id| format!("{id}/{MANIFEST}")).collect();
        let found = o.locks_of(&keys).map_err(|e| io_error(&e, BackupError::Io))?;
        Ok(found.into_iter().filter_map(|(key, r)| Some((key.strip_suffix(&format!("/{MANIFEST}"))?.to_string(), r))).collect())
    }

    /// The folder, for a folder location.
    #[must_use]
    pub fn folder(&self) -> Option<&Path> {
        match self {
            Self::Folder(path) => Some(path),
            Self::Objects(_) => None,
        }
    }

    /// Reads worth issuing at once here: a few in a folder (a cold page
    /// cache waits on the disk, which serves several reads side by side),
    /// more in object storage (each waits a round trip).
    #[must_use]
    pub fn readers(&self) -> usize {
        match self {
            Self::Folder(_) => super::concurrent::FOLDER_WORKERS,
            Self::Objects(_) => super::concurrent::OBJECT_WORKERS,
        }
    }

    fn entries(&self) -> Result<Entries, BackupError> {
        let mut out = Entries::default();
        let is_set_id = super::format::is_valid_set_id;
        match self {
            Self::Folder(path) => {
                let entries = match std::fs::read_dir(path) {
                    Ok(e) => e,
                    // Not there yet (the backup creates it, or fails saying why).
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => return Ok(out),
                    Err(e) => return Err(BackupError::Io(format!("cannot read '{}': {e}", path.display()))),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| BackupError::Io(e.to_string()))?;
                    let name = entry.file_name().to_string_lossy().to_string();
                    // The entry's type as the listing gives it (no stat per
                    // entry); a symbolic link is followed as before.
                    let is_dir = match entry.file_type() {
                        Ok(t) if !t.is_symlink() => t.is_dir(),
                        _ => entry.path().is_dir(),
                    };
                    if !is_dir {
                        continue;
                    }
                    match name.strip_prefix(TEMP_PREFIX) {
                        Some(id) if is_set_id(id) => out.unfinished.push(name),
                        None if is_set_id(&name) => out.sets.push(name),
                        _ => {}
                    }
                }
            }
            Self::Objects(o) => {
                let names = o.list_names().map_err(|e| io_error(&e, BackupError::Io))?;
                out.sets = names.into_iter().filter(|n| is_set_id(n)).collect();
            }
        }
        out.sets.sort();
        out.unfinished.sort();
        Ok(out)
    }

    /// The names of every set and unfinished set in the location (for new set ids).
    ///
    /// # Errors
    /// The location cannot be listed.
    pub fn names(&self) -> Result<BTreeSet<String>, BackupError> {
        Ok(self.entries()?.names())
    }

    /// Reads a small file of a set, refusing one larger than `limit`.
    ///
    /// # Errors
    /// `NotFound`, I/O or storage errors, a file too large.
    pub fn read_capped(&self, set_id: &str, name: &str, limit: u64) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open(set_id, name)?.take(limit + 1).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("larger than {limit} bytes")));
        }
        Ok(out)
    }

    /// A reader of one file of a set.
    ///
    /// # Errors
    /// `NotFound`, I/O or storage errors.
    pub fn open(&self, set_id: &str, name: &str) -> std::io::Result<Box<dyn Read + Send>> {
        match self {
            Self::Folder(path) => Ok(Box::new(std::fs::File::open(path.join(set_id).join(name))?)),
            Self::Objects(o) => Ok(Box::new(o.open(&format!("{set_id}/{name}"))?)),
        }
    }

    /// The bytes `offset..offset + len` of one file of a set (a ranged
    /// `GET` in object storage): exactly `len` bytes, or an error.
    ///
    /// # Errors
    /// `NotFound`, I/O or storage errors, a file shorter than the range.
    pub fn read_range(&self, set_id: &str, name: &str, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let bytes = match self {
            Self::Folder(path) => {
                use std::os::unix::fs::FileExt;
                let file = std::fs::File::open(path.join(set_id).join(name))?;
                let mut out = vec![0u8; usize::try_from(len).map_err(|_| std::io::Error::other("range too large"))?];
                file.read_exact_at(&mut out, offset)?;
                out
            }
            Self::Objects(o) => o.read_range(&format!("{set_id}/{name}"), offset, len)?,
        };
        if bytes.len() as u64 != len {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file is shorter than its index says"));
        }
        Ok(bytes)
    }

    /// The size of one file of a set.
    ///
    /// # Errors
    /// `NotFound`, I/O or storage errors.
    pub fn size_of(&self, set_id: &str, name: &str) -> std::io::Result<u64> {
        match self {
            Self::Folder(path) => Ok(std::fs::metadata(path.join(set_id).join(name))?.len()),
            Self::Objects(o) => o.size_of(&format!("{set_id}/{name}")),
        }
    }

    /// Removes the sets of this location that never completed, and only
    /// those this server can prove are nobody's work in progress: the ones it
    /// recorded as its own unfinished uploads (`own`), and the ones untouched
    /// for at least `grace` whose every file has a name a set holds (a crashed
    /// writer's, here or elsewhere). Another writer's set being uploaded now
    /// is younger than `grace`; `writing` (the set this server writes now) is
    /// never a candidate. The set ids removed.
    ///
    /// # Errors
    /// The location cannot be listed; the storage refused.
    pub fn remove_unfinished(&self, own: &BTreeSet<String>, grace: std::time::Duration, writing: &str) -> Result<Vec<String>, BackupError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let old_enough = |modified: i64| now.saturating_sub(modified) >= i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        let entries = self.entries()?;
        let mut removed = Vec::new();
        match self {
            Self::Folder(path) => {
                for name in &entries.unfinished {
                    let id = name.strip_prefix(TEMP_PREFIX).unwrap_or(name);
                    let dir = path.join(name);
                    if id == writing {
                        continue;
                    }
                    let Some((files, newest)) = set_files_in(&dir) else { continue };
                    let stale = own.contains(id) || (old_enough(newest) && files.iter().all(|n| super::format::is_set_file_name(n)));
                    if stale {
                        std::fs::remove_dir_all(&dir).map_err(|e| BackupError::Io(format!("cannot remove '{}': {e}", dir.display())))?;
                        removed.push(id.to_string());
                    }
                }
            }
            Self::Objects(o) => {
                let fault = |e: std::io::Error| io_error(&e, BackupError::Io);
                for id in &entries.sets {
                    if id == writing || known_complete(o, id) {
                        continue;
                    }
                    if o.exists(&format!("{id}/{MANIFEST}")).map_err(fault)? {
                        remember_complete(o, id);
                        continue;
                    }
                    let objects = o.list_set(id).map_err(fault)?;
                    let file_name = |key: &str| key.strip_prefix(id.as_str()).and_then(|k| k.strip_prefix('/')).map(str::to_string);
                    let stale = own.contains(id)
                        || objects
                            .iter()
                            .all(|e| old_enough(e.modified) && file_name(&e.key).is_some_and(|n| super::format::is_set_file_name(&n)));
                    if stale {
                        let keys: Vec<String> = objects.into_iter().map(|e| e.key).collect();
                        o.delete(&keys).map_err(fault)?;
                        removed.push(id.clone());
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Deletes one complete set. In object storage the manifest goes first,
    /// so the set stops being a set before its files go.
    ///
    /// # Errors
    /// I/O or storage errors.
    pub fn delete_set_objects(&self, set_id: &str) -> Result<(), BackupError> {
        let Self::Objects(o) = self else {
            return Err(BackupError::Io("delete_set_objects is for object storage".into()));
        };
        super::chain_memory::forget(self, set_id);
        o.delete(&[format!("{set_id}/{MANIFEST}")]).map_err(|e| io_error(&e, BackupError::Io))?;
        o.delete_set(set_id).map_err(|e| io_error(&e, BackupError::Io))
    }
}

/// The files of an unfinished set folder (paths inside the set) and the
/// newest modification time of anything in it (Unix seconds); `None` when
/// it holds anything but plain files and folders (a symlink), or cannot be read.
fn set_files_in(dir: &Path) -> Option<(Vec<String>, i64)> {
    let mut names = Vec::new();
    let mut newest = 0i64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let meta = std::fs::symlink_metadata(&current).ok()?;
        let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
        newest = newest.max(i64::try_from(modified.as_secs()).unwrap_or(i64::MAX));
        if meta.is_dir() {
            for entry in std::fs::read_dir(&current).ok()? {
                pending.push(entry.ok()?.path());
            }
        } else if meta.is_file() {
            names.push(current.strip_prefix(dir).ok()?.to_str()?.to_string());
        } else {
            return None;
        }
    }
    Some((names, newest))
}

/// Sets of object storage locations seen complete (a manifest, once
/// written, makes a set complete for good; retention removes the manifest
/// first, and a set half removed is found again after a restart).
fn complete_sets() -> &'static std::sync::Mutex<BTreeSet<(String, String)>> {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<BTreeSet<(String, String)>>> = std::sync::OnceLock::new();
    SEEN.get_or_init(std::sync::Mutex::default)
}

fn known_complete(o: &ObjectLocation, id: &str) -> bool {
    complete_sets().lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&(o.to_string(), id.to_string()))
}

fn remember_complete(o: &ObjectLocation, id: &str) {
    let mut seen = complete_sets().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.len() >= 100_000 {
        seen.clear();
    }
    seen.insert((o.to_string(), id.to_string()));
}

/// A complete set found in a location.
#[derive(Debug, Clone)]
pub struct StoredSet {
    pub location: Location,
    pub manifest: Manifest,
    /// Bytes of every file in the set.
    pub size_bytes: u64,
    /// The SHA-256 (hex) of the `manifest.json` bytes `manifest` was read
    /// from, so checking it against `SHA256SUMS` needs no second read.
    pub manifest_sha256: Option<String>,
}

impl StoredSet {
    /// A reader of one of the set's files.
    ///
    /// # Errors
    /// `NotFound`, I/O or storage errors.
    pub fn open(&self, name: &str) -> std::io::Result<Box<dyn Read + Send>> {
        let (dir, file) = self.stored_at(name);
        self.location.open(dir, file)
    }

    /// The bytes `offset..offset + len` of one of the set's files.
    ///
    /// # Errors
    /// As [`Location::read_range`].
    pub fn read_range(&self, name: &str, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let (dir, file) = self.stored_at(name);
        self.location.read_range(dir, file, offset, len)
    }

    /// The size of one of the set's files as stored.
    ///
    /// # Errors
    /// As [`Location::size_of`].
    pub fn size_of(&self, name: &str) -> std::io::Result<u64> {
        let (dir, file) = self.stored_at(name);
        self.location.size_of(dir, file)
    }

    /// The path of one of the set's files, in a folder location.
    #[must_use]
    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        let (dir, file) = self.stored_at(name);
        self.location.folder().map(|folder| folder.join(dir).join(file))
    }

    /// Where a file of the set is kept: `(set id, name)`, or for a shared
    /// table `(tables, sha256)` (see [`super::shared_tables`]).
    fn stored_at<'a>(&'a self, name: &'a str) -> (&'a str, &'a str) {
        match self.manifest.files.iter().find(|f| f.shared && f.name == name) {
            Some(file) => (SHARED_TABLES, file.sha256.as_str()),
            None => (self.manifest.set_id.as_str(), name),
        }
    }
}

/// A full set and its incrementals, oldest first.
#[derive(Debug, Clone)]
pub struct Chain {
    pub database_id: String,
    pub database_name: String,
    pub sets: Vec<StoredSet>,
}

impl Chain {
    /// `Created` of the newest set.
    #[must_use]
    pub fn newest_created(&self) -> &str {
        self.sets.last().map_or("", |s| s.manifest.created.as_str())
    }
}

/// What a location holds.
#[derive(Debug, Default)]
pub struct ScannedLocation {
    pub chains: Vec<Chain>,
    /// Incremental sets whose base is not in the location.
    pub orphans: Vec<StoredSet>,
    /// Damage that keeps a set folder out of every chain: an unreadable or
    /// missing manifest, a newer format, an incremental whose base is missing.
    pub problems: Vec<Finding>,
    /// Folders of backups that never completed (`.tmp-*`); never read as sets.
    pub unfinished: Vec<String>,
    /// Every set name in the location, finished or not (see [`Location::names`]).
    pub names: BTreeSet<String>,
}

impl ScannedLocation {
    /// The chains of `database_id`.
    #[must_use]
    pub fn into_chains_of(self, database_id: &str) -> Vec<Chain> {
        self.chains.into_iter().filter(|c| c.database_id == database_id).collect()
    }

    /// The newest chain of `database_id`, if any.
    #[must_use]
    pub fn newest_chain_of(&self, database_id: &str) -> Option<&Chain> {
        self.chains.iter().filter(|c| c.database_id == database_id).max_by(|a, b| a.newest_created().cmp(b.newest_created()))
    }

    /// The newest chain of any database.
    #[must_use]
    pub fn newest_chain(&self) -> Option<&Chain> {
        self.chains.iter().max_by(|a, b| a.newest_created().cmp(b.newest_created()))
    }
}

/// Reads every set's manifest in `location` and groups the sets into chains.
/// A missing location is empty. Reads manifests only, no data file.
///
/// # Errors
/// I/O errors listing the folder.
pub fn scan(location: &Location) -> Result<ScannedLocation, BackupError> {
    let entries = location.entries()?;
    let mut out = ScannedLocation::listed(&entries);
    let sets = read_sets(location, &entries.sets, &mut out)?;
    Ok(group(out, sets))
}

/// [`scan`], for an incremental about to extend a chain: in object storage,
/// a set this process read before is taken from [`super::chain_memory`]
/// (still listed, and not yet due to be read again) instead of its
/// manifest being read again.
///
/// # Errors
/// As [`scan`].
pub fn scan_to_extend(location: &Location) -> Result<ScannedLocation, BackupError> {
    let entries = location.entries()?;
    let mut out = ScannedLocation::listed(&entries);
    let known = super::chain_memory::recall(location, &entries.sets);
    let unknown: Vec<String> = entries.sets.iter().filter(|name| !known.contains_key(*name)).cloned().collect();
    let read = read_sets(location, &unknown, &mut out)?;
    super::chain_memory::remember_read(location, &read);
    Ok(group(out, known.into_values().chain(read).collect()))
}

impl ScannedLocation {
    /// What a listing alone says: every name taken, the unfinished folders.
    fn listed(entries: &Entries) -> Self {
        let unfinished = entries
            .unfinished
            .iter()
            .map(|name| format!("{name}: an unfinished set (a backup that did not complete); it is ignored"))
            .collect();
        Self { names: entries.names(), unfinished, ..Self::default() }
    }
}

/// Reads the manifests of the sets `names`; what turns out unfinished or
/// damaged goes into `out`.
fn read_sets(location: &Location, names: &[String], out: &mut ScannedLocation) -> Result<Vec<StoredSet>, BackupError> {
    let mut sets = Vec::new();
    let read = super::concurrent::map(names, location.readers(), |name| read_set(location, name));
    for (name, result) in names.iter().zip(read) {
        match result {
            Ok(set) => sets.push(set),
            Err(f) => {
                if let Some(fault) = f.fault {
                    return Err(BackupError::StorageUnavailable(fault));
                }
                // In object storage a set is complete when its manifest exists:
                // one without is being written, or was abandoned.
                if f.no_manifest && matches!(location, Location::Objects(_)) {
                    out.unfinished.push(format!("{name}: an unfinished set (no manifest: being written, or abandoned); it is ignored"));
                    continue;
                }
                out.problems.push(Finding::new(f.finding.code, format!("{name}: {}", f.finding.message)));
            }
        }
    }
    Ok(sets)
}

/// Groups sets into chains: every full set starts one, an incremental
/// follows its base.
fn group(mut out: ScannedLocation, mut sets: Vec<StoredSet>) -> ScannedLocation {
    sets.sort_by(|a, b| a.manifest.created.cmp(&b.manifest.created).then(a.manifest.set_id.cmp(&b.manifest.set_id)));

    // Group: every full set starts a chain; an incremental follows its base.
    let mut by_base: BTreeMap<String, Vec<StoredSet>> = BTreeMap::new();
    let mut fulls = Vec::new();
    for set in sets {
        match (set.manifest.kind, set.manifest.base_set_id.clone()) {
            (SetKind::Full | SetKind::Snapshot, _) => fulls.push(set),
            (SetKind::Incremental, Some(base)) => by_base.entry(base).or_default().push(set),
            (SetKind::Incremental, None) => {
                out.problems.push(Finding::new(
                    FindingCode::CorruptBackup,
                    format!("{}: an incremental set without BaseSetId", set.manifest.set_id),
                ));
            }
        }
    }
    for full in fulls {
        let mut chain =
            Chain { database_id: full.manifest.database_id.clone(), database_name: full.manifest.database_name.clone(), sets: vec![full] };
        while let Some(mut next) = chain.sets.last().and_then(|tip| by_base.remove(&tip.manifest.set_id)) {
            // Two incrementals on one base: the older continues the chain.
            let first = next.remove(0);
            for extra in next {
                out.problems.push(Finding::new(
                    FindingCode::BrokenChain,
                    format!(
                        "{}: a second incremental on base {}; it is ignored",
                        extra.manifest.set_id,
                        extra.manifest.base_set_id.as_deref().unwrap_or("?")
                    ),
                ));
            }
            chain.sets.push(first);
        }
        out.chains.push(chain);
    }
    for (base, orphans) in by_base {
        for orphan in orphans {
            out.problems
                .push(Finding::new(FindingCode::BrokenChain, format!("{}: its base set {base} is missing", orphan.manifest.set_id)));
            out.orphans.push(orphan);
        }
    }
    out
}

/// Why a set could not be read: damage, no manifest at all, or the storage
/// failing (not damage).
struct Unreadable {
    finding: Finding,
    fault: Option<String>,
    no_manifest: bool,
}

impl From<Finding> for Unreadable {
    fn from(finding: Finding) -> Self {
        Self { finding, fault: None, no_manifest: false }
    }
}

fn read_set(location: &Location, folder: &str) -> Result<StoredSet, Unreadable> {
    let corrupt = |m: String| Finding::new(FindingCode::CorruptBackup, m);
    let raw = location.read_capped(folder, MANIFEST, MAX_MANIFEST_BYTES).map_err(|e| Unreadable {
        fault: object::fault_of(&e).map(|f| f.0.clone()),
        no_manifest: e.kind() == std::io::ErrorKind::NotFound,
        finding: Finding::new(FindingCode::ChecksumMismatch, format!("cannot read {MANIFEST}: {e}")),
    })?;
    let value: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| corrupt(format!("{MANIFEST} is not valid JSON: {e}")))?;
    let version = value.get("FormatVersion").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if version > u64::from(FORMAT_VERSION) {
        return Err(Finding::new(
            FindingCode::UnsupportedFormatVersion,
            format!("the set has format version {version}; this server reads up to {FORMAT_VERSION}"),
        )
        .into());
    }
    let manifest: Manifest = serde_json::from_value(value).map_err(|e| corrupt(format!("{MANIFEST} is malformed: {e}")))?;
    check_manifest(&manifest, location.folder().map(|f| f.join(folder)).as_deref(), folder).map_err(corrupt)?;
    // What the manifest says its files take (verification checks each size).
    let size_bytes = manifest.files.iter().fold(raw.len() as u64, |sum, f| sum.saturating_add(f.size));
    let manifest_sha256 = sha256_reader(&raw[..]).ok();
    Ok(StoredSet { location: location.clone(), manifest, size_bytes, manifest_sha256 })
}

/// The largest `manifest.json` a server reads (a real one is a few KiB).
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
/// The most files a set may name.
pub const MAX_SET_FILES: usize = 100_000;

/// What a manifest from untrusted storage must satisfy before anything of
/// it is used: its set id is a set id and its folder's name, it names a
/// bounded number of files, and every file is a path inside the set.
fn check_manifest(manifest: &Manifest, dir: Option<&Path>, folder: &str) -> Result<(), String> {
    if !super::format::is_valid_set_id(&manifest.set_id) {
        return Err(format!("SetId '{}' is not a set id", manifest.set_id.escape_debug()));
    }
    if manifest.set_id != folder {
        return Err(format!("SetId '{}' is not the name of its folder", manifest.set_id.escape_debug()));
    }
    if let Some(base) = &manifest.base_set_id {
        if !super::format::is_valid_set_id(base) {
            return Err(format!("BaseSetId '{}' is not a set id", base.escape_debug()));
        }
    }
    if let Some(folded) = &manifest.compacted_from {
        if folded.len() > MAX_SET_FILES || folded.iter().any(|id| !super::format::is_valid_set_id(id)) {
            return Err("CompactedFrom names something that is not a set id, or too many".into());
        }
    }
    if let Some(description) = manifest.encryption.as_ref().and_then(|e| e.get("Set")) {
        super::sealed::check_description(description)?;
    }
    if manifest.files.len() > MAX_SET_FILES {
        return Err(format!("the manifest names {} files, more than {MAX_SET_FILES}", manifest.files.len()));
    }
    // Numbers a reader adds up (free space, progress) must add up.
    if manifest.files.iter().try_fold(0u64, |sum, f| sum.checked_add(f.size)).is_none()
        || manifest.document_count.checked_add(manifest.deletion_count).is_none()
    {
        return Err("the manifest's sizes or counts add up beyond any set".into());
    }
    // A snapshot set holds storage files only, each at a path of the
    // storage layout; other sets hold none.
    let snapshot = manifest.kind == SetKind::Snapshot;
    if snapshot && manifest.storage_format.as_deref() != Some(crate::storage::files::STORAGE_FORMAT) {
        return Err(format!(
            "a snapshot set of storage format {:?}; this server reads {}",
            manifest.storage_format.as_deref().unwrap_or("(none)").escape_debug(),
            crate::storage::files::STORAGE_FORMAT
        ));
    }
    let sealed = manifest.encryption.as_ref().is_some_and(|e| e.get("Set").is_some());
    let mut inside = dir.map(InsideSet::new);
    for file in &manifest.files {
        safe_file_name(&file.name)?;
        if file.shared && (!snapshot || sealed || !super::format::is_table_name(&file.sha256)) {
            return Err(format!(
                "the file '{}' is shared under '{}': only an unencrypted snapshot's tables are shared, each under its SHA-256 (64 lowercase hex digits)",
                file.name.escape_debug(),
                file.sha256.escape_debug()
            ));
        }
        if file.name == MANIFEST || file.name == SHA256SUMS {
            return Err(format!("the manifest lists '{}' as a data file", file.name));
        }
        let storage = file.content == super::format::FileContent::Storage;
        if storage != snapshot || (snapshot && !crate::storage::files::is_storage_file_name(&file.name)) {
            return Err(format!(
                "the file '{}' ({:?}) does not belong in a {:?} set",
                file.name.escape_debug(),
                file.content,
                manifest.kind
            ));
        }
        if let Some(inside) = &mut inside {
            inside.check(&file.name)?;
        }
    }
    Ok(())
}

/// A file name in a set: a relative path of plain components (no root, no
/// `.` or `..`, no NUL or backslash), at most 1024 bytes.
///
/// # Errors
/// Why the name is unsafe.
pub fn safe_file_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("the file name '{}' {why}", name.escape_debug()));
    if name.is_empty() || name.len() > 1024 {
        return bad("is empty or longer than 1024 bytes");
    }
    if name.contains('\0') || name.contains('\\') {
        return bad("holds a NUL or a backslash");
    }
    let path = Path::new(name);
    if path.is_absolute() {
        return bad("is absolute: file names are paths inside the set");
    }
    if !path.components().all(|c| matches!(c, Component::Normal(_))) || name.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        return bad("has a '.', '..' or empty component: file names are paths inside the set");
    }
    Ok(())
}

/// Files named in a set that exist must resolve inside the set folder (no
/// symbolic link leads out of it). A name whose directories below the
/// folder are plain directories, and which is a plain file itself, cannot
/// lead out: one `lstat` per file, and one per directory for the whole
/// manifest. Only a name through a symbolic link is resolved in full (a
/// set lists every table it holds, and listing a location checks every set).
struct InsideSet<'a> {
    dir: &'a Path,
    /// The folder resolved, once a name needs it.
    root: Option<PathBuf>,
    /// Directories below the folder seen to be plain directories.
    plain_dirs: std::collections::HashSet<PathBuf>,
}

impl<'a> InsideSet<'a> {
    fn new(dir: &'a Path) -> Self {
        Self { dir, root: None, plain_dirs: std::collections::HashSet::new() }
    }

    /// `name` (already a [`safe_file_name`]) missing, or resolving inside the folder.
    fn check(&mut self, name: &str) -> Result<(), String> {
        let path = self.dir.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return Ok(()); // missing: reported by verification
        };
        if !meta.file_type().is_symlink() && self.directories_are_plain(name) {
            return Ok(());
        }
        let unresolved = || format!("the file '{}' cannot be resolved", name.escape_debug());
        if self.root.is_none() {
            self.root = Some(self.dir.canonicalize().map_err(|_| unresolved())?);
        }
        let root = self.root.as_deref().unwrap_or(self.dir);
        let real = path.canonicalize().map_err(|_| unresolved())?;
        if !real.starts_with(root) || real == root {
            return Err(format!("the file '{}' leads outside the set (a symlink)", name.escape_debug()));
        }
        Ok(())
    }

    /// Whether every directory of `name` below the folder is a plain directory.
    fn directories_are_plain(&mut self, name: &str) -> bool {
        let mut below = PathBuf::new();
        let parts: Vec<&str> = name.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            below.push(part);
            if self.plain_dirs.contains(&below) {
                continue;
            }
            match std::fs::symlink_metadata(self.dir.join(&below)) {
                Ok(m) if m.file_type().is_dir() => {
                    self.plain_dirs.insert(below.clone());
                }
                _ => return false,
            }
        }
        true
    }
}

/// How deep [`verify_set`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Files present with the sizes the manifest gives.
    Structure,
    /// Also every SHA-256.
    Checksums,
    /// Every SHA-256, except of a file in a folder whose hash this server
    /// kept when it wrote or last read it, while its inode, size and
    /// modification time are still those it had then (see
    /// [`super::kept_hashes`]): the check of a chain's newest set before
    /// an incremental extends it. A verification asked for reads every byte.
    ChecksumsOrKept,
}

/// What kind of damage a finding is; each maps to one error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingCode {
    /// A file differs from its checksum, is missing or cannot be read.
    ChecksumMismatch,
    /// A set does not follow the one before it.
    BrokenChain,
    /// A set written by a newer server.
    UnsupportedFormatVersion,
    /// A manifest that is malformed or unsafe (file names outside the set,
    /// an id that is not a set id, sizes beyond every limit).
    CorruptBackup,
}

/// A problem found by verification, with the error code it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: FindingCode,
    pub message: String,
}

impl Finding {
    fn new(code: FindingCode, message: String) -> Self {
        Self { code, message }
    }
}

impl From<Finding> for BackupError {
    fn from(f: Finding) -> Self {
        match f.code {
            FindingCode::ChecksumMismatch => Self::ChecksumMismatch(f.message),
            FindingCode::BrokenChain => Self::BrokenChain(f.message),
            FindingCode::UnsupportedFormatVersion => Self::UnsupportedFormatVersion(f.message),
            FindingCode::CorruptBackup => Self::Corrupt(f.message),
        }
    }
}

/// Files in a set from which [`verify_set`] reads their sizes in a folder side by side.
const STAT_SIDE_BY_SIDE_FROM: usize = 16;

/// Verifies one set: format version, `SHA256SUMS` against the manifest and
/// the files, and (with [`Depth::Checksums`]) every file's SHA-256.
#[must_use]
pub fn verify_set(set: &StoredSet, depth: Depth) -> Vec<Finding> {
    let mut findings = Vec::new();
    let id = &set.manifest.set_id;
    let mut push = |code: FindingCode, message: String| findings.push(Finding { code, message });
    if set.manifest.format_version > FORMAT_VERSION {
        push(
            FindingCode::UnsupportedFormatVersion,
            format!("{id}: format version {} is newer than this server's {FORMAT_VERSION}", set.manifest.format_version),
        );
        return findings;
    }
    let sums = match set.location.read_capped(id, SHA256SUMS, MAX_MANIFEST_BYTES).map(|b| String::from_utf8_lossy(&b).to_string()) {
        Ok(text) => match parse_sha256sums(&text) {
            Ok(s) => s,
            Err(e) => {
                push(FindingCode::ChecksumMismatch, format!("{id}/{SHA256SUMS}: {e}"));
                return findings;
            }
        },
        Err(e) => {
            push(FindingCode::ChecksumMismatch, format!("{id}/{SHA256SUMS}: cannot be read ({e})"));
            return findings;
        }
    };
    let sum_of = |name: &str| sums.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone());
    // The manifest first: when it is damaged, what it says of the other files
    // is not to be believed, and the damage to report is its own.
    if let Some(expected) = sum_of(MANIFEST) {
        let kept = set.manifest_sha256.clone().map(Ok);
        match kept.unwrap_or_else(|| set.open(MANIFEST).and_then(sha256_reader)) {
            Ok(actual) if actual == expected => {}
            Ok(_) => {
                push(FindingCode::ChecksumMismatch, format!("{id}/{MANIFEST}: checksum mismatch (the file was changed or damaged)"));
                return findings;
            }
            Err(e) => {
                push(FindingCode::ChecksumMismatch, format!("{id}/{MANIFEST}: cannot be read ({e})"));
                return findings;
            }
        }
    }
    let mut expected: Vec<(String, Option<u64>, String)> = Vec::new();
    for file in &set.manifest.files {
        match sum_of(&file.name) {
            Some(s) if s == file.sha256 => expected.push((file.name.clone(), Some(file.size), s)),
            Some(_) => push(FindingCode::ChecksumMismatch, format!("{id}/{}: SHA256SUMS and the manifest disagree", file.name)),
            None => push(FindingCode::ChecksumMismatch, format!("{id}/{}: missing from SHA256SUMS", file.name)),
        }
    }
    if sum_of(MANIFEST).is_none() {
        push(FindingCode::ChecksumMismatch, format!("{id}/{MANIFEST}: missing from SHA256SUMS"));
    }
    // In object storage, one listing of the set answers every size (a
    // request per file would cost a round trip each).
    let listed = match &set.location {
        Location::Objects(o) => match o.sizes_in_set(id) {
            Ok(sizes) => Some(sizes),
            Err(e) => {
                push(FindingCode::ChecksumMismatch, format!("{id}: its files cannot be listed ({e})"));
                return findings;
            }
        },
        Location::Folder(_) => None,
    };
    // In a folder, the sizes of a set of many files side by side: each is
    // an inode read from the disk when cold (a linked snapshot set's tables).
    let mut stated = match &set.location {
        Location::Folder(_) if expected.len() >= STAT_SIDE_BY_SIDE_FROM => {
            Some(super::concurrent::map(&expected, super::concurrent::FOLDER_WORKERS, |(name, ..)| set.size_of(name)).into_iter())
        }
        _ => None,
    };
    for (name, size, sha) in expected {
        let shared = set.manifest.files.iter().any(|f| f.shared && f.name == name);
        let size_here = match (&listed, stated.as_mut().and_then(Iterator::next)) {
            (Some(sizes), _) if !shared => sizes.get(&name).copied().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)),
            (_, Some(stated)) => stated,
            _ => set.size_of(&name),
        };
        let actual_size = match size_here {
            Ok(size) => size,
            Err(e) if object::fault_of(&e).is_some() => {
                push(FindingCode::ChecksumMismatch, format!("{id}/{name}: cannot be read ({e})"));
                continue;
            }
            Err(_) => {
                push(FindingCode::ChecksumMismatch, format!("{id}/{name}: the file is missing"));
                continue;
            }
        };
        if let Some(size) = size {
            if size != actual_size {
                push(FindingCode::ChecksumMismatch, format!("{id}/{name}: {actual_size} bytes, the manifest says {size}"));
                continue;
            }
        }
        let kept = || {
            set.path_of(&name)
                .and_then(|p| std::fs::metadata(p).ok())
                .filter(|m| super::kept_hashes::get(m).as_deref() == Some(sha.as_str()))
        };
        if depth == Depth::ChecksumsOrKept && kept().is_some() {
            continue;
        }
        if depth != Depth::Structure || size.is_none() {
            match set.open(&name).and_then(sha256_reader) {
                Ok(actual) if actual == sha => {}
                Ok(_) => push(FindingCode::ChecksumMismatch, format!("{id}/{name}: checksum mismatch (the file was changed or damaged)")),
                Err(e) => push(FindingCode::ChecksumMismatch, format!("{id}/{name}: cannot be read ({e})")),
            }
        }
    }
    findings
}

/// Verifies the links of a chain: each set follows the one before it.
#[must_use]
pub fn verify_links(chain: &[StoredSet]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(first) = chain.first() else { return findings };
    if !first.manifest.kind.starts_chain() {
        findings.push(Finding {
            code: FindingCode::BrokenChain,
            message: format!("{}: a chain must start with a full set", first.manifest.set_id),
        });
    }
    for pair in chain.windows(2) {
        let (prev, next) = (&pair[0].manifest, &pair[1].manifest);
        let broken = |why: String| Finding { code: FindingCode::BrokenChain, message: format!("{}: {why}", next.set_id) };
        if next.kind != SetKind::Incremental {
            findings.push(broken("a full or snapshot set inside a chain".into()));
        }
        if next.base_set_id.as_deref() != Some(prev.set_id.as_str()) {
            findings.push(broken(format!("its base is {:?}, not {}", next.base_set_id, prev.set_id)));
        }
        if next.database_id != prev.database_id {
            findings.push(broken("belongs to another database".into()));
        }
        if next.format_version < prev.format_version {
            findings.push(broken(format!(
                "format version {} follows version {} (no writer does that)",
                next.format_version, prev.format_version
            )));
        }
        if next.from_etag != prev.to_etag {
            findings.push(broken(format!("starts at etag {} but {} ends at {}", next.from_etag, prev.set_id, prev.to_etag)));
        }
    }
    findings
}

/// Every file of a locked set is locked at least as long as its manifest (a
/// set whose files could be deleted before its date is not immutable).
fn verify_lock(set: &StoredSet, lock: &super::object_lock::Retention) -> Vec<Finding> {
    let Location::Objects(o) = &set.location else { return Vec::new() };
    let id = &set.manifest.set_id;
    let mut names: Vec<String> = set.manifest.files.iter().map(|f| format!("{id}/{}", f.name)).collect();
    names.push(format!("{id}/{SHA256SUMS}"));
    let found = match o.locks_of(&names) {
        Ok(found) => found,
        Err(e) => return vec![Finding::new(FindingCode::ChecksumMismatch, format!("{id}: cannot read its files' object locks: {e}"))],
    };
    names
        .iter()
        .filter(|name| found.get(*name).is_none_or(|r| r.until < lock.until))
        .map(|name| Finding::new(FindingCode::CorruptBackup, format!("{name}: not locked until {} as its manifest is", lock.until)))
        .collect()
}

/// The listing of a location, every set verified to `depth`.
///
/// # Errors
/// I/O errors listing the folder.
pub fn listing(location: &Location, depth: Depth) -> Result<BackupListing, BackupError> {
    let scanned = scan(location)?;
    let ids: Vec<String> = scanned.chains.iter().flat_map(|c| c.sets.iter().map(|s| s.manifest.set_id.clone())).collect();
    let locks = location.set_locks(&ids)?;
    let mut chains = Vec::new();
    for chain in &scanned.chains {
        let links = verify_links(&chain.sets);
        let verified = super::concurrent::map(&chain.sets, location.readers(), |set| {
            let mut findings = verify_set(set, depth);
            if let (Depth::Checksums, Some(lock)) = (depth, locks.get(&set.manifest.set_id)) {
                findings.extend(verify_lock(set, lock));
            }
            findings
        });
        let mut sets = Vec::new();
        for (set, findings) in chain.sets.iter().zip(verified) {
            let mut problems: Vec<String> = findings.into_iter().map(|f| f.message).collect();
            problems.extend(links.iter().filter(|f| f.message.starts_with(&set.manifest.set_id)).map(|f| f.message.clone()));
            let m = &set.manifest;
            let lock = locks.get(&m.set_id);
            sets.push(BackupSetInfo {
                set_id: m.set_id.clone(),
                kind: format!("{:?}", m.kind),
                base_set_id: m.base_set_id.clone(),
                created: m.created.clone(),
                from_etag: m.from_etag,
                to_etag: m.to_etag,
                document_count: m.document_count,
                deletion_count: m.deletion_count,
                size_bytes: set.size_bytes,
                encrypted: m.encryption.is_some(),
                duration_ms: m.duration_ms,
                verified: problems.is_empty(),
                problems,
                locked_until: lock.map(|l| l.until.to_string()),
                lock_mode: lock.map(|l| l.mode),
            });
        }
        chains.push(BackupChainInfo { database_name: chain.database_name.clone(), database_id: chain.database_id.clone(), sets });
    }
    let problems = scanned.problems.into_iter().map(|f| f.message).collect();
    Ok(BackupListing { location: location.to_string(), chains, problems, unfinished: scanned.unfinished })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_through_a_symbolic_link_must_resolve_inside_the_set() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let set = tmp.path().join("set");
        let outside = tmp.path().join("outside");
        for dir in [set.join("keyspaces/1/tables"), set.join("keyspaces/2"), outside.clone()] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(set.join("keyspaces/1/tables/5"), b"t").expect("writes");
        std::fs::write(outside.join("7"), b"t").expect("writes");
        // A directory of the set that is a link out of it, one that is a
        // link within it, and a file that is a link out of it.
        std::os::unix::fs::symlink(&outside, set.join("keyspaces/2/tables")).expect("symlink");
        std::os::unix::fs::symlink(set.join("keyspaces/1/tables"), set.join("keyspaces/3")).expect("symlink");
        std::os::unix::fs::symlink(outside.join("7"), set.join("keyspaces/1/tables/8")).expect("symlink");
        let mut inside = InsideSet::new(&set);
        assert_eq!(inside.check("keyspaces/1/tables/5"), Ok(()));
        assert_eq!(inside.check("keyspaces/1/tables/missing"), Ok(()), "a missing file is verification's to report");
        assert_eq!(inside.check("keyspaces/3/5"), Ok(()), "a link that stays inside the set");
        let out = inside.check("keyspaces/2/tables/7").expect_err("a directory linked out of the set");
        assert!(out.contains("leads outside the set"), "{out}");
        let out = inside.check("keyspaces/1/tables/8").expect_err("a file linked out of the set");
        assert!(out.contains("leads outside the set"), "{out}");
    }

    #[test]
    fn locations_are_validated() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let ok = tmp.path().join("backups/one");
        assert_eq!(
            validate_location(ok.to_str().expect("utf8"), &data, &[]).expect("valid"),
            tmp.path().canonicalize().expect("c").join("backups/one")
        );
        for bad in ["", "relative/path", "/", "/tmp/../etc"] {
            assert!(validate_location(bad, &data, &[]).is_err(), "{bad} must be refused");
        }
        let inside = data.join("x");
        assert!(validate_location(inside.to_str().expect("utf8"), &data, &[]).is_err());
        assert!(validate_location(data.to_str().expect("utf8"), &data, &[]).is_err());
        // A symlink that leads into the data directory is refused.
        let link = tmp.path().join("sneaky");
        std::os::unix::fs::symlink(&data, &link).expect("symlink");
        assert!(validate_location(link.join("b").to_str().expect("utf8"), &data, &[]).is_err());
        // Roots.
        let root = tmp.path().join("backups");
        assert!(validate_location(ok.to_str().expect("utf8"), &data, std::slice::from_ref(&root)).is_ok());
        assert!(validate_location(tmp.path().join("elsewhere").to_str().expect("utf8"), &data, &[root]).is_err());
    }
}
