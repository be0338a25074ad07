//! Step 1 of a restore: choosing the chain and verifying it before anything is written.

use std::path::Path;

use crate::backup::error::BackupError;
use crate::backup::location::{scan, verify_links, verify_set, Depth, Location, StoredSet};
use crate::backup::sealed::{self, SetKey, SetSecret};

use super::error::RestoreError;

/// A verified chain, ready to restore.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub location: Location,
    /// The full set first, then its incrementals in order.
    pub chain: Vec<StoredSet>,
    /// The database key, when the backup is of an encrypted database.
    pub database_key: Option<crate::crypto::Key>,
    /// The key of each set of `chain` that is encrypted.
    pub set_keys: Vec<Option<crate::crypto::Key>>,
}

impl RestorePlan {
    /// The name of the database in the backup.
    #[must_use]
    pub fn database_name(&self) -> &str {
        self.chain.first().map_or("", |s| s.manifest.database_name.as_str())
    }

    /// The newest set that will be applied.
    #[must_use]
    pub fn last_set_id(&self) -> &str {
        self.chain.last().map_or("", |s| s.manifest.set_id.as_str())
    }

    /// Records to apply, for progress.
    #[must_use]
    pub fn total_records(&self) -> u64 {
        self.chain.iter().fold(0u64, |sum, s| sum.saturating_add(s.manifest.document_count).saturating_add(s.manifest.deletion_count))
    }
}

/// Which chain of a location, and how far: the newest, the one of a named
/// database, or the one ending at a set (or at the newest set created at
/// or before a time).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChainChoice<'a> {
    /// A set id, or an RFC 3339 time.
    pub up_to: Option<&'a str>,
    /// The name of the database in the sets (`SourceDatabaseName`).
    pub database: Option<&'a str>,
}

/// Step 1: picks the chain to restore from `location` and verifies it fully.
///
/// # Errors
/// `NoBackup`, `SetNotFound`, `AmbiguousBackup`, `BrokenChain`, `ChecksumMismatch`, `UnsupportedFormatVersion`.
pub fn plan(
    location: &Location,
    choice: ChainChoice<'_>,
    encryption_key: Option<&str>,
    set_secret: Option<&SetSecret>,
) -> Result<RestorePlan, RestoreError> {
    keyed(location, choose_chain(location, choice)?, encryption_key, set_secret)
}

/// As [`plan`], for a reader that checks every byte it reads against the
/// manifest (time travel): each set's checksum list and file sizes are not
/// read first (in object storage, two requests per set of the chain); a
/// missing or damaged file is found when a read needs it.
///
/// # Errors
/// As [`plan`].
pub fn plan_reads(
    location: &Location,
    choice: ChainChoice<'_>,
    encryption_key: Option<&str>,
    set_secret: Option<&SetSecret>,
) -> Result<RestorePlan, RestoreError> {
    keyed(location, choose(location, choice, false)?, encryption_key, set_secret)
}

fn keyed(
    location: &Location,
    chain: Vec<StoredSet>,
    encryption_key: Option<&str>,
    set_secret: Option<&SetSecret>,
) -> Result<RestorePlan, RestoreError> {
    let set_keys = set_keys(&chain, set_secret)?;
    let database_key = database_key(&chain, &set_keys, encryption_key)?;
    Ok(RestorePlan { location: location.clone(), chain, database_key, set_keys })
}

/// The chain to restore from `location` (see [`ChainChoice`]), its links,
/// file presence and sizes checked.
///
/// # Errors
/// `NoBackup`, `SetNotFound`, `AmbiguousBackup`, `BrokenChain`, `ChecksumMismatch`, `UnsupportedFormatVersion`.
pub fn choose_chain(location: &Location, choice: ChainChoice<'_>) -> Result<Vec<StoredSet>, RestoreError> {
    choose(location, choice, true)
}

