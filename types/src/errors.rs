//! The error codes and the one HTTP status each is answered with (one table),
//! and the JSON body of every error answer.

use serde::{Deserialize, Serialize};

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
    /// An object lock asked of a location whose bucket was not made with object lock.
    ObjectLockUnavailable = 400,
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
