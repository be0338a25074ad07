//! The `.rookerydump` format: a header line, one line per document, a
//! trailer; exporting a snapshot into it and importing it in batches.

use std::io::{BufRead, BufReader, Read, Write};

use serde::{Deserialize, Serialize};

use crate::jobs::{format_rfc3339, now_rfc3339};
use crate::storage::record::decode_header;
use crate::storage::{DocumentStore, StorageError, StoreSnapshot};

/// The dump format written by this version; readers accept every version up to it.
pub const DUMP_FORMAT_VERSION: u32 = 1;
/// Documents written per batch during an import.
pub const IMPORT_BATCH: usize = 1024;
/// A batch is written once it holds this many bytes of ids and bodies,
/// whatever its count: memory stays bounded with large documents.
pub const IMPORT_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// The longest line an import accepts (a document is at most the body limit).
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// The first line of a dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DumpHeader {
    pub format_version: u32,
    pub server_version: String,
    pub database: String,
    pub exported: String,
}

/// The last line of a dump: without it, a dump is truncated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DumpTrailer {
    pub end_of_dump: bool,
    pub document_count: u64,
}

/// A document line's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DumpMetadata {
    #[serde(rename = "ETag")]
    pub etag: u64,
    pub last_modified: String,
}

/// A document line, its document borrowed from the line as written: its
/// JSON checked by the parse of the line, not built into values (an
/// import parsed each document into a tree and wrote it out again, most
/// of its time, and not the same bytes: escapes and repeated keys changed).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DocumentLine<'a> {
    id: String,
    #[serde(borrow)]
    document: &'a serde_json::value::RawValue,
    #[allow(dead_code)]
    #[serde(default)]
    metadata: Option<serde::de::IgnoredAny>,
    /// An end line that also names a document is an end line.
    #[serde(default)]
    end_of_dump: Option<serde::de::IgnoredAny>,
}

