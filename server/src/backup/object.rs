//! Backup locations in S3-compatible object storage: `s3://bucket/prefix`.
//!
//! A location in object storage holds the same keys a folder holds
//! (`<prefix>/<SetId>/manifest.json`, `SHA256SUMS`, data files). Object stores
//! have no rename, so atomicity comes from the order of writes instead: every
//! data file and `SHA256SUMS` are uploaded and acknowledged first, the
//! manifest last. A set is complete exactly when its `manifest.json` exists;
//! objects under a set id without one are an unfinished set, which readers
//! ignore and the next backup into the location removes.
//!
//! The engines are synchronous (they run in job threads, the CLIs and
//! blocking handler threads); they reach the store through a small runtime of
//! its own (`block`), so no engine code is async and no request of another
//! runtime waits on this one. A file smaller than [`SINGLE_PUT_BYTES`] goes up
//! in one `PUT`; a larger one streams as a multipart upload of [`PART_BYTES`]
//! with at most [`PARTS_IN_FLIGHT`] parts in flight; downloads stream chunk
//! by chunk: neither holds more than a bounded part of a file in memory.

use std::future::Future;
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig, WriteMultipart};

use rookery_types::{ObjectLock, S3Settings};

use super::object_lock::{LockRequests, Retention};
use super::object_requests::{count, counted, Op};
use crate::jobs::CancelToken;

/// The scheme of object storage locations.
pub const SCHEME: &str = "s3://";
/// Size of one part of a multipart upload (S3 wants at least 5 MiB).
pub const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts uploaded at once by one file: memory is bounded by this times [`PART_BYTES`].
pub const PARTS_IN_FLIGHT: usize = 2;
/// A file smaller than this goes up in one `PUT` (two parts' bytes, the
/// memory a multipart upload holds anyway): one request instead of four or
/// more, and for the storage one object written instead of parts kept and
/// joined.
pub const SINGLE_PUT_BYTES: usize = 2 * PART_BYTES;
/// The bytes of one set's files whose uploads complete in the background
/// while the writer goes on with the next file (see [`Finishing`]): a
/// budget of bytes, not of files, so that a documents file's small index
/// and top never wait for the documents file's own upload.
const FINISHING_BYTES: usize = 4 * PART_BYTES;
/// Object lock requests in flight at once (each is small).
const LOCK_REQUESTS_IN_FLIGHT: usize = 16;

/// A storage failure (an unreachable endpoint, refused credentials, a missing
/// bucket, retries exhausted), carried inside `std::io::Error` so that the
/// engines' I/O paths report it as `BackupStorageError`, not as damage.
#[derive(Debug)]
pub struct StorageFault(pub String);

impl std::fmt::Display for StorageFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StorageFault {}

/// The fault inside `e`, when `e` came from object storage.
#[must_use]
pub fn fault_of(e: &std::io::Error) -> Option<&StorageFault> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<StorageFault>())
}

fn to_io(e: object_store::Error) -> std::io::Error {
    match e {
        object_store::Error::NotFound { path, .. } => {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("the object {path} does not exist"))
        }
        other => std::io::Error::other(StorageFault(storage_message(&other.to_string()))),
    }
}

/// A failure of an object lock request, as a [`StorageFault`].
fn as_fault(e: std::io::Error) -> std::io::Error {
    std::io::Error::other(StorageFault(e.to_string()))
}

/// What of a storage's answer is said to a client: the request, the HTTP
/// status and the storage's error code (`<Code>AccessDenied</Code>`), never
/// the rest of its body (an endpoint's answer is not the server's to relay).
fn storage_message(text: &str) -> String {
    const STATUS: &str = "Server returned non-2xx status code: ";
    const RESPONSE: &str = "Server returned error response: ";
    let code = super::object_requests::error_code(text);
    let with_code = |head: &str| match code {
        Some(code) => format!("{head} (storage error code {code})"),
        None => head.to_string(),
    };
    if let Some(at) = text.find(STATUS) {
        let rest = &text[at + STATUS.len()..];
        // `403 Forbidden: <body>`: the status, up to the body's colon.
        let status = rest.split_once(": ").map_or(rest, |(status, _)| status);
        return with_code(&format!("{}{STATUS}{status}", &text[..at]));
    }
    if let Some(at) = text.find(RESPONSE) {
        return with_code(&format!("{}the storage answered with an error", &text[..at]));
    }
    text.to_string()
}

/// The runtime that drives every request to object storage.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rookery-s3")
            .enable_all()
            .build()
            .expect("the object storage runtime starts")
    })
}

/// Runs `future` to completion from synchronous code.
fn block<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        // On a worker of the server's runtime: let it move its other tasks away first.
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| runtime().block_on(future))
        }
        _ => runtime().block_on(future),
    }
}

