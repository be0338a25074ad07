//! The restored database's files written to disk while the restore runs.
//!
//! The storage fsyncs each table it ingests when the table is complete, on
//! the ingesting thread: with nothing written before, every fsync of a
//! 64 MiB table waits for all of it (about 35 ms each here, half a second
//! of a 1 GB restore during which nothing is decoded or ingested). The page
//! cache does not start writing by itself below its dirty threshold (10% of
//! memory), so this thread does what RocksDB's `bytes_per_sync` does: every
//! [`TICK`], each file of the folder the database is built in that grew by
//! [`STEP`] gets the bytes it grew by queued for writeback, without waiting
//! for them (`storage::files::start_writeback`). The disk then writes while
//! the cores decode and ingest, and the storage's own fsyncs find little
//! left to do.
//!
//! Measured on a 1M-document restore (`perf sched`), the ingesting thread
//! waited on the disk 370 ms when this thread fsynced each 16 MiB every
//! 50 ms (one write in flight at a time, and none between two looks), and
//! 130 ms with writeback started every 4 MiB, every 10 ms.
//!
//! When nothing reads the new database before the restore ends (a full
//! set alone, or a chain merged and ingested once: see
//! [`WriteBehind::start`]), the same hint also drops from the page cache the
//! step before, written by now: a restore then keeps a few steps of each
//! file cached instead of the whole database, as PostgreSQL's bulk writes
//! keep to a small ring of buffers. A large restore does not push the other
//! databases' data out of the cache, and writes into the same few pages
//! again instead of taking fresh memory for every page. On this machine
//! (a virtual machine whose free memory goes back to its host) fresh memory
//! is slow to touch: `dd` wrote 5.5 GB into the page cache in 12.5 s, and
//! again right after in 2.8 s. A 5M-document restore (5.5 GB of tables)
//! took 6.2 to 7.2 s with the drop, 7.4 to 9.6 s without (five runs each,
//! taking turns), its system CPU 3.4 to 3.8 s against 5.1 to 9.4 s; at 1M
//! documents it took a median of 2% longer (freeing those pages is its own work
//! now, not that of whoever later needs the memory). The restored
//! database's first reads then come from the disk.
//!
//! It only ever opens files to read them and starts their writeback (and
//! drops clean pages): it changes nothing the storage writes, and an error
//! is ignored (the storage's own fsync is the one that counts).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Growth of a file whose writeback is started at once.
const STEP: u64 = 4 << 20;
/// How often the staging folder is looked at.
const TICK: Duration = Duration::from_millis(10);
/// Folders below the staging folder that are walked (`Databases/x/keyspaces/n/tables/id`).
const DEPTH: usize = 6;

