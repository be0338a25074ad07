//! Chains opened for reading, kept a little while: a user browsing a point
//! reads page after page and document after document of one chain, and
//! opening it (its manifests, its index tables, a snapshot base placed in a
//! scratch folder, a passphrase stretched) costs far more than one read.
//!
//! An opened chain is kept for [`KEPT_FOR`] after its last use, at most
//! [`KEPT_CHAINS`] of them, under a SHA-256 of everything that chose it (the
//! location, the point, the database, and the secrets, which are never kept
//! themselves). Before it is used again, the location's set names are listed
//! (one request in object storage) and compared with those it was opened
//! with: a new set, or one retention removed, opens the chain again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{open, PointChoice, PointReader};
use crate::backup::location::Location;
use crate::restore::RestoreError;

/// How long an unused opened chain is kept.
pub const KEPT_FOR: Duration = Duration::from_secs(60);
/// The most opened chains kept at once.
pub const KEPT_CHAINS: usize = 4;

struct Entry {
    key: [u8; 32],
    names: BTreeSet<String>,
    reader: Arc<Mutex<PointReader>>,
    used: Instant,
}

/// The opened chains of a server.
#[derive(Default)]
pub struct OpenedChains {
    entries: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for OpenedChains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedChains").finish_non_exhaustive()
    }
}

impl OpenedChains {
    /// Runs `read` on the chain `choice` names in `location`, opened now or kept from before.
    ///
    /// # Errors
    /// As [`open`], and `read`'s.
    pub fn read<T>(
        &self,
        location: &Location,
        choice: PointChoice<'_>,
        read: impl FnOnce(&mut PointReader) -> Result<T, RestoreError>,
    ) -> Result<T, RestoreError> {
        let key = key_of(location, &choice);
        let names = location.names()?;
        let reader = match self.kept(&key, &names) {
            Some(reader) => reader,
            None => {
                let reader = Arc::new(Mutex::new(open(location, choice)?));
                self.keep(Entry { key, names, reader: reader.clone(), used: Instant::now() });
                reader
            }
        };
        let mut reader = reader.lock().unwrap_or_else(PoisonError::into_inner);
        read(&mut reader)
    }

    /// The kept reader under `key`, if the location still holds the sets it was opened with.
    fn kept(&self, key: &[u8; 32], names: &BTreeSet<String>) -> Option<Arc<Mutex<PointReader>>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| e.used.elapsed() < KEPT_FOR && (e.key != *key || e.names == *names));
        let entry = entries.iter_mut().find(|e| e.key == *key)?;
        entry.used = Instant::now();
        Some(entry.reader.clone())
    }

    fn keep(&self, entry: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| e.key != entry.key);
        if entries.len() >= KEPT_CHAINS {
            if let Some(oldest) = entries.iter().enumerate().min_by_key(|(_, e)| e.used).map(|(i, _)| i) {
                entries.remove(oldest);
            }
        }
        entries.push(entry);
    }
}

/// A digest of what chose a chain (the secrets enter it, and only it).
fn key_of(location: &Location, choice: &PointChoice<'_>) -> [u8; 32] {
    let mut hash = Sha256::new();
    let secret = choice.secret.map(|s| match s {
        crate::backup::sealed::SetSecret::Key(k) => format!("key:{k}"),
        crate::backup::sealed::SetSecret::Passphrase(p) => format!("passphrase:{p}"),
    });
    for part in [
        Some(location.to_string()),
        choice.up_to.map(str::to_string),
        choice.database.map(str::to_string),
        choice.encryption_key.map(str::to_string),
        secret,
    ] {
        let part = part.unwrap_or_default();
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}