/// What can go wrong moving a dump.
#[derive(Debug, thiserror::Error)]
pub enum SmugglerError {
    #[error("line {line}: {message}")]
    InvalidLine { line: u64, message: String },
    #[error("{0}")]
    InvalidDump(String),
    #[error("the dump has format version {0}; this server reads up to {DUMP_FORMAT_VERSION}")]
    UnsupportedFormatVersion(u32),
    #[error("An import is already running on this server; wait for it to finish.")]
    AlreadyRunning,
    #[error("{} exports are running on this server; try again when one has finished.", crate::engine::MAX_CONCURRENT_EXPORTS)]
    TooManyExports,
    #[error("The import was canceled; the documents imported before it are kept.")]
    Canceled,
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl SmugglerError {
    /// The stable error code.
    #[must_use]
    pub fn code(&self) -> rookery_types::ErrorCode {
        use rookery_types::ErrorCode;
        match self {
            Self::InvalidLine { .. } | Self::InvalidDump(_) => ErrorCode::InvalidDump,
            Self::UnsupportedFormatVersion(_) => ErrorCode::UnsupportedFormatVersion,
            Self::AlreadyRunning => ErrorCode::ImportAlreadyRunning,
            Self::TooManyExports => ErrorCode::TooManyRequests,
            Self::Canceled => ErrorCode::Canceled,
            Self::Io(_) => ErrorCode::IoError,
            Self::Storage(s) => s.code(),
        }
    }
}

/// Writes a dump of `snapshot` (ids starting with `prefix`) to `out`, zstd-compressed.
/// The tables it reads into the page cache are dropped from it behind the
/// scan ([`crate::storage::drop_behind`]).
/// Returns the number of documents written.
///
/// # Errors
/// I/O errors of `out` (a client that went away), storage errors.
pub fn export(
    snapshot: &StoreSnapshot,
    database: &str,
    prefix: &str,
    out: impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, SmugglerError> {
    let io = |e: std::io::Error| SmugglerError::Io(e.to_string());
    let mut encoder = zstd::Encoder::new(out, 3).map_err(io)?;
    let header = DumpHeader {
        format_version: DUMP_FORMAT_VERSION,
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        database: database.to_string(),
        exported: now_rfc3339(),
    };
    serde_json::to_writer(&mut encoder, &header).map_err(|e| SmugglerError::Io(e.to_string()))?;
    encoder.write_all(b"\n").map_err(io)?;
    // The documents are read and made into lines on a thread of their own;
    // this one compresses and writes them.
    let behind = snapshot.documents_drop_behind(prefix);
    let scan = snapshot.documents_with_prefix(prefix);
    let lines = crate::storage::drop_behind::along(behind, scan, |item| item.as_ref().ok().map(|(id, _)| id.as_bytes()))
        .filter(|item| !matches!(item, Ok((id, _)) if rookery_types::is_server_owned(id)))
        .map(|item| {
            let (id, raw) = item?;
            document_line(snapshot, &id, &raw)
        });
    let count = std::thread::scope(|scope| -> Result<u64, SmugglerError> {
        let lines = crate::backup::concurrent::beside(scope, "export-scan", lines, EXPORT_LINES, Vec::len)
            .map_err(|e| SmugglerError::Io(format!("cannot start an export thread: {e}")))?;
        let mut count = 0u64;
        for line in lines {
            let line = line?;
            crate::failpoint::hit("export.document");
            encoder.write_all(&line).map_err(io)?;
            count += 1;
            progress(count);
        }
        Ok(count)
    })?;
    let trailer = DumpTrailer { end_of_dump: true, document_count: count };
    serde_json::to_writer(&mut encoder, &trailer).map_err(|e| SmugglerError::Io(e.to_string()))?;
    encoder.write_all(b"\n").map_err(io)?;
    encoder.finish().map_err(io)?.flush().map_err(io)?;
    Ok(count)
}

/// Lines handed from an export's scan to its writer: 256 at a time, up
/// to 1 MiB, at most 4 batches waiting.
const EXPORT_LINES: crate::backup::concurrent::Batches = crate::backup::concurrent::Batches { items: 256, bytes: 1 << 20, in_flight: 4 };

/// A document's line of a dump. The stored body is already compact JSON:
/// spliced in without parsing.
fn document_line(snapshot: &StoreSnapshot, id: &str, raw: &[u8]) -> Result<Vec<u8>, SmugglerError> {
    let (etag, modified_ms) = decode_header(raw)?;
    let body = snapshot.body(id, raw)?;
    let modified =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(modified_ms) * 1_000_000).map(format_rfc3339).unwrap_or_default();
    let mut line = Vec::with_capacity(body.len() + id.len() + 96);
    line.extend_from_slice(b"{\"Id\":");
    serde_json::to_writer(&mut line, id).map_err(|e| SmugglerError::Io(e.to_string()))?;
    line.extend_from_slice(b",\"Document\":");
    line.extend_from_slice(&body);
    writeln!(line, ",\"Metadata\":{{\"ETag\":{etag},\"LastModified\":\"{modified}\"}}}}").map_err(|e| SmugglerError::Io(e.to_string()))?;
    Ok(line)
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub header: Option<DumpHeader>,
    pub written: u64,
    pub skipped: u64,
}

/// Reads a dump (zstd, gzip or plain NDJSON) into `store`. Existing ids are
/// replaced with `overwrite`, kept otherwise. On a bad line, the documents of
/// the lines before it are kept (written) and the error names the line.
///
/// The dump is read and checked on this thread while a thread of its own
/// writes the batches already checked (up to `BATCHES_IN_FLIGHT` wait),
/// each one commit, and makes them durable with one fsync at its end.
///
/// # Errors
/// `InvalidLine`, `InvalidDump` (no header, truncated), `UnsupportedFormatVersion`, storage errors.
pub fn import(
    store: &DocumentStore,
    input: impl Read,
    overwrite: bool,
    cancel: &crate::jobs::CancelToken,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ImportSummary, SmugglerError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let (written, skipped) = (AtomicU64::new(0), AtomicU64::new(0));
    let (read, wrote) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (written, skipped) = (&written, &skipped);
        let writer = std::thread::Builder::new()
            .name("import-write".into())
            .spawn_scoped(scope, move || -> Result<(), SmugglerError> {
                // Dropping the receiver (a storage error) stops the reading at its next batch.
                let wrote = rx.into_iter().try_for_each(|batch| {
                    crate::failpoint::io_error("import.write")
                        .map_err(|e| SmugglerError::Io(format!("cannot write the documents: {e}")))?;
                    let (w, s) = store.put_many_unsynced(&batch, overwrite)?;
                    written.fetch_add(w, Ordering::Relaxed);
                    skipped.fetch_add(s, Ordering::Relaxed);
                    Ok::<_, SmugglerError>(())
                });
                // Nothing is acknowledged before the import ends: one fsync
                // then, not one per batch. What was written is kept, also when
                // the import stops early (a bad line, a cancel, a storage error).
                let synced = store.make_all_durable().map_err(SmugglerError::from);
                wrote.and(synced)
            })
            .map_err(|e| SmugglerError::Io(format!("cannot start an import thread: {e}")))?;
        let mut emit = |batch| tx.send(batch).map_err(|_| SmugglerError::Io("the import's writer stopped".into()));
        // While it runs: the documents read and checked (at most the
        // batches in flight ahead of those written); at its end, what was written and skipped.
        let read = read_dump(input, cancel, &mut emit, &mut |read| progress(read, 0));
        drop(tx);
        let wrote = writer.join().unwrap_or_else(|_| Err(SmugglerError::Io("the import's writer failed".into())));
        Ok::<_, SmugglerError>((read, wrote))
    })?;
    let summary = ImportSummary { header: None, written: written.into_inner(), skipped: skipped.into_inner() };
    progress(summary.written, summary.skipped);
    // A storage error first: it is why the reading stopped, if it did.
    wrote?;
    let read = read?;
    match read.trailer {
        None => Err(SmugglerError::InvalidDump(format!(
            "the dump ends after line {} without its end line: it is truncated ({} documents were imported)",
            read.lines, summary.written
        ))),
        Some(t) if t.document_count != read.documents => Err(SmugglerError::InvalidDump(format!(
            "the end line says {} documents but the dump holds {}",
            t.document_count, read.documents
        ))),
        Some(_) => Ok(ImportSummary { header: Some(read.header), ..summary }),
    }
}