/// How long a job's requests wait on the storage.
#[derive(Debug, Clone)]
enum Wait {
    /// Until the storage answers, or its retries run out.
    Answered,
    /// As [`Self::Answered`], or until the job is canceled.
    UntilCanceled(CancelToken),
    /// Until this instant at the latest (the clean-up of a canceled job:
    /// all of its requests share one deadline).
    Until(tokio::time::Instant),
}

/// How long a canceled backup's clean-up waits on the storage, all of its
/// requests together.
const CLEANUP_LIMIT: Duration = Duration::from_secs(4);

/// A wait on the storage cut short by its job's cancel.
#[derive(Debug)]
pub struct CanceledWait;

impl std::fmt::Display for CanceledWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("canceled while waiting on the storage")
    }
}

impl std::error::Error for CanceledWait {}

/// Whether `e` is a wait on the storage that its job's cancel cut short.
#[must_use]
pub fn is_canceled(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<CanceledWait>())
}

impl Wait {
    /// Runs `future` to completion from synchronous code, as this wait allows.
    fn run<F: Future>(&self, future: F) -> std::io::Result<F::Output> {
        match self {
            Self::Answered => Ok(block(future)),
            Self::UntilCanceled(token) => block(async move {
                tokio::select! {
                    out = future => Some(out),
                    () = canceled(token) => None,
                }
            })
            .ok_or_else(|| std::io::Error::other(CanceledWait)),
            Self::Until(deadline) => block(async move { tokio::time::timeout_at(*deadline, future).await }).map_err(|_| {
                std::io::Error::other(StorageFault(format!(
                    "the storage did not answer within the clean-up's {} s",
                    CLEANUP_LIMIT.as_secs()
                )))
            }),
        }
    }
}

/// Ends once `token` is canceled.
async fn canceled(token: &CancelToken) {
    while !token.is_canceled() {
        tokio::time::sleep(crate::jobs::CANCEL_POLL).await;
    }
}

/// `s3://bucket/prefix`, checked: a bucket name S3 accepts, a prefix of plain
/// components (no empty, `.` or `..` part, no backslash or NUL, no trailing `/`).
///
/// # Errors
/// Why the URL is not a location.
pub fn parse_url(raw: &str) -> Result<(String, String), String> {
    let rest = raw.strip_prefix(SCHEME).ok_or_else(|| format!("'{}' does not start with {SCHEME}", raw.escape_debug()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !bucket.contains("..");
    if !bucket_ok {
        return Err(format!("'{}' does not name a bucket (3 to 63 lowercase letters, digits, '.' and '-')", bucket.escape_debug()));
    }
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    if !prefix.is_empty() {
        if prefix.len() > 512 || prefix.contains('\0') || prefix.contains('\\') {
            return Err("the prefix is longer than 512 bytes or holds a NUL or a backslash".into());
        }
        if prefix.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            return Err("the prefix must not contain '.', '..' or empty components".into());
        }
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// Whether the location `(bucket, prefix)` lies inside the root `(bucket, prefix)`.
#[must_use]
pub fn is_inside(location: (&str, &str), root: (&str, &str)) -> bool {
    location.0 == root.0 && (root.1.is_empty() || location.1 == root.1 || location.1.starts_with(&format!("{}/", root.1)))
}

/// How long a failing request is retried (with backoff) before the storage
/// counts as failed: `ROOKERY_S3_RETRY_SECONDS`, default 30.
fn retry_window() -> Duration {
    let seconds = std::env::var("ROOKERY_S3_RETRY_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    Duration::from_secs(seconds)
}

/// Why a location in object storage cannot be connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// Another endpoint than the server's, without credentials of its own.
    CredentialsRequired(String),
    /// Settings that make no client (a malformed endpoint).
    Unusable(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CredentialsRequired(m) | Self::Unusable(m) => f.write_str(m),
        }
    }
}

/// Whether `endpoint` is the server's own object storage endpoint (its
/// `AWS_ENDPOINT_URL`, or `AWS_ENDPOINT`), the only one its credentials go to.
fn is_own_endpoint(endpoint: &str) -> bool {
    let normalize = |e: &str| e.trim().trim_end_matches('/').to_ascii_lowercase();
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"].iter().filter_map(|v| std::env::var(v).ok()).any(|own| normalize(&own) == normalize(endpoint))
}

/// A backup location in object storage, connected.
#[derive(Clone)]
pub struct ObjectLocation {
    bucket: String,
    prefix: String,
    /// The endpoint its client was built for (empty: the default).
    endpoint: String,
    store: Arc<AmazonS3>,
    /// The object lock every set written here gets (a destination's `ObjectLock`).
    lock: Option<ObjectLock>,
    /// The object lock requests, made on first use.
    lock_requests: Arc<LockState>,
    /// How long its requests wait (see [`Self::canceled_by`]).
    wait: Wait,
}

/// What the object lock requests need, and what they found.
struct LockState {
    builder: AmazonS3Builder,
    requests: OnceLock<Result<LockRequests, String>>,
    /// Whether the bucket has object lock, once asked.
    enabled: OnceLock<bool>,
}

impl std::fmt::Debug for ObjectLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the client: it holds the credentials.
        write!(f, "ObjectLocation({self})")
    }
}

