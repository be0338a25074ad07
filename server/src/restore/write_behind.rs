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
//! It only ever opens files to read them and starts their writeback: it
//! changes nothing the storage writes, and an error is ignored (the
//! storage's own fsync is the one that counts).

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
    /// Starts writing back the files that grow under `dir`. When no thread can be
    /// started the restore goes on without it.
    pub(super) fn start(dir: &Path) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new().name("restore-sync".into()).spawn(move || run(&dir, &signal)).ok();
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

fn run(dir: &Path, stop: &(Mutex<bool>, Condvar)) {
    let mut started: HashMap<PathBuf, u64> = HashMap::new();
    let (stopped, wake) = stop;
    loop {
        {
            let guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
            let (guard, _) = wake.wait_timeout_while(guard, TICK, |stopped| !*stopped).unwrap_or_else(PoisonError::into_inner);
            if *guard {
                return;
            }
        }
        write_back_grown(dir, DEPTH, &mut started);
    }
}

/// Starts the writeback of every file under `dir` that grew by [`STEP`]
/// since the last time, from where that one ended.
/// Hidden names (a chain restore's throw-away index in `.chain-*`, files
/// about to be renamed) are left alone: nothing there needs to be on disk;
/// so are files with more than one name (tables linked from a set).
fn write_back_grown(dir: &Path, depth: usize, started: &mut HashMap<PathBuf, u64>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() && depth > 0 {
            write_back_grown(&path, depth - 1, started);
        } else if kind.is_file() {
            let Ok(meta) = entry.metadata() else { continue };
            // A file with another name is a table linked from a snapshot
            // set: nothing of it to write, and the hint would drop from the
            // cache the end that was read ahead for the database's open.
            if meta.nlink() > 1 {
                continue;
            }
            let size = meta.len();
            let last = started.get(&path).copied().unwrap_or(0);
            if size >= last + STEP {
                if let Ok(file) = std::fs::File::open(&path) {
                    crate::storage::files::start_writeback(&file, last, size);
                    started.insert(path, size);
                }
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
        write_back_grown(dir.path(), DEPTH, &mut started);
        assert_eq!(started.get(&deep.join("big")), Some(&STEP));
        assert!(!started.contains_key(&deep.join("linked")), "a linked table is left alone (its cached end kept)");
        assert!(!started.contains_key(&dir.path().join("small")));
        assert!(!started.contains_key(&dir.path().join(".chain-1/big")), "a hidden folder is left alone");
        // Started and stopped: the drop joins the thread.
        drop(WriteBehind::start(dir.path()));
    }
}