/// [`choose_chain`]; `structure`: also each set's files against its checksum list, with their sizes.
fn choose(location: &Location, choice: ChainChoice<'_>, structure: bool) -> Result<Vec<StoredSet>, RestoreError> {
    if let Some(folder) = location.folder() {
        if !folder.is_dir() {
            return Err(BackupError::NoBackup(format!("'{}' is not a folder holding a backup", folder.display())).into());
        }
    }
    let mut scanned = scan(location)?;
    if let Some(name) = choice.database {
        let found = database_names(&scanned.chains);
        scanned.chains.retain(|c| c.database_name.eq_ignore_ascii_case(name));
        if scanned.chains.is_empty() {
            return Err(BackupError::NoBackup(format!(
                "'{location}' holds no chain of a database named '{}'{}",
                name.escape_debug(),
                if found.is_empty() { String::new() } else { format!(" (it holds {})", found.join(", ")) }
            ))
            .into());
        }
    }
    let by_set = choice.up_to.filter(|p| crate::backup::format::is_valid_set_id(p));
    // Without a set id, "the newest chain" or "the newest set before a time"
    // must be of one database: sets of a restored copy written into its
    // original's location never stand in for the original's.
    if by_set.is_none() {
        let ids: std::collections::BTreeSet<&str> = scanned.chains.iter().map(|c| c.database_id.as_str()).collect();
        if ids.len() > 1 {
            return Err(BackupError::Ambiguous(format!(
                "'{location}' holds backups of more than one database ({}): say which with SourceDatabaseName, or name a set with RestoreUpTo",
                database_names(&scanned.chains).join(", ")
            ))
            .into());
        }
    }
    // A time instead of a set id: the newest set created at or before it.
    let by_time;
    let up_to = match choice.up_to {
        Some(point) if by_set.is_none() => {
            let at: jiff::Timestamp = point.parse().map_err(|e| {
                RestoreError::InvalidRequest(format!(
                    "RestoreUpTo '{}' is neither a set id nor an RFC 3339 time: {e}",
                    point.escape_debug()
                ))
            })?;
            let created = |s: &StoredSet| s.manifest.created.parse::<jiff::Timestamp>().ok();
            by_time = scanned
                .chains
                .iter()
                .flat_map(|c| c.sets.iter())
                .filter_map(|s| created(s).filter(|c| *c <= at).map(|c| (c, s.manifest.set_id.clone())))
                .max()
                .map(|(_, id)| id)
                .ok_or_else(|| RestoreError::SetNotFound(format!("no complete set in '{location}' was created at or before {at}")))?;
            Some(by_time.as_str())
        }
        other => other,
    };
    let chain = match up_to {
        Some(set_id) => {
            let chain = scanned
                .chains
                .iter()
                .find(|c| c.sets.iter().any(|s| s.manifest.set_id == set_id))
                .ok_or_else(|| RestoreError::SetNotFound(format!("no complete chain in '{location}' holds the set '{set_id}'")))?;
            let end = chain.sets.iter().position(|s| s.manifest.set_id == set_id).unwrap_or(0);
            chain.sets[..=end].to_vec()
        }
        None => {
            let Some(chain) = scanned.newest_chain() else {
                if let Some(orphan) = scanned.orphans.first() {
                    return Err(BackupError::BrokenChain(format!(
                        "{}: its base set {} is missing",
                        orphan.manifest.set_id,
                        orphan.manifest.base_set_id.as_deref().unwrap_or("?")
                    ))
                    .into());
                }
                if let Some(problem) = scanned.problems.first() {
                    return Err(BackupError::from(problem.clone()).into());
                }
                return Err(BackupError::NoBackup(format!("no complete backup set in '{location}'")).into());
            };
            // Anything damaged in the location makes "the newest chain" uncertain:
            // restoring an older chain silently would restore old data. Refuse,
            // naming the damage; RestoreUpTo still restores a chosen set.
            if let Some(orphan) = scanned.orphans.first() {
                return Err(BackupError::BrokenChain(format!(
                    "{}: its base set {} is missing, so the newest chain may be incomplete; restore an earlier set with RestoreUpTo",
                    orphan.manifest.set_id,
                    orphan.manifest.base_set_id.as_deref().unwrap_or("?")
                ))
                .into());
            }
            if let Some(problem) = scanned.problems.first() {
                let mut problem = problem.clone();
                problem
                    .message
                    .push_str("; the newest chain may be incomplete: repair the location or restore an earlier set with RestoreUpTo");
                return Err(BackupError::from(problem).into());
            }
            chain.sets.clone()
        }
    };
    // What the chain adds up to must add up (progress, free space).
    let totals = chain.iter().try_fold((0u64, 0u64), |(bytes, records), set| {
        let m = &set.manifest;
        let set_bytes = m.files.iter().try_fold(0u64, |sum, f| sum.checked_add(f.size))?;
        Some((bytes.checked_add(set_bytes)?, records.checked_add(m.document_count)?.checked_add(m.deletion_count)?))
    });
    if totals.is_none() {
        return Err(BackupError::Corrupt(format!("'{location}': the chain's sizes or counts add up beyond any backup")).into());
    }
    // Cheap checks only (the 202 comes at once): links, presence and sizes of
    // every file, the checksum list against the manifest. Every file's hash is
    // checked by the job, once, while it streams (see `build`).
    let mut findings = verify_links(&chain);
    if structure {
        let per_set = crate::backup::concurrent::map(&chain, location.readers(), |set| verify_set(set, Depth::Structure));
        findings.extend(per_set.into_iter().flatten());
    }
    if let Some(first) = findings.into_iter().next() {
        return Err(BackupError::from(first).into());
    }
    Ok(chain)
}

