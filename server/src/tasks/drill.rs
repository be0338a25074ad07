//! Restore drills: a backup nobody restored is a hope. On its schedule a
//! task restores the newest chain of its database in its location into a
//! scratch folder that no client ever sees (it is never in the catalog),
//! with the restore engine unchanged, which checks the result against what
//! the chain's newest manifest recorded (every file's hash, a full set's
//! `DocumentCount`, the `ToEtag`, the `ContentDigest`), and removes it. The
//! outcome is the task's `LastDrill`.
//!
//! A drill takes the restore slot only when it is free and only for its own
//! run: a user's restore waits at most its own `RestoreStartTimeout` for it.

use std::path::Path;
use std::time::Instant;

use app::api::LastDrill;

use super::{StoredTask, TaskError};
use crate::backup::location::scan;
use crate::jobs::{format_rfc3339, CancelToken};
use crate::restore::{build, plan};
use crate::storage::DatabaseHandle;
use crate::Rookery;

impl Rookery {
    /// Runs one drill of `stored` now, synchronously; `None` when the restore
    /// slot is busy (the drill stays due).
    pub(crate) fn run_drill(&self, db: &DatabaseHandle, stored: &StoredTask) -> Option<LastDrill> {
        let _slot = self.restore_slot.acquire(std::time::Duration::ZERO)?;
        let started = Instant::now();
        let scratch = self.config.data_dir.join(format!(".drill-{}", uuid::Uuid::new_v4().simple()));
        let result = self.drill_into(db, stored, &scratch);
        if let Err(e) = std::fs::remove_dir_all(&scratch) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, dir = %scratch.display(), "cannot remove a drill's scratch folder");
            }
        }
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

    /// Restores and checks; the newest set's id, or (that id, why it failed).
    fn drill_into(&self, db: &DatabaseHandle, stored: &StoredTask, scratch: &Path) -> Result<String, (Option<String>, String)> {
        let fail = |set: Option<&str>, e: &dyn std::fmt::Display| (set.map(str::to_string), e.to_string());
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
        let plan = plan(&location, set, key.as_deref(), secret.as_ref()).map_err(|e| fail(set, &e))?;
        let master = if plan.database_key.is_some() { self.catalog.master_key(true).map_err(|e| fail(set, &e))? } else { None };
        // The restore engine checks what the set recorded (see `restore::build`).
        build(&plan, scratch, false, master.as_ref(), &CancelToken::default(), &mut |_, _| {}).map_err(|e| fail(set, &e))?;
        Ok(tip.set_id)
    }
}
