//! Rookery's vocabulary: the REST API's request, answer and status types,
//! the error codes and the one HTTP status each is answered with, shared by
//! the engine, the HTTP server, the command-line tools and the studio.
//!
//! No UI, no HTTP framework and no runtime here: serde, and `utoipa`
//! schemas behind the `openapi` feature. Field names are PascalCase on the
//! wire (see `docs/reference.md`). Keep every type that crosses HTTP here,
//! so that the server and its clients cannot drift.

use serde::{Deserialize, Serialize};

mod monitor;

pub use monitor::*;

/// Id of the backup status document, in the database being backed up.
pub const BACKUP_STATUS_ID: &str = "Raven/Backup/Status";
/// Id of the restore status document, in the system database.
pub const RESTORE_STATUS_ID: &str = "Raven/Restore/Status";
/// Id of the import/export status document.
pub const SMUGGLER_STATUS_ID: &str = "Raven/Smuggler/Status";
/// Id of the compaction status document, in the system database.
pub const COMPACT_STATUS_ID: &str = "Raven/Compact/Status";
/// Status documents are never part of a backup.
pub const STATUS_DOCUMENT_IDS: [&str; 4] = [BACKUP_STATUS_ID, RESTORE_STATUS_ID, SMUGGLER_STATUS_ID, COMPACT_STATUS_ID];
/// Documents whose id starts with this are the server's own (status documents
/// and whatever else it writes): readable by clients, never written by them.
pub const SERVER_OWNED_PREFIX: &str = "Raven/";

/// Whether `id` names a server-owned document (`Raven/...`).
#[must_use]
pub fn is_server_owned(id: &str) -> bool {
    id.starts_with(SERVER_OWNED_PREFIX)
}

/// `1 document`, `2 documents`: a count with its noun (regular plurals).
#[must_use]
pub fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Percent-encodes a path segment, keeping `/` (document ids may hold it).
pub fn encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a query value.
pub fn encode_query(value: &str) -> String {
    encode_path(value).replace('/', "%2F")
}

/// Human-readable bytes (`1.5 MB`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Name under which the system database is shown in the studio and listings.
pub const SYSTEM_DATABASE: &str = "System";

/// Every error code the server emits, in an HTTP answer's `Error` or a
/// status document's `ErrorCode` (the same code for the same failure), and
/// the one HTTP status each code is answered with. A new code is one line here.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $code:ident = $status:literal,)*) => {
        /// A stable error code (see [`ErrorCode::status`] for its HTTP status).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $code,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [Self] = &[$(Self::$code),*];

            /// The code as it appears on the wire.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$code => stringify!($code),)*
                }
            }

            /// The HTTP status of every answer with this code.
            #[must_use]
            pub fn status(self) -> u16 {
                match self {
                    $(Self::$code => $status,)*
                }
            }
        }
    };
}

