//! What the engine does when it opens: jobs that a crash interrupted stop
//! saying `IsRunning`, and their unfinished files are removed.

use rookery_types::{BACKUP_STATUS_ID, RESTORE_STATUS_ID};

use crate::engine::Rookery;

impl Rookery {
    pub(crate) fn recover_interrupted_jobs(&self) {
        let system = self.catalog.system();
        for db in std::iter::once(system.clone()).chain(self.catalog.list()) {
            if crate::jobs::recover_interrupted(&db, BACKUP_STATUS_ID).is_some() {
                tracing::warn!(database = %db.name, "a backup was interrupted by a server stop");
            }
        }
        if crate::jobs::recover_interrupted(&system, rookery_types::COMPACT_STATUS_ID).is_some() {
            tracing::warn!("a compaction was interrupted by a server stop");
        }
        // The unfinished set folders come from the server's own records, never
        // from a document, and each is checked again before it is removed.
        let (data_dir, roots) = (self.config.data_dir.clone(), self.config.effective_backup_roots());
        crate::jobs::remove_unfinished_folders(&system, |path| {
            crate::backup::target::is_unfinished_set_folder(path, &data_dir, &roots)
                || crate::storage::files::is_staging_dir(path)
                || crate::tasks::drill::is_drill_scratch(path, &data_dir)
        });
        for db in std::iter::once(system.clone()).chain(self.catalog.list()) {
            if crate::jobs::recover_interrupted(&db, rookery_types::SMUGGLER_STATUS_ID).is_some() {
                tracing::warn!(database = %db.name, "an import was interrupted by a server stop; the documents written before it are kept");
            }
            if crate::jobs::recover_interrupted(&db, rookery_types::RESTORE_DOCUMENTS_STATUS_ID).is_some() {
                tracing::warn!(database = %db.name, "a restore of documents was interrupted by a server stop; the documents written before it are kept");
            }
        }
        remove_scratch(&self.config.data_dir);
        if crate::jobs::recover_interrupted(&system, RESTORE_STATUS_ID).is_some() {
            tracing::warn!("a restore was interrupted by a server stop; its files were removed");
        }
    }
}

/// Removes the scratch folders a stop left directly in the data directory:
/// of snapshot sets being read (`.browse-*`, made only by `browse`) and of
/// compactions (`.compact-*`, made only by `compact`).
fn remove_scratch(data_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else { return };
    let prefixes = [crate::browse::point::SCRATCH_PREFIX, crate::backup::compact::SCRATCH_PREFIX];
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name.to_str().is_some_and(|n| prefixes.iter().any(|p| n.starts_with(p)));
        if ours && entry.file_type().is_ok_and(|t| t.is_dir()) {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a scratch folder left by a stop");
            }
        }
    }
}
