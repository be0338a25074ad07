//! Backup tasks and retention over REST (Admin): `{base}/admin/backup/tasks`,
//! `{base}/admin/backup/retention`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, RawPathParams, State};
use axum::http::StatusCode;
use axum::Json;
use rookery_types::{
    BackupTask, BackupTaskInfo, ErrorBody, JobAccepted, JobStatus, RetentionOutcome, RetentionRequest, ScheduleInfo, BACKUP_STATUS_ID,
    COMPACT_STATUS_ID,
};

use super::body::json_request;
use super::error::ApiError;
use super::extract::{blocking, flag, AppState, Db};
use crate::tasks::TaskError;

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Backup(b) => b.into(),
            TaskError::Storage(s) => s.into(),
            other => Self::classified(other.code(), other.to_string(), &other),
        }
    }
}

/// The `{name}` of a task route.
fn task_name(params: &RawPathParams) -> String {
    params.iter().find(|(k, _)| *k == "name").map(|(_, v)| v.to_string()).unwrap_or_default()
}

/// Creates or replaces a task.
#[utoipa::path(
    put,
    path = "/admin/backup/tasks/{name}",
    tag = "tasks",
    params(("name" = String, Path)),
    request_body = BackupTask,
    responses(
        (status = 201, description = "Created"),
        (status = 200, description = "Replaced"),
        (status = 400, body = ErrorBody, description = "InvalidSchedule, InvalidBackupLocation, InvalidRequest, InvalidName, InvalidJson"),
    )
)]
pub async fn put_task(
    State(state): State<AppState>,
    Db(db): Db,
    params: RawPathParams,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let name = task_name(&params);
    let task: BackupTask = json_request(body)?;
    blocking(move || Ok(if state.put_task(&db.name, &name, task)? { StatusCode::CREATED } else { StatusCode::OK })).await
}

/// The database's tasks, in name order, with their status.
#[utoipa::path(get, path = "/admin/backup/tasks", tag = "tasks", responses((status = 200, body = Vec<BackupTaskInfo>)))]
pub async fn list_tasks(State(state): State<AppState>, Db(db): Db) -> Result<Json<Vec<BackupTaskInfo>>, ApiError> {
    blocking(move || Ok(Json(state.list_tasks(&db.name)?))).await
}

/// One task with its status.
#[utoipa::path(
    get,
    path = "/admin/backup/tasks/{name}",
    tag = "tasks",
    params(("name" = String, Path)),
    responses((status = 200, body = BackupTaskInfo), (status = 404, body = ErrorBody))
)]
pub async fn get_task(State(state): State<AppState>, Db(db): Db, params: RawPathParams) -> Result<Json<BackupTaskInfo>, ApiError> {
    let name = task_name(&params);
    blocking(move || Ok(Json(state.get_task(&db.name, &name)?))).await
}

/// Deletes a task.
#[utoipa::path(
    delete,
    path = "/admin/backup/tasks/{name}",
    tag = "tasks",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody))
)]
pub async fn delete_task(State(state): State<AppState>, Db(db): Db, params: RawPathParams) -> Result<StatusCode, ApiError> {
    let name = task_name(&params);
    blocking(move || {
        state.delete_task(&db.name, &name)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Runs a task now: 202 as a backup, status in `{base}/docs/Raven/Backup/Status`.
#[utoipa::path(
    post,
    path = "/admin/backup/tasks/{name}/run",
    tag = "tasks",
    params(
        ("name" = String, Path),
        ("incremental" = Option<bool>, Query, nullable = false, description = "Default false"),
        ("wait" = Option<bool>, Query, nullable = false, description = "Answer when the run's backup has ended (default false)"),
    ),
    responses(
        (status = 202, body = JobAccepted),
        (status = 200, body = JobStatus, description = "wait=true: the run's backup succeeded"),
        (status = 400, body = ErrorBody, description = "InvalidQuery, InvalidBackupLocation, InvalidRequest"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "BackupAlreadyRunning, ChainMismatch; wait=true: Canceled"),
        (status = 422, body = ErrorBody, description = "wait=true: damage found in the chain a compacting run folds"),
        (status = 507, body = ErrorBody, description = "wait=true: InsufficientSpace"),
    )
)]
pub async fn run_task(
    State(state): State<AppState>,
    Db(db): Db,
    params: RawPathParams,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::response::Response, ApiError> {
    let name = task_name(&params);
    let incremental = flag(&query, "incremental")?;
    let wait = flag(&query, "wait")?;
    let (task_state, database, task) = (state.clone(), db.name.clone(), name.clone());
    let run = blocking(move || Ok(state.run_task(&db.name, &name, incremental)?)).await?;
    // A forever-incremental task's full is a compaction, reported in its own status document.
    let document = if run.compaction { COMPACT_STATUS_ID } else { BACKUP_STATUS_ID };
    if !wait {
        return Ok(super::jobs::accepted(document));
    }
    // The whole run: its backup, then its retention and its record.
    let outcome = tokio::task::spawn_blocking(move || {
        let outcome = run.completion.wait();
        task_state.wait_for_task_run(&database, &task);
        outcome
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    super::jobs::job_ended(outcome)
}

/// Applies a retention policy to the database's chains in a location, or
/// (`dryRun=true`) only says what it would delete.
#[utoipa::path(
    post,
    path = "/admin/backup/retention",
    tag = "tasks",
    params(
        ("location" = String, Query, min_length = 1, pattern = "^(/|s3://)", description = "An absolute folder on the server, or s3://bucket/prefix"),
        ("dryRun" = Option<bool>, Query, nullable = false, description = "Only list what would be deleted (default false)"),
    ),
    request_body = RetentionRequest,
    responses((status = 200, body = RetentionOutcome), (status = 400, body = ErrorBody, description = "InvalidBackupLocation, InvalidRequest"))
)]
pub async fn retention(
    State(state): State<AppState>,
    Db(db): Db,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RetentionOutcome>, ApiError> {
    let location = query.get("location").cloned().unwrap_or_default();
    let dry_run = flag(&query, "dryRun")?;
    let request: RetentionRequest = json_request(body)?;
    blocking(move || Ok(Json(state.apply_retention(&db.name, &location, &request.retention, dry_run)?))).await
}

/// What a cron expression means, in a time zone: its description and next three times.
#[utoipa::path(
    get,
    path = "/admin/backup/schedule",
    tag = "tasks",
    params(
        ("cron" = String, Query, pattern = r"^\s*\S+(\s+\S+){4,5}\s*$", description = "5 fields, or 6 with seconds first"),
        ("timeZone" = Option<String>, Query, description = "IANA time zone (default UTC)"),
    ),
    responses((status = 200, body = ScheduleInfo), (status = 400, body = ErrorBody, description = "InvalidSchedule"))
)]
pub async fn describe_schedule(Query(query): Query<HashMap<String, String>>) -> Result<Json<ScheduleInfo>, ApiError> {
    let cron = query.get("cron").cloned().unwrap_or_default();
    let zone = query.get("timeZone").cloned().filter(|z| !z.is_empty());
    Ok(Json(crate::tasks::describe_schedule(&cron, zone.as_deref())?))
}
