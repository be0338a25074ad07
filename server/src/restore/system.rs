//! The system database, restored offline into an empty data directory.

use std::path::Path;

use crate::backup::error::BackupError;
use crate::backup::format::SetKind;
use crate::backup::location::Location;
use crate::backup::sealed::SetSecret;
use crate::jobs::CancelToken;
use crate::storage::StorageError;

use super::build::{build_with, move_into_place, Progress, RestoreSummary};
use super::error::RestoreError;
use super::plan::{plan, ChainChoice};
use super::read::corrupt;

/// How far, and with what key, [`restore_system_database`] restores.
#[derive(Debug, Clone, Default)]
pub struct SystemRestore {
    /// Restore only up to this set id, or RFC 3339 time.
    pub up_to: Option<String>,
    /// The key or passphrase of an encrypted set.
    pub set_secret: Option<SetSecret>,
    /// Compact the restored database fully before it is opened.
    pub defrag: bool,
}

/// Restores the system database offline into the data directory `data_dir`
/// (which must not exist or be empty): no server may be running there. The
/// users and API keys of the newest set come back with it.
///
/// # Errors
/// Every error of [`plan`](fn@super::plan) and [`build`](fn@super::build); `DestinationNotEmpty`; `CorruptBackup` for a snapshot set.
pub fn restore_system_database(
    source: &Location,
    data_dir: &Path,
    options: &SystemRestore,
    progress: Progress<'_>,
) -> Result<RestoreSummary, RestoreError> {
    // The system database is never encrypted at rest; its set may be.
    if crate::storage::catalog::is_non_empty_dir(data_dir) || (data_dir.exists() && !data_dir.is_dir()) {
        return Err(StorageError::DestinationNotEmpty(data_dir.to_path_buf()).into());
    }
    // Only a chain of the system database, and only a logical one: the
    // server never takes a snapshot of it (its internal keyspace holds the
    // registry of databases and their paths, which a snapshot would carry).
    let choice = ChainChoice { up_to: options.up_to.as_deref(), database: Some(rookery_types::SYSTEM_DATABASE) };
    let plan = plan(source, choice, None, options.set_secret.as_ref())?;
    if let Some(first) = plan.chain.first().filter(|s| s.manifest.kind == SetKind::Snapshot) {
        return Err(corrupt(
            first,
            "manifest.json",
            "a snapshot set cannot become the system database (the server backs the system database up logically only)",
        ));
    }
    let created = !data_dir.exists();
    std::fs::create_dir_all(data_dir).map_err(|e| BackupError::Io(format!("cannot create '{}': {e}", data_dir.display())))?;
    let staging = data_dir.join(format!(".System.restoring-{}", uuid::Uuid::new_v4().simple()));
    let result =
        build_with(&plan, &staging, options.defrag, None, true, &CancelToken::default(), progress).and_then(|(mut summary, store)| {
            drop(store);
            let destination = data_dir.join("System");
            move_into_place(&staging, &destination)?;
            summary.location = destination;
            Ok(summary)
        });
    if result.is_err() {
        if created {
            let _ = std::fs::remove_dir_all(data_dir);
        } else if let Ok(entries) = std::fs::read_dir(data_dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    result
}
