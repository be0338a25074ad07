//! Import and export over REST: `GET {base}/smuggler/export`,
//! `POST {base}/smuggler/import`. Both stream in constant memory.

use app::api::ErrorCode;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;

use super::{ApiError, AppState, Db};
use crate::jobs::{now_rfc3339, StatusReporter};
use crate::smuggler::{export, import, SmugglerError};
use app::api::{ErrorBody, JobStatus, SMUGGLER_STATUS_ID};

/// Chunks in flight between the export thread and the HTTP response.
const CHANNEL_CHUNKS: usize = 8;
const CHUNK_BYTES: usize = 256 * 1024;

impl From<SmugglerError> for ApiError {
    fn from(e: SmugglerError) -> Self {
        match e {
            SmugglerError::Storage(s) => s.into(),
            SmugglerError::Io(ref m) => ApiError::internal(m),
            SmugglerError::AlreadyRunning => ApiError::new(StatusCode::CONFLICT, e.code(), e.to_string()),
            SmugglerError::InvalidLine { .. } | SmugglerError::InvalidDump(_) | SmugglerError::UnsupportedFormatVersion(_) => {
                ApiError::bad_request(e.code(), e.to_string())
            }
        }
    }
}

/// Streams a `.rookerydump` of the database.
#[utoipa::path(
    get,
    path = "/smuggler/export",
    tag = "smuggler",
    params(("startsWith" = Option<String>, Query, description = "Only ids with this prefix")),
    responses((status = 200, description = "A zstd-compressed NDJSON dump", content_type = "application/zstd"), (status = 404, body = ErrorBody))
)]
pub async fn export_dump(State(state): State<AppState>, Db(db): Db, Query(query): Query<HashMap<String, String>>) -> Response {
    let prefix = query.get("startsWith").cloned().unwrap_or_default();
    // The hold comes before the snapshot: a delete meanwhile answers DatabaseBusy.
    let hold = match state.catalog().hold(&db) {
        Ok(h) => h,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let permit = match state.export_permits().clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyRequests,
                format!("{} exports are running on this server; try again when one has finished.", crate::MAX_CONCURRENT_EXPORTS),
            )
            .into_response()
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_CHUNKS);
    let name = db.name.clone();
    tokio::task::spawn_blocking(move || {
        let (_hold, _permit) = (hold, permit);
        let snapshot = db.store.snapshot();
        let writer = std::io::BufWriter::with_capacity(CHUNK_BYTES, ChannelWriter { tx: tx.clone() });
        if let Err(e) = export(&snapshot, &db.name, &prefix, writer, &mut |_| {}) {
            tracing::warn!(error = %e, "export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    // `poll_fn` over the receiver may be polled again after the end (layers above do).
    let mut rx = rx;
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let file = format!("{}-{}.rookerydump", name, now_rfc3339().replace(':', "").chars().take(17).collect::<String>());
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zstd"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The upload, read on the import's blocking thread; the async side sends
/// into it without ever blocking a worker.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Imports a `.rookerydump` (zstd, gzip or plain NDJSON) streamed in the body.
#[utoipa::path(
    post,
    path = "/smuggler/import",
    tag = "smuggler",
    params(("overwrite" = Option<bool>, Query, description = "Replace existing ids (default false: keep them)")),
    request_body(content = String, content_type = "application/octet-stream", description = "A .rookerydump"),
    responses(
        (status = 200, body = JobStatus, description = "The import's final status"),
        (status = 400, body = ErrorBody, description = "InvalidDump (names the line), UnsupportedFormatVersion"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "ImportAlreadyRunning"),
    )
)]
pub async fn import_dump(
    State(state): State<AppState>,
    Db(db): Db,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Result<Json<JobStatus>, ApiError> {
    let overwrite = super::jobs::flag(&query, "overwrite")?;
    let slot = state.import_slot().acquire(Duration::ZERO).ok_or(SmugglerError::AlreadyRunning)?;
    let hold = state.catalog().hold(&db)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(CHANNEL_CHUNKS);
    let job = tokio::task::spawn_blocking(move || {
        let (_slot, _hold) = (slot, hold);
        let initial = JobStatus { ..Default::default() };
        let mut reporter = StatusReporter::start(db.clone(), SMUGGLER_STATUS_ID, initial, &format!("Import into '{}' started", db.name))?;
        let reader = ChannelReader { rx, current: Bytes::new() };
        let result = import(&db.store, reader, overwrite, &mut |written, skipped| reporter.progress(written + skipped, 0));
        match &result {
            Ok(s) => reporter.succeed(&format!(
                "Import completed: {} written, {} skipped (existing ids)",
                app::api::counted(s.written, "document"),
                app::api::counted(s.skipped, "document")
            )),
            Err(e) => reporter.fail(e.code(), &format!("Import failed: {e}")),
        }
        result.map(|_| crate::jobs::read_status(&db, SMUGGLER_STATUS_ID).unwrap_or_default()).map_err(ApiError::from)
    });
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let item = chunk.map_err(|e| e.to_string());
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            break; // the import stopped early (a bad line) or the upload broke
        }
    }
    drop(tx);
    job.await.map_err(|e| ApiError::internal(&e))?.map(Json)
}
