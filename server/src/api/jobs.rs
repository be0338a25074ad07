//! Backup and restore over REST: `POST {base}/admin/backup`,
//! `POST /admin/restore`, `GET /admin/backup/sets`.

use app::api::ErrorCode;
use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use super::documents::body_bytes;
use super::{blocking, ApiError, AppState, Db};
use crate::backup::compact::CompactOptions;
use crate::backup::location::{listing, Depth};
use crate::backup::sealed::SetSecret;
use crate::backup::BackupOptions;
use app::api::{
    BackupListing, BackupRequest, CompactRequest, ErrorBody, JobAccepted, RestoreRequest, BACKUP_STATUS_ID, COMPACT_STATUS_ID,
    RESTORE_STATUS_ID,
};

pub(crate) fn flag(query: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match query.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" || v == "1" || v.is_empty() => Ok(true),
        Some(v) if v == "false" || v == "0" => Ok(false),
        Some(v) => {
            Err(ApiError::bad_request(ErrorCode::InvalidQuery, format!("'{name}' must be true or false, not '{}'.", v.escape_debug())))
        }
    }
}

fn json_body<T: DeserializeOwned + Default>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body_bytes(body)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidJson, format!("The body is not a valid request: {e}")))
}

/// Starts a backup of the database; poll `{base}/docs/Raven/Backup/Status`.
#[utoipa::path(
    post,
    path = "/admin/backup",
    tag = "backup",
    params(("incremental" = Option<bool>, Query, nullable = false, description = "Default false")),
    request_body = BackupRequest,
    responses(
        (status = 202, body = JobAccepted),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "BackupAlreadyRunning, ChainMismatch"),
    )
)]
pub async fn start_backup(
    State(state): State<AppState>,
    Db(db): Db,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let incremental = flag(&query, "incremental")?;
    let request: BackupRequest = json_body(body)?;
    if request.max_bytes_per_second == Some(0) {
        return Err(ApiError::bad_request(ErrorCode::InvalidRequest, "MaxBytesPerSecond is at least 1 (leave it out for no cap)"));
    }
    let set_secret = SetSecret::from_request(request.backup_encryption_key.as_ref(), request.backup_passphrase.as_ref())
        .map_err(|m| ApiError::bad_request(ErrorCode::InvalidRequest, m))?;
    blocking(move || {
        let options = BackupOptions {
            location: request.backup_location,
            s3: request.s3,
            incremental,
            include_encryption_key: request.include_encryption_key,
            set_secret,
            backup_type: request.backup_type,
            copy_files: false,
            max_bytes_per_second: request.max_bytes_per_second,
        };
        let handle = state.start_backup(&db.name, options)?;
        tracing::info!(database = %db.name, set = %handle.set_id, "backup started");
        Ok((StatusCode::ACCEPTED, Json(JobAccepted { status_document: BACKUP_STATUS_ID.to_string() })))
    })
    .await
}

/// Restores a backup location into a new database; poll `/docs/Raven/Restore/Status`.
#[utoipa::path(
    post,
    path = "/admin/restore",
    tag = "restore",
    params(("defrag" = Option<bool>, Query, nullable = false, description = "Compact fully before opening (default false)")),
    request_body = RestoreRequest,
    responses(
        (status = 202, body = JobAccepted),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation, NoBackupFound, SetNotFound, InvalidName"),
        (status = 409, body = ErrorBody, description = "DatabaseExists, DestinationNotEmpty, RestoreAlreadyRunning"),
        (status = 422, body = ErrorBody, description = "ChecksumMismatch, BrokenChain, UnsupportedFormatVersion"),
    )
)]
pub async fn start_restore(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let defrag = flag(&query, "defrag")?;
    let request: RestoreRequest = json_body(body)?;
    if request.restore_start_timeout.is_some_and(|t| t > 3600) {
        return Err(ApiError::bad_request(ErrorCode::InvalidRequest, "RestoreStartTimeout is at most 3600 seconds."));
    }
    blocking(move || {
        let handle = state.start_restore(&request, defrag)?;
        tracing::info!(database = %handle.database_name, "restore started");
        Ok((StatusCode::ACCEPTED, Json(JobAccepted { status_document: RESTORE_STATUS_ID.to_string() })))
    })
    .await
}

