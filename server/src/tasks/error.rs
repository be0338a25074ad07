//! What can go wrong with a task, and its codes.

use rookery_types::ErrorCode;

use crate::backup::error::BackupError;
use crate::storage::StorageError;

/// What can go wrong with a task.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    InvalidSchedule(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("No task named '{0}'.")]
    NotFound(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl TaskError {
    /// The stable error code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidSchedule(_) => ErrorCode::InvalidSchedule,
            Self::Invalid(_) => ErrorCode::InvalidRequest,
            Self::InvalidName(_) => ErrorCode::InvalidName,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Io(_) => ErrorCode::IoError,
            Self::Backup(b) => b.code(),
            Self::Storage(s) => s.code(),
        }
    }
}