impl ObjectLocation {
    /// The storage and the place in it: the endpoint, the bucket and the prefix.
    #[must_use]
    pub fn identity(&self) -> String {
        format!("{} {self}", self.endpoint)
    }
}

impl std::fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "{SCHEME}{}", self.bucket)
        } else {
            write!(f, "{SCHEME}{}/{}", self.bucket, self.prefix)
        }
    }
}

/// One object of a location: its key below the location's prefix, its
/// size, and when it was last written (Unix seconds).
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub modified: i64,
}

impl ObjectLocation {
    /// A client for `bucket` from the process's `AWS_*` variables, overridden by
    /// `settings` (a request's `"S3"` object). Makes no request.
    ///
    /// # Errors
    /// The settings do not make a client (a malformed endpoint).
    pub fn connect(bucket: &str, prefix: &str, settings: Option<&S3Settings>) -> Result<Self, ConnectError> {
        // The server's own credentials (its environment) are only ever sent to
        // its own endpoint: a request naming another endpoint brings its own.
        let elsewhere = settings.and_then(|s| s.endpoint.as_deref()).filter(|e| !e.is_empty() && !is_own_endpoint(e));
        let base = match (elsewhere, settings) {
            (None, _) => AmazonS3Builder::from_env(),
            (Some(endpoint), Some(s)) => {
                let (Some(id), Some(secret)) = (&s.access_key_id, &s.secret_access_key) else {
                    return Err(ConnectError::CredentialsRequired(format!(
                        "S3.Endpoint '{}' is not this server's object storage endpoint: give its AccessKeyId and SecretAccessKey too (the server's own credentials are only sent to its own endpoint)",
                        endpoint.escape_debug()
                    )));
                };
                AmazonS3Builder::new()
                    .with_region(s.region.as_deref().filter(|r| !r.is_empty()).unwrap_or("us-east-1"))
                    .with_access_key_id(id)
                    .with_secret_access_key(secret)
            }
            (Some(_), None) => AmazonS3Builder::from_env(),
        };
        let mut builder = base
            .with_bucket_name(bucket)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s")
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "120s")
            .with_retry(RetryConfig {
                backoff: BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2), base: 2.0 },
                max_retries: 10,
                retry_timeout: retry_window(),
            });
        if let Some(s) = settings {
            if let Some(endpoint) = s.endpoint.as_deref().filter(|e| !e.is_empty()) {
                builder = builder.with_endpoint(endpoint);
                if endpoint.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
            }
            if let Some(region) = s.region.as_deref().filter(|r| !r.is_empty()) {
                builder = builder.with_region(region);
            }
            if let Some(id) = &s.access_key_id {
                builder = builder.with_access_key_id(id);
            }
            if let Some(secret) = &s.secret_access_key {
                builder = builder.with_secret_access_key(secret);
            }
            if let Some(token) = &s.session_token {
                builder = builder.with_token(token);
            }
            if let Some(path_style) = s.force_path_style {
                builder = builder.with_virtual_hosted_style_request(!path_style);
            }
        }
        let store = builder.clone().build().map_err(|e| ConnectError::Unusable(format!("cannot connect to object storage: {e}")))?;
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint).unwrap_or_default();
        let lock_requests = Arc::new(LockState { builder, requests: OnceLock::new(), enabled: OnceLock::new() });
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint,
            store: Arc::new(store),
            lock: None,
            lock_requests,
            wait: Wait::Answered,
        })
    }

    /// The same location for a job: its requests, and the uploads of the
    /// files it writes, stop waiting on the storage once `cancel` is
    /// canceled (an error for which [`is_canceled`] holds), instead of
    /// waiting out the storage's retries.
    #[must_use]
    pub fn canceled_by(&self, cancel: &CancelToken) -> Self {
        Self { wait: Wait::UntilCanceled(cancel.clone()), ..self.clone() }
    }

    /// Whether the job this location is for (see [`Self::canceled_by`]) was canceled.
    #[must_use]
    pub fn job_canceled(&self) -> bool {
        matches!(&self.wait, Wait::UntilCanceled(token) if token.is_canceled())
    }

    /// The same location for the clean-up of a canceled job: all of its
    /// requests, from now on, wait at most `CLEANUP_LIMIT` together.
    #[must_use]
    pub fn for_cleanup(&self) -> Self {
        Self { wait: Wait::Until(tokio::time::Instant::now() + CLEANUP_LIMIT), ..self.clone() }
    }

    /// This location, every set written into it locked by `lock`.
    #[must_use]
    pub fn with_lock(mut self, lock: ObjectLock) -> Self {
        self.lock = Some(lock);
        self
    }

    /// The object lock sets written here get, if any.
    #[must_use]
    pub fn lock(&self) -> Option<&ObjectLock> {
        self.lock.as_ref()
    }

    fn lock_requests(&self) -> std::io::Result<&LockRequests> {
        let state = &self.lock_requests;
        let made = state.requests.get_or_init(|| LockRequests::new(&state.builder, &self.bucket, Arc::clone(self.store.credentials())));
        made.as_ref().map_err(|e| std::io::Error::other(StorageFault(e.clone())))
    }

    /// Whether the bucket was made with object lock (asked once per location).
    ///
    /// # Errors
    /// A [`StorageFault`].
    pub fn lock_enabled(&self) -> std::io::Result<bool> {
        if let Some(enabled) = self.lock_requests.enabled.get() {
            return Ok(*enabled);
        }
        let requests = self.lock_requests()?;
        let enabled = self.wait.run(requests.enabled())?.map_err(as_fault)?;
        Ok(*self.lock_requests.enabled.get_or_init(|| enabled))
    }

    /// Locks every object of a set written so far (all but its manifest, which
    /// [`Self::put_manifest`] writes locked), as this location's lock says for
    /// a set taken at `created`; the lock, none when the location has none.
    ///
    /// # Errors
    /// A [`StorageFault`]: the set is then not complete (no manifest).
    pub fn lock_set(&self, set_id: &str, created: &str) -> std::io::Result<Option<Retention>> {
        let Some(policy) = &self.lock else { return Ok(None) };
        let created = created
            .parse::<jiff::Timestamp>()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{set_id}: Created '{created}': {e}")))?;
        let Some(retention) = Retention::of_set(policy, created, jiff::Timestamp::now()) else {
            tracing::info!(set = %set_id, "the set's object lock date is already past: it is written without a lock");
            return Ok(None);
        };
        let keys: Vec<String> = self.list_under(set_id)?.into_iter().map(|e| self.full_key(&e.key)).collect();
        let requests = self.lock_requests()?;
        self.wait
            .run(async {
                futures::stream::iter(keys)
                    .map(|key| async move { requests.retain(&key, &retention).await })
                    .buffer_unordered(LOCK_REQUESTS_IN_FLIGHT)
                    .try_collect::<Vec<()>>()
                    .await
            })?
            .map_err(as_fault)?;
        Ok(Some(retention))
    }

    /// Writes a set's manifest, locked when `retention` says so.
    ///
    /// # Errors
    /// A [`StorageFault`]; the manifest then does not exist.
    pub fn put_manifest(&self, key: &str, bytes: Vec<u8>, retention: Option<&Retention>) -> std::io::Result<()> {
        match retention {
            None => self.put(key, bytes),
            Some(retention) => {
                let requests = self.lock_requests()?;
                self.wait.run(requests.put_locked(&self.full_key(key), bytes, retention))?.map_err(as_fault)
            }
        }
    }

    /// The lock of each of `keys` (relative to the location) that has one;
    /// nothing when the bucket has no object lock.
    ///
    /// # Errors
    /// A [`StorageFault`].
    pub fn locks_of(&self, keys: &[String]) -> std::io::Result<std::collections::HashMap<String, Retention>> {
        if keys.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        match self.lock_enabled() {
            Ok(true) => {}
            Ok(false) => return Ok(std::collections::HashMap::new()),
            // Not allowed to ask (a policy without s3:GetBucketObjectLockConfiguration):
            // the sets list without their locks, as a bucket without object lock's do.
            Err(e) => {
                tracing::warn!(location = %self, error = %e, "cannot read the bucket's object lock configuration; sets are listed without their locks");
                return Ok(std::collections::HashMap::new());
            }
        }
        let requests = self.lock_requests()?;
        let found = self
            .wait
            .run(async {
                futures::stream::iter(keys.iter())
                    .map(|key| async move { requests.retention_of(&self.full_key(key)).await.map(|r| (key.clone(), r)) })
                    .buffer_unordered(LOCK_REQUESTS_IN_FLIGHT)
                    .try_collect::<Vec<_>>()
                    .await
            })?
            .map_err(as_fault)?;
        Ok(found.into_iter().filter_map(|(key, r)| Some((key, r?))).collect())
    }

    /// A key relative to the location as the bucket knows it.
    fn full_key(&self, key: &str) -> String {
        self.path(key).as_ref().to_string()
    }

    fn path(&self, key: &str) -> ObjectPath {
        let parts = self.prefix.split('/').chain(key.split('/')).filter(|p| !p.is_empty());
        ObjectPath::from_iter(parts)
    }

    /// The names one level below the location (`<prefix>/<name>/...`), as a
    /// listing with a delimiter gives them: it never descends into what lies
    /// under them (another location nested in this one, say). This is also
    /// how a location is probed before a job is accepted: a wrong key, a
    /// missing bucket or a dead endpoint fails here.
    ///
    /// # Errors
    /// The storage's answer, as a [`StorageFault`].
    pub fn list_names(&self) -> std::io::Result<Vec<String>> {
        let prefix = (!self.prefix.is_empty()).then(|| self.path(""));
        let store = self.store.clone();
        let listed = counted(Op::List, self.wait.run(async move { store.list_with_delimiter(prefix.as_ref()).await })?).map_err(to_io)?;
        Ok(listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
    }

    /// Whether an object exists.
    ///
    /// # Errors
    /// A [`StorageFault`].
    pub fn exists(&self, key: &str) -> std::io::Result<bool> {
        match counted(Op::Head, self.wait.run(self.store.head(&self.path(key)))?) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(to_io(e)),
        }
    }

    /// Every object of one set (`<set_id>/...`), keys relative to the location.
    ///
    /// # Errors
    /// A [`StorageFault`].
    pub fn list_set(&self, set_id: &str) -> std::io::Result<Vec<Entry>> {
        self.list_under(set_id)
    }

    /// Every object under `sub/` (the shared tables' prefix), keys relative to the location.
    ///
    /// # Errors
    /// A [`StorageFault`].
    pub fn list_prefix(&self, sub: &str) -> std::io::Result<Vec<Entry>> {
        self.list_under(sub)
    }

    /// The objects under `sub` (a set id), keys relative to the location.
    fn list_under(&self, sub: &str) -> std::io::Result<Vec<Entry>> {
        let prefix = (!self.prefix.is_empty() || !sub.is_empty()).then(|| self.path(sub));
        let store = self.store.clone();
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let metas: Vec<object_store::ObjectMeta> =
            counted(Op::List, self.wait.run(async move { store.list(prefix.as_ref()).try_collect().await })?).map_err(to_io)?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref().strip_prefix(strip.as_str())?.to_string();
                Some(Entry { key, size: m.size, modified: m.last_modified.timestamp() })
            })
            .collect())
    }

    /// The sizes of every object of one set, by name inside the set, in one
    /// listing (instead of a `HEAD` per file).
    ///
    /// # Errors
    /// A [`StorageFault`].
    pub fn sizes_in_set(&self, set_id: &str) -> std::io::Result<std::collections::HashMap<String, u64>> {
        let inside = format!("{set_id}/");
        Ok(self.list_under(set_id)?.into_iter().filter_map(|e| Some((e.key.strip_prefix(&inside)?.to_string(), e.size))).collect())
    }

    /// The size of one object.
    ///
    /// # Errors
    /// `NotFound`, or a [`StorageFault`].
    pub fn size_of(&self, key: &str) -> std::io::Result<u64> {
        let path = self.path(key);
        counted(Op::Head, self.wait.run(self.store.head(&path))?).map(|m| m.size).map_err(to_io)
    }

    /// A streaming reader of one object.
    ///
    /// # Errors
    /// `NotFound`, or a [`StorageFault`].
    pub fn open(&self, key: &str) -> std::io::Result<ObjectReader> {
        let path = self.path(key);
        let result = counted(Op::Get, self.wait.run(self.store.get(&path))?).map_err(to_io)?;
        Ok(ObjectReader { stream: result.into_stream(), current: Bytes::new(), wait: self.wait.clone() })
    }

    /// The bytes `offset..offset + len` of one object (one ranged `GET`).
    ///
    /// # Errors
    /// `NotFound`, or a [`StorageFault`].
    pub fn read_range(&self, key: &str, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let path = self.path(key);
        let bytes = counted(Op::Get, self.wait.run(self.store.get_range(&path, offset..offset + len))?).map_err(to_io)?;
        Ok(bytes.to_vec())
    }

    /// Uploads a small object in one request.
    ///
    /// # Errors
    /// A [`StorageFault`].
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> std::io::Result<()> {
        let path = self.path(key);
        counted(Op::Put, self.wait.run(self.store.put(&path, bytes.into()))?).map(|_| ()).map_err(to_io)
    }

    /// A streaming writer of one object; nothing exists under `key` until [`ObjectWriter::finish`].
    #[must_use]
    pub fn create(&self, key: &str) -> ObjectWriter {
        ObjectWriter {
            store: self.store.clone(),
            path: self.path(key),
            buffer: Vec::new(),
            upload: None,
            done: false,
            wait: self.wait.clone(),
        }
    }

    /// Deletes every object of one set (listing only that set's keys).
    ///
    /// # Errors
    /// A [`StorageFault`].
    pub fn delete_set(&self, set_id: &str) -> std::io::Result<()> {
        let keys: Vec<String> = self.list_under(set_id)?.into_iter().map(|e| e.key).collect();
        self.delete(&keys)
    }

    /// Deletes objects; missing ones are not an error.
    ///
    /// # Errors
    /// A [`StorageFault`].
    pub fn delete(&self, keys: &[String]) -> std::io::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let paths: Vec<ObjectPath> = keys.iter().map(|k| self.path(k)).collect();
        let store = self.store.clone();
        let result = self.wait.run(async move {
            let stream = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
            let results: Vec<object_store::Result<ObjectPath>> = store.delete_stream(stream).collect().await;
            for r in results {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })?;
        counted(Op::Delete, result).map_err(to_io)
    }
}

