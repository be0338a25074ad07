//! Reading backups without restoring them over REST: `GET
//! /admin/backup/documents[/{id}]`, `GET /admin/backup/diff` and
//! `POST {base}/admin/restore/documents`. The handlers translate HTTP; the
//! work is `crate::browse`'s.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use rookery_types::{
    BackupDocumentPage, DiffPage, ErrorBody, ErrorCode, JobAccepted, JobStatus, RestoreDocumentsRequest, RESTORE_DOCUMENTS_STATUS_ID,
};

use super::body::optional_json_request;
use super::documents::{etag_header, DocId};
use super::error::ApiError;
use super::extract::{blocking, count, flag, AppState, Db};
use super::jobs::{cancel_answer, job_started};
use crate::backup::sealed::SetSecret;
use crate::browse::{self, PointChoice, PointReader};
use crate::restore::RestoreError;

/// Header of a backup passphrase (never a query parameter: queries are logged).
pub const PASSPHRASE_HEADER: &str = "rookery-backup-passphrase";
/// Header of a backup key (base64 of 32 bytes).
pub const BACKUP_KEY_HEADER: &str = "rookery-backup-encryption-key";
/// Header of the database key, for sets of an encrypted database that left it out.
pub const DATABASE_KEY_HEADER: &str = "rookery-encryption-key";
/// Default results of one page.
const DEFAULT_PAGE_SIZE: usize = 100;

/// What every read names: where, how far, which database, and the secrets.
struct PointQuery {
    location: String,
    up_to: Option<String>,
    database: Option<String>,
    encryption_key: Option<String>,
    secret: Option<SetSecret>,
}

impl PointQuery {
    fn parse(query: &HashMap<String, String>, headers: &HeaderMap, up_to: &str) -> Result<Self, ApiError> {
        let header = |name: &str| -> Result<Option<String>, ApiError> {
            headers
                .get(name)
                .map(|v| {
                    v.to_str()
                        .map(str::to_string)
                        .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, format!("The {name} header is not text.")))
                })
                .transpose()
        };
        let secret = SetSecret::from_request(header(BACKUP_KEY_HEADER)?.as_ref(), header(PASSPHRASE_HEADER)?.as_ref())
            .map_err(|m| ApiError::new(ErrorCode::InvalidRequest, m))?;
        Ok(Self {
            location: query.get("location").cloned().unwrap_or_default(),
            up_to: query.get(up_to).filter(|v| !v.is_empty()).cloned(),
            database: query.get("database").filter(|v| !v.is_empty()).cloned(),
            encryption_key: header(DATABASE_KEY_HEADER)?,
            secret,
        })
    }

    /// Runs `read` on the chain at the point, opened now or kept from a
    /// request before (see [`browse::cache`]).
    fn read<T>(&self, state: &AppState, read: impl FnOnce(&mut PointReader) -> Result<T, RestoreError>) -> Result<T, ApiError> {
        static OPENED: std::sync::LazyLock<browse::cache::OpenedChains> = std::sync::LazyLock::new(Default::default);
        let location = state.open_backup_location(&self.location, None)?;
        let choice = PointChoice {
            up_to: self.up_to.as_deref(),
            database: self.database.as_deref(),
            encryption_key: self.encryption_key.as_deref(),
            secret: self.secret.as_ref(),
            scratch: Some(&state.config().data_dir),
        };
        Ok(OPENED.read(&location, choice, read)?)
    }
}