error_codes! {
    /// The body is not valid JSON, or not the expected request.
    InvalidJson = 400,
    /// A document must be a JSON object.
    NotAnObject = 400,
    /// The request body cannot be read.
    InvalidBody = 400,
    /// The body is larger than `--max-body-bytes`.
    BodyTooLarge = 413,
    /// A document id is empty or longer than 512 bytes.
    InvalidId = 400,
    /// A path parameter cannot be decoded.
    InvalidPath = 400,
    /// A query parameter has the wrong form.
    InvalidQuery = 400,
    /// An `If-Match` / `If-None-Match` header has the wrong form.
    InvalidETag = 400,
    /// A database name breaks the naming rules.
    InvalidName = 400,
    /// A backup task's cron expression or time zone is not valid.
    InvalidSchedule = 400,
    /// A request field is missing, malformed or contradicts another.
    InvalidRequest = 400,
    /// No such database, document, user or key.
    NotFound = 404,
    /// The route exists, the method does not.
    MethodNotAllowed = 405,
    /// A client wrote or deleted a server-owned `Raven/` document.
    ReservedDocument = 403,
    /// `If-Match` / `If-None-Match` did not hold.
    ConcurrencyConflict = 409,
    /// The name is taken.
    DatabaseExists = 409,
    /// A job (backup, export, import) holds the database.
    DatabaseBusy = 409,
    /// A restore destination exists and is not empty.
    DestinationNotEmpty = 409,
    /// An encrypted database whose key is not available.
    DatabaseLocked = 503,
    /// The request took longer than `--request-timeout`.
    RequestTimeout = 503,
    /// Too many exports at once.
    TooManyRequests = 429,
    /// The server failed; its log has the detail.
    InternalError = 500,
    /// A backup location that is not allowed.
    InvalidBackupLocation = 400,
    /// Object storage refused or did not answer (unreachable endpoint, wrong
    /// credentials, missing bucket, retries exhausted); the message carries its answer.
    BackupStorageError = 400,
    /// A backup already runs on this server.
    BackupAlreadyRunning = 409,
    /// A compaction already runs on this server.
    CompactionAlreadyRunning = 409,
    /// An incremental into another database's chain.
    ChainMismatch = 409,
    /// No complete backup set in the location.
    NoBackupFound = 400,
    /// `RestoreUpTo` names no set of a complete chain.
    SetNotFound = 404,
    /// The location holds chains of more than one database and the request
    /// does not say which (`SourceDatabaseName` or a `RestoreUpTo` set id).
    AmbiguousBackup = 400,
    /// A file differs from its checksum, is missing or unreadable.
    ChecksumMismatch = 422,
    /// A set does not follow the one before it.
    BrokenChain = 422,
    /// A set or dump written by a newer server.
    UnsupportedFormatVersion = 422,
    /// A malformed, unsafe or tampered set.
    CorruptBackup = 422,
    /// A restore `DatabaseLocation` that is not allowed.
    InvalidDatabaseLocation = 400,
    /// Another restore still runs after `RestoreStartTimeout`.
    RestoreAlreadyRunning = 409,
    /// The restore destination has less free space than the sets it would read.
    InsufficientSpace = 507,
    /// A key or passphrase is needed to read this.
    EncryptionKeyRequired = 400,
    /// The key or passphrase given is not the right one.
    InvalidEncryptionKey = 400,
    /// A malformed or truncated dump.
    InvalidDump = 400,
    /// An import already runs on this server.
    ImportAlreadyRunning = 409,
    /// Credentials are missing or wrong.
    Unauthorized = 401,
    /// The role may not do this.
    Forbidden = 403,
    /// A session's state-changing request without its CSRF token.
    CsrfTokenMissing = 403,
    /// Too many failed credential checks from this address.
    TooManyAttempts = 429,
    /// The change would leave no administrator.
    LastAdministrator = 409,
    /// An API key of that name exists.
    ApiKeyExists = 409,
    /// A job failed reading or writing files (status documents).
    IoError = 500,
    /// A job failed in the storage engine (status documents).
    StorageError = 500,
    /// The server stopped while the job ran (status documents).
    Interrupted = 500,
    /// The job stopped before it finished (status documents).
    JobAborted = 500,
    /// The job was canceled on request (status documents).
    Canceled = 409,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    /// A stable code such as `DatabaseExists` or `ChecksumMismatch`.
    #[cfg_attr(feature = "openapi", schema(value_type = ErrorCode))]
    pub error: String,
    /// A sentence a person can act on.
    pub message: String,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
}

/// One entry of `GET /databases`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DatabaseInfo {
    pub name: String,
    pub document_count: u64,
    /// Bytes on disk: tables and journals, preallocated journal space included.
    pub size_bytes: u64,
    /// Bytes of the documents themselves (ids and stored records): the data size.
    #[serde(default)]
    pub data_size_bytes: u64,
    pub encrypted: bool,
}

/// Optional body of `PUT /admin/databases/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateDatabaseRequest {
    #[serde(default)]
    pub encrypted: bool,
}

/// Answer of `PUT /admin/databases/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DatabaseCreated {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
}

/// Answer of `PUT {base}/docs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct PutResult {
    pub id: String,
    #[serde(rename = "ETag")]
    pub etag: u64,
}

/// One document in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DocumentEntry {
    pub id: String,
    #[serde(rename = "ETag")]
    pub etag: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub document: serde_json::Value,
}

/// Answer of `GET {base}/docs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DocumentPage {
    pub results: Vec<DocumentEntry>,
    pub total_results: u64,
}

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
    #[cfg_attr(feature = "openapi", schema(schema_with = optional_name_schema))]
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

/// Answer (202) of every long-running job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct JobAccepted {
    pub status_document: String,
}

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
    #[cfg_attr(feature = "openapi", schema(schema_with = optional_name_schema))]
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
    #[cfg_attr(feature = "openapi", schema(schema_with = optional_name_schema))]
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

/// Severity of a status message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    Information,
    Warning,
    Error,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct StatusMessage {
    pub timestamp: String,
    pub message: String,
    pub severity: Severity,
}

/// Counters of a running job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct JobProgress {
    pub documents_done: u64,
    pub documents_total: u64,
    pub bytes_written: u64,
    pub percent: f64,
}