/// Batches of documents handed from the reading of a dump to its writer.
const BATCHES_IN_FLIGHT: usize = 2;

/// Documents (id, body) written together.
type Batch = Vec<(String, Vec<u8>)>;

/// Reads and checks a dump, handing its documents to `emit` in batches.
/// The documents of the lines before a bad one are handed over whatever happens.
fn read_dump(
    input: impl Read,
    cancel: &crate::jobs::CancelToken,
    emit: &mut dyn FnMut(Batch) -> Result<(), SmugglerError>,
    progress: &mut dyn FnMut(u64),
) -> Result<DumpRead, SmugglerError> {
    let mut buffered = BufReader::with_capacity(256 * 1024, input);
    let magic = buffered.fill_buf().map_err(|e| SmugglerError::Io(e.to_string()))?.to_vec();
    let reader: Box<dyn Read> = if magic.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        Box::new(zstd::Decoder::with_buffer(buffered).map_err(|e| SmugglerError::Io(e.to_string()))?)
    } else if magic.starts_with(&[0x1F, 0x8B]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let mut lines = BufReader::with_capacity(256 * 1024, reader);
    let mut header: Option<DumpHeader> = None;
    let mut batch: Batch = Vec::with_capacity(IMPORT_BATCH);
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut trailer: Option<DumpTrailer> = None;
    let mut documents_seen = 0u64;
    let mut batch_bytes = 0usize;
    let result = (|| -> Result<(), SmugglerError> {
        loop {
            if cancel.is_canceled() {
                return Err(SmugglerError::Canceled);
            }
            line.clear();
            let n = read_line(&mut lines, &mut line, number + 1)?;
            if n == 0 {
                break;
            }
            number += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Some(t) = &trailer {
                return Err(SmugglerError::InvalidLine {
                    line: number,
                    message: format!("content after the end line (the dump said {} documents)", t.document_count),
                });
            }
            if header.is_none() {
                let parsed: DumpHeader = serde_json::from_slice(&line).map_err(|e| SmugglerError::InvalidLine {
                    line: number,
                    message: format!("the first line must be the dump header with FormatVersion: {e}"),
                })?;
                if parsed.format_version > DUMP_FORMAT_VERSION {
                    return Err(SmugglerError::UnsupportedFormatVersion(parsed.format_version));
                }
                header = Some(parsed);
                continue;
            }
            let doc = match serde_json::from_slice::<DocumentLine<'_>>(&line) {
                Ok(doc) if doc.end_of_dump.is_none() => doc,
                parsed => {
                    let value: serde_json::Value = serde_json::from_slice(&line)
                        .map_err(|e| SmugglerError::InvalidLine { line: number, message: format!("not valid JSON: {e}") })?;
                    if value.get("EndOfDump").is_some() {
                        trailer = Some(
                            serde_json::from_value(value)
                                .map_err(|e| SmugglerError::InvalidLine { line: number, message: format!("a malformed end line: {e}") })?,
                        );
                        continue;
                    }
                    let why = parsed.err().map(|e| e.to_string()).unwrap_or_default();
                    return Err(SmugglerError::InvalidLine {
                        line: number,
                        message: format!("not a document line (Id, Document, Metadata): {why}"),
                    });
                }
            };
            if !doc.document.get().starts_with('{') {
                return Err(SmugglerError::InvalidLine {
                    line: number,
                    message: format!("the document '{}' is not a JSON object", doc.id),
                });
            }
            crate::storage::store::validate_id(&doc.id).map_err(|e| SmugglerError::InvalidLine { line: number, message: e.to_string() })?;
            // Server-owned documents (status documents among them) are never
            // written by a client, an import included.
            if rookery_types::is_server_owned(&doc.id) {
                continue;
            }
            // Checked JSON (the parse of the line), kept as written, without
            // whitespace: the bytes a PUT of it stores.
            let body = crate::storage::json::minify(doc.document.get().as_bytes());
            batch.push((doc.id, body));
            documents_seen += 1;
            if documents_seen.is_multiple_of(16) {
                progress(documents_seen);
            }
            crate::failpoint::hit("import.document");
            batch_bytes += batch.last().map_or(0, |(id, body)| id.len() + body.len());
            if batch.len() >= IMPORT_BATCH || batch_bytes >= IMPORT_BATCH_BYTES {
                batch_bytes = 0;
                emit(std::mem::replace(&mut batch, Vec::with_capacity(IMPORT_BATCH)))?;
            }
        }
        Ok(())
    })();
    // The lines before a bad one are kept: handed over whatever happened.
    let emitted = if batch.is_empty() { Ok(()) } else { emit(batch) };
    result?;
    emitted?;
    let header = header.ok_or_else(|| SmugglerError::InvalidDump("the dump is empty: no header line".into()))?;
    Ok(DumpRead { header, trailer, documents: documents_seen, lines: number })
}

