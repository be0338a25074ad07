//! What can go wrong with a backup or with reading a backup location, and
//! the code each failure has.

use crate::storage::StorageError;

/// What can go wrong with a backup or with reading a backup location.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    InvalidLocation(String),
    #[error("A backup is already running on this server; wait for it to finish.")]
    AlreadyRunning,
    #[error("{0}")]
    ChainMismatch(String),
    #[error("Database '{0}' does not exist.")]
    DatabaseNotFound(String),
    #[error("{0}")]
    NoBackup(String),
    #[error("{0}")]
    SetNotFound(String),
    /// A location holding chains of several databases, and no way to tell which.
    #[error("{0}")]
    Ambiguous(String),
    #[error("A compaction is already running on this server; wait for it to finish.")]
    CompactionAlreadyRunning,
    #[error("{0}")]
    ChecksumMismatch(String),
    #[error("{0}")]
    BrokenChain(String),
    #[error("{0}")]
    UnsupportedFormatVersion(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    InvalidEncryptionKey(String),
    /// Object storage refused or did not answer; the storage's own words.
    #[error("Object storage: {0}")]
    StorageUnavailable(String),
    #[error("The backup was canceled; no set was written.")]
    Canceled,
    /// An object lock asked of a bucket made without object lock.
    #[error("{0}")]
    LockUnavailable(String),
    /// A request this kind of set cannot serve (said why).
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl BackupError {
    /// The stable error code.
    #[must_use]
    pub fn code(&self) -> rookery_types::ErrorCode {
        use rookery_types::ErrorCode;
        match self {
            Self::InvalidLocation(_) => ErrorCode::InvalidBackupLocation,
            Self::AlreadyRunning => ErrorCode::BackupAlreadyRunning,
            Self::ChainMismatch(_) => ErrorCode::ChainMismatch,
            Self::DatabaseNotFound(_) => ErrorCode::NotFound,
            Self::NoBackup(_) => ErrorCode::NoBackupFound,
            Self::SetNotFound(_) => ErrorCode::SetNotFound,
            Self::Ambiguous(_) => ErrorCode::AmbiguousBackup,
            Self::CompactionAlreadyRunning => ErrorCode::CompactionAlreadyRunning,
            Self::ChecksumMismatch(_) => ErrorCode::ChecksumMismatch,
            Self::BrokenChain(_) => ErrorCode::BrokenChain,
            Self::UnsupportedFormatVersion(_) => ErrorCode::UnsupportedFormatVersion,
            Self::Corrupt(_) => ErrorCode::CorruptBackup,
            Self::Io(_) => ErrorCode::IoError,
            Self::InvalidEncryptionKey(_) => ErrorCode::InvalidEncryptionKey,
            Self::StorageUnavailable(_) => ErrorCode::BackupStorageError,
            Self::Canceled => ErrorCode::Canceled,
            Self::LockUnavailable(_) => ErrorCode::ObjectLockUnavailable,
            Self::Unsupported(_) => ErrorCode::InvalidRequest,
            Self::Storage(s) => s.code(),
        }
    }
}
