//! `GET /health`: liveness.

use axum::Json;
use rookery_types::Health;

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "server", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "Ok".into() })
}
