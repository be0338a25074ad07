//! The route tables: which handler serves which path, declared once for
//! the router and the OpenAPI description.

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put, MethodRouter};

use super::extract::AppState;
use super::{auth, browse, databases, documents, health, jobs, monitor, notifications, smuggler, tasks};

/// The routes of a database's base, declared once: the router serves them
/// at the root (the system database) and under `/databases/{db}`, and the
/// OpenAPI description mounts exactly these paths at both (see [`super::openapi`]).
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
        ("/admin/restore/documents", post(browse::restore_documents), Timeout::Stream),
        ("/admin/restore/documents/cancel", post(browse::cancel_restore_documents), Timeout::Bounded),
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

/// The routes of the server root only (see [`per_database_routes`]); the router adds `/openapi.json`.
pub(crate) fn server_routes() -> Vec<(&'static str, MethodRouter<AppState>, Timeout)> {
    vec![
        ("/health", get(health::health), Timeout::Bounded),
        ("/databases", get(databases::list), Timeout::Bounded),
        ("/admin/databases/{name}", put(databases::create).delete(databases::delete), Timeout::Bounded),
        ("/admin/backup/sets", get(jobs::list_sets), Timeout::Bounded),
        ("/admin/backup/documents", get(browse::list_documents), Timeout::Bounded),
        ("/admin/backup/documents/{*id}", get(browse::get_document), Timeout::Bounded),
        ("/admin/backup/diff", get(browse::diff), Timeout::Bounded),
        ("/admin/restore", post(jobs::start_restore), Timeout::Stream),
        ("/admin/restore/cancel", post(jobs::cancel_restore), Timeout::Bounded),
        ("/admin/backup/compact", post(jobs::start_compaction), Timeout::Bounded),
        ("/admin/backup/compact/cancel", post(jobs::cancel_compaction), Timeout::Bounded),
        ("/admin/backup/copy", post(jobs::start_copy), Timeout::Bounded),
        ("/admin/backup/copy/cancel", post(jobs::cancel_copy), Timeout::Bounded),
        ("/admin/backup/schedule", get(tasks::describe_schedule), Timeout::Bounded),
        ("/admin/users/{name}", put(auth::put_user).delete(auth::delete_user), Timeout::Bounded),
        ("/admin/apikeys", post(auth::create_api_key), Timeout::Bounded),
        ("/admin/apikeys/{name}", axum::routing::delete(auth::delete_api_key), Timeout::Bounded),
        ("/metrics", get(monitor::metrics), Timeout::Bounded),
        ("/admin/protection", get(monitor::protection), Timeout::Bounded),
        ("/admin/notifications", get(notifications::list_notifications), Timeout::Bounded),
        (
            "/admin/notifications/{name}",
            put(notifications::put_notification).get(notifications::get_notification).delete(notifications::delete_notification),
            Timeout::Bounded,
        ),
        ("/admin/notifications/{name}/test", post(notifications::test_notification), Timeout::Bounded),
        ("/auth/me", get(auth::whoami), Timeout::Bounded),
        ("/auth/login", post(auth::login), Timeout::Bounded),
        ("/auth/logout", post(auth::logout), Timeout::Bounded),
    ]
}