/// The chains and sets in a backup location, each verified.
#[utoipa::path(
    get,
    path = "/admin/backup/sets",
    tag = "backup",
    params(
        ("location" = String, Query, description = "An absolute folder on the server, or s3://bucket/prefix", min_length = 1, pattern = "^(/|s3://)"),
        ("verify" = Option<bool>, Query, nullable = false, description = "Check every SHA-256 (default true); false checks presence and sizes"),
    ),
    responses((status = 200, body = BackupListing), (status = 400, body = ErrorBody))
)]
pub async fn list_sets(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<BackupListing>, ApiError> {
    let raw = query.get("location").cloned().unwrap_or_default();
    let depth = if query.contains_key("verify") && !flag(&query, "verify")? { Depth::Structure } else { Depth::Checksums };
    blocking(move || {
        let location = state.open_backup_location(&raw, None)?;
        Ok(Json(listing(&location, depth)?))
    })
    .await
}

/// Asks the database's running backup to stop (it ends with `Canceled` and leaves no set).
#[utoipa::path(
    post,
    path = "/admin/backup/cancel",
    tag = "backup",
    responses((status = 202, body = JobAccepted), (status = 404, body = ErrorBody, description = "NotFound: no backup of this database runs"))
)]
pub async fn cancel_backup(State(state): State<AppState>, Db(db): Db) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    cancel_answer(state.cancel_backup(&db.name), BACKUP_STATUS_ID, || format!("No backup of '{}' is running.", db.name))
}

/// Asks the running restore to stop (it ends with `Canceled`; no database, no files).
#[utoipa::path(
    post,
    path = "/admin/restore/cancel",
    tag = "restore",
    responses((status = 202, body = JobAccepted), (status = 404, body = ErrorBody, description = "NotFound: no restore runs"))
)]
pub async fn cancel_restore(State(state): State<AppState>) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    cancel_answer(state.cancel_restore(), RESTORE_STATUS_ID, || "No restore is running.".to_string())
}

/// Folds a chain of a location into one new full set ("synthetic full"),
/// without touching any database; poll `/docs/Raven/Compact/Status`.
#[utoipa::path(
    post,
    path = "/admin/backup/compact",
    tag = "backup",
    request_body = CompactRequest,
    responses(
        (status = 202, body = JobAccepted),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation, NoBackupFound, InvalidEncryptionKey, BackupStorageError"),
        (status = 404, body = ErrorBody, description = "SetNotFound: UpTo names no set of a complete chain"),
        (status = 409, body = ErrorBody, description = "CompactionAlreadyRunning, BackupAlreadyRunning"),
        (status = 422, body = ErrorBody, description = "ChecksumMismatch, BrokenChain, UnsupportedFormatVersion"),
    )
)]
pub async fn start_compaction(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    let request: CompactRequest = json_body(body)?;
    let set_secret = SetSecret::from_request(request.backup_encryption_key.as_ref(), request.backup_passphrase.as_ref())
        .map_err(|m| ApiError::bad_request(ErrorCode::InvalidRequest, m))?;
    blocking(move || {
        let options = CompactOptions { up_to: request.up_to, set_secret };
        let handle = state.start_compaction(&request.backup_location, request.s3.as_ref(), &options)?;
        tracing::info!(set = %handle.set_id, "compaction started");
        Ok((StatusCode::ACCEPTED, Json(JobAccepted { status_document: COMPACT_STATUS_ID.to_string() })))
    })
    .await
}

/// Asks the running compaction to stop (it ends with `Canceled` and leaves no set).
#[utoipa::path(
    post,
    path = "/admin/backup/compact/cancel",
    tag = "backup",
    responses((status = 202, body = JobAccepted), (status = 404, body = ErrorBody, description = "NotFound: no compaction runs"))
)]
pub async fn cancel_compaction(State(state): State<AppState>) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    cancel_answer(state.cancel_compaction(), COMPACT_STATUS_ID, || "No compaction is running.".to_string())
}

/// The answer to a cancel request: 202 naming the job's status document when
/// a running job was asked to stop, 404 `NotFound` when none runs.
pub(crate) fn cancel_answer(
    asked: bool,
    status_document: &str,
    none_runs: impl FnOnce() -> String,
) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    if asked {
        Ok((StatusCode::ACCEPTED, Json(JobAccepted { status_document: status_document.to_string() })))
    } else {
        Err(ApiError::not_found(none_runs()))
    }
}