impl JobProgress {
    /// Recomputes `Percent` from the counters (100 when there is nothing to do).
    pub fn update_percent(&mut self) {
        self.percent = if self.documents_total == 0 {
            100.0
        } else {
            let p = self.documents_done as f64 * 100.0 / self.documents_total as f64;
            (p.min(100.0) * 10.0).round() / 10.0
        };
    }
}

/// The status document of a backup, restore or import/export job
/// (`Raven/Backup/Status`, `Raven/Restore/Status`, `Raven/Smuggler/Status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", default)]
pub struct JobStatus {
    pub is_running: bool,
    pub started: Option<String>,
    pub completed: Option<String>,
    pub success: bool,
    pub backup_location: Option<String>,
    /// Backups: whether the set is incremental.
    pub incremental: bool,
    /// Backups: the set being written; restores: the newest set applied.
    pub set_id: Option<String>,
    /// Restores: the database being restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    pub progress: JobProgress,
    pub messages: Vec<StatusMessage>,
    pub error: Option<String>,
    /// The stable code of `Error` (for example `ChecksumMismatch`).
    pub error_code: Option<String>,
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
    /// True when every checksum and link of this set verified.
    pub verified: bool,
    /// What is wrong with this set, when `Verified` is false.
    pub problems: Vec<String>,
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

/// What an identity may do. Ordered: `Monitor` < `ReadOnly` < `ReadWrite` < `Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Read `/metrics` and `/health`, and nothing else (a scraper's credentials).
    Monitor,
    /// Read documents and listings.
    ReadOnly,
    /// Also write documents.
    ReadWrite,
    /// Also manage databases, users and keys, back up, restore and import.
    Admin,
}

/// Body of `PUT /admin/users/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutUserRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub password: String,
    pub role: Role,
}

/// Body of `POST /admin/apikeys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = name_schema))]
    pub name: String,
    pub role: Role,
}

/// Answer of `POST /admin/apikeys`: the key, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ApiKeyCreated {
    pub api_key: String,
}

/// Body of `POST /auth/login` (the studio's sign-in).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// `GET /auth/me`: who the request is from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct Me {
    pub authenticated: bool,
    pub name: Option<String>,
    pub role: Option<Role>,
    /// No user and no key exist: the server is open to anyone who can reach it.
    pub development_mode: bool,
}

/// The rule of every name (databases, tasks, users, API keys) as a regular
/// expression, for the OpenAPI description: what [`is_valid_database_name`] accepts.
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$";

/// A name's schema: a string matching [`NAME_PATTERN`].
#[cfg(feature = "openapi")]
pub fn name_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).pattern(Some(NAME_PATTERN)).build()
}

/// [`name_schema`], or null.
#[cfg(feature = "openapi")]
pub fn optional_name_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])).pattern(Some(NAME_PATTERN)).build()
}

