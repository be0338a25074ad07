//! The REST API (see `docs/reference.md`): one router for every client,
//! the studio included.
//!
//! The server root is the system database's base; `/databases/{db}` is a
//! named database's. Per-database routes are declared once and mounted at both.

pub mod auth;
pub mod body;
pub mod databases;
pub mod documents;
pub mod error;
pub mod jobs;
pub mod openapi;
pub mod smuggler;
pub mod tasks;

use rookery_types::ErrorCode;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::routing::{get, post, put, MethodRouter};
use axum::{Json, Router};

pub use error::ApiError;

use crate::storage::DatabaseHandle;
use crate::Rookery;
use rookery_types::Health;

/// What every handler shares.
pub type AppState = Arc<Rookery>;

/// The routes of a database's base, declared once: the router serves them
/// at the root (the system database) and under `/databases/{db}`, and the
/// OpenAPI description mounts exactly these paths at both (see [`openapi`]).
/// The streams (export, import) are not bound by the request timeout.
pub(crate) fn per_database_routes() -> Vec<(&'static str, MethodRouter<AppState>, Timeout)> {
    vec![
        ("/docs", get(documents::list), Timeout::Bounded),
        ("/docs/{*id}", get(documents::get).put(documents::put).delete(documents::delete), Timeout::Bounded),
        ("/admin/backup", post(jobs::start_backup), Timeout::Bounded),
        ("/admin/backup/cancel", post(jobs::cancel_backup), Timeout::Bounded),
        ("/admin/backup/tasks", get(tasks::list_tasks), Timeout::Bounded),
        ("/admin/backup/tasks/{name}", put(tasks::put_task).get(tasks::get_task).delete(tasks::delete_task), Timeout::Bounded),
        ("/admin/backup/tasks/{name}/run", post(tasks::run_task), Timeout::Bounded),
        ("/admin/backup/retention", post(tasks::retention), Timeout::Bounded),
        ("/smuggler/import/cancel", post(smuggler::cancel_import), Timeout::Bounded),
        ("/smuggler/export", get(smuggler::export_dump), Timeout::Stream),
        ("/smuggler/import", post(smuggler::import_dump).layer(DefaultBodyLimit::disable()), Timeout::Stream),
    ]
}

/// Whether a route's requests end within the request timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// Ended with 503 `RequestTimeout` after `--request-timeout` (unless `?wait=true`).
    Bounded,
    /// A stream, or a request that waits up to its own limit.
    Stream,
}

/// The routes of the server root only (see [`per_database_routes`]).
pub(crate) fn server_routes() -> Vec<(&'static str, MethodRouter<AppState>, Timeout)> {
    vec![
        ("/health", get(health), Timeout::Bounded),
        ("/openapi.json", get(openapi::spec), Timeout::Bounded),
        ("/databases", get(databases::list), Timeout::Bounded),
        ("/admin/databases/{name}", put(databases::create).delete(databases::delete), Timeout::Bounded),
        ("/admin/backup/sets", get(jobs::list_sets), Timeout::Bounded),
        ("/admin/restore", post(jobs::start_restore), Timeout::Stream),
        ("/admin/restore/cancel", post(jobs::cancel_restore), Timeout::Bounded),
        ("/admin/backup/compact", post(jobs::start_compaction), Timeout::Bounded),
        ("/admin/backup/compact/cancel", post(jobs::cancel_compaction), Timeout::Bounded),
        ("/admin/backup/schedule", get(tasks::describe_schedule), Timeout::Bounded),
        ("/admin/users/{name}", put(auth::put_user).delete(auth::delete_user), Timeout::Bounded),
        ("/admin/apikeys", post(auth::create_api_key), Timeout::Bounded),
        ("/admin/apikeys/{name}", axum::routing::delete(auth::delete_api_key), Timeout::Bounded),
        ("/auth/me", get(auth::whoami), Timeout::Bounded),
        ("/auth/login", post(auth::login), Timeout::Bounded),
        ("/auth/logout", post(auth::logout), Timeout::Bounded),
    ]
}

/// Mounts `routes` on a router, each bounded by the request timeout unless it streams.
fn mount(routes: Vec<(&'static str, MethodRouter<AppState>, Timeout)>, limit: std::time::Duration) -> Router<AppState> {
    routes.into_iter().fold(Router::new(), |router, (path, route, timeout)| match timeout {
        Timeout::Bounded => router.route(path, route.layer(axum::middleware::from_fn_with_state(limit, request_timeout))),
        Timeout::Stream => router.route(path, route),
    })
}

/// The REST API.
pub fn router(state: AppState) -> Router {
    let limit = state.config().request_timeout();
    let per_database = mount(per_database_routes(), limit);
    mount(server_routes(), limit)
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
    // `?wait=true` answers when its job has ended, however long that takes.
    if waits_for_job(request.uri()) {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::RequestTimeout,
            "The request took longer than the server's request timeout (--request-timeout); try again.",
        )
        .into_response(),
    }
}

/// Whether a request asks to be answered when its job has ended (`?wait=true`).
fn waits_for_job(uri: &axum::http::Uri) -> bool {
    let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "true" | "1");
    uri.query().is_some_and(|q| q.split('&').any(|pair| pair.split_once('=').is_some_and(|(k, v)| k == "wait" && truthy(v))))
}

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "server", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "Ok".into() })
}

/// The path prefixes of the API: an unknown path under one of them answers
/// JSON 404 `NotFound` (never the studio's page).
pub const API_PREFIXES: [&str; 5] = ["/databases/", "/admin/", "/auth/", "/docs", "/smuggler/"];

/// Whether `path` lies under the API (see [`API_PREFIXES`]).
#[must_use]
pub fn is_api_path(path: &str) -> bool {
    path == "/databases" || path == "/admin" || API_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// The answer to a path under the API that no route serves.
#[must_use]
pub fn unknown_path(uri: &axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("No route serves {}; see /openapi.json.", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {}; see /openapi.json.", uri.path()))
}

/// The database a request is for: `{db}` from the path, or the system database.
#[derive(Debug, Clone)]
pub struct Db(pub Arc<DatabaseHandle>);

impl FromRequestParts<AppState> for Db {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params =
            RawPathParams::from_request_parts(parts, state).await.map_err(|e| ApiError::new(ErrorCode::InvalidPath, e.body_text()))?;
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
