//! Hashes of immutable storage files (tables, blob files) already read, by
//! (device, inode, size, modification time): a second snapshot hashes only
//! the tables written since the first, and a restore that links a set's
//! tables back into a database need not read them again.
//!
//! A kept hash stands for a file only while its inode, size and
//! modification time are unchanged; and it may only confirm a match: a file
//! whose kept hash differs from what a manifest says is read again before
//! anything is called damaged. Once [`keep_in`] named a file (the server's
//! data directory holds it), the hashes outlive the process.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// A file's identity: device, inode, size, modification time (ns).
type FileKey = (u64, u64, u64, i64);

/// Entries kept at most (about 100 bytes each).
const ENTRIES: usize = 200_000;

#[derive(Default)]
struct Kept {
    hashes: HashMap<FileKey, String>,
    /// Where they are kept across restarts (none: in memory only).
    file: Option<PathBuf>,
    /// Changed since last saved.
    dirty: bool,
}

fn kept() -> std::sync::MutexGuard<'static, Kept> {
    static KEPT: OnceLock<Mutex<Kept>> = OnceLock::new();
    KEPT.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key(meta: &std::fs::Metadata) -> FileKey {
    (meta.dev(), meta.ino(), meta.size(), meta.mtime_nsec().wrapping_add(meta.mtime().wrapping_mul(1_000_000_000)))
}

/// Keeps the hashes in `file` too, and reads what it holds (the first call
/// of a process decides; a file that does not parse is ignored line by line).
pub fn keep_in(file: PathBuf) {
    let mut kept = kept();
    if kept.file.is_some() {
        return;
    }
    if let Ok(text) = std::fs::read_to_string(&file) {
        for line in text.lines().take(ENTRIES) {
            if let Some((k, sha)) = parse_line(line) {
                kept.hashes.insert(k, sha);
            }
        }
    }
    kept.file = Some(file);
}

fn parse_line(line: &str) -> Option<(FileKey, String)> {
    let mut fields = line.split(' ');
    let k = (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?, fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
    let sha = fields.next()?;
    let valid = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) && fields.next().is_none();
    valid.then(|| (k, sha.to_string()))
}

/// The kept hash of a file, if it has not changed since it was read.
pub fn get(meta: &std::fs::Metadata) -> Option<String> {
    kept().hashes.get(&key(meta)).cloned()
}

/// How long ago a file must have been last written for its hash to be
/// kept: file systems stamp modification times from a clock that ticks
/// every few milliseconds (at most 10 at 100 Hz), so a write within the
/// same tick as the one before could leave the time unchanged; a write
/// after this long cannot.
pub const SETTLED: std::time::Duration = std::time::Duration::from_millis(10);

/// Keeps the hash of an immutable file just read (or written) in full;
/// not of a file written within [`SETTLED`].
pub fn remember(meta: &std::fs::Metadata, sha: &str) {
    let age = meta.modified().ok().and_then(|m| std::time::SystemTime::now().duration_since(m).ok());
    if age.is_none_or(|age| age < SETTLED) {
        return;
    }
    let mut kept = kept();
    if kept.hashes.len() >= ENTRIES {
        kept.hashes.clear();
    }
    kept.hashes.insert(key(meta), sha.to_string());
    kept.dirty = true;
}

/// Forgets every kept hash (the benchmark measures a first snapshot with none).
pub fn forget() {
    let mut kept = kept();
    kept.hashes.clear();
    kept.dirty = true;
}

/// Writes the hashes to their file, if any changed (a new file renamed into
/// place: a reader sees the old list or the new one). Failing is harmless:
/// what is not kept is read again.
pub fn save() {
    let mut kept = kept();
    let Some(file) = kept.file.clone().filter(|_| kept.dirty) else { return };
    let temp = file.with_extension("new");
    let written = (|| -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&temp)?);
        for ((dev, ino, size, mtime), sha) in &kept.hashes {
            writeln!(out, "{dev} {ino} {size} {mtime} {sha}")?;
        }
        out.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
        std::fs::rename(&temp, &file)
    })();
    match written {
        Ok(()) => kept.dirty = false,
        Err(e) => tracing::debug!(error = %e, file = %file.display(), "cannot keep the tables' hashes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_four_numbers_and_a_sha256_and_nothing_else() {
        let sha = "ab".repeat(32);
        assert_eq!(parse_line(&format!("1 2 3 -4 {sha}")), Some(((1, 2, 3, -4), sha.clone())));
        assert_eq!(parse_line(&format!("1 2 3 4 {sha} extra")), None);
        assert_eq!(parse_line(&format!("1 2 3 4 {}", "AB".repeat(32))), None, "lower-case hex only");
        assert_eq!(parse_line("1 2 3 4 abc"), None);
        assert_eq!(parse_line("x 2 3 4"), None);
    }
}
