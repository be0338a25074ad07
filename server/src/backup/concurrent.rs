//! Reads that wait on a network, issued side by side.
//!
//! Object storage answers each request after a round trip (milliseconds in
//! a region, more across one); reading a chain's 25 manifests, or the index
//! blocks and frames of 100 documents, one request after another spends
//! nearly all its time waiting. [`map`] runs such reads on a few threads and
//! returns the results in the order of the inputs. A folder gains less (a
//! cold page cache still waits on the disk); with `workers` 1 everything
//! runs on the caller's thread.
//!
//! [`beside`] is the other shape: one stream (a scan of the storage, the
//! decoding of a chain) produced on a thread of its own while the caller
//! consumes it on another core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Requests in flight at once against object storage.
pub const OBJECT_WORKERS: usize = 16;
/// Reads at once from a folder.
pub const FOLDER_WORKERS: usize = 4;

/// The cores this process may run on (2 when that cannot be told).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// `f` applied to every item, on up to `workers` threads; results in input order.
pub fn map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = f(item);
                out.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(result);
            });
        }
    });
    out.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).into_iter().map(|r| r.expect("every item was mapped")).collect()
}

/// `f` applied to every item (see [`map`]), stopping at the first error in input order.
///
/// # Errors
/// The first item's error, in input order.
pub fn try_map<T: Sync, R: Send, E: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> Result<R, E> + Sync) -> Result<Vec<R>, E> {
    map(items, workers, f).into_iter().collect()
}

/// How [`beside`] hands its items over: batches of at most `items` items
/// or `bytes` bytes, at most `in_flight` of them waiting.
#[derive(Debug, Clone, Copy)]
pub struct Batches {
    pub items: usize,
    pub bytes: usize,
    pub in_flight: usize,
}

/// `items` produced on a thread of its own (named `name`) within `scope`,
/// handed over in order in [`Batches`] (`bytes` weighs an item): an
/// iterator of them. An error is handed over at once and ends the thread,
/// as does the iterator's drop (the consumer failed), at the next batch.
///
/// # Errors
/// A thread that could not be started.
pub fn beside<'scope, T: Send + 'scope, E: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    items: impl Iterator<Item = Result<T, E>> + Send + 'scope,
    batches: Batches,
    bytes: impl Fn(&T) -> usize + Send + 'scope,
) -> std::io::Result<impl Iterator<Item = Result<T, E>> + 'scope> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Result<T, E>>>(batches.in_flight);
    std::thread::Builder::new().name(name.into()).spawn_scoped(scope, move || {
        let (mut batch, mut weight) = (Vec::with_capacity(batches.items), 0usize);
        for item in items {
            let failed = item.is_err();
            weight += item.as_ref().map_or(0, &bytes);
            batch.push(item);
            if failed || batch.len() >= batches.items || weight >= batches.bytes {
                weight = 0;
                if tx.send(std::mem::replace(&mut batch, Vec::with_capacity(batches.items))).is_err() || failed {
                    return;
                }
            }
        }
        let _ = tx.send(batch);
    })?;
    Ok(rx.into_iter().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item arrives in order across many batches; once the consumer
    /// drops the iterator (it failed), the producer stops at its next batch
    /// instead of reading on to the end; an error ends it at once.
    #[test]
    fn a_stream_beside_keeps_the_order_and_stops_when_its_consumer_does() {
        let batches = Batches { items: 256, bytes: usize::MAX, in_flight: 8 };
        let n = (batches.items * batches.in_flight * 3 + 7) as u64;
        let all: Vec<u64> = std::thread::scope(|scope| {
            beside(scope, "test", (0..n).map(Ok::<_, ()>), batches, |_| 0).expect("starts").map(Result::unwrap).collect()
        });
        assert_eq!(all, (0..n).collect::<Vec<_>>());

        let read = AtomicUsize::new(0);
        let long = (0..10_000_000u64).map(Ok::<_, ()>).inspect(|_| {
            read.fetch_add(1, Ordering::Relaxed);
        });
        std::thread::scope(|scope| {
            let mut stream = beside(scope, "test", long, batches, |_| 0).expect("starts");
            assert_eq!(stream.by_ref().take(10).map(Result::unwrap).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        });
        // The scope's end joined the producer: it read no more than the
        // batches the channel held, the one the consumer had taken, the one
        // waiting to be sent and the one it was filling.
        assert!(read.load(Ordering::Relaxed) <= batches.items * (batches.in_flight + 3));

        let read = AtomicUsize::new(0);
        let failing = (0..10_000_000u64).map(|i| if i == 5 { Err(i) } else { Ok(i) }).inspect(|_| {
            read.fetch_add(1, Ordering::Relaxed);
        });
        let got: Vec<Result<u64, u64>> =
            std::thread::scope(|scope| beside(scope, "test", failing, batches, |_| 0).expect("starts").collect());
        assert_eq!(got, vec![Ok(0), Ok(1), Ok(2), Ok(3), Ok(4), Err(5)]);
        assert_eq!(read.load(Ordering::Relaxed), 6, "nothing is read past an error");
    }

    #[test]
    fn results_keep_the_order_of_the_inputs() {
        let items: Vec<u32> = (0..100).collect();
        for workers in [1, 3, OBJECT_WORKERS] {
            assert_eq!(map(&items, workers, |i| i * 2), items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
        assert!(map(&[] as &[u32], 4, |i| *i).is_empty());
        assert_eq!(try_map(&items, 4, |&i| if i == 7 || i == 50 { Err(i) } else { Ok(i) }), Err(7));
    }
}