/// The databases whose chains are in a listing: `Name` (and the start of its
/// id where two databases share a name), sorted.
fn database_names(chains: &[crate::backup::location::Chain]) -> Vec<String> {
    let mut ids: Vec<(&str, &str)> = chains.iter().map(|c| (c.database_name.as_str(), c.database_id.as_str())).collect();
    ids.sort_unstable();
    ids.dedup();
    let shared = |name: &str| ids.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count() > 1;
    ids.iter()
        .map(|(name, id)| if shared(name) { format!("{name} (id {})", id.get(..8).unwrap_or(id)) } else { (*name).to_string() })
        .collect()
}

/// The key of every encrypted set of the chain, checked before anything is written.
pub(crate) fn set_keys(chain: &[StoredSet], secret: Option<&SetSecret>) -> Result<Vec<Option<crate::crypto::Key>>, RestoreError> {
    // A chain is encrypted throughout or not at all: a plain set inside an
    // encrypted chain, or a plain chain where a key was given, is a set put
    // there by someone without the key.
    let sealed = |s: &StoredSet| s.manifest.encryption.as_ref().is_some_and(|e| e.get("Set").is_some());
    if let Some(plain) = chain.iter().find(|s| !sealed(s)) {
        if secret.is_some() || chain.iter().any(sealed) {
            return Err(BackupError::Corrupt(format!(
                "{}: a set that is not encrypted in a chain that should be (a key or passphrase was given, or other sets are encrypted); the location was tampered with",
                plain.manifest.set_id
            ))
            .into());
        }
    }
    chain
        .iter()
        .map(|set| match set.manifest.encryption.as_ref().and_then(|e| e.get("Set")) {
            None => Ok(None),
            Some(description) => {
                let secret = secret.ok_or(RestoreError::BackupKeyRequired)?;
                let key = SetKey::for_existing_set(description, secret)
                    .map_err(|e| RestoreError::InvalidEncryptionKey(format!("{}: {e}", set.manifest.set_id)))?;
                check_mac(set, &key)?;
                Ok(Some(key))
            }
        })
        .collect()
}

/// An encrypted set of format version 2 or later carries a MAC of its
/// manifest under the set key: without it, or with one that does not match,
/// the manifest was changed (counts, etags, links, file hashes): tampering.
fn check_mac(set: &StoredSet, key: &crate::crypto::Key) -> Result<(), RestoreError> {
    if set.manifest.format_version < 2 {
        return Ok(());
    }
    let tampered = |why: &str| -> RestoreError {
        BackupError::Corrupt(format!("{}/manifest.json: {why}; the set was tampered with", set.manifest.set_id)).into()
    };
    let mac = set.manifest.mac.as_deref().ok_or_else(|| tampered("an encrypted set without its Mac"))?;
    let canonical = set.manifest.canonical_bytes().map_err(|e| tampered(&e.to_string()))?;
    sealed::check_manifest_mac(key, &canonical, mac).map_err(|e| tampered(&e))
}

