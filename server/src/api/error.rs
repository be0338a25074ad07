//! The one error type at the HTTP boundary: a status and a JSON body
//! `{"Error": code, "Message": text}`. Internal details are logged, not sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::backup::BackupError;
use crate::restore::RestoreError;
use crate::storage::StorageError;
use app::api::ErrorBody;

/// An error answer of the REST API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `NotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 500 `InternalError`; the detail is logged here and not sent.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "The server failed; see its log.")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code.to_string(), message: self.message };
        (self.status, Json(body)).into_response()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => Self::not_found("Not found."),
            StorageError::ConcurrencyConflict { expected, actual } => Self::new(
                StatusCode::CONFLICT,
                "ConcurrencyConflict",
                match actual {
                    Some(a) => format!("If-Match expected etag {expected} but the document is at etag {a}."),
                    None => format!("If-Match expected etag {expected} but the document does not exist."),
                },
            ),
            StorageError::InvalidId(m) => Self::bad_request("InvalidId", m),
            StorageError::InvalidName(m) => Self::bad_request("InvalidName", m),
            StorageError::ReservedDocument(id) => Self::new(
                StatusCode::FORBIDDEN,
                "ReservedDocument",
                format!("'{}' is written by the server only (ids starting with Raven/ are reserved); read it, but do not write or delete it.", id.escape_debug()),
            ),
            StorageError::DatabaseExists(name) => {
                Self::new(StatusCode::CONFLICT, "DatabaseExists", format!("A database named '{name}' already exists."))
            }
            StorageError::DatabaseBusy(name) => Self::new(
                StatusCode::CONFLICT,
                "DatabaseBusy",
                format!("Database '{name}' is being read by a job (a backup, an export or an import); try again when it has finished."),
            ),
            StorageError::DestinationNotEmpty(path) => Self::new(
                StatusCode::CONFLICT,
                "DestinationNotEmpty",
                format!("'{}' exists and is not empty; choose an empty or new folder.", path.display()),
            ),
            StorageError::Locked(m) => Self::new(StatusCode::SERVICE_UNAVAILABLE, "DatabaseLocked", format!("The database is encrypted and cannot be read: {m}.")),
            e @ (StorageError::Engine(_) | StorageError::Io(_) | StorageError::Corrupt(_) | StorageError::Crypto(_)) => Self::internal(&e),
        }
    }
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        let status = match e.kind() {
            crate::backup::ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            crate::backup::ErrorKind::Conflict => StatusCode::CONFLICT,
            crate::backup::ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            crate::backup::ErrorKind::Internal => return Self::internal(&e),
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<RestoreError> for ApiError {
    fn from(e: RestoreError) -> Self {
        match e {
            RestoreError::Backup(b) => b.into(),
            RestoreError::Storage(s) => s.into(),
            other => {
                let status = match other.kind() {
                    crate::backup::ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
                    crate::backup::ErrorKind::Conflict => StatusCode::CONFLICT,
                    crate::backup::ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
                    crate::backup::ErrorKind::Internal => return Self::internal(&other),
                };
                Self::new(status, other.code(), other.to_string())
            }
        }
    }
}