/// A download in progress.
pub struct ObjectReader {
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    current: Bytes,
    wait: Wait,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.wait.run(self.stream.next())? {
                Some(chunk) => self.current = chunk.map_err(to_io)?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// An upload in progress: a single `PUT` for a small object, a multipart
/// upload once it outgrows one part. Dropped without [`Self::finish`], the
/// multipart upload is aborted and nothing appears under its key.
pub struct ObjectWriter {
    store: Arc<AmazonS3>,
    path: ObjectPath,
    buffer: Vec<u8>,
    upload: Option<WriteMultipart>,
    done: bool,
    wait: Wait,
}

impl ObjectWriter {
    /// How many bytes the buffer holds before they are sent: a single
    /// `PUT`'s worth until the multipart upload starts, a part's after.
    fn buffer_limit(&self) -> usize {
        if self.upload.is_some() {
            PART_BYTES
        } else {
            SINGLE_PUT_BYTES
        }
    }

    /// Sends the full buffer as parts of [`PART_BYTES`], starting the
    /// multipart upload first when the file has just outgrown one `PUT`.
    fn send_parts(&mut self) -> std::io::Result<()> {
        if self.upload.is_none() {
            let upload = counted(Op::CreateMultipart, self.wait.run(self.store.put_multipart(&self.path))?).map_err(to_io)?;
            self.upload = Some(WriteMultipart::new_with_chunk_size(upload, PART_BYTES));
        }
        let mut bytes = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_BYTES)));
        let upload = self.upload.as_mut().ok_or_else(|| std::io::Error::other("no upload"))?;
        while !bytes.is_empty() {
            let part = bytes.split_to(PART_BYTES.min(bytes.len()));
            self.wait.run(upload.wait_for_capacity(PARTS_IN_FLIGHT))?.map_err(to_io)?;
            let _context = runtime().enter();
            upload.put(part);
            count(Op::UploadPart, false);
        }
        Ok(())
    }

    /// Completes the object: it exists under its key when this returns `Ok`.
    ///
    /// # Errors
    /// A [`StorageFault`]; the object then does not exist.
    pub fn finish(self) -> std::io::Result<()> {
        let wait = self.wait.clone();
        join(self.complete(), &wait)
    }

    /// Completes the object in the background: `finishing` says when it
    /// exists (this waits only while the uploads still finishing hold more
    /// than `FINISHING_BYTES`, for the oldest of them).
    ///
    /// # Errors
    /// A [`StorageFault`] of the oldest file finishing, when waited for.
    pub fn finish_in(self, finishing: &Finishing) -> std::io::Result<()> {
        let wait = self.wait.clone();
        let held = self.buffer.len() + if self.upload.is_some() { PARTS_IN_FLIGHT * PART_BYTES } else { 0 };
        finishing.push(self.complete(), held, &wait)
    }

    /// The last part or the single `PUT`, then the completion, as a task.
    fn complete(mut self) -> Upload {
        self.done = true;
        let (store, path) = (self.store.clone(), self.path.clone());
        let bytes = std::mem::take(&mut self.buffer);
        match self.upload.take() {
            None => runtime().spawn(async move { counted(Op::Put, store.put(&path, bytes.into()).await).map(|_| ()).map_err(to_io) }),
            Some(mut upload) => {
                let _context = runtime().enter();
                upload.put(Bytes::from(bytes));
                count(Op::UploadPart, false);
                runtime().spawn(async move { counted(Op::CompleteMultipart, upload.finish().await).map(|_| ()).map_err(to_io) })
            }
        }
    }
}

