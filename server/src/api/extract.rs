//! What handlers take from a request: the shared state, the database of the
//! path, query flags; and running blocking work off the async runtime.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use rookery_types::ErrorCode;

use super::error::ApiError;
use crate::engine::Rookery;
use crate::storage::DatabaseHandle;

/// What every handler shares.
pub type AppState = Arc<Rookery>;

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

/// A query flag: `true`/`1`, `false`/`0`, or absent (false); anything else is `InvalidQuery`.
/// A count from the query (`start`, `pageSize`): an integer from 0 to
/// `i64::MAX` (what the OpenAPI description says), `default` when absent.
pub(crate) fn count(query: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(v) => {
            v.parse::<i64>().ok().and_then(|n| u64::try_from(n).ok()).map(|n| usize::try_from(n).unwrap_or(usize::MAX)).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("'{name}' must be an integer from 0 to 9223372036854775807, not '{}'.", v.escape_debug()),
                )
            })
        }
    }
}

pub(crate) fn flag(query: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match query.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" || v == "1" => Ok(true),
        Some(v) if v == "false" || v == "0" => Ok(false),
        Some(v) => Err(ApiError::new(ErrorCode::InvalidQuery, format!("'{name}' must be true or false, not '{}'.", v.escape_debug()))),
    }
}
