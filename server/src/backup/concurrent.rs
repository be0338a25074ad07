//! Reads that wait on a network, issued side by side.
//!
//! Object storage answers each request after a round trip (milliseconds in
//! a region, more across one); reading a chain's 25 manifests, or the index
//! blocks and frames of 100 documents, one request after another spends
//! nearly all its time waiting. [`map`] runs such reads on a few threads and
//! returns the results in the order of the inputs. A folder gains less (a
//! cold page cache still waits on the disk); with `workers` 1 everything
//! runs on the caller's thread.

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

#[cfg(test)]
mod tests {
    use super::*;

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
