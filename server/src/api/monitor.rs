//! Monitoring over REST: `GET /metrics` (Admin or Monitor; or with no
//! credentials on `--metrics-bind`) and `GET /admin/protection` (Admin).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rookery_types::ProtectionOverview;

use super::error::ApiError;
use super::extract::{blocking, AppState};
use crate::monitor::scrape::CONTENT_TYPE;

/// The metrics, in the OpenMetrics text format Prometheus scrapes.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "monitoring",
    responses((status = 200, description = "OpenMetrics text (application/openmetrics-text)", content_type = "application/openmetrics-text", body = String))
)]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = blocking(move || Ok(state.metrics_text())).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// Every database with its newest restorable point and its tasks' state.
#[utoipa::path(get, path = "/admin/protection", tag = "monitoring", responses((status = 200, body = ProtectionOverview)))]
pub async fn protection(State(state): State<AppState>) -> Result<Json<ProtectionOverview>, ApiError> {
    blocking(move || Ok(Json(state.protection()))).await
}
