//! A data file read on a thread of its own while the restore applies its
//! records: the SHA-256, the decryption and the zstd decoding of the next
//! records run on the second core while the storage ingests the last ones
//! (a restore has the machine to itself); the halves of an ingestion side
//! by side; and a full set's change log, ingested beside its documents.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;

use crate::backup::format::{DataRecord, FileContent};
use crate::storage::record::etag_key;
use crate::storage::store::BulkAccess;
use crate::storage::StorageError;

use super::error::RestoreError;
use super::read::{corrupt, read_file, Source};

/// Records handed over at a time.
const BATCH: usize = 1024;
/// Batches in flight between the reader and the restore.
const IN_FLIGHT: usize = 4;

/// Runs `read` (a reader of one data file that hands each record to the
/// function it is given, as [`super::read::read_file`] does) on one thread, `stage`
/// on each of its records on another, and gives what `stage` made of them,
/// in order, to `apply` here, with the same answers: a record `apply`
/// refuses is believed only after `read` has hashed the rest of the file
/// (damage is reported as damage); a cancel stops the reader at its next
/// batch.
///
/// # Errors
/// `read`'s errors, or `apply`'s refusal.
pub(crate) fn read_in_parallel<R: Send, T: Send>(
    read: impl FnOnce(&mut dyn FnMut(R) -> Result<(), RestoreError>) -> Result<u64, RestoreError> + Send,
    stage: &mut (dyn FnMut(R) -> T + Send),
    apply: &mut dyn FnMut(T) -> Result<(), RestoreError>,
) -> Result<u64, RestoreError> {
    let (tx, rx) = sync_channel::<Vec<R>>(IN_FLIGHT);
    let (staged, rx_staged) = sync_channel::<Vec<T>>(IN_FLIGHT);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("restore-read".into())
            .spawn_scoped(scope, move || {
                let mut batch = Vec::with_capacity(BATCH);
                let size = read(&mut |record| {
                    batch.push(record);
                    if batch.len() >= BATCH {
                        // The restore stopped taking records (canceled): stop reading.
                        tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).map_err(|_| RestoreError::Canceled)?;
                    }
                    Ok(())
                })?;
                tx.send(batch).map_err(|_| RestoreError::Canceled)?;
                Ok(size)
            })
            .map_err(thread_failed)?;
        // It ends when the reader does, or when the restore stops taking batches.
        std::thread::Builder::new()
            .name("restore-stage".into())
            .spawn_scoped(scope, move || {
                for batch in rx {
                    if staged.send(batch.into_iter().map(&mut *stage).collect()).is_err() {
                        break;
                    }
                }
            })
            .map_err(thread_failed)?;
        let rx = rx_staged;
        let mut refused = None;
        'batches: for batch in rx {
            for record in batch {
                if refused.is_some() {
                    break;
                }
                match apply(record) {
                    Ok(()) => {}
                    // Dropping the receiver (leaving the loop) stops the reader.
                    Err(RestoreError::Canceled) => {
                        refused = Some(RestoreError::Canceled);
                        break 'batches;
                    }
                    Err(e) => refused = Some(e),
                }
            }
        }
        let read: Result<u64, RestoreError> =
            reader.join().unwrap_or_else(|_| Err(RestoreError::InvalidRequest("the reading thread failed".into())));
        match (read, refused) {
            (_, Some(RestoreError::Canceled)) => Err(RestoreError::Canceled),
            // Damage found by the hash wins over a refusal of what the damage made.
            (Err(e), _) | (Ok(_), Some(e)) => Err(e),
            (Ok(size), None) => Ok(size),
        }
    })
}

/// A restore's thread that could not be started.
pub(super) fn thread_failed(e: std::io::Error) -> RestoreError {
    RestoreError::InvalidRequest(format!("cannot start a restore thread: {e}"))
}

/// Documents between two reports of progress (a report reads the clock,
/// and asks whether the restore was canceled).
pub(super) const REPORT_EVERY: u64 = 16;

/// The documents of one ingestion, checked as they go in: ids strictly
/// ascending (a sorted run's ingestion would panic on any other order),
/// counted with their bytes, the first id and the last one kept. The
/// restore of a full set and the merge of a chain both write through it.
#[derive(Default)]
pub(super) struct Written {
    first_id: Option<String>,
    last_id: Option<String>,
    pub(super) count: u64,
    pub(super) data_bytes: u64,
}

impl Written {
    /// Counts `id` with its stored value's `len` when it comes after the
    /// last id written: false, and nothing counted, when it does not.
    pub(super) fn follows(&mut self, id: &str, len: usize) -> bool {
        if self.last_id.as_deref().is_some_and(|last| last >= id) {
            return false;
        }
        self.data_bytes += (id.len() + len) as u64;
        self.count += 1;
        true
    }

    /// `id`, which [`Self::follows`] took, is written.
    pub(super) fn wrote(&mut self, id: String) {
        if self.first_id.is_none() {
            self.first_id = Some(id.clone());
        }
        self.last_id = Some(id);
    }

    /// The first id written and the last, when any was.
    pub(super) fn ids(self) -> Option<(String, String)> {
        self.first_id.zip(self.last_id)
    }
}

