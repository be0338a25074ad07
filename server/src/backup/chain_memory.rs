//! What this process has read and checked of the sets in object storage
//! whose chains it extends, so that an incremental asks the storage for
//! what is new rather than for the whole location again.
//!
//! Before an incremental extends a chain, its prepare lists the location,
//! reads every set's manifest (to group the chains), and checks the
//! structure of every set of the chain: its `SHA256SUMS` and a listing of its
//! files. In object storage each of those is a request, so with n sets in the
//! location every incremental made about 3n of them, and a continuous task
//! adds a set a run: its runs grew dearer with every run.
//!
//! A set is written once and never changed, so what was read and checked of
//! it stays true until someone else changes the storage. What is remembered
//! is still looked at again:
//! - each prepare lists the location, and a set that left the listing is
//!   forgotten at once (a deleted set breaks the chain as before);
//! - each prepare reads again, and checks again, the sets read longest ago,
//!   up to [`RECHECK_PER_RUN`] of those read more than [`RECHECK_AFTER`] ago,
//!   so damage behind the tip is found within n / 8 runs (and at once by
//!   every verification and restore, which read everything themselves);
//! - the tip, the set the incremental follows, is checked in full every
//!   time, as before (see [`super::prepare`](mod@super::prepare)).
//!
//! Folders are not remembered: reading them costs no round trips.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::location::{Location, StoredSet};

/// A remembered set is read and checked again once this old (at most
/// [`RECHECK_PER_RUN`] a prepare).
pub const RECHECK_AFTER: Duration = Duration::from_secs(60);
/// The most remembered sets one prepare reads again.
pub const RECHECK_PER_RUN: usize = 8;
/// The most sets remembered (of every location); past it the memory starts
/// again empty. An incremental's manifest is a few KiB.
const MOST_REMEMBERED: usize = 20_000;

/// A set as read, without the location it was read through (which holds a
/// client of the storage, and a job's cancel: neither is kept).
struct Remembered {
    manifest: super::format::Manifest,
    size_bytes: u64,
    manifest_sha256: Option<String>,
    read_at: Instant,
    /// Its structure was checked since it was read.
    checked: bool,
}

type Memory = HashMap<(String, String), Remembered>;

fn memory() -> std::sync::MutexGuard<'static, Memory> {
    static MEMORY: OnceLock<Mutex<Memory>> = OnceLock::new();
    MEMORY.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which storage and where: the endpoint, the bucket and the prefix.
fn key_of(location: &Location) -> Option<String> {
    match location {
        Location::Objects(o) => Some(o.identity()),
        Location::Folder(_) => None,
    }
}

fn recheck_after() -> Duration {
    Duration::from_secs(crate::failpoint::value("backup.recheck_after_seconds", RECHECK_AFTER.as_secs()))
}

/// The remembered sets among `listed` (set ids of one listing of
/// `location`), except the ones due to be read again; forgets the sets of
/// `location` that are no longer listed.
pub fn recall(location: &Location, listed: &[String]) -> HashMap<String, StoredSet> {
    let Some(key) = key_of(location) else { return HashMap::new() };
    let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
    let mut memory = memory();
    memory.retain(|(at, id), _| at != &key || listed.contains(id.as_str()));
    let read = memory.iter().filter(|((at, _), _)| at == &key).map(|((_, id), r)| (r.read_at, id.as_str()));
    let again = due_again(read, Instant::now(), recheck_after());
    memory
        .iter()
        .filter(|((at, id), _)| at == &key && !again.contains(id))
        .map(|((_, id), r)| {
            // Read through this location (its cancel, its lock) from now on.
            let set = StoredSet {
                location: location.clone(),
                manifest: r.manifest.clone(),
                size_bytes: r.size_bytes,
                manifest_sha256: r.manifest_sha256.clone(),
            };
            (id.clone(), set)
        })
        .collect()
}

/// Of the sets read at the given times, those to read again now: read at
/// least `after` ago, the [`RECHECK_PER_RUN`] read longest ago.
fn due_again<'a>(read: impl Iterator<Item = (Instant, &'a str)>, now: Instant, after: Duration) -> HashSet<String> {
    let mut due: Vec<(Instant, &str)> = read.filter(|(at, _)| now.saturating_duration_since(*at) >= after).collect();
    due.sort_unstable();
    due.into_iter().take(RECHECK_PER_RUN).map(|(_, id)| id.to_string()).collect()
}

/// Remembers sets just read from `location` (their structure not yet checked).
pub fn remember_read(location: &Location, sets: &[StoredSet]) {
    let Some(key) = key_of(location) else { return };
    let mut memory = memory();
    if memory.len() + sets.len() > MOST_REMEMBERED {
        memory.clear();
    }
    for set in sets {
        let remembered = Remembered {
            manifest: set.manifest.clone(),
            size_bytes: set.size_bytes,
            manifest_sha256: set.manifest_sha256.clone(),
            read_at: Instant::now(),
            checked: false,
        };
        memory.insert((key.clone(), set.manifest.set_id.clone()), remembered);
    }
}

/// Whether the structure of `set` (as remembered: the same manifest) was
/// checked since it was last read.
pub fn is_checked(set: &StoredSet) -> bool {
    let Some(key) = key_of(&set.location) else { return false };
    memory()
        .get(&(key, set.manifest.set_id.clone()))
        .is_some_and(|r| r.checked && r.manifest_sha256.is_some() && r.manifest_sha256 == set.manifest_sha256)
}

/// Notes that the structure of each of `sets` was checked and found whole.
pub fn remember_checked(sets: &[StoredSet]) {
    let mut memory = memory();
    for set in sets {
        let Some(key) = key_of(&set.location) else { continue };
        if let Some(r) = memory.get_mut(&(key, set.manifest.set_id.clone())) {
            if r.manifest_sha256 == set.manifest_sha256 {
                r.checked = true;
            }
        }
    }
}

/// Forgets a set this process deletes.
pub fn forget(location: &Location, set_id: &str) {
    if let Some(key) = key_of(location) {
        memory().remove(&(key, set_id.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sets_read_longest_ago_are_read_again_at_most_eight_at_a_time() {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let ids: Vec<String> = (0..12).map(|i| format!("set-{i:02}")).collect();
        // set-00 was read 11.5 minutes ago, each next one a minute later, set-11 30 s ago.
        let read = || -> Vec<(Instant, &str)> {
            ids.iter().enumerate().map(|(i, id)| (now - Duration::from_secs(690 - 60 * i as u64), id.as_str())).collect()
        };
        let mut again: Vec<String> = due_again(read().into_iter(), now, minute).into_iter().collect();
        again.sort();
        assert_eq!(again, ids[..8].to_vec(), "the 8 read longest ago");

        // With 5 minutes instead of one: only the 7 read at least that long ago.
        let mut again: Vec<String> = due_again(read().into_iter(), now, 5 * minute).into_iter().collect();
        again.sort();
        assert_eq!(again, ids[..7].to_vec(), "only those read at least 5 minutes ago");

        // Nothing is read again before its minute.
        assert!(due_again(read().into_iter(), now, 20 * minute).is_empty());
    }
}
