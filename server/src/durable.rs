//! Making what is written durable: files and folders fsynced, so that a
//! rename or a new entry survives a power loss.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Writes a small file, fsyncs it, and returns its SHA-256.
///
/// # Errors
/// I/O errors.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<String> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)))
}

/// fsyncs a directory, so that renames and new entries in it are durable.
///
/// # Errors
/// I/O errors.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