/// The thread, stopped and joined on drop.
pub(super) struct WriteBehind {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl WriteBehind {
    /// Starts writing back the files that grow under `dir`, and with
    /// `drop_behind` dropping what they wrote from the cache a step behind:
    /// only for a build that never reads the database it writes (a restore
    /// that applies an incremental looks up every document it changes, and
    /// would read each from the disk). When no thread can be started the
    /// restore goes on without it.
    pub(super) fn start(dir: &Path, drop_behind: bool) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new().name("restore-sync".into()).spawn(move || run(&dir, drop_behind, &signal)).ok();
        Self { stop, thread }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(dir: &Path, drop_behind: bool, stop: &(Mutex<bool>, Condvar)) {
    let mut started: HashMap<PathBuf, Started> = HashMap::new();
    let (stopped, wake) = stop;
    loop {
        {
            let guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
            let (guard, _) = wake.wait_timeout_while(guard, TICK, |stopped| !*stopped).unwrap_or_else(PoisonError::into_inner);
            if *guard {
                return;
            }
        }
        write_back_grown(dir, DEPTH, drop_behind, &mut started);
    }
}

/// Where the writeback of a file was started the last time: `[from, to)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Started {
    from: u64,
    to: u64,
}

impl Started {
    /// The range to hint for a file now `size` bytes long, and what is then
    /// started; `None` before it grew by [`STEP`]. The range starts where
    /// the last one ended, or with `drop_behind` where the last one began:
    /// its pages, written back by now, are dropped (those still being
    /// written are kept, and stay cached).
    fn next(self, size: u64, drop_behind: bool) -> Option<((u64, u64), Self)> {
        (size >= self.to + STEP).then(|| {
            let from = if drop_behind { self.from } else { self.to };
            ((from, size), Self { from: self.to, to: size })
        })
    }
}

/// Starts the writeback of every file under `dir` that grew by [`STEP`]
/// since the last time, from where that one ended.
/// Hidden names (a chain restore's throw-away index in `.chain-*`, files
/// about to be renamed) are left alone: nothing there needs to be on disk;
/// so are files with more than one name (tables linked from a set).
fn write_back_grown(dir: &Path, depth: usize, drop_behind: bool, started: &mut HashMap<PathBuf, Started>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() && depth > 0 {
            write_back_grown(&path, depth - 1, drop_behind, started);
        } else if kind.is_file() {
            let Ok(meta) = entry.metadata() else { continue };
            // A file with another name is a table linked from a snapshot
            // set: nothing of it to write, and the hint would drop from the
            // cache the end that was read ahead for the database's open.
            if meta.nlink() > 1 {
                continue;
            }
            let Some(((from, to), now)) = started.get(&path).copied().unwrap_or_default().next(meta.len(), drop_behind) else {
                continue;
            };
            if let Ok(file) = std::fs::File::open(&path) {
                crate::storage::files::start_writeback(&file, from, to);
                started.insert(path, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_grew_by_a_step_is_written_back_and_one_that_did_not_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("a/b");
        std::fs::create_dir_all(&deep).expect("folders");
        std::fs::write(deep.join("big"), vec![1u8; usize::try_from(STEP).expect("fits")]).expect("write");
        std::fs::write(dir.path().join("small"), b"x").expect("write");
        std::fs::create_dir_all(dir.path().join(".chain-1")).expect("folders");
        std::fs::write(dir.path().join(".chain-1/big"), vec![1u8; usize::try_from(STEP).expect("fits")]).expect("write");
        // A table linked from a snapshot set (the set holds its other name).
        let set = tempfile::tempdir_in(dir.path().parent().expect("a parent")).expect("tempdir");
        std::fs::write(set.path().join("table"), vec![1u8; usize::try_from(STEP).expect("fits")]).expect("write");
        std::fs::hard_link(set.path().join("table"), deep.join("linked")).expect("link");
        let mut started = HashMap::new();
        write_back_grown(dir.path(), DEPTH, true, &mut started);
        assert_eq!(started.get(&deep.join("big")), Some(&Started { from: 0, to: STEP }));
        assert!(!started.contains_key(&deep.join("linked")), "a linked table is left alone (its cached end kept)");
        assert!(!started.contains_key(&dir.path().join("small")));
        assert!(!started.contains_key(&dir.path().join(".chain-1/big")), "a hidden folder is left alone");
        // Started and stopped: the drop joins the thread.
        drop(WriteBehind::start(dir.path(), true));
    }

    #[test]
    fn each_step_is_written_back_once_and_dropped_a_step_behind_only_when_asked() {
        let none = Started::default();
        assert_eq!(none.next(STEP - 1, true), None, "less than a step");
        let (range, first) = none.next(STEP, true).expect("a step");
        assert_eq!((range, first), ((0, STEP), Started { from: 0, to: STEP }));
        assert_eq!(first.next(2 * STEP - 1, true), None, "less than a step more");
        // The next step, and the one before it again: written back by now, dropped.
        let (range, second) = first.next(2 * STEP + 5, true).expect("a step");
        assert_eq!((range, second), ((0, 2 * STEP + 5), Started { from: STEP, to: 2 * STEP + 5 }));
        let (range, _) = second.next(3 * STEP + 5, true).expect("a step");
        assert_eq!(range, (STEP, 3 * STEP + 5), "never further back than the step before");
        // Without the drop, only what grew.
        let (range, _) = second.next(3 * STEP + 5, false).expect("a step");
        assert_eq!(range, (2 * STEP + 5, 3 * STEP + 5));
    }
}