/// What the ingestions of a restore running side by side have read so far,
/// for the one that reports progress.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) documents: AtomicU64,
    pub(super) bytes: AtomicU64,
}

impl Counters {
    /// One more document (`unreported` counts those not yet added):
    /// added and reported every [`REPORT_EVERY`].
    ///
    /// # Errors
    /// What `report` refused with (a cancel).
    pub(super) fn document(&self, unreported: &mut u64, report: &mut dyn FnMut() -> Result<(), RestoreError>) -> Result<(), RestoreError> {
        *unreported += 1;
        if *unreported < REPORT_EVERY {
            return Ok(());
        }
        self.documents.fetch_add(std::mem::take(unreported), Ordering::Relaxed);
        report()
    }

    /// A file read to its end, `size` bytes: the documents left added, and reported.
    ///
    /// # Errors
    /// What `report` refused with (a cancel).
    pub(super) fn file_read(
        &self,
        unreported: &mut u64,
        size: u64,
        report: &mut dyn FnMut() -> Result<(), RestoreError>,
    ) -> Result<(), RestoreError> {
        self.documents.fetch_add(std::mem::take(unreported), Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        report()
    }
}

/// A half of a restore's ingestion, given what it reports to: progress (and
/// a cancel) for the first, whether to stop for the second.
pub(super) type Report<'a> = &'a mut dyn FnMut() -> Result<(), RestoreError>;

/// Two halves of a restore's ingestion side by side: `second` (when there
/// is one) on a thread of its own in `scope`, `first` here. A half that
/// fails sets `stop`, which stops the other; the second half also stops on
/// `cancel` (the first answers it through its own progress). Both results,
/// or the error that stopped them: a real error before the cancel it caused
/// in the other half.
///
/// # Errors
/// Either half's error, or a thread that could not be started.
pub(super) fn side_by_side<'scope, T, F>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    stop: &'scope AtomicBool,
    cancel: &'scope crate::jobs::CancelToken,
    second: Option<F>,
    first: impl FnOnce() -> Result<T, RestoreError>,
) -> Result<(T, T), RestoreError>
where
    T: Send + Default + 'scope,
    F: FnOnce(Report<'_>) -> Result<T, RestoreError> + Send + 'scope,
{
    let failed = |half: Result<T, RestoreError>| {
        if half.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        half
    };
    let second = second
        .map(|half| {
            std::thread::Builder::new().name("restore-documents".into()).spawn_scoped(scope, move || {
                let mut stopped =
                    || if stop.load(Ordering::Relaxed) || cancel.is_canceled() { Err(RestoreError::Canceled) } else { Ok(()) };
                failed(half(&mut stopped))
            })
        })
        .transpose()
        .map_err(thread_failed)?;
    let first = failed(first());
    let second = second.map_or_else(
        || Ok(T::default()),
        |second| second.join().unwrap_or_else(|_| Err(RestoreError::InvalidRequest("a restore thread failed".into()))),
    );
    match (first, second) {
        (Err(RestoreError::Canceled), Err(e)) | (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(first), Ok(second)) => Ok((first, second)),
    }
}

/// A full set's whole change log ingested on a thread of its own, beside
/// the documents of a full set's restore or the merge of a chain's.
pub(super) struct LogBeside<'scope>(std::thread::ScopedJoinHandle<'scope, Result<u64, RestoreError>>);

impl<'scope> LogBeside<'scope> {
    /// Starts the log's ingestion in `scope`; it runs until `stop` (the
    /// documents failed or the restore was canceled).
    ///
    /// # Errors
    /// A thread that could not be started.
    pub(super) fn start(
        scope: &'scope std::thread::Scope<'scope, '_>,
        bulk: &'scope BulkAccess<'_>,
        source: &'scope Source<'_>,
        stop: &'scope AtomicBool,
    ) -> Result<Self, RestoreError> {
        std::thread::Builder::new()
            .name("restore-changes".into())
            .spawn_scoped(scope, move || ingest_change_log(bulk, source, stop))
            .map(Self)
            .map_err(thread_failed)
    }

    /// The bytes of the log read, or what stopped its ingestion.
    ///
    /// # Errors
    /// Damage, storage errors, `Canceled`.
    pub(super) fn join(self) -> Result<u64, RestoreError> {
        self.0.join().unwrap_or_else(|_| Err(RestoreError::InvalidRequest("the change log's thread failed".into())))
    }
}

/// A full set's whole change log, ingested as one run until `stop`: the bytes read.
fn ingest_change_log(bulk: &BulkAccess<'_>, source: &Source<'_>, stop: &AtomicBool) -> Result<u64, RestoreError> {
    let set = source.set;
    let mut changes = bulk.changes().start_ingestion().map_err(StorageError::from)?;
    let mut last_etag = 0u64;
    let mut bytes = 0;
    for file in set.manifest.files.iter().filter(|f| f.content == FileContent::ChangeLog) {
        bytes += read_in_parallel(|each| read_file(source, &file.name, &file.sha256, each), &mut |record| record, &mut |record| {
            if stop.load(Ordering::Relaxed) {
                return Err(RestoreError::Canceled);
            }
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
    Ok(bytes)
}
