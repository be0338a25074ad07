//! Documents: `PUT|GET|DELETE {base}/docs/{id}` and `GET {base}/docs`.

use rookery_types::ErrorCode;
use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Query, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::body::body_bytes;
use super::error::ApiError;
use super::extract::{blocking, count, AppState, Db};
use rookery_types::{DocumentEntry, DocumentPage, ErrorBody, PutResult};

/// Most results a listing page returns.
pub const MAX_PAGE_SIZE: usize = 1024;
const DEFAULT_PAGE_SIZE: usize = 25;

/// Checks that a body is a JSON object; returns it without insignificant
/// whitespace, every other byte as sent (numbers keep their text, keys their order).
pub(crate) fn json_object(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("The body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::new(ErrorCode::NotAnObject, "A document must be a JSON object ({...})."));
    }
    Ok(crate::storage::json::minify(body))
}

fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<u64>()
        .map(Some)
        .map_err(|_| ApiError::new(ErrorCode::InvalidETag, format!("If-Match must be an etag (a number), not '{}'.", text.escape_debug())))
}

/// The one value `If-None-Match` takes (for the description).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub enum IfNoneMatch {
    #[serde(rename = "*")]
    Any,
}

/// `If-None-Match: *`: create only, never replace.
fn if_none_match_any(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers.get(header::IF_NONE_MATCH) {
        None => Ok(false),
        Some(v) if v.as_bytes().trim_ascii() == b"*" => Ok(true),
        Some(_) => {
            Err(ApiError::new(ErrorCode::InvalidETag, "If-None-Match accepts only '*' (create the document only if it does not exist)."))
        }
    }
}

pub(crate) fn etag_header(etag: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{etag}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// The document id from the path (`{*id}`: it may hold `/`).
#[derive(Debug, Clone)]
pub struct DocId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for DocId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params =
            RawPathParams::from_request_parts(parts, state).await.map_err(|e| ApiError::new(ErrorCode::InvalidId, e.body_text()))?;
        params
            .iter()
            .find(|(k, _)| *k == "id")
            .map(|(_, v)| Self(v.to_string()))
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidId, "A document id is required."))
    }
}

/// Creates or replaces a document.
#[utoipa::path(
    put,
    path = "/docs/{id}",
    tag = "documents",
    params(("id" = String, Path, description = "Any non-empty UTF-8 up to 512 bytes; `/` allowed", min_length = 1),
           ("If-Match" = Option<String>, Header, nullable = false, description = "Only if the document is at this etag", pattern = r#"^(W/)?"?[0-9]{1,19}"?$"#),
           ("If-None-Match" = Option<IfNoneMatch>, Header, nullable = false, description = "`*`: only if the document does not exist")),
    request_body(content = Object, description = "A JSON object"),
    responses(
        (status = 200, body = PutResult, description = "Replaced"),
        (status = 201, body = PutResult, description = "Created"),
        (status = 400, body = ErrorBody, description = "InvalidJson, NotAnObject, InvalidId, InvalidETag"),
        (status = 403, body = ErrorBody, description = "ReservedDocument: a server-owned Raven/ id"),
        (status = 404, body = ErrorBody, description = "Unknown database"),
        (status = 409, body = ErrorBody, description = "ConcurrencyConflict"),
        (status = 413, body = ErrorBody, description = "BodyTooLarge"),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    Db(db): Db,
    DocId(id): DocId,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let create_only = if_none_match_any(&headers)?;
    if create_only && expected.is_some() {
        return Err(ApiError::new(ErrorCode::InvalidETag, "Give If-Match or If-None-Match: *, not both."));
    }
    let body = json_object(&body_bytes(body)?)?;
    crate::storage::store::validate_client_id(&id)?;
    let name = db.name.clone();
    let outcome = blocking(move || {
        let outcome = if create_only { db.store().create(&id, &body) } else { db.store().put(&id, &body, expected) };
        Ok(outcome.map(|o| (id, o))?)
    })
    .await?;
    state.monitor().metrics.documents_written(&name, 1);
    let (id, outcome) = outcome;
    let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
    let mut response = (status, Json(PutResult { id, etag: outcome.etag })).into_response();
    response.headers_mut().insert(header::ETAG, etag_header(outcome.etag));
    Ok(response)
}

/// Reads a document.
#[utoipa::path(
    get,
    path = "/docs/{id}",
    tag = "documents",
    params(("id" = String, Path, min_length = 1)),
    responses((status = 200, body = Object, description = "The document; header ETag"), (status = 404, body = ErrorBody))
)]
pub async fn get(State(state): State<AppState>, Db(db): Db, DocId(id): DocId) -> Result<Response, ApiError> {
    state.monitor().metrics.documents_read(&db.name, 1);
    let record = blocking(move || {
        db.store().get(&id)?.ok_or_else(|| ApiError::not_found(format!("Document '{}' does not exist.", id.escape_debug())))
    })
    .await?;
    let mut response = Response::new(Body::from(record.body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::ETAG, etag_header(record.etag));
    Ok(response)
}

/// Deletes a document.
#[utoipa::path(
    delete,
    path = "/docs/{id}",
    tag = "documents",
    params(("id" = String, Path, min_length = 1), ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(W/)?"?[0-9]{1,19}"?$"#)),
    responses((status = 204), (status = 400, body = ErrorBody, description = "InvalidETag"), (status = 403, body = ErrorBody, description = "ReservedDocument"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn delete(State(state): State<AppState>, Db(db): Db, DocId(id): DocId, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let expected = if_match(&headers)?;
    blocking(move || match db.store().delete(&id, expected) {
        Ok(_) => {
            state.monitor().metrics.documents_written(&db.name, 1);
            Ok(StatusCode::NO_CONTENT)
        }
        Err(crate::storage::StorageError::NotFound) => {
            Err(ApiError::not_found(format!("Document '{}' does not exist.", id.escape_debug())))
        }
        Err(e) => Err(e.into()),
    })
    .await
}

/// A page of documents in id order.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "documents",
    params(
        ("start" = Option<u64>, Query, description = "Results to skip (default 0)"),
        ("pageSize" = Option<u64>, Query, description = "Default 25, at most 1024 (larger is capped)"),
        ("startsWith" = Option<String>, Query, description = "Id prefix"),
    ),
    responses((status = 200, body = DocumentPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "Unknown database"))
)]
pub async fn list(
    State(state): State<AppState>,
    Db(db): Db,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<DocumentPage>, ApiError> {
    let start = count(&query, "start", 0)?;
    let page_size = count(&query, "pageSize", DEFAULT_PAGE_SIZE)?.min(MAX_PAGE_SIZE);
    let prefix = query.get("startsWith").cloned().unwrap_or_default();
    blocking(move || {
        let (page, total) = db.store().list(&prefix, start, page_size)?;
        state.monitor().metrics.documents_read(&db.name, page.len() as u64);
        let results = page
            .into_iter()
            .map(|(id, record)| {
                let document = serde_json::from_slice(&record.body).unwrap_or(serde_json::Value::Null);
                DocumentEntry { id, etag: record.etag, document }
            })
            .collect();
        Ok(Json(DocumentPage { results, total_results: total }))
    })
    .await
}
