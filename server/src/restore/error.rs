//! What can go wrong with a restore, and its codes.

use crate::backup::error::BackupError;
use crate::storage::StorageError;

/// What can go wrong with a restore.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("Another restore is still running after waiting {0} s; try again later or raise RestoreStartTimeout.")]
    AlreadyRunning(u64),
    #[error("{0}")]
    SetNotFound(String),
    #[error("{0}")]
    InvalidRequest(String),

    #[error("{0}")]
    InvalidDatabaseLocation(String),
    #[error("{0}")]
    InsufficientSpace(String),
    #[error("The restore was canceled; no database and no files were left.")]
    Canceled,
    #[error("The backup is of an encrypted database and leaves its key out: give the database key as EncryptionKey.")]
    EncryptionKeyRequired,
    #[error("{0}")]
    InvalidEncryptionKey(String),
    #[error("The backup set is encrypted: give BackupEncryptionKey or BackupPassphrase.")]
    BackupKeyRequired,
    #[error("{0}")]
    DocumentsAlreadyRunning(String),
}

impl RestoreError {
    /// The stable error code.
    #[must_use]
    pub fn code(&self) -> rookery_types::ErrorCode {
        use rookery_types::ErrorCode;
        match self {
            Self::Backup(b) => b.code(),
            Self::Storage(s) => s.code(),
            Self::AlreadyRunning(_) | Self::DocumentsAlreadyRunning(_) => ErrorCode::RestoreAlreadyRunning,
            Self::SetNotFound(_) => ErrorCode::SetNotFound,
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::InvalidDatabaseLocation(_) => ErrorCode::InvalidDatabaseLocation,
            Self::InsufficientSpace(_) => ErrorCode::InsufficientSpace,
            Self::Canceled => ErrorCode::Canceled,
            Self::EncryptionKeyRequired | Self::BackupKeyRequired => ErrorCode::EncryptionKeyRequired,
            Self::InvalidEncryptionKey(_) => ErrorCode::InvalidEncryptionKey,
        }
    }
}
