//! Requests this process made to object storage, and how many failed, by
//! operation (what `rookery_object_storage_requests_total` reports). One
//! count per request the backup code makes; the object store's own retries
//! of a request are inside it.

use std::sync::atomic::{AtomicU64, Ordering};

/// An operation on object storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    List,
    Head,
    Get,
    Put,
    CreateMultipart,
    UploadPart,
    CompleteMultipart,
    Delete,
    /// Object lock: a bucket's configuration, an object's retention.
    Lock,
}

impl Op {
    pub const ALL: [Op; 9] = [
        Self::List,
        Self::Head,
        Self::Get,
        Self::Put,
        Self::CreateMultipart,
        Self::UploadPart,
        Self::CompleteMultipart,
        Self::Delete,
        Self::Lock,
    ];

    /// The `operation` label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Head => "head",
            Self::Get => "get",
            Self::Put => "put",
            Self::CreateMultipart => "create_multipart",
            Self::UploadPart => "upload_part",
            Self::CompleteMultipart => "complete_multipart",
            Self::Delete => "delete",
            Self::Lock => "object_lock",
        }
    }
}

static REQUESTS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
static ERRORS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];

/// Counts one request of `op`, failed or not.
pub fn count(op: Op, failed: bool) {
    REQUESTS[op as usize].fetch_add(1, Ordering::Relaxed);
    if failed {
        ERRORS[op as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts `result` as one request of `op` (a `NotFound` answer is not a failure).
pub fn counted<T>(op: Op, result: object_store::Result<T>) -> object_store::Result<T> {
    count(op, matches!(&result, Err(e) if !matches!(e, object_store::Error::NotFound { .. })));
    result
}

/// (operation, requests, failed requests) since the process started.
#[must_use]
pub fn totals() -> Vec<(&'static str, u64, u64)> {
    Op::ALL
        .iter()
        .map(|op| (op.as_str(), REQUESTS[*op as usize].load(Ordering::Relaxed), ERRORS[*op as usize].load(Ordering::Relaxed)))
        .collect()
}

/// The storage's error code in an S3 error answer (`<Code>AccessDenied</Code>`),
/// if it is one a client may be told (short, of letters, digits, `.` and `_`):
/// the only part of an endpoint's answer that is relayed.
#[must_use]
pub fn error_code(answer: &str) -> Option<&str> {
    let code = answer.split_once("<Code>").and_then(|(_, rest)| rest.split_once("</Code>")).map(|(code, _)| code);
    code.filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_'))
}
