//! The one error type at the HTTP boundary: a status and a JSON body
//! `{"Error": code, "Message": text}`. Internal details are logged, not sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::backup::{BackupError, ErrorKind};
use crate::restore::RestoreError;
use crate::storage::StorageError;
use app::api::{ErrorBody, ErrorCode};

/// An error answer of the REST API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 400 with `code`.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `NotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 500 `InternalError`; the detail is logged here and not sent.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError, "The server failed; see its log.")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code.as_str().to_string(), message: self.message };
        (self.status, Json(body)).into_response()
    }
}

/// The one mapping from an error's kind to an HTTP status (`None`: an
/// internal error, logged and answered as 500 without its detail).
#[must_use]
pub fn status_of(kind: ErrorKind) -> Option<StatusCode> {
    match kind {
        ErrorKind::BadRequest => Some(StatusCode::BAD_REQUEST),
        ErrorKind::Forbidden => Some(StatusCode::FORBIDDEN),
        ErrorKind::NotFound => Some(StatusCode::NOT_FOUND),
        ErrorKind::Conflict => Some(StatusCode::CONFLICT),
        ErrorKind::Unprocessable => Some(StatusCode::UNPROCESSABLE_ENTITY),
        ErrorKind::Unavailable => Some(StatusCode::SERVICE_UNAVAILABLE),
        ErrorKind::TooManyRequests => Some(StatusCode::TOO_MANY_REQUESTS),
        ErrorKind::InsufficientStorage => Some(StatusCode::INSUFFICIENT_STORAGE),
        ErrorKind::Internal => None,
    }
}

impl ApiError {
    /// An error of a module: its own code and kind, with `message`.
    pub(crate) fn classified(kind: ErrorKind, code: ErrorCode, message: String, detail: &dyn std::fmt::Display) -> Self {
        match status_of(kind) {
            Some(status) => Self::new(status, code, message),
            None => Self::internal(detail),
        }
    }
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
        Self::classified(e.kind(), e.code(), message, &e)
    }
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Storage(s) => s.into(),
            other => Self::classified(other.kind(), other.code(), other.to_string(), &other),
        }
    }
}

impl From<crate::smuggler::SmugglerError> for ApiError {
    fn from(e: crate::smuggler::SmugglerError) -> Self {
        match e {
            crate::smuggler::SmugglerError::Storage(s) => s.into(),
            other => Self::classified(other.kind(), other.code(), other.to_string(), &other),
        }
    }
}

impl From<RestoreError> for ApiError {
    fn from(e: RestoreError) -> Self {
        match e {
            RestoreError::Backup(b) => b.into(),
            RestoreError::Storage(s) => s.into(),
            other => Self::classified(other.kind(), other.code(), other.to_string(), &other),
        }
    }
}