/// The documents of a backup at a point in time, in id order, without restoring it.
#[utoipa::path(
    get,
    path = "/admin/backup/documents",
    tag = "backup",
    params(
        ("location" = String, Query, description = "An absolute folder on the server, or s3://bucket/prefix", min_length = 1, pattern = "^(/|s3://)"),
        ("upTo" = Option<String>, Query, nullable = false, description = "A set id or an RFC 3339 time (default: the newest set)"),
        ("database" = Option<String>, Query, nullable = false, description = "The database's name in the sets, when the location holds several"),
        ("startsWith" = Option<String>, Query, nullable = false, description = "Id prefix"),
        ("start" = Option<u64>, Query, nullable = false, description = "Results to skip (default 0)"),
        ("pageSize" = Option<u64>, Query, nullable = false, description = "Default 100, at most 1024 (larger is capped)"),
        ("Rookery-Backup-Passphrase" = Option<String>, Header, nullable = false, description = "Encrypted sets"),
        ("Rookery-Backup-Encryption-Key" = Option<String>, Header, nullable = false, description = "Encrypted sets: base64 of 32 bytes"),
        ("Rookery-Encryption-Key" = Option<String>, Header, nullable = false, description = "The database key, when the sets left it out"),
    ),
    responses(
        (status = 200, body = BackupDocumentPage),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation, NoBackupFound, AmbiguousBackup, EncryptionKeyRequired, InvalidRequest (a snapshot of an encrypted database, sets older than format 4)"),
        (status = 404, body = ErrorBody, description = "SetNotFound"),
        (status = 422, body = ErrorBody, description = "ChecksumMismatch, BrokenChain, CorruptBackup"),
    )
)]
pub async fn list_documents(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<BackupDocumentPage>, ApiError> {
    let point = PointQuery::parse(&query, &headers, "upTo")?;
    let start = count(&query, "start", 0)?;
    let page_size = count(&query, "pageSize", DEFAULT_PAGE_SIZE)?.min(browse::MAX_PAGE_SIZE);
    let prefix = query.get("startsWith").cloned().unwrap_or_default();
    blocking(move || Ok(Json(point.read(&state, |reader| browse::list(reader, &prefix, start, page_size))?))).await
}

/// One document of a backup at a point in time, as stored, without restoring it.
#[utoipa::path(
    get,
    path = "/admin/backup/documents/{id}",
    tag = "backup",
    params(
        ("id" = String, Path, min_length = 1),
        ("location" = String, Query, description = "An absolute folder on the server, or s3://bucket/prefix", min_length = 1, pattern = "^(/|s3://)"),
        ("upTo" = Option<String>, Query, nullable = false, description = "A set id or an RFC 3339 time (default: the newest set)"),
        ("database" = Option<String>, Query, nullable = false, description = "The database's name in the sets, when the location holds several"),
        ("Rookery-Backup-Passphrase" = Option<String>, Header, nullable = false, description = "Encrypted sets"),
        ("Rookery-Backup-Encryption-Key" = Option<String>, Header, nullable = false, description = "Encrypted sets: base64 of 32 bytes"),
        ("Rookery-Encryption-Key" = Option<String>, Header, nullable = false, description = "The database key, when the sets left it out"),
    ),
    responses(
        (status = 200, content_type = "application/json", description = "The body as stored; headers ETag and Rookery-Set-Id (the set it came from)"),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation, NoBackupFound, AmbiguousBackup, EncryptionKeyRequired, InvalidRequest"),
        (status = 404, body = ErrorBody, description = "NotFound (naming the set that deleted it, if one did), SetNotFound"),
        (status = 422, body = ErrorBody, description = "ChecksumMismatch, BrokenChain, CorruptBackup"),
    )
)]
pub async fn get_document(
    State(state): State<AppState>,
    DocId(id): DocId,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let point = PointQuery::parse(&query, &headers, "upTo")?;
    let found = blocking(move || point.read(&state, |reader| browse::get(reader, &id))?.map_err(ApiError::not_found)).await?;
    let mut response = Response::new(Body::from(found.body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::ETAG, etag_header(found.entry.etag));
    if let Ok(set) = HeaderValue::from_str(&found.set_id) {
        headers.insert(HeaderName::from_static("rookery-set-id"), set);
    }
    Ok(response)
}

/// The ids created, changed and deleted between two points of one chain.
#[utoipa::path(
    get,
    path = "/admin/backup/diff",
    tag = "backup",
    params(
        ("location" = String, Query, description = "An absolute folder on the server, or s3://bucket/prefix", min_length = 1, pattern = "^(/|s3://)"),
        ("from" = String, Query, description = "The earlier point: a set id or an RFC 3339 time, in the chain of `to`", min_length = 1),
        ("to" = Option<String>, Query, nullable = false, description = "The later point (default: the newest set)"),
        ("database" = Option<String>, Query, nullable = false, description = "The database's name in the sets, when the location holds several"),
        ("start" = Option<u64>, Query, nullable = false, description = "Results to skip (default 0)"),
        ("pageSize" = Option<u64>, Query, nullable = false, description = "Default 100, at most 1024 (larger is capped)"),
        ("Rookery-Backup-Passphrase" = Option<String>, Header, nullable = false, description = "Encrypted sets"),
        ("Rookery-Backup-Encryption-Key" = Option<String>, Header, nullable = false, description = "Encrypted sets: base64 of 32 bytes"),
    ),
    responses(
        (status = 200, body = DiffPage),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation, NoBackupFound, AmbiguousBackup, InvalidRequest (from after to)"),
        (status = 404, body = ErrorBody, description = "SetNotFound (a point outside the chain)"),
        (status = 422, body = ErrorBody, description = "ChecksumMismatch, BrokenChain, CorruptBackup"),
    )
)]
pub async fn diff(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<DiffPage>, ApiError> {
    let point = PointQuery::parse(&query, &headers, "to")?;
    let from = query
        .get("from")
        .filter(|f| !f.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery, "'from' is required: a set id or an RFC 3339 time."))?;
    let start = count(&query, "start", 0)?;
    let page_size = count(&query, "pageSize", DEFAULT_PAGE_SIZE)?.min(browse::MAX_PAGE_SIZE);
    blocking(move || Ok(Json(point.read(&state, |reader| browse::diff(reader, &from, start, page_size))?))).await
}

