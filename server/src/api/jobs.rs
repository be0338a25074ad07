//! Backup and restore over REST: `POST {base}/admin/backup`,
//! `POST /admin/restore`, `GET /admin/backup/sets`.

use rookery_types::ErrorCode;
use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

use super::body::optional_json_request;
use super::error::ApiError;
use super::extract::{blocking, flag, AppState, Db};
use crate::backup::compact::CompactOptions;
use crate::backup::location::{listing, Depth};
use crate::backup::sealed::SetSecret;
use crate::backup::BackupOptions;
use crate::jobs::Completion;
use rookery_types::{
    BackupListing, BackupRequest, CompactRequest, CopyRequest, ErrorBody, JobAccepted, JobStatus, RestoreRequest, BACKUP_STATUS_ID,
    COMPACT_STATUS_ID, COPY_STATUS_ID, RESTORE_STATUS_ID,
};

/// The answer of a request that started a job: 202 naming its status
/// document; with `?wait=true`, the job's end: 200 with its final status
/// when it succeeded, else its error (that code's status). A client that
/// goes away while it waits does not stop the job.
pub(crate) async fn job_started(wait: bool, status_document: &str, completion: Arc<Completion>) -> Result<Response, ApiError> {
    if !wait {
        return Ok(accepted(status_document));
    }
    let outcome = tokio::task::spawn_blocking(move || completion.wait()).await.map_err(|e| ApiError::internal(&e))?;
    job_ended(outcome)
}

/// 202 naming a job's status document.
pub(crate) fn accepted(status_document: &str) -> Response {
    (StatusCode::ACCEPTED, Json(JobAccepted { status_document: status_document.to_string() })).into_response()
}

/// The answer for a job that ended: 200 with its final status, or its error.
pub(crate) fn job_ended(outcome: crate::jobs::Outcome) -> Result<Response, ApiError> {
    match outcome.error {
        None => Ok((StatusCode::OK, Json(outcome.status)).into_response()),
        Some((code, message)) => Err(ApiError::classified(code, message.clone(), &message)),
    }
}

/// Starts a backup of the database; poll `{base}/docs/Raven/Backup/Status`.
#[utoipa::path(
    post,
    path = "/admin/backup",
    tag = "backup",
    params(
        ("incremental" = Option<bool>, Query, nullable = false, description = "Default false"),
        ("wait" = Option<bool>, Query, nullable = false, description = "Answer when the job has ended (default false)"),
    ),
    request_body = BackupRequest,
    responses(
        (status = 202, body = JobAccepted),
        (status = 200, body = JobStatus, description = "wait=true: the backup succeeded"),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation, InvalidRequest, BackupStorageError"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "BackupAlreadyRunning, ChainMismatch; wait=true: Canceled"),
        (status = 422, body = ErrorBody, description = "wait=true: the job found damage (ChecksumMismatch, CorruptBackup)"),
        (status = 507, body = ErrorBody, description = "wait=true: InsufficientSpace"),
    )
)]
pub async fn start_backup(
    State(state): State<AppState>,
    Db(db): Db,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let incremental = flag(&query, "incremental")?;
    let wait = flag(&query, "wait")?;
    let request: BackupRequest = optional_json_request(body)?;
    if request.max_bytes_per_second == Some(0) {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "MaxBytesPerSecond is at least 1 (leave it out for no cap)"));
    }
    let set_secret = SetSecret::from_request(request.backup_encryption_key.as_ref(), request.backup_passphrase.as_ref())
        .map_err(|m| ApiError::new(ErrorCode::InvalidRequest, m))?;
    let completion = blocking(move || {
        let options = BackupOptions {
            location: request.backup_location,
            s3: request.s3,
            incremental,
            include_encryption_key: request.include_encryption_key,
            set_secret,
            backup_type: request.backup_type,
            copy_files: false,
            max_bytes_per_second: request.max_bytes_per_second,
            task: None,
            object_lock: None,
            documents_file_bytes: None,
        };
        let handle = state.start_backup(&db.name, options)?;
        tracing::info!(database = %db.name, set = %handle.set_id, "backup started");
        Ok(handle.completion())
    })
    .await?;
    job_started(wait, BACKUP_STATUS_ID, completion).await
}

