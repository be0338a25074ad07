//! `GET /databases`, `PUT|DELETE /admin/databases/{name}`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;

use super::body::optional_json_request;
use super::error::ApiError;
use super::extract::{blocking, AppState};
use rookery_types::{CreateDatabaseRequest, DatabaseCreated, DatabaseInfo, ErrorBody};

/// Every named database, in creation order (the system database first with
/// `includeSystem=true`).
#[utoipa::path(
    get,
    path = "/databases",
    tag = "databases",
    params(("includeSystem" = Option<bool>, Query, nullable = false, description = "Also the system database, first (default false)")),
    responses((status = 200, body = Vec<DatabaseInfo>), (status = 400, body = ErrorBody, description = "InvalidQuery"))
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<DatabaseInfo>>, ApiError> {
    let include_system = super::extract::flag(&query, "includeSystem")?;
    blocking(move || {
        let catalog = state.catalog();
        let system = include_system.then(|| catalog.system());
        Ok(Json(
            system
                .into_iter()
                .chain(catalog.list())
                .map(|db| DatabaseInfo {
                    name: db.name.clone(),
                    document_count: db.store().document_count(),
                    size_bytes: db.store().size_bytes(),
                    data_size_bytes: db.store().data_bytes(),
                    encrypted: db.store().is_encrypted(),
                })
                .collect(),
        ))
    })
    .await
}

/// Creates a database.
#[utoipa::path(
    put,
    path = "/admin/databases/{name}",
    tag = "databases",
    params(("name" = String, Path)),
    request_body(content = Option<CreateDatabaseRequest>, description = "optional"),
    responses(
        (status = 201, body = DatabaseCreated),
        (status = 400, body = ErrorBody, description = "InvalidName, InvalidJson"),
        (status = 409, body = ErrorBody, description = "DatabaseExists"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<DatabaseCreated>), ApiError> {
    let request: CreateDatabaseRequest = optional_json_request(body)?;
    blocking(move || {
        let (db, key) = if request.encrypted {
            let (db, key) = state.catalog().create_encrypted(&name)?;
            (db, Some(key.to_base64()))
        } else {
            (state.catalog().create(&name)?, None)
        };
        tracing::info!(database = %db.name, encrypted = request.encrypted, "database created");
        Ok((StatusCode::CREATED, Json(DatabaseCreated { name: db.name.clone(), encryption_key: key })))
    })
    .await
}

/// Deletes a database and its files.
#[utoipa::path(
    delete,
    path = "/admin/databases/{name}",
    tag = "databases",
    params(("name" = String, Path)),
    responses(
        (status = 204),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "DatabaseBusy while a backup runs"),
    )
)]
pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    blocking(move || match state.catalog().delete(&name) {
        Ok(()) => {
            tracing::info!(database = %name, "database deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(crate::storage::StorageError::NotFound) => {
            Err(ApiError::not_found(format!("Database '{}' does not exist.", name.escape_debug())))
        }
        Err(e) => Err(e.into()),
    })
    .await
}