/// Restores chosen documents of a backup at a point in time into this
/// database (or a new one); poll `{base}/docs/Raven/RestoreDocuments/Status`.
#[utoipa::path(
    post,
    path = "/admin/restore/documents",
    tag = "restore",
    params(("wait" = Option<bool>, Query, nullable = false, description = "Answer when the job has ended (default false)")),
    request_body = RestoreDocumentsRequest,
    responses(
        (status = 202, body = JobAccepted),
        (status = 200, body = JobStatus, description = "wait=true: the restore succeeded"),
        (status = 400, body = ErrorBody, description = "InvalidBackupLocation, NoBackupFound, AmbiguousBackup, InvalidRequest, InvalidName, EncryptionKeyRequired"),
        (status = 404, body = ErrorBody, description = "NotFound (database), SetNotFound"),
        (status = 409, body = ErrorBody, description = "DatabaseExists, RestoreAlreadyRunning; wait=true: Canceled"),
        (status = 422, body = ErrorBody, description = "ChecksumMismatch, BrokenChain, CorruptBackup"),
    )
)]
pub async fn restore_documents(
    State(state): State<AppState>,
    Db(db): Db,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let wait = flag(&query, "wait")?;
    let request: RestoreDocumentsRequest = optional_json_request(body)?;
    let completion = blocking(move || {
        let handle = state.start_restore_documents(&db.name, &request)?;
        tracing::info!(database = %handle.database, "restore of documents started");
        Ok(handle.completion())
    })
    .await?;
    job_started(wait, RESTORE_DOCUMENTS_STATUS_ID, completion).await
}

/// Asks the running restore of documents into this database to stop (what it wrote stays).
#[utoipa::path(
    post,
    path = "/admin/restore/documents/cancel",
    tag = "restore",
    responses((status = 202, body = JobAccepted), (status = 404, body = ErrorBody, description = "NotFound: no restore of documents into this database runs"))
)]
pub async fn cancel_restore_documents(State(state): State<AppState>, Db(db): Db) -> Result<(StatusCode, Json<JobAccepted>), ApiError> {
    cancel_answer(state.cancel_restore_documents(&db.name), RESTORE_DOCUMENTS_STATUS_ID, || {
        format!("No restore of documents into '{}' is running.", db.name)
    })
}
