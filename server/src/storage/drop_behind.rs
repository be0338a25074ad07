//! Pages a scan in key order has passed, dropped from the page cache.
//!
//! An export reads every document once, in id order. Its pages would stay in
//! the page cache afterwards, where nothing reads them again, and on a large
//! database they fill gigabytes of memory on their way. Each table the scan
//! brought into the cache is therefore dropped from it (`POSIX_FADV_DONTNEED`
//! through a descriptor of our own: the page cache is the file's, whoever
//! opened it) once the scan has passed the table's last key, so the cache
//! reuses a few tables' worth of pages instead.
//!
//! Measured here, reading a 5.7 GB data directory cold: 9.4 to 11.8 s while
//! its pages stayed cached, 3.1 to 3.4 s with each dropped behind the read
//! (`dd iflag=nocache`); at 1 GB both took 0.6 to 0.8 s. This machine's
//! guest returns freed memory to its host, so every page of a cache that
//! keeps growing is fresh memory faulted in again.
//!
//! A table whose pages were already cached before the scan began is left
//! as it is: the clients' reads put them there. Whether a table was cached is
//! sampled when the scan starts, by reads that never wait for the disk
//! (`RWF_NOWAIT`). Everything here is a hint: an error, a table compacted
//! away meanwhile, or a kernel without the calls changes nothing but the
//! cache.

use std::fs::File;
use std::path::PathBuf;

/// Places in each table sampled for "already cached".
const SAMPLES: u64 = 8;

/// Items of a scan between two looks at which tables it has passed.
const LOOK_EVERY: u64 = 4096;

/// One table of the scanned keyspace: where it is, its last key, and
/// whether the scan is the one bringing it into the page cache.
#[derive(Debug)]
struct Table {
    path: PathBuf,
    last: Vec<u8>,
    cold: bool,
}

/// The tables of a keyspace, in the order a scan passes their last keys.
#[derive(Debug)]
pub struct DropBehind {
    tables: Vec<Table>,
    next: usize,
    dropped: usize,
}

impl DropBehind {
    /// Takes note of `tables` (each file and its last key), sampling which
    /// are already in the page cache.
    pub fn new(tables: impl IntoIterator<Item = (PathBuf, Vec<u8>)>) -> Self {
        Self::of(tables.into_iter().map(|(path, last)| (!is_cached(&path), path, last)))
    }

    /// `tables` as `(cold, file, last key)`.
    fn of(tables: impl IntoIterator<Item = (bool, PathBuf, Vec<u8>)>) -> Self {
        let mut tables: Vec<Table> = tables.into_iter().map(|(cold, path, last)| Table { path, last, cold }).collect();
        tables.sort_by(|a, b| a.last.cmp(&b.last));
        Self { tables, next: 0, dropped: 0 }
    }

    /// The scan has reached `key`: every table that ends before it and that
    /// the scan brought in is dropped from the page cache.
    pub fn passed(&mut self, key: &[u8]) {
        while self.tables.get(self.next).is_some_and(|t| t.last.as_slice() < key) {
            self.drop_next();
        }
    }

    /// The scan is over: every table it brought in is dropped. Returns how
    /// many tables the scan dropped in all.
    pub fn finish(mut self) -> usize {
        while self.next < self.tables.len() {
            self.drop_next();
        }
        self.dropped
    }

    fn drop_next(&mut self) {
        let table = &self.tables[self.next];
        if table.cold {
            drop_cached(&table.path);
            self.dropped += 1;
        }
        self.next += 1;
    }
}

/// `scan` (items in key order) with `behind` dropping the tables it has
/// passed: every `LOOK_EVERY` items at the key `key` finds in the item
/// (an item without one, an error, is not looked at), and the rest once
/// the scan ends.
pub fn along<T>(behind: DropBehind, mut scan: impl Iterator<Item = T>, key: impl Fn(&T) -> Option<&[u8]>) -> impl Iterator<Item = T> {
    let mut behind = Some(behind);
    let mut read = 0u64;
    std::iter::from_fn(move || {
        let Some(item) = scan.next() else {
            if let Some(behind) = behind.take() {
                let dropped = behind.finish();
                tracing::debug!(tables = dropped, "a scan dropped the tables it read from the page cache");
            }
            return None;
        };
        if let (Some(behind), Some(key)) = (behind.as_mut(), key(&item)) {
            if read.is_multiple_of(LOOK_EVERY) {
                behind.passed(key);
            }
        }
        read += 1;
        Some(item)
    })
}

/// Whether a table whose keys run from `first` to `last` may hold keys
/// starting with `prefix`. A key at or above the prefix that does not start
/// with it sorts after every key that does.
#[must_use]
pub fn may_hold_prefix(first: &[u8], last: &[u8], prefix: &[u8]) -> bool {
    last >= prefix && (first <= prefix || first.starts_with(prefix))
}

