//! Notifications over REST (Admin): `/admin/notifications[/{name}]`, and
//! `POST /admin/notifications/{name}/test`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rookery_types::{ErrorBody, NotificationInfo, PutNotificationRequest, TestDelivery};

use super::body::json_request;
use super::error::ApiError;
use super::extract::{blocking, AppState};
use crate::notify::NotifyError;

impl From<NotifyError> for ApiError {
    fn from(e: NotifyError) -> Self {
        match e {
            NotifyError::Storage(s) => s.into(),
            other => Self::classified(other.code(), other.to_string(), &other),
        }
    }
}

/// Creates or replaces a webhook.
#[utoipa::path(
    put,
    path = "/admin/notifications/{name}",
    tag = "monitoring",
    params(("name" = String, Path)),
    request_body = PutNotificationRequest,
    responses(
        (status = 201, description = "Created"),
        (status = 200, description = "Replaced"),
        (status = 400, body = ErrorBody, description = "InvalidRequest, InvalidName, InvalidJson"),
    )
)]
pub async fn put_notification(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let request: PutNotificationRequest = json_request(body)?;
    blocking(move || Ok(if state.put_notification(&name, &request)? { StatusCode::CREATED } else { StatusCode::OK })).await
}

/// Every webhook (never its secret).
#[utoipa::path(get, path = "/admin/notifications", tag = "monitoring", responses((status = 200, body = Vec<NotificationInfo>)))]
pub async fn list_notifications(State(state): State<AppState>) -> Result<Json<Vec<NotificationInfo>>, ApiError> {
    blocking(move || Ok(Json(state.list_notifications()))).await
}

/// One webhook.
#[utoipa::path(
    get,
    path = "/admin/notifications/{name}",
    tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 200, body = NotificationInfo), (status = 404, body = ErrorBody))
)]
pub async fn get_notification(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<NotificationInfo>, ApiError> {
    blocking(move || Ok(Json(state.get_notification(&name)?))).await
}

/// Removes a webhook and what waits to be delivered to it.
#[utoipa::path(
    delete,
    path = "/admin/notifications/{name}",
    tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody))
)]
pub async fn delete_notification(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    blocking(move || {
        state.delete_notification(&name)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Sends a `Test` event to the webhook now, once, and says how it went.
#[utoipa::path(
    post,
    path = "/admin/notifications/{name}/test",
    tag = "monitoring",
    params(("name" = String, Path)),
    responses((status = 200, body = TestDelivery), (status = 404, body = ErrorBody))
)]
pub async fn test_notification(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<TestDelivery>, ApiError> {
    blocking(move || Ok(Json(state.test_notification(&name)?))).await
}