/// The key of an encrypted database's chain: from the request, else from the
/// set; checked against the set's key check before anything is written.
fn database_key(
    chain: &[StoredSet],
    set_keys: &[Option<crate::crypto::Key>],
    given: Option<&str>,
) -> Result<Option<crate::crypto::Key>, RestoreError> {
    let described = |s: &StoredSet| s.manifest.encryption.as_ref().and_then(|e| e.get("Database")).cloned();
    let Some(first) = chain.first().and_then(described) else {
        return Ok(None);
    };
    let check = first.get("KeyCheck").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let plain = chain.iter().filter_map(described).find_map(|d| d.get("Key").and_then(|k| k.as_str()).map(str::to_string));
    // In an encrypted set, the database key is sealed with the set key.
    let sealed = chain.iter().zip(set_keys).find_map(|(set, key)| {
        let sealed = described(set)?.get("SealedKey")?.as_str()?.to_string();
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sealed).ok()?;
        let opened = key.as_ref()?.open(crate::backup::sealed::SEALED_DATABASE_KEY_AAD, &raw).ok()?;
        String::from_utf8(opened).ok()
    });
    let from_set = plain.or(sealed);
    let text = match (given, from_set) {
        (Some(g), _) => g.to_string(),
        (None, Some(k)) => k,
        (None, None) => return Err(RestoreError::EncryptionKeyRequired),
    };
    let key = crate::crypto::Key::from_base64(&text).map_err(|e| RestoreError::InvalidEncryptionKey(format!("EncryptionKey: {e}")))?;
    if key.check() != check {
        return Err(RestoreError::InvalidEncryptionKey("This is not the key of the backed-up database.".into()));
    }
    Ok(Some(key))
}

/// Refuses a restore into `location` when its filesystem has less free space
/// than the bytes of the chain's files (a lower bound of what the database
/// will take: the sets are compressed).
///
/// # Errors
/// `InsufficientSpace`.
pub fn check_free_space(plan: &RestorePlan, location: &Path) -> Result<(), RestoreError> {
    let needed = plan.chain.iter().flat_map(|s| &s.manifest.files).fold(0u64, |sum, f| sum.saturating_add(f.size));
    let mut probe = location;
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p,
            None => return Ok(()),
        }
    }
    let Ok(stats) = rustix::fs::statvfs(probe) else { return Ok(()) };
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    if free < needed {
        return Err(RestoreError::InsufficientSpace(format!(
            "'{}' has {free} bytes free; the sets to restore alone take {needed}: free some space or choose another DatabaseLocation",
            probe.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_without_room_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest: crate::backup::format::Manifest = serde_json::from_value(serde_json::json!({
            "FormatVersion": 2, "ServerVersion": "t", "SetId": "20261126T050000Z-full", "DatabaseName": "D",
            "DatabaseId": "x", "Kind": "Full", "BaseSetId": null, "FromEtag": 0, "ToEtag": 1, "DocumentCount": 1,
            "DeletionCount": 0, "Created": "2026-11-26T05:00:00.000Z", "Compression": "zstd", "Encryption": null,
            "Files": [{"Name": "documents-0001.zst", "Size": u64::MAX / 2, "Sha256": "00", "Content": "Documents", "Records": 1}]
        }))
        .expect("a manifest");
        let set = StoredSet { location: Location::Folder(dir.path().to_path_buf()), manifest, size_bytes: 0, manifest_sha256: None };
        let plan = RestorePlan {
            location: Location::Folder(dir.path().to_path_buf()),
            chain: vec![set],
            database_key: None,
            set_keys: vec![None],
        };
        let err = check_free_space(&plan, &dir.path().join("new/db")).expect_err("no room");
        assert_eq!(err.code(), rookery_types::ErrorCode::InsufficientSpace);
        assert!(!dir.path().join("new").exists());
        let mut small = plan.clone();
        small.chain[0].manifest.files[0].size = 10;
        check_free_space(&small, &dir.path().join("new/db")).expect("room for 10 bytes");
    }
}
