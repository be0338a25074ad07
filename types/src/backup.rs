//! Backups: the request, object storage settings, compaction, and the
//! listing of a location's sets.

use serde::{Deserialize, Serialize};

/// Body of `POST {base}/admin/backup`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct BackupRequest {
    /// An absolute folder on the server, or `s3://bucket/prefix`, inside a backup root.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, min_length = 1, pattern = "^(/|s3://)"))]
    pub backup_location: String,
    /// Object storage settings for an `s3://` location (default: the server's `AWS_*` variables).
    #[serde(default, rename = "S3", skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Settings>,
    /// Encrypted databases only: put the database key in the set (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_encryption_key: Option<bool>,
    /// Base64 of 32 bytes: encrypt the set's data files with this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9+/]{43}=$"))]
    pub backup_encryption_key: Option<String>,
    /// Encrypt the set's data files with a key derived from this passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub backup_passphrase: Option<String>,
    /// `Backup` (default) or `Snapshot` (a full set of the storage files;
    /// with `incremental=true`, an incremental still continues the chain).
    #[serde(default, skip_serializing_if = "BackupType::is_backup")]
    pub backup_type: BackupType,
    /// At most this many bytes a second written into the set (a cap on the
    /// backup's I/O, for a server that must not notice it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_bytes_per_second: Option<u64>,
}

/// Per-request settings of S3-compatible object storage; what is left out
/// comes from the server's `AWS_*` variables. Write-only: never returned,
/// logged or written to a status document.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3Settings {
    /// `https://s3.example.com` (default: AWS, or `AWS_ENDPOINT_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^https?://"))]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as most self-hosted stores want.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_path_style: Option<bool>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

/// Body of `POST /admin/backup/compact`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CompactRequest {
    /// The location whose chain is compacted (a folder on the server, or `s3://bucket/prefix`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, min_length = 1, pattern = "^(/|s3://)"))]
    pub backup_location: String,
    /// Fold the chain up to this set (default: the newest set of the newest chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{8}T[0-9]{6}Z(\.[0-9]{2,9}|-[1-9][0-9]{0,8})?-(full|incremental|snapshot)$"))]
    pub up_to: Option<String>,
    /// Which database's chain to compact when the location holds several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::names::optional_name_schema))]
    pub source_database_name: Option<String>,
    /// An encrypted chain: its key (the compacted set is sealed with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9+/]{43}=$"))]
    pub backup_encryption_key: Option<String>,
    /// An encrypted chain: its passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub backup_passphrase: Option<String>,
    #[serde(default, rename = "S3", skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Settings>,
}

/// Body of `POST /admin/backup/copy`: the sets of `From` missing in `To`
/// are copied there, whole chains, bases first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CopyRequest {
    /// The location copied from (a folder on the server, or `s3://bucket/prefix`); only read.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, min_length = 1, pattern = "^(/|s3://)"))]
    pub from: String,
    /// The location copied to.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, min_length = 1, pattern = "^(/|s3://)"))]
    pub to: String,
    /// Copy only the chain that holds this point (a set id or an RFC 3339
    /// time), up to it; default: every chain of `From`, whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub up_to: Option<String>,
    /// Object storage settings of `From` (default: the server's `AWS_*`).
    #[serde(default, rename = "S3From", skip_serializing_if = "Option::is_none")]
    pub s3_from: Option<S3Settings>,
    /// Object storage settings of `To`.
    #[serde(default, rename = "S3To", skip_serializing_if = "Option::is_none")]
    pub s3_to: Option<S3Settings>,
}

/// One backup set, as listed by `GET /admin/backup/sets` and `rookery-backup --list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct BackupSetInfo {
    pub set_id: String,
    pub kind: String,
    pub base_set_id: Option<String>,
    pub created: String,
    pub from_etag: u64,
    pub to_etag: u64,
    pub document_count: u64,
    pub deletion_count: u64,
    pub size_bytes: u64,
    pub encrypted: bool,
    /// How long writing the set took (sets written by this version on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// True when every checksum and link of this set verified.
    pub verified: bool,
    /// What is wrong with this set, when `Verified` is false.
    pub problems: Vec<String>,
    /// Until when the set's objects are under S3 Object Lock (RFC 3339), if they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    /// `Governance` or `Compliance`, with `LockedUntil`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<crate::tasks::LockMode>,
}

/// A full set and the incrementals on it, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct BackupChainInfo {
    pub database_name: String,
    pub database_id: String,
    pub sets: Vec<BackupSetInfo>,
}

/// Answer of `GET /admin/backup/sets?location=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct BackupListing {
    pub location: String,
    pub chains: Vec<BackupChainInfo>,
    /// Problems that belong to no set (unreadable folders, orphans).
    pub problems: Vec<String>,
    /// Folders of backups that never completed (a crash); ignored by restores.
    #[serde(default)]
    pub unfinished: Vec<String>,
}

/// What a full backup copies: the documents (a logical set: portable,
/// compressed, the base of incrementals and compaction) or the database's
/// own storage files (a snapshot: at the speed of the disk, hard links on
/// the same filesystem).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BackupType {
    #[default]
    Backup,
    Snapshot,
}

impl BackupType {
    /// Whether this is the default (`Backup`), left out of answers.
    #[must_use]
    pub fn is_backup(&self) -> bool {
        *self == Self::Backup
    }
}

/// Which kind of backup a task runs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BackupKind {
    Full,
    Incremental,
}
