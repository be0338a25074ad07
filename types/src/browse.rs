//! Reading backups without restoring them: a point in time's documents,
//! one document, the changes between two points, and a restore of chosen
//! documents into a live database.

use serde::{Deserialize, Serialize};

use crate::backup::S3Settings;

/// One document of a backup at a point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct BackupDocument {
    pub id: String,
    #[serde(rename = "ETag")]
    pub etag: u64,
    /// RFC 3339 UTC with milliseconds.
    pub last_modified: String,
    /// Bytes of the document as stored.
    pub size_bytes: u64,
}

/// Answer of `GET /admin/backup/documents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct BackupDocumentPage {
    /// The newest set of the point read.
    pub set_id: String,
    /// In id order, after skipping `start`, at most `pageSize`.
    pub results: Vec<BackupDocument>,
}

/// How an id differs between two points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DocumentChange {
    Created,
    Changed,
    Deleted,
}

/// One id of `GET /admin/backup/diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DiffEntry {
    pub id: String,
    pub change: DocumentChange,
}

/// Answer of `GET /admin/backup/diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DiffPage {
    /// The set of each point.
    pub from_set_id: String,
    pub to_set_id: String,
    /// In id order, after skipping `start`, at most `pageSize`.
    pub results: Vec<DiffEntry>,
}

/// What a selective restore does with an id the live database already holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RestoreDocumentsMode {
    /// Leave the live document as it is (counted as skipped).
    #[default]
    Skip,
    /// Write the backed-up version over it.
    Overwrite,
}

/// Body of `POST {base}/admin/restore/documents`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RestoreDocumentsRequest {
    /// An absolute folder on the server, or `s3://bucket/prefix`, inside a backup root.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, min_length = 1, pattern = "^(/|s3://)"))]
    pub backup_location: String,
    #[serde(default, rename = "S3", skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Settings>,
    /// A set id or an RFC 3339 time (default: the newest set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_up_to: Option<String>,
    /// The database's name in the sets, when the location holds several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::names::optional_name_schema))]
    pub source_database_name: Option<String>,
    /// The ids to restore (at most 100,000), or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100_000))]
    pub ids: Option<Vec<String>>,
    /// every id with this prefix at the point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<String>,
    #[serde(default)]
    pub mode: RestoreDocumentsMode,
    /// Restore into a new database of this name instead (created empty first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::names::optional_name_schema))]
    pub database_name: Option<String>,
    /// Base64 of 32 bytes: the database key, when the set left it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9+/]{43}=$"))]
    pub encryption_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9+/]{43}=$"))]
    pub backup_encryption_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub backup_passphrase: Option<String>,
}
