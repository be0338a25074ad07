//! The REST API's router: the route tables mounted at the root and under
//! `/databases/{db}`, the request timeout, and the answers to what no route serves.

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, MethodRouter};
use axum::Router;
use rookery_types::ErrorCode;

use super::error::ApiError;
use super::extract::AppState;
use super::routes::{per_database_routes, server_routes, Timeout};
use super::{auth, openapi};

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
    let per_database = mount(per_database_routes(), limit).route_layer(axum::middleware::from_fn_with_state(state.clone(), observe));
    mount(server_routes(), limit)
        .route("/openapi.json", get(openapi::spec).layer(axum::middleware::from_fn_with_state(limit, request_timeout)))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .merge(per_database.clone())
        .nest("/databases/{db}", per_database)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authorize))
        .with_state(state)
}

/// `GET /metrics` alone, with no credentials: what `--metrics-bind` serves.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(super::monitor::metrics))
        .fallback(|uri: axum::http::Uri| async move { unknown_path(&uri) })
        .with_state(state)
}

/// Times each request that a route serves, for `rookery_http_request_duration_seconds`
/// (labelled by the route's template, never by the path a client sent).
async fn observe(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route =
        request.extensions().get::<axum::extract::MatchedPath>().map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = request.method().as_str().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.monitor().metrics.http_request(&route, &method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
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