/// Whether any of a few pages spread over the file is in the page cache.
/// A read with `RWF_NOWAIT` returns what is cached and fails rather than
/// wait for the disk, but it still starts the kernel's readahead from the
/// page it asked for, forward: the pages are sampled from the last to the
/// first, so that no sample finds the readahead of another. On a loaded
/// machine a sample's own readahead can finish before the read looks, and a
/// cold table is then taken for cached: it is left alone, the safe side. An
/// unreadable file counts as cached (left alone).
#[must_use]
pub fn is_cached(path: &std::path::Path) -> bool {
    let Ok(file) = File::open(path) else { return true };
    let size = file.metadata().map_or(0, |m| m.len());
    let mut page = [0u8; 4096];
    (0..SAMPLES).rev().any(|i| {
        let at = size / SAMPLES * i;
        let read = rustix::io::preadv2(&file, &mut [std::io::IoSliceMut::new(&mut page)], at, rustix::io::ReadWriteFlags::NOWAIT);
        match read {
            Ok(n) => n > 0,
            Err(rustix::io::Errno::AGAIN) => false,
            // NOWAIT unsupported (an old kernel or another filesystem): leave the table be.
            Err(_) => true,
        }
    })
}

/// Drops a file's clean pages from the page cache (dirty ones are kept).
pub fn drop_cached(path: &std::path::Path) {
    if let Ok(file) = File::open(path) {
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(dir: &std::path::Path, name: &str, bytes: usize) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![7u8; bytes]).expect("writes");
        File::open(&path).expect("opens").sync_all().expect("syncs");
        path
    }

    #[test]
    fn a_table_is_scanned_for_a_prefix_only_when_its_key_range_can_hold_it() {
        let holds = |first: &str, last: &str, prefix: &str| may_hold_prefix(first.as_bytes(), last.as_bytes(), prefix.as_bytes());
        assert!(holds("a", "z", ""), "every table holds the empty prefix");
        assert!(holds("orders/1", "orders/9", "orders/"));
        assert!(holds("a", "orders/1", "orders/"), "ends inside the prefix");
        assert!(holds("orders/5", "z", "orders/"), "starts inside the prefix");
        assert!(holds("a", "z", "orders/"), "spans the prefix");
        assert!(holds("orders/", "orders/", "orders/"), "the prefix itself is a key");
        assert!(!holds("a", "order", "orders/"), "ends before the prefix");
        assert!(!holds("ordert", "z", "orders/"), "starts after every key with the prefix");
        assert!(!holds("users/1", "users/9", "orders/"));
    }

    /// Cold tables are dropped once the scan passes their last key, in the
    /// order of their last keys; a warm table is never dropped.
    #[test]
    fn a_scan_drops_the_cold_tables_once_past_their_last_key_and_never_a_warm_one() {
        let table = |cold: bool, name: &str, last: &str| (cold, PathBuf::from(name), last.as_bytes().to_vec());
        let mut behind = DropBehind::of([table(true, "m", "m"), table(false, "warm", "h"), table(true, "f", "f"), table(true, "z", "z")]);
        behind.passed(b"a");
        assert_eq!(behind.dropped, 0, "nothing is dropped before the scan passes a table's last key");
        behind.passed(b"f");
        assert_eq!(behind.dropped, 0, "a table is dropped only once the scan is past its last key");
        behind.passed(b"g");
        assert_eq!((behind.dropped, behind.next), (1, 1), "the table ending at f is dropped");
        behind.passed(b"n");
        assert_eq!((behind.dropped, behind.next), (2, 3), "the warm table ending at h is passed, not dropped; m is dropped");
        assert_eq!(behind.finish(), 3, "the end of the scan drops the rest it brought in");
    }

    /// What the scan relies on from the kernel: a file read is seen cached,
    /// and `drop_cached` drops it.
    #[test]
    fn a_file_read_is_seen_cached_and_is_not_once_dropped() {
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file_of(dir.path(), "table", 1 << 20);
        let nowait = rustix::io::preadv2(
            File::open(&file).expect("opens"),
            &mut [std::io::IoSliceMut::new(&mut [0u8; 4096])],
            0,
            rustix::io::ReadWriteFlags::NOWAIT,
        );
        let filesystem = rustix::fs::statfs(dir.path()).expect("statfs").f_type;
        if u64::try_from(filesystem).ok() == Some(TMPFS_MAGIC) || nowait.is_err_and(|e| e != rustix::io::Errno::AGAIN) {
            // tmpfs keeps every page; without NOWAIT the cache cannot be seen.
            eprintln!("skipped: the page cache of {} cannot be observed", dir.path().display());
            return;
        }
        std::fs::read(&file).expect("reads");
        assert!(is_cached(&file), "a file just read is in the page cache");
        // A look at a file that is not cached starts the kernel's readahead
        // in it, which a loaded machine may finish before the look returns,
        // and a page locked at the moment of the drop stays: drop, then look,
        // until a look finds it gone.
        let dropped = (0..20).any(|_| {
            drop_cached(&file);
            !is_cached(&file)
        });
        assert!(dropped, "drop_cached left {} in the page cache", file.display());
    }
}
