//! Restores: the request.

use serde::{Deserialize, Serialize};

use crate::backup::S3Settings;

/// Body of `POST /admin/restore`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RestoreRequest {
    /// An absolute folder on the server, or `s3://bucket/prefix`, holding backup sets, inside a backup root.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true, min_length = 1, pattern = "^(/|s3://)"))]
    pub backup_location: String,
    /// Object storage settings for an `s3://` location (default: the server's `AWS_*` variables).
    #[serde(default, rename = "S3", skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Settings>,
    /// An absolute folder inside the data directory or a `--database-root`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = "^/"))]
    pub database_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::names::optional_name_schema))]
    pub database_name: Option<String>,
    /// Seconds to wait for another restore to finish (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 3600))]
    pub restore_start_timeout: Option<u64>,
    /// Restore the chain only up to this set, or up to the newest set created
    /// at or before this RFC 3339 time (point in time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^([0-9]{8}T[0-9]{6}Z(\.[0-9]{2,9}|-[1-9][0-9]{0,8})?-(full|incremental|snapshot)|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))$"
        )
    )]
    pub restore_up_to: Option<String>,
    /// Which database's chains to restore when the location holds several
    /// (the name in the sets; without it such a location is `AmbiguousBackup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::names::optional_name_schema))]
    pub source_database_name: Option<String>,
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
