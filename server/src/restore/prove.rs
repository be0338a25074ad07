//! Proving that a chain restores: what a restore drill and
//! `rookery-backup --verify --deep` both do. The chain is restored with the
//! restore engine unchanged into a scratch folder no client sees (every
//! file's hash, a snapshot's etag and count, and the newest set's
//! `ContentDigest` checked as any restore checks them), then every document
//! of the result is read back: a table that was damaged before it was
//! hashed into the set (bit rot, a forged set whose checksums were rewritten
//! to match) fails here, at its block checksum or at the count and digest
//! recomputed from the documents themselves.

use std::path::Path;

use super::build::{build, RestoreSummary};
use super::error::RestoreError;
use super::plan::{check_free_space, RestorePlan};
use crate::backup::error::BackupError;
use crate::jobs::CancelToken;
use crate::storage::{DigestKind, DocumentStore, Durability};

/// Restores `plan` into `scratch` (which must not exist or be empty) and
/// reads every document back. The caller removes `scratch`.
///
/// # Errors
/// Every error of a restore (`InsufficientSpace` before anything is
/// written); `ChecksumMismatch` when a block fails to read back;
/// `CorruptBackup` when the documents read back are not what the set recorded.
pub fn prove_chain(
    plan: &RestorePlan,
    scratch: &Path,
    master: Option<&crate::crypto::Key>,
    cancel: &CancelToken,
) -> Result<RestoreSummary, RestoreError> {
    check_free_space(plan, scratch)?;
    let summary = build(plan, scratch, false, master, cancel, &mut |_, _| {})?;
    crate::failpoint::hit("drill.after_restore");
    read_back(plan, scratch)?;
    Ok(summary)
}

/// Reads every document of the database restored in `dir` and compares
/// what it finds with what the chain's newest set recorded.
fn read_back(plan: &RestorePlan, dir: &Path) -> Result<(), RestoreError> {
    let tip = plan.last_set_id();
    let store = DocumentStore::open(dir, Durability::Os)?;
    // The digest the newest set recorded, in the hash it sums; with none
    // recorded, the store's own is what the documents must sum to.
    let recorded = plan.chain.last().and_then(|s| Some((s.manifest.content_digest.clone()?, s.manifest.digest_kind())));
    let (expected, kind) = recorded.unwrap_or_else(|| (store.content_digest().to_hex(), DigestKind::Xxh3));
    let found = store.read_back(kind).map_err(|e| {
        BackupError::ChecksumMismatch(format!("{tip}: the restored database does not read back (a damaged table in the set?): {e}"))
    })?;
    let mismatch = |what: String| -> RestoreError { BackupError::Corrupt(format!("{tip}: {what}")).into() };
    if found.documents != store.document_count() {
        return Err(mismatch(format!("{} documents read back, the restored database counts {}", found.documents, store.document_count())));
    }
    if found.changes != found.documents {
        return Err(mismatch(format!("{} documents read back but {} change-log entries", found.documents, found.changes)));
    }
    let actual = found.digest.to_hex();
    if actual != expected {
        return Err(mismatch(format!("the documents read back have content digest {actual}, the set recorded {expected}")));
    }
    Ok(())
}
