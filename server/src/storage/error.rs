//! What can go wrong in the storage layer, and the code each failure has.

use std::path::PathBuf;

/// What can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("not found")]
    NotFound,
    #[error("etag mismatch: expected {expected}, the document is at {actual:?}")]
    ConcurrencyConflict { expected: u64, actual: Option<u64> },
    #[error("{0}")]
    InvalidId(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("'{0}' is a server-owned document: clients may read it, never write or delete it")]
    ReservedDocument(String),
    #[error("database '{0}' already exists")]
    DatabaseExists(String),
    #[error("database '{0}' is in use by a job (backup, export or import)")]
    DatabaseBusy(String),
    #[error("'{}' exists and is not empty", .0.display())]
    DestinationNotEmpty(PathBuf),
    #[error("the database is encrypted and its key is not available: {0}")]
    Locked(String),
    #[error("encryption: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

impl StorageError {
    /// The stable error code, the same in an HTTP answer and a status document.
    #[must_use]
    pub fn code(&self) -> rookery_types::ErrorCode {
        use rookery_types::ErrorCode;
        match self {
            Self::Engine(_) | Self::Io(_) | Self::Corrupt(_) | Self::Crypto(_) => ErrorCode::StorageError,
            Self::NotFound => ErrorCode::NotFound,
            Self::ConcurrencyConflict { .. } => ErrorCode::ConcurrencyConflict,
            Self::InvalidId(_) => ErrorCode::InvalidId,
            Self::InvalidName(_) => ErrorCode::InvalidName,
            Self::ReservedDocument(_) => ErrorCode::ReservedDocument,
            Self::DatabaseExists(_) => ErrorCode::DatabaseExists,
            Self::DatabaseBusy(_) => ErrorCode::DatabaseBusy,
            Self::DestinationNotEmpty(_) => ErrorCode::DestinationNotEmpty,
            Self::Locked(_) => ErrorCode::DatabaseLocked,
        }
    }
}