/// The uploads of one set that complete in the background, oldest first.
/// A set waits for all of them ([`Self::wait_all_for`]) before it uploads its
/// checksums and manifest, and a failed set before it removes its objects:
/// no object appears after the set was removed, and no set is complete
/// with a file the storage did not acknowledge. Memory stays bounded: the
/// uploads finishing hold at most `FINISHING_BYTES` besides the newest.
#[derive(Default)]
pub struct Finishing(std::sync::Mutex<std::collections::VecDeque<(Upload, usize)>>);

/// One file's upload, completing as a task of the storage's runtime.
type Upload = tokio::task::JoinHandle<std::io::Result<()>>;

impl Finishing {
    /// Adds an upload that holds `held` bytes until it completes; then, while
    /// the older ones and it hold more than `FINISHING_BYTES`, waits for
    /// the oldest (the newest is never waited for here).
    ///
    /// # Errors
    /// The failure of an upload waited for (the set then fails, and its
    /// clean-up waits for the others).
    fn push(&self, upload: Upload, held: usize, wait: &Wait) -> std::io::Result<()> {
        self.lock().push_back((upload, held));
        while self.over_budget() {
            if let Some(result) = self.wait_oldest(wait) {
                result?;
            }
        }
        Ok(())
    }

    fn over_budget(&self) -> bool {
        let queue = self.lock();
        queue.len() > 1 && queue.iter().map(|(_, held)| held).sum::<usize>() > FINISHING_BYTES
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(Upload, usize)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for the oldest upload as `wait` allows (`None`: none is left).
    /// One a cancel cut short stays first in line (the clean-up waits for
    /// it); one the storage did not answer in time is dropped.
    fn wait_oldest(&self, wait: &Wait) -> Option<std::io::Result<()>> {
        let (mut upload, held) = self.lock().pop_front()?;
        Some(match wait.run(&mut upload) {
            Ok(joined) => uploaded(joined),
            Err(e) if is_canceled(&e) => {
                self.lock().push_front((upload, held));
                Err(e)
            }
            Err(e) => {
                upload.abort();
                Err(e)
            }
        })
    }

    /// Waits for every upload still finishing, as `location`'s requests
    /// wait (see [`ObjectLocation::canceled_by`], [`ObjectLocation::for_cleanup`]).
    ///
    /// # Errors
    /// The first upload's failure (every upload is waited for all the same),
    /// or a wait its job's cancel cut short ([`is_canceled`]).
    pub fn wait_all_for(&self, location: &ObjectLocation) -> std::io::Result<()> {
        self.wait_all_in(&location.wait)
    }

    fn wait_all_in(&self, wait: &Wait) -> std::io::Result<()> {
        let mut first_error = None;
        while let Some(result) = self.wait_oldest(wait) {
            match result {
                Err(e) if is_canceled(&e) => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
                Ok(()) => {}
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Waits for one upload as `wait` allows (one not waited for goes on alone).
fn join(mut upload: tokio::task::JoinHandle<std::io::Result<()>>, wait: &Wait) -> std::io::Result<()> {
    uploaded(wait.run(&mut upload)?)
}

/// How an upload that ran to its end ended.
fn uploaded(joined: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Result<()> {
    joined.map_err(|e| std::io::Error::other(format!("an upload stopped: {e}")))??;
    crate::failpoint::hit("object.after_upload");
    Ok(())
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let limit = self.buffer_limit();
        let n = buf.len().min(limit - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() >= limit {
            self.send_parts()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(upload) = self.upload.take() {
            // Not waited for: a failed or canceled backup does not wait on the
            // storage; an abort that fails leaves parts a lifecycle rule removes.
            runtime().spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "cannot abort a multipart upload");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's upload that fails in the background fails the set's wait
    /// (after every other upload ended), however many finished after it;
    /// the writer waits, oldest first, only while more than
    /// `FINISHING_BYTES` are held, and never for a small file because a
    /// large one is still going up.
    #[test]
    fn uploads_finishing_in_the_background_are_all_waited_for_and_a_failure_is_reported() {
        let finishing = Finishing::default();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let failing = runtime().spawn(async move {
            let _ = released.await;
            Err(std::io::Error::other("the storage refused the last part"))
        });
        // A large file still going up, and many small ones after it: none is waited for.
        finishing.push(failing, SINGLE_PUT_BYTES - 1, &Wait::Answered).expect("not waited for yet");
        let ended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let quick = |ended: Arc<std::sync::atomic::AtomicUsize>| {
            runtime().spawn(async move {
                ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
        };
        for _ in 0..20 {
            finishing.push(quick(ended.clone()), 500 * 1024, &Wait::Answered).expect("not waited for yet");
        }
        assert_eq!(finishing.lock().len(), 21, "small files do not wait for the large one");
        // One more large file takes the bytes held over the budget: the oldest, the failing one, is waited for.
        let _ = release.send(());
        let oldest = finishing.push(quick(ended.clone()), SINGLE_PUT_BYTES - 1, &Wait::Answered);
        assert_eq!(oldest.expect_err("the oldest upload failed").to_string(), "the storage refused the last part");
        finishing.wait_all_in(&Wait::Answered).expect("the others succeeded");
        assert_eq!(ended.load(std::sync::atomic::Ordering::SeqCst), 21);

        let (release, released) = tokio::sync::oneshot::channel::<()>();
        finishing
            .push(
                runtime().spawn(async move {
                    let _ = released.await;
                    Err(std::io::Error::other("cut"))
                }),
                1,
                &Wait::Answered,
            )
            .expect("pending");
        finishing.push(quick(ended.clone()), 1, &Wait::Answered).expect("pending");
        let _ = release.send(());
        assert!(finishing.wait_all_in(&Wait::Answered).is_err(), "a failure in the background fails the set");
        assert_eq!(ended.load(std::sync::atomic::Ordering::SeqCst), 22, "and every upload ended first");
        assert!(finishing.wait_all_in(&Wait::Answered).is_ok(), "nothing is left pending");
    }

    /// `sets` in `bucket` at a loopback endpoint of a test's own.
    fn at_endpoint(endpoint: String, bucket: &str) -> ObjectLocation {
        let settings = S3Settings {
            endpoint: Some(endpoint),
            access_key_id: Some("key".into()),
            secret_access_key: Some("secret-value".into()),
            force_path_style: Some(true),
            ..S3Settings::default()
        };
        ObjectLocation::connect(bucket, "sets", Some(&settings)).expect("a client")
    }

    /// A canceled backup's clean-up waits on a storage that never answers
    /// at most `CLEANUP_LIMIT` in all: its uploads still in flight, the
    /// listing of its set and the deletes share one deadline (each of them
    /// waiting the limit anew let two uploads and a listing take 9 s).
    #[test]
    fn the_clean_up_of_a_canceled_job_waits_on_a_silent_storage_once_not_per_request() {
        // Accepts connections and never answers them.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            let held: Vec<std::net::TcpStream> = listener.incoming().map_while(Result::ok).collect();
            drop(held);
        });
        let location = at_endpoint(endpoint, "silent");
        let finishing = Finishing::default();
        for _ in 0..2 {
            finishing.push(runtime().spawn(std::future::pending()), PART_BYTES, &Wait::Answered).expect("not waited for yet");
        }
        let started = std::time::Instant::now();
        let cleanup = location.for_cleanup();
        assert!(finishing.wait_all_for(&cleanup).is_err(), "an upload the storage never acknowledged is no success");
        assert!(cleanup.delete_set("20261205T000000Z-full").is_err(), "nor a listing it never answered");
        let took = started.elapsed();
        assert!(took < CLEANUP_LIMIT + Duration::from_secs(1), "the clean-up waited {took:?}");
    }

    /// A store without object lock that says so with `501 Not Implemented`
    /// (Garage answers every object lock request so): the bucket has no
    /// lock, known from its first answer. A 501 is no passing failure, and
    /// retrying it made every listing of a location in Garage wait 6 s
    /// (five attempts, backing off), then list as if the storage had failed.
    #[test]
    fn a_store_that_does_not_implement_object_lock_is_asked_once() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&asked);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let count = Arc::clone(&count);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut stream = stream;
                    loop {
                        // One request: its head (no body on a GET), then the answer.
                        let mut line = String::new();
                        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && !line.ends_with("\r\n\r\n") {}
                        if line.is_empty() {
                            return;
                        }
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let body = "<Error><Code>NotImplemented</Code><Message>Unimplemented action</Message></Error>";
                        let answer = format!("HTTP/1.1 501 Not Implemented\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                        if stream.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let location = at_endpoint(endpoint, "no-lock");
        assert!(!location.lock_enabled().expect("an answer: no object lock"), "a bucket without object lock");
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1, "asked once, not again and again");
        assert!(!location.lock_enabled().expect("known"));
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1, "and not again for the same location");
    }

    #[test]
    fn urls_name_a_bucket_and_a_clean_prefix() {
        assert_eq!(parse_url("s3://backups").expect("ok"), ("backups".into(), String::new()));
        assert_eq!(parse_url("s3://backups/").expect("ok"), ("backups".into(), String::new()));
        assert_eq!(parse_url("s3://my-bucket.x/a/b/").expect("ok"), ("my-bucket.x".into(), "a/b".into()));
        for bad in
            ["s3://", "s3://bk", "s3://Upper/x", "s3://b_b_b", "s3://ok-bucket/a/../b", "s3://ok-bucket/a//b", "s3://ok-bucket/./a", "/tmp"]
        {
            assert!(parse_url(bad).is_err(), "{bad} must be refused");
        }
        assert!(is_inside(("b", "x/y"), ("b", "")));
        assert!(is_inside(("b", "x/y"), ("b", "x")));
        assert!(is_inside(("b", "x"), ("b", "x")));
        assert!(!is_inside(("b", "xy"), ("b", "x")));
        assert!(!is_inside(("c", "x"), ("b", "")));
    }
}
