//! Snapshot tables stored once per location.
//!
//! fjall's table files never change once written, so a snapshot set in
//! object storage does not upload a table the location already holds: each
//! table is kept once, at `tables/<sha256>` (its content's SHA-256), and the
//! manifest names it `"Shared": true`. A second snapshot uploads only the
//! tables written since the first, and the journals.
//!
//! - **Where**: the key is derived from the hash, which a manifest must give
//!   as 64 lowercase hex digits: a manifest cannot point a reader anywhere
//!   but `tables/` of its own location.
//! - **Writing**: a table is streamed to its key, hashed on the way, and only
//!   completed (the multipart upload finished, the temporary file renamed)
//!   when the hash is the one it is stored under.
//! - **Removing**: [`collect`] runs after retention deleted sets: a table is
//!   removed only when one of those sets named it (what the server can
//!   prove was a set's, never a file chosen by its name alone), no complete
//!   set of the location (of any database) names it any more, and it is
//!   older than the grace for unfinished work (a set being written by
//!   another process may be about to name it). A table a crashed upload
//!   left, which no set ever named, stays. A location
//!   holding a set this server cannot read (a newer format, a damaged
//!   manifest) keeps every table.
//! - **Copies** keep the layout: a shared table is copied to `tables/` of
//!   the destination (folder or object storage), once.
//! - **Encrypted and locked sets do not share**: a table sealed under one
//!   set's key is not another set's, and an object lock is per set (a table
//!   shared with an unlocked set could not be held by the lock's date).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use super::error::BackupError;
pub use super::format::is_table_name;
use super::format::SHARED_TABLES;
use super::location::{io_error, scan, FindingCode, Location};

/// Prefix of a table being copied into a folder (renamed to its hash when
/// complete; removed when the copy fails, left only by a crash).
const TEMP_TABLE_PREFIX: &str = ".tmp-table-";

/// One shared table of a location.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub size: u64,
    /// Unix seconds of its last write.
    pub modified: i64,
}

/// The shared tables of a location, by SHA-256.
///
/// # Errors
/// The storage cannot be listed.
pub fn listed(location: &Location) -> Result<BTreeMap<String, Table>, BackupError> {
    let mut out = BTreeMap::new();
    match location {
        Location::Folder(path) => {
            let entries = match std::fs::read_dir(path.join(SHARED_TABLES)) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(BackupError::Io(format!("cannot list the shared tables: {e}"))),
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Ok(meta) = entry.metadata() else { continue };
                if is_table_name(&name) && meta.is_file() {
                    out.insert(name, Table { size: meta.len(), modified: modified_secs(&meta).unwrap_or(0) });
                }
            }
        }
        Location::Objects(o) => {
            let inside = format!("{SHARED_TABLES}/");
            for entry in o.list_prefix(SHARED_TABLES).map_err(|e| io_error(&e, BackupError::Io))? {
                if let Some(name) = entry.key.strip_prefix(&inside).filter(|n| is_table_name(n)) {
                    out.insert(name.to_string(), Table { size: entry.size, modified: entry.modified });
                }
            }
        }
    }
    Ok(out)
}

/// Stores `reader`'s bytes as the shared table `sha256` of `size` bytes:
/// it exists under its name only once the bytes read have that hash and size.
///
/// # Errors
/// `InvalidData` for bytes that are not the table; I/O and storage errors.
pub fn put(location: &Location, sha256: &str, size: u64, reader: &mut dyn Read, on_bytes: &mut dyn FnMut(u64)) -> std::io::Result<()> {
    if !is_table_name(sha256) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("'{sha256}' is not a table's SHA-256")));
    }
    let key = format!("{SHARED_TABLES}/{sha256}");
    match location {
        Location::Folder(path) => {
            let dir = path.join(SHARED_TABLES);
            std::fs::create_dir_all(&dir)?;
            let mut temp = tempfile::Builder::new().prefix(TEMP_TABLE_PREFIX).tempfile_in(&dir)?;
            stream(reader, temp.as_file_mut(), sha256, size, on_bytes)?;
            temp.as_file().sync_all()?;
            temp.persist(dir.join(sha256)).map_err(|e| e.error)?;
            crate::durable::sync_dir(&dir)
        }
        Location::Objects(o) => {
            let mut writer = o.create(&key);
            stream(reader, &mut writer, sha256, size, on_bytes)?;
            writer.finish()
        }
    }
}

/// Copies `reader` into `out`, checking the SHA-256 and size at the end.
fn stream(reader: &mut dyn Read, out: &mut dyn Write, sha256: &str, size: u64, on_bytes: &mut dyn FnMut(u64)) -> std::io::Result<()> {
    let mut hash = Sha256::new();
    let mut written = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hash.update(&buffer[..n]);
        out.write_all(&buffer[..n])?;
        written += n as u64;
        on_bytes(n as u64);
    }
    if written != size || hex::encode(hash.finalize()) != sha256 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the table {sha256} read back as {written} bytes of another content (expected {size} bytes)"),
        ));
    }
    Ok(())
}

/// Removes the shared tables that `freed` names (the tables of sets
/// retention has just deleted: tables this server can prove were sets'),
/// when no complete set of `location` names them any more and they are
/// untouched for `grace`; the tables removed. A table no deleted set named
/// (one a crashed upload left, or anyone else's file) is never a candidate.
///
/// # Errors
/// The location cannot be listed or the storage refused a deletion.
pub fn collect(location: &Location, freed: &BTreeSet<String>, grace: std::time::Duration) -> Result<Vec<String>, BackupError> {
    if freed.is_empty() {
        return Ok(Vec::new());
    }
    let tables = listed(location)?;
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let scanned = scan(location)?;
    let unknown = scanned.problems.iter().any(|f| f.code != FindingCode::BrokenChain);
    if unknown {
        tracing::warn!(location = %location, "a set of the location cannot be read: its shared tables are all kept");
        return Ok(Vec::new());
    }
    let sets = scanned.chains.iter().flat_map(|c| c.sets.iter()).chain(scanned.orphans.iter());
    let named: BTreeSet<&str> = sets.flat_map(|s| s.manifest.files.iter().filter(|f| f.shared).map(|f| f.sha256.as_str())).collect();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let unnamed: Vec<String> = tables
        .iter()
        .filter(|(sha, table)| freed.contains(*sha) && !named.contains(sha.as_str()) && now.saturating_sub(table.modified) >= grace)
        .map(|(sha, _)| sha.clone())
        .collect();
    match location {
        Location::Folder(path) => {
            for sha in &unnamed {
                match std::fs::remove_file(path.join(SHARED_TABLES).join(sha)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(BackupError::Io(format!("cannot remove the shared table {sha}: {e}"))),
                }
            }
        }
        Location::Objects(o) => {
            let keys: Vec<String> = unnamed.iter().map(|sha| format!("{SHARED_TABLES}/{sha}")).collect();
            o.delete(&keys).map_err(|e| io_error(&e, BackupError::Io))?;
        }
    }
    Ok(unnamed)
}

/// A file's last write, in Unix seconds.
fn modified_secs(meta: &std::fs::Metadata) -> Option<i64> {
    let since = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}