/// Restores a backup location into a new database; poll `/docs/Raven/Restore/Status`.
#[utoipa::path(
    post,
    path = "/admin/restore",
    tag = "restore",
    params(
        ("defrag" = Option<bool>, Query, nullable = false, description = "Compact fully before opening (default false)"),
        ("wait" = Option<bool>, Query, nullable = false, description = "Answer when the job has ended (default false)"),
    ),
    request_body = RestoreRequest,
    responses(
        (status = 202, body = JobAccepted),
        (status = 200, body = JobStatus, description = "wait=true: the restore succeeded"),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation, NoBackupFound, AmbiguousBackup, InvalidName, InvalidRequest"),
        (status = 404, body = ErrorBody, description = "SetNotFound: RestoreUpTo names no set of a complete chain"),
        (status = 409, body = ErrorBody, description = "DatabaseExists, DestinationNotEmpty, RestoreAlreadyRunning; wait=true: Canceled"),
        (status = 422, body = ErrorBody, description = "ChecksumMismatch, BrokenChain, CorruptBackup, UnsupportedFormatVersion"),
        (status = 507, body = ErrorBody, description = "InsufficientSpace"),
    )
)]
pub async fn start_restore(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let defrag = flag(&query, "defrag")?;
    let wait = flag(&query, "wait")?;
    let request: RestoreRequest = optional_json_request(body)?;
    if request.restore_start_timeout.is_some_and(|t| t > 3600) {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "RestoreStartTimeout is at most 3600 seconds."));
    }
    let completion = blocking(move || {
        let handle = state.start_restore(&request, defrag)?;
        tracing::info!(database = %handle.database_name, "restore started");
        Ok(handle.completion())
    })
    .await?;
    job_started(wait, RESTORE_STATUS_ID, completion).await
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
    params(("wait" = Option<bool>, Query, nullable = false, description = "Answer when the job has ended (default false)")),
    request_body = CompactRequest,
    responses(
        (status = 202, body = JobAccepted),
        (status = 200, body = JobStatus, description = "wait=true: the compaction succeeded"),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation, NoBackupFound, InvalidEncryptionKey, BackupStorageError"),
        (status = 404, body = ErrorBody, description = "SetNotFound: UpTo names no set of a complete chain"),
        (status = 409, body = ErrorBody, description = "CompactionAlreadyRunning, BackupAlreadyRunning; wait=true: Canceled"),
        (status = 422, body = ErrorBody, description = "ChecksumMismatch, BrokenChain, CorruptBackup, UnsupportedFormatVersion"),
        (status = 507, body = ErrorBody, description = "wait=true: InsufficientSpace"),
    )
)]
pub async fn start_compaction(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let wait = flag(&query, "wait")?;
    let request: CompactRequest = optional_json_request(body)?;
    let set_secret = SetSecret::from_request(request.backup_encryption_key.as_ref(), request.backup_passphrase.as_ref())
        .map_err(|m| ApiError::new(ErrorCode::InvalidRequest, m))?;
    let completion = blocking(move || {
        let options = CompactOptions {
            up_to: request.up_to,
            set_secret,
            source_database: request.source_database_name,
            task: None,
            object_lock: None,
        };
        let handle = state.start_compaction(&request.backup_location, request.s3.as_ref(), &options)?;
        tracing::info!(set = %handle.set_id, "compaction started");
        Ok(handle.completion())
    })
    .await?;
    job_started(wait, COMPACT_STATUS_ID, completion).await
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

/// Copies the sets of one location missing in another (whole chains, bases
/// first, each file verified by its hash, the source only read); running it
/// again resumes. Poll `/docs/Raven/Copy/Status`.
#[utoipa::path(
    post,
    path = "/admin/backup/copy",
    tag = "backup",
    params(("wait" = Option<bool>, Query, nullable = false, description = "Answer when the job has ended (default false)")),
    request_body = CopyRequest,
    responses(
        (status = 202, body = JobAccepted),
        (status = 200, body = JobStatus, description = "wait=true: the copy succeeded"),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation (outside the roots, or From is To), NoBackupFound, InvalidRequest, BackupStorageError"),
        (status = 404, body = ErrorBody, description = "SetNotFound: UpTo names no set"),
        (status = 409, body = ErrorBody, description = "BackupAlreadyRunning (a copy runs), ChainMismatch (To holds another set under a source's id); wait=true: Canceled"),
        (status = 422, body = ErrorBody, description = "ChecksumMismatch: a source file is not what its manifest says"),
        (status = 507, body = ErrorBody, description = "wait=true: InsufficientSpace"),
    )
)]
pub async fn start_copy(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let wait = flag(&query, "wait")?;
    let request: CopyRequest = optional_json_request(body)?;
    let completion = blocking(move || {
        let choice = crate::backup::copy_sets::CopyChoice { up_to: request.up_to, database_id: None };
        let handle = state.start_copy(&request.from, &request.to, request.s3_from.as_ref(), request.s3_to.as_ref(), &choice)?;
        tracing::info!(from = %request.from, to = %request.to, "copy started");
        Ok(handle.completion())
    })
    .await?;
    job_started(wait, COPY_STATUS_ID, completion).await
}

/// Asks the running copy to stop (it ends with `Canceled`; the sets it completed stay).
#[utoipa::path(
    post,
    path = "/admin/backup/copy/cancel",
    tag = "backup",
    responses((status = 202, body = JobAccepted), (status = 404, body = ErrorBody, description = "NotFound: no copy runs"))
)]
pub async fn cancel_copy(State(state): State<AppState>) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    cancel_answer(state.cancel_copy(), COPY_STATUS_ID, || "No copy is running.".to_string())
}
