//! Import and export over REST: `GET {base}/smuggler/export`,
//! `POST {base}/smuggler/import`. Both stream in constant memory.

use std::collections::HashMap;
use std::io::{Read, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;

use super::error::ApiError;
use super::extract::{blocking, AppState, Db};
use crate::jobs::now_rfc3339;
use rookery_types::{ErrorBody, JobAccepted, JobStatus, SMUGGLER_STATUS_ID};

/// Chunks in flight between the export thread and the HTTP response.
const CHANNEL_CHUNKS: usize = 8;
const CHUNK_BYTES: usize = 256 * 1024;

/// Streams a `.rookerydump` of the database.
#[utoipa::path(
    get,
    path = "/smuggler/export",
    tag = "smuggler",
    params(("startsWith" = Option<String>, Query, description = "Only ids with this prefix")),
    responses((status = 200, description = "A zstd-compressed NDJSON dump", content_type = "application/zstd"), (status = 404, body = ErrorBody))
)]
pub async fn export_dump(
    State(state): State<AppState>,
    Db(db): Db,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let prefix = query.get("startsWith").cloned().unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_CHUNKS);
    let writer = std::io::BufWriter::with_capacity(CHUNK_BYTES, ChannelWriter { tx: tx.clone() });
    let name = db.name.clone();
    let export = blocking(move || Ok(state.start_export(&db.name, &prefix, writer)?)).await?;
    // A failure mid-stream ends the body with an error (the client sees a cut stream).
    tokio::task::spawn_blocking(move || match export.join() {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        Err(_) => {
            let _ = tx.blocking_send(Err(std::io::Error::other("the export thread panicked")));
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
    Ok(response)
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
    params(("overwrite" = Option<bool>, Query, nullable = false, description = "Replace existing ids (default false: keep them)")),
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
    let overwrite = super::extract::flag(&query, "overwrite")?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(CHANNEL_CHUNKS);
    let reader = ChannelReader { rx, current: Bytes::new() };
    let starter = state.clone();
    let name = db.name.clone();
    let job = blocking(move || Ok(starter.start_import(&name, reader, overwrite)?)).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let item = chunk.map_err(|e| e.to_string());
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            break; // the import stopped early (a bad line, a cancel) or the upload broke
        }
    }
    drop(tx);
    blocking(move || {
        job.wait()?;
        Ok(Json(crate::jobs::read_status(&db, SMUGGLER_STATUS_ID).unwrap_or_default()))
    })
    .await
}

/// Asks the running import into the database to stop (the documents imported before it stay).
#[utoipa::path(
    post,
    path = "/smuggler/import/cancel",
    tag = "smuggler",
    responses((status = 202, body = JobAccepted), (status = 404, body = ErrorBody, description = "NotFound: no import into this database runs"))
)]
pub async fn cancel_import(State(state): State<AppState>, Db(db): Db) -> Result<(axum::http::StatusCode, Json<JobAccepted>), ApiError> {
    super::jobs::cancel_answer(state.cancel_import(&db.name), SMUGGLER_STATUS_ID, || format!("No import into '{}' is running.", db.name))
}
