//! Restore drills: a backup nobody restored is a hope. On its schedule a
//! task proves the newest chain of its database in its location restores
//! (see [`crate::restore::prove`]: the restore engine unchanged, into a
//! scratch folder that no client ever sees and that is never in the
//! catalog, then every document read back), removes it, and records the
//! outcome as the task's `LastDrill`.
//!
//! The scratch folder is recorded in the server's own state before it is
//! made (see [`crate::jobs::unfinished`]): a crash in the middle leaves a
//! record, and the next start removes the folder. A drill that fails, a
//! panic included, is recorded failed and runs again at its next scheduled
//! time, not sooner.
//!
//! A drill takes the restore slot only when it is free and only for its own
//! run: a user's restore waits at most its own `RestoreStartTimeout` for it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rookery_types::LastDrill;

use super::error::TaskError;
use super::record::StoredTask;
use crate::backup::location::scan;
use crate::engine::Rookery;
use crate::jobs::{format_rfc3339, CancelToken, UnfinishedFolder};
use crate::restore::plan::{plan, ChainChoice};
use crate::restore::prove::prove_chain;
use crate::storage::DatabaseHandle;

/// Prefix of a drill's scratch folder, in the data directory.
const SCRATCH_PREFIX: &str = ".drill-";

/// Whether `path` is a drill's scratch folder of the data directory
/// `data_dir` (`.drill-` and 32 hex digits): the only kind of folder a
/// start removes for an interrupted drill.
#[must_use]
pub fn is_drill_scratch(path: &Path, data_dir: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix(SCRATCH_PREFIX));
    let hex = name.is_some_and(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()));
    hex && crate::paths::resolve(path.parent().unwrap_or(path)).ok() == crate::paths::resolve(data_dir).ok()
}

/// The record of a drill whose thread panicked.
pub(crate) fn panicked() -> LastDrill {
    LastDrill {
        at: format_rfc3339(time::OffsetDateTime::now_utc()),
        set_id: None,
        success: false,
        duration_ms: 0,
        error: Some("The drill stopped unexpectedly (internal panic); see the server log.".into()),
    }
}

impl Rookery {
    /// Runs one drill of `stored` now, synchronously; `None` when the restore
    /// slot is busy (the drill stays due).
    pub(crate) fn run_drill(&self, db: &DatabaseHandle, stored: &StoredTask) -> Option<LastDrill> {
        let _slot = self.restore_slot.acquire(std::time::Duration::ZERO)?;
        let started = Instant::now();
        let scratch: PathBuf = self.config.data_dir.join(format!("{SCRATCH_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        let result = match UnfinishedFolder::record(self.catalog.system(), &scratch) {
            Ok(record) => {
                crate::failpoint::hit("drill.run");
                let result = self.drill_into(db, stored, &scratch);
                if let Err(e) = std::fs::remove_dir_all(&scratch) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(error = %e, dir = %scratch.display(), "cannot remove a drill's scratch folder");
                    }
                }
                drop(record);
                result
            }
            Err(e) => Err((None, format!("cannot record the drill's scratch folder: {e}"))),
        };
        let at = format_rfc3339(time::OffsetDateTime::now_utc());
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Some(match result {
            Ok(set_id) => LastDrill { at, set_id: Some(set_id), success: true, duration_ms, error: None },
            Err((set_id, e)) => {
                tracing::warn!(database = %db.name, task = %stored.name, error = %e, "a restore drill failed");
                LastDrill { at, set_id, success: false, duration_ms, error: Some(e) }
            }
        })
    }

    /// Proves the newest chain restores; the newest set's id, or (that id, why it failed).
    fn drill_into(&self, db: &DatabaseHandle, stored: &StoredTask, scratch: &Path) -> Result<String, (Option<String>, String)> {
        let fail = |set: Option<&str>, e: &dyn std::fmt::Display| (set.map(str::to_string), e.to_string());
        self.validate_task(db, &stored.name, &stored.task).map_err(|e| fail(None, &e))?;
        let location = self.open_backup_location(&stored.task.backup_location, None).map_err(|e| fail(None, &e))?;
        let scanned = scan(&location).map_err(|e| fail(None, &e))?;
        let chain = scanned
            .newest_chain_of(db.store().database_id())
            .ok_or_else(|| fail(None, &format!("no chain of database '{}' in {location}", db.name)))?;
        let tip = chain.sets.last().map(|s| s.manifest.clone()).ok_or_else(|| fail(None, &"an empty chain"))?;
        let set = Some(tip.set_id.as_str());
        let secret = self.task_secret(db, stored).map_err(|e: TaskError| fail(set, &e))?;
        // An encrypted database's key comes from the database itself when the set leaves it out.
        let key = db.store().database_key().map(|k| k.to_base64());
        let choice = ChainChoice { up_to: set, database: None };
        let plan = plan(&location, choice, key.as_deref(), secret.as_ref()).map_err(|e| fail(set, &e))?;
        let master = if plan.database_key.is_some() { self.catalog.master_key(true).map_err(|e| fail(set, &e))? } else { None };
        prove_chain(&plan, scratch, master.as_ref(), &CancelToken::default()).map_err(|e| fail(set, &e))?;
        Ok(tip.set_id)
    }
}
