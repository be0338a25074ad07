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

/// One table of the scanned keyspace: where it is, its last key, and
/// whether the scan is the one bringing it into the page cache.
#[derive(Debug)]
struct Table {
    path: PathBuf,
    last: Vec<u8>,
    cold: bool,
}

/// The tables of a keyspace, in the order a scan passes their last keys.
#[derive(Debug, Default)]
pub struct DropBehind {
    tables: Vec<Table>,
    next: usize,
}

impl DropBehind {
    /// Takes note of `tables` (each file and its last key), sampling which
    /// are already in the page cache.
    pub fn new(tables: impl IntoIterator<Item = (PathBuf, Vec<u8>)>) -> Self {
        let mut tables: Vec<Table> = tables.into_iter().map(|(path, last)| Table { cold: !is_cached(&path), path, last }).collect();
        tables.sort_by(|a, b| a.last.cmp(&b.last));
        Self { tables, next: 0 }
    }

    /// The scan has reached `key`: every table that ends before it and that
    /// the scan brought in is dropped from the page cache.
    pub fn passed(&mut self, key: &[u8]) {
        while let Some(table) = self.tables.get(self.next).filter(|t| t.last.as_slice() < key) {
            if table.cold {
                drop_cached(&table.path);
            }
            self.next += 1;
        }
    }

    /// The scan is over: every table it brought in is dropped.
    pub fn finish(mut self) {
        for table in self.tables.drain(self.next..).filter(|t| t.cold) {
            drop_cached(&table.path);
        }
    }

    /// Tables that will be dropped behind the scan (for tests).
    #[must_use]
    pub fn cold_tables(&self) -> usize {
        self.tables.iter().filter(|t| t.cold).count()
    }
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
/// first, so that no sample finds the readahead of another. An unreadable
/// file counts as cached (left alone).
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

    /// Tables the scan brought in are dropped once it passes them, in the
    /// order of their last keys; a table cached before the scan stays.
    #[test]
    fn a_scan_drops_the_tables_it_brought_in_once_past_them_and_keeps_those_cached_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let [a, b, warm, canary] = ["1", "2", "3", "4"].map(|name| file_of(dir.path(), name, 1 << 20));
        for path in [&a, &b, &canary] {
            drop_cached(path);
        }
        std::fs::read(&warm).expect("reads");
        // Each look at a file that is not cached starts the kernel's readahead
        // in it, so each file below is looked at for "not cached" only once.
        if is_cached(&canary) || !is_cached(&warm) {
            // A filesystem where the page cache is not ours to see (tmpfs keeps
            // every page; some overlay filesystems refuse NOWAIT): nothing to test.
            eprintln!("skipped: the page cache of {} cannot be observed", dir.path().display());
            return;
        }
        let mut behind = DropBehind::new([(b.clone(), b"m".to_vec()), (a.clone(), b"f".to_vec()), (warm.clone(), b"z".to_vec())]);
        assert_eq!(behind.cold_tables(), 2);
        // The scan reads them (into the cache), as a scan would.
        for path in [&a, &b] {
            std::fs::read(path).expect("reads");
        }
        behind.passed(b"a");
        assert!(is_cached(&a) && is_cached(&b), "nothing is dropped before the scan passes a table's last key");
        behind.passed(b"g");
        assert!(!is_cached(&a), "the table ending at f is dropped once the scan is past it");
        assert!(is_cached(&b), "the table ending at m is still being read");
        behind.finish();
        assert!(!is_cached(&b), "the end of the scan drops the rest it brought in");
        assert!(is_cached(&warm), "a table cached before the scan is left in the cache");
    }
}