/// Whether `name` is a valid name (of a database, a task, a user or an API
/// key): `[A-Za-z0-9_.-]{1,64}`, not starting with `.` ([`NAME_PATTERN`]).
pub fn is_valid_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The REST base path of a database: `` for the system database, `/databases/{name}` otherwise.
pub fn database_base(name: &str) -> String {
    if name.is_empty() || name == SYSTEM_DATABASE {
        String::new()
    } else {
        format!("/databases/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names() {
        assert!(is_valid_database_name("Northwind"));
        assert!(is_valid_database_name("a.b-c_1"));
        assert!(!is_valid_database_name(""));
        assert!(!is_valid_database_name(".hidden"));
        assert!(!is_valid_database_name(".."));
        assert!(!is_valid_database_name("a/b"));
        assert!(!is_valid_database_name("naïve"));
        assert!(!is_valid_database_name(&"x".repeat(65)));
    }

    #[test]
    fn status_round_trips_with_pascal_case() {
        let status = JobStatus { is_running: true, ..Default::default() };
        let json = serde_json::to_value(&status).expect("serializes");
        assert_eq!(json["IsRunning"], true);
        assert!(json.get("Progress").is_some());
        let back: JobStatus = serde_json::from_value(json).expect("parses");
        assert_eq!(back, status);
    }

    #[test]
    fn percent() {
        let mut p = JobProgress { documents_done: 1, documents_total: 3, ..Default::default() };
        p.update_percent();
        assert_eq!(p.percent, 33.3);
        p.documents_total = 0;
        p.update_percent();
        assert_eq!(p.percent, 100.0);
    }
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

/// A retention policy, counted in sets (restorable points). Any subset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep the newest N sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub keep_last: Option<u32>,
    /// Keep the newest set of each of the last N days that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub keep_daily: Option<u32>,
    /// Keep the newest set of each of the last N ISO weeks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub keep_weekly: Option<u32>,
    /// Keep the newest set of each of the last N months that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    pub keep_monthly: Option<u32>,
    /// Keep every set younger than this (`30s`, `15m`, `12h`, `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{1,6}[smhd]$"))]
    pub minimum_age: Option<String>,
}

/// A backup task: the body of `PUT {base}/admin/backup/tasks/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct BackupTask {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = "^(/|s3://)"))]
    pub backup_location: String,
    /// Cron: 5 fields, or 6 with seconds first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*\S+(\s+\S+){4,5}\s*$"))]
    pub full_backup_frequency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*\S+(\s+\S+){4,5}\s*$"))]
    pub incremental_backup_frequency: Option<String>,
    /// IANA time zone of the schedules (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    #[serde(default)]
    pub disabled: bool,
    /// What the task's full backups copy (`Backup` or `Snapshot`).
    #[serde(default, skip_serializing_if = "BackupType::is_backup")]
    pub backup_type: BackupType,
    /// Forever-incremental: when a full backup is due, fold the location's
    /// chain into a new full set instead of reading the database.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compact: bool,
    /// Continuous backup: a small incremental whenever something changed, at
    /// most one per `MaxLagSeconds`; nothing while the database is idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous: Option<ContinuousBackup>,
    /// Restore drills: on this schedule, the newest chain of the location is
    /// restored into a scratch database no client sees and checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillOptions>,
    /// How old the newest restorable point may grow before the task is
    /// stale (`30m`, `6h`, `2d`; default twice its shortest schedule's
    /// interval, at least 5 minutes): what `BackupStale` and the alert use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{1,9}[smhd]$"))]
    pub recovery_point_objective: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_encryption_key: Option<bool>,
    /// Write-only: sealed with the master key, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub backup_passphrase: Option<String>,
    /// Write-only (base64 of 32 bytes): sealed with the master key, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9+/]{43}=$"))]
    pub backup_encryption_key: Option<String>,
}

/// A task's continuous backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ContinuousBackup {
    /// The most seconds a change waits before it is shipped (1 to 3600).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3600))]
    pub max_lag_seconds: u32,
}

/// A task's restore drills.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DrillOptions {
    /// Cron: 5 fields, or 6 with seconds first, in the task's time zone.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\s*\S+(\s+\S+){4,5}\s*$"))]
    pub frequency: String,
}

/// The last restore drill of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct LastDrill {
    /// When it ended (RFC 3339 UTC).
    pub at: String,
    /// The newest set of the chain it restored.
    pub set_id: Option<String>,
    pub success: bool,
    pub duration_ms: u64,
    /// Why it failed, naming the file when a file was damaged.
    pub error: Option<String>,
}

/// What a task did and will do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct TaskStatus {
    pub is_running: bool,
    pub last_full_backup: Option<String>,
    pub last_incremental_backup: Option<String>,
    pub last_set_id: Option<String>,
    pub last_duration_ms: Option<u64>,
    pub last_error: Option<String>,
    pub next_backup: Option<String>,
    pub next_backup_kind: Option<BackupKind>,
    /// Continuous tasks: seconds the oldest unshipped change has waited (0 when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Continuous tasks: the `ToEtag` of the last set shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_shipped_etag: Option<u64>,
    /// Tasks with drills: the last one, once one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<LastDrill>,
}

/// A task as answers show it: no secret, a flag instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct BackupTaskInfo {
    pub name: String,
    pub backup_location: String,
    pub full_backup_frequency: Option<String>,
    pub incremental_backup_frequency: Option<String>,
    pub time_zone: String,
    pub retention: Option<RetentionPolicy>,
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "BackupType::is_backup")]
    pub backup_type: BackupType,
    #[serde(default)]
    pub compact: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous: Option<ContinuousBackup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point_objective: Option<String>,
    pub include_encryption_key: Option<bool>,
    pub has_backup_passphrase: bool,
    pub has_backup_encryption_key: bool,
    pub status: TaskStatus,
}

/// Body of `POST {base}/admin/backup/retention`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RetentionRequest {
    pub retention: RetentionPolicy,
}

/// Answer of `POST {base}/admin/backup/retention`: the set ids deleted (or
/// that would be, with `dryRun`) and kept, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct RetentionOutcome {
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
}

/// `GET /admin/backup/schedule?cron=&timeZone=`: what a schedule means.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleInfo {
    /// The expression in words.
    pub description: String,
    /// The next three times it fires (RFC 3339 UTC).
    pub next: Vec<String>,
}
