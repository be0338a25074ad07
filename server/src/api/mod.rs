//! The REST API (see `docs/reference.md`): one router for every client,
//! the studio included.
//!
//! The server root is the system database's base; `/databases/{db}` is a
//! named database's. Per-database routes are declared once and mounted at both.

pub mod auth;
pub mod databases;
pub mod documents;
pub mod error;
pub mod jobs;
pub mod openapi;
pub mod smuggler;
pub mod tasks;

use app::api::ErrorCode;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use axum::{Json, Router};

pub use error::ApiError;

use crate::storage::DatabaseHandle;
use crate::Rookery;
use app::api::Health;

/// What every handler shares.
pub type AppState = Arc<Rookery>;

/// The REST API.
pub fn router(state: AppState) -> Router {
    let timeout = state.config().request_timeout();
    // Every request but the streams (export, import) and the restore (which
    // waits up to its own RestoreStartTimeout) ends within the request timeout.
    let timed = |router: Router<AppState>| router.layer(axum::middleware::from_fn_with_state(timeout, request_timeout));
    let per_database = timed(
        Router::new()
            .route("/docs", get(documents::list))
            .route("/docs/{*id}", get(documents::get).put(documents::put).delete(documents::delete))
            .route("/admin/backup", post(jobs::start_backup))
            .route("/admin/backup/cancel", post(jobs::cancel_backup))
            .route("/admin/backup/tasks", get(tasks::list_tasks))
            .route("/admin/backup/tasks/{name}", put(tasks::put_task).get(tasks::get_task).delete(tasks::delete_task))
            .route("/admin/backup/tasks/{name}/run", post(tasks::run_task))
            .route("/admin/backup/retention", post(tasks::retention))
            .route("/smuggler/import/cancel", post(smuggler::cancel_import)),
    )
    .route("/smuggler/export", get(smuggler::export_dump))
    .route("/smuggler/import", post(smuggler::import_dump).layer(DefaultBodyLimit::disable()));
    timed(
        Router::new()
            .route("/health", get(health))
            .route("/openapi.json", get(openapi::spec))
            .route("/databases", get(databases::list))
            .route("/admin/databases/{name}", put(databases::create).delete(databases::delete))
            .route("/admin/backup/sets", get(jobs::list_sets))
            .route("/admin/restore/cancel", post(jobs::cancel_restore))
            .route("/admin/backup/compact", post(jobs::start_compaction))
            .route("/admin/backup/compact/cancel", post(jobs::cancel_compaction))
            .route("/admin/backup/schedule", get(tasks::describe_schedule))
            .route("/admin/users/{name}", put(auth::put_user).delete(auth::delete_user))
            .route("/admin/apikeys", post(auth::create_api_key))
            .route("/admin/apikeys/{name}", axum::routing::delete(auth::delete_api_key))
            .route("/auth/me", get(auth::whoami))
            .route("/auth/login", post(auth::login))
            .route("/auth/logout", post(auth::logout)),
    )
    .route("/admin/restore", post(jobs::start_restore))
    .merge(per_database.clone())
    .nest("/databases/{db}", per_database)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
    .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authorize))
    .with_state(state)
}

/// Ends a request that takes longer than `limit` with a JSON 503 `RequestTimeout`.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RequestTimeout,
            "The request took longer than the server's request timeout (--request-timeout); try again.",
        )
        .into_response(),
    }
}

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "server", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "Ok".into() })
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}; see /openapi.json.", uri.path()),
    )
}

/// The database a request is for: `{db}` from the path, or the system database.
#[derive(Debug, Clone)]
pub struct Db(pub Arc<DatabaseHandle>);

impl FromRequestParts<AppState> for Db {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidPath, e.body_text()))?;
        let name = params.iter().find(|(k, _)| *k == "db").map(|(_, v)| v.to_string());
        match name {
            None => Ok(Self(state.catalog().system())),
            Some(name) => state
                .catalog()
                .get(&name)
                .map(Self)
                .ok_or_else(|| ApiError::not_found(format!("Database '{}' does not exist.", name.escape_debug()))),
        }
    }
}

/// Runs blocking work (disk I/O, waiting for a job slot) off the async runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(&e))?
}
