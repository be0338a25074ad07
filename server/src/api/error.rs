//! The one error type at the HTTP boundary: a status and a JSON body
//! `{"Error": code, "Message": text}`. Internal details are logged, not sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::backup::BackupError;
use crate::restore::RestoreError;
use crate::storage::StorageError;
use rookery_types::{ErrorBody, ErrorCode};

/// An error answer of the REST API. Its status is its code's (the one
/// table in `ErrorCode::status`): a handler chooses the code, never the status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    /// An error with a stable code and a message; the status is the code's.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status: status_of(code), code, message: message.into() }
    }

    /// 404 `NotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 500 `InternalError`; the detail is logged here and not sent.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::InternalError, "The server failed; see its log.")
    }

    /// An error of a module: its code and message, except that a code
    /// answered with 500 is logged with its detail and sent as `InternalError`.
    pub(crate) fn classified(code: ErrorCode, message: String, detail: &dyn std::fmt::Display) -> Self {
        if status_of(code) == StatusCode::INTERNAL_SERVER_ERROR {
            Self::internal(detail)
        } else {
            Self::new(code, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code.as_str().to_string(), message: self.message };
        (self.status, Json(body)).into_response()
    }
}

/// The HTTP status of `code` (see `ErrorCode::status`).
#[must_use]
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let message = match &e {
            StorageError::NotFound => "Not found.".to_string(),
            StorageError::ConcurrencyConflict { expected: 0, actual: Some(a) } => {
                format!("The document already exists (at etag {a}); open it to change it, or choose another id.")
            }
            StorageError::ConcurrencyConflict { expected, actual } => match actual {
                Some(a) => format!("If-Match expected etag {expected} but the document is at etag {a}: it was changed meanwhile."),
                None => format!("If-Match expected etag {expected} but the document does not exist."),
            },
            StorageError::InvalidId(m) | StorageError::InvalidName(m) => m.clone(),
            StorageError::ReservedDocument(id) => format!(
                "'{}' is written by the server only (ids starting with Raven/ are reserved); read it, but do not write or delete it.",
                id.escape_debug()
            ),
            StorageError::DatabaseExists(name) => format!("A database named '{name}' already exists."),
            StorageError::DatabaseBusy(name) => {
                format!("Database '{name}' is being read by a job (a backup, an export or an import); try again when it has finished.")
            }
            StorageError::DestinationNotEmpty(path) => {
                format!("'{}' exists and is not empty; choose an empty or new folder.", path.display())
            }
            StorageError::Locked(m) => format!("The database is encrypted and cannot be read: {m}."),
            StorageError::Engine(_) | StorageError::Io(_) | StorageError::Corrupt(_) | StorageError::Crypto(_) => String::new(),
        };
        Self::classified(e.code(), message, &e)
    }
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Storage(s) => s.into(),
            other => Self::classified(other.code(), other.to_string(), &other),
        }
    }
}

impl From<crate::smuggler::SmugglerError> for ApiError {
    fn from(e: crate::smuggler::SmugglerError) -> Self {
        match e {
            crate::smuggler::SmugglerError::Storage(s) => s.into(),
            other => Self::classified(other.code(), other.to_string(), &other),
        }
    }
}

impl From<RestoreError> for ApiError {
    fn from(e: RestoreError) -> Self {
        match e {
            RestoreError::Backup(b) => b.into(),
            RestoreError::Storage(s) => s.into(),
            other => Self::classified(other.code(), other.to_string(), &other),
        }
    }
}