/// What the reading of a whole dump found.
struct DumpRead {
    header: DumpHeader,
    trailer: Option<DumpTrailer>,
    documents: u64,
    lines: u64,
}

/// Reads one line (up to `\n`), refusing lines over [`MAX_LINE_BYTES`].
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>, number: u64) -> Result<usize, SmugglerError> {
    let mut total = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) => {
                return Err(SmugglerError::InvalidLine {
                    line: number,
                    message: format!("the compressed stream is damaged or cut short: {e}"),
                })
            }
        };
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        line.extend_from_slice(chunk);
        let used = chunk.len();
        reader.consume(used);
        total += used;
        if line.len() > MAX_LINE_BYTES {
            return Err(SmugglerError::InvalidLine { line: number, message: "the line is longer than 64 MiB".into() });
        }
        if done {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::store::temp_store as store;

    fn dump_of(store: &DocumentStore, prefix: &str) -> Vec<u8> {
        let mut out = Vec::new();
        export(&store.snapshot(), "Db", prefix, &mut out, &mut |_| {}).expect("exports");
        out
    }

    #[test]
    fn round_trip_and_readable_with_zstd_and_json() {
        let (_a, source) = store();
        source.put("users/1", br#"{"Name":"Ann","Tags":["x"]}"#, None).expect("put");
        source.put("users/2", br#"{"Name":"Bob"}"#, None).expect("put");
        source.put("orders/1", br#"{"Total":3}"#, None).expect("put");
        source.put_server_owned(rookery_types::BACKUP_STATUS_ID, br#"{"IsRunning":false}"#).expect("put");
        let dump = dump_of(&source, "");
        let text = String::from_utf8(zstd::decode_all(&dump[..]).expect("zstd")).expect("utf8");
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
        assert_eq!(lines.len(), 5, "header, three documents, end");
        assert_eq!(lines[0]["FormatVersion"], 1);
        assert_eq!(lines[1]["Id"], "orders/1");
        assert_eq!(lines[1]["Document"], serde_json::json!({"Total": 3}));
        assert!(lines[1]["Metadata"]["ETag"].is_u64());
        assert_eq!(lines[4], serde_json::json!({"EndOfDump": true, "DocumentCount": 3}));

        let (_b, target) = store();
        let summary = import(&target, &dump[..], false, &Default::default(), &mut |_, _| {}).expect("imports");
        assert_eq!((summary.written, summary.skipped), (3, 0));
        assert_eq!(target.get("users/1").expect("get").expect("exists").body, br#"{"Name":"Ann","Tags":["x"]}"#);
        assert!(target.get(rookery_types::BACKUP_STATUS_ID).expect("get").is_none());
        // Again without overwrite: all skipped; with: all replaced.
        target.put("users/2", br#"{"Name":"Local"}"#, None).expect("put");
        let again = import(&target, &dump[..], false, &Default::default(), &mut |_, _| {}).expect("imports");
        assert_eq!((again.written, again.skipped), (0, 3));
        assert_eq!(target.get("users/2").expect("get").expect("exists").body, br#"{"Name":"Local"}"#);
        let over = import(&target, &dump[..], true, &Default::default(), &mut |_, _| {}).expect("imports");
        assert_eq!((over.written, over.skipped), (3, 0));
        assert_eq!(target.get("users/2").expect("get").expect("exists").body, br#"{"Name":"Bob"}"#);
    }

    /// An import fsyncs once, at its end, and every document it wrote is
    /// then durable: also when a bad line stops it.
    #[test]
    fn what_an_import_wrote_is_durable_when_it_returns() {
        let (_a, source) = store();
        for n in 0..3000 {
            source.put(&format!("d/{n}"), br#"{"N":1}"#, None).expect("put");
        }
        let good = dump_of(&source, "");
        let mut cut = zstd::decode_all(&good[..]).expect("zstd");
        let last_document = cut[..cut.len() - 1].iter().rposition(|&b| b == b'\n').expect("lines");
        cut.truncate(last_document + 1);
        cut.extend_from_slice(b"not JSON\n");
        for (dump, ok) in [(good, true), (cut, false)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let target = DocumentStore::open(dir.path(), crate::storage::Durability::Fsync).expect("opens");
            let imported = import(&target, &dump[..], false, &Default::default(), &mut |_, _| {});
            assert_eq!(imported.is_ok(), ok);
            assert!(target.last_etag() >= 2999, "{}", target.last_etag());
            assert_eq!(target.durable_etag(), target.last_etag());
        }
    }

    /// An import keeps each body's bytes as the store kept them (the export
    /// splices them in as they are): escapes, repeated keys and numbers'
    /// text included, so the imported database's digest is the source's.
    #[test]
    fn an_import_keeps_every_body_byte_for_byte() {
        let (_a, source) = store();
        let bodies: [&[u8]; 3] = [
            br#"{"c":"\u00e9\/","d":1,"d":2}"#,
            br#"{"n":1.5e3,"z":-0.0,"big":123456789012345678901234567890}"#,
            br#"{"nested":{"a":[{},[]],"s":"tab\there"}}"#,
        ];
        for (i, body) in bodies.iter().enumerate() {
            source.put(&format!("docs/{i}"), body, None).expect("put");
        }
        let (_b, target) = store();
        import(&target, &dump_of(&source, "")[..], false, &Default::default(), &mut |_, _| {}).expect("imports");
        for (i, body) in bodies.iter().enumerate() {
            let got = target.get(&format!("docs/{i}")).expect("get").expect("exists").body;
            assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(body));
        }
        assert_eq!(target.content_digest(), source.content_digest());
    }

    /// A dump written by hand: whitespace in a document goes, as through
    /// the REST API; a document that is not an object, or not JSON, names its line.
    #[test]
    fn a_hand_written_dump_is_checked_as_the_rest_api_checks_a_body() {
        let head = "{\"FormatVersion\":1,\"ServerVersion\":\"x\",\"Database\":\"D\",\"Exported\":\"t\"}\n";
        let text =
            format!("{head}{{\"Id\":\"a\", \"Document\" : {{ \"v\" : [ 1 , \"x y\" ] }} }}\n{{\"EndOfDump\":true,\"DocumentCount\":1}}\n");
        let (_d, target) = store();
        import(&target, text.as_bytes(), false, &Default::default(), &mut |_, _| {}).expect("imports");
        assert_eq!(target.get("a").expect("get").expect("exists").body, br#"{"v":[1,"x y"]}"#);
        for (line, message) in [
            ("{\"Id\":\"b\",\"Document\":[1]}", "is not a JSON object"),
            ("{\"Id\":\"b\",\"Document\":\"{}\"}", "is not a JSON object"),
            ("{\"Id\":\"b\",\"Document\":{\"v\":}}", "not valid JSON"),
            ("{\"Id\":\"b\",\"Document\":{\"v\":\"\\q\"}}", "not valid JSON"),
            ("{\"Id\":\"b\"}", "not a document line"),
            ("{\"Id\":7,\"Document\":{}}", "not a document line"),
        ] {
            let (_d, target) = store();
            let err = import(&target, format!("{head}{line}\n").as_bytes(), false, &Default::default(), &mut |_, _| {}).expect_err(line);
            assert!(matches!(err, SmugglerError::InvalidLine { line: 2, .. }), "{line}: {err}");
            assert!(err.to_string().contains(message), "{line}: {err}");
            assert_eq!(target.document_count(), 0, "{line}");
        }
        // Invalid UTF-8 inside a document's string.
        let mut bad = format!("{head}{{\"Id\":\"b\",\"Document\":{{\"v\":\"").into_bytes();
        bad.extend_from_slice(&[0xFF, 0xFE]);
        bad.extend_from_slice(b"\"}}\n");
        let (_d, target) = store();
        let err = import(&target, &bad[..], false, &Default::default(), &mut |_, _| {}).expect_err("invalid UTF-8");
        assert!(matches!(err, SmugglerError::InvalidLine { line: 2, .. }), "{err}");
        assert_eq!(target.document_count(), 0);
    }

    #[test]
    fn prefix_exports_a_subset() {
        let (_a, source) = store();
        source.put("users/1", b"{}", None).expect("put");
        source.put("orders/1", b"{}", None).expect("put");
        let (_b, target) = store();
        import(&target, &dump_of(&source, "users/")[..], false, &Default::default(), &mut |_, _| {}).expect("imports");
        assert_eq!(target.document_count(), 1);
    }

    #[test]
    fn gzip_and_plain_dumps_import() {
        let plain = "{\"FormatVersion\":1,\"ServerVersion\":\"x\",\"Database\":\"D\",\"Exported\":\"t\"}\n{\"Id\":\"a\",\"Document\":{\"v\":1},\"Metadata\":{}}\n{\"EndOfDump\":true,\"DocumentCount\":1}\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(plain.as_bytes()).expect("gz");
        let gz = gz.finish().expect("gz");
        for input in [plain.as_bytes().to_vec(), gz] {
            let (_d, target) = store();
            let s = import(&target, &input[..], false, &Default::default(), &mut |_, _| {}).expect("imports");
            assert_eq!(s.written, 1);
        }
    }

    #[test]
    fn a_bad_line_is_named_and_the_lines_before_it_are_kept() {
        let text = "{\"FormatVersion\":1,\"ServerVersion\":\"x\",\"Database\":\"D\",\"Exported\":\"t\"}\n{\"Id\":\"a\",\"Document\":{}}\n{\"Id\":\"b\",\"Document\":{}}\n{oops\n{\"Id\":\"c\",\"Document\":{}}\n";
        let (_d, target) = store();
        let err = import(&target, text.as_bytes(), false, &Default::default(), &mut |_, _| {}).expect_err("fails");
        assert!(matches!(err, SmugglerError::InvalidLine { line: 4, .. }), "{err}");
        assert_eq!(target.document_count(), 2);
        assert!(target.get("c").expect("get").is_none());
    }

    #[test]
    fn truncated_newer_and_headerless_dumps_are_refused() {
        let (_a, source) = store();
        for i in 0..50 {
            source.put(&format!("d/{i}"), br#"{"x":"some text to compress"}"#, None).expect("put");
        }
        let dump = dump_of(&source, "");
        let (_b, target) = store();
        let cut = &dump[..dump.len() / 2];
        let err = import(&target, cut, false, &Default::default(), &mut |_, _| {}).expect_err("truncated");
        assert_eq!(err.code(), rookery_types::ErrorCode::InvalidDump, "{err}");
        let plain = String::from_utf8(zstd::decode_all(&dump[..]).expect("zstd")).expect("utf8");
        let without_end: String = plain.lines().take(10).map(|l| format!("{l}\n")).collect();
        let err = import(&target, without_end.as_bytes(), false, &Default::default(), &mut |_, _| {}).expect_err("no end line");
        assert!(err.to_string().contains("truncated"), "{err}");
        let newer = "{\"FormatVersion\":9,\"ServerVersion\":\"x\",\"Database\":\"D\",\"Exported\":\"t\"}\n";
        assert!(matches!(
            import(&target, newer.as_bytes(), false, &Default::default(), &mut |_, _| {}),
            Err(SmugglerError::UnsupportedFormatVersion(9))
        ));
        let headerless = "{\"Id\":\"a\",\"Document\":{}}\n";
        assert!(matches!(
            import(&target, headerless.as_bytes(), false, &Default::default(), &mut |_, _| {}),
            Err(SmugglerError::InvalidLine { line: 1, .. })
        ));
        assert!(matches!(import(&target, &b""[..], false, &Default::default(), &mut |_, _| {}), Err(SmugglerError::InvalidDump(_))));
    }
}
