//! S3 Object Lock: the few requests `object_store` does not make, signed
//! with its own SigV4 authorizer and sent with its own HTTP client (no signer
//! and no client of ours).
//!
//! - `GET ?object-lock` on the bucket: whether it was made with object lock.
//! - `PUT <key>?retention` with `Content-MD5`: locks an object already
//!   written (every data file of a set and its `SHA256SUMS`).
//! - `PUT <key>` with `x-amz-object-lock-mode` and
//!   `x-amz-object-lock-retain-until-date`: the manifest, written locked in
//!   one request, so that a complete set is never unlocked for a moment.
//! - `HEAD <key>`: an object's lock, from the same two headers.
//!
//! Retention dates are whole seconds in UTC (`2027-01-02T03:04:05Z`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use jiff::Timestamp;
use md5::{Digest as _, Md5};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer, AwsCredential};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, HttpResponse, ReqwestConnector};
use object_store::{ClientOptions, CredentialProvider};
use rookery_types::{LockMode, ObjectLock};

use super::object_requests::{count, Op};

const MODE_HEADER: &str = "x-amz-object-lock-mode";
const UNTIL_HEADER: &str = "x-amz-object-lock-retain-until-date";
/// Attempts of one request when the storage fails (5xx, 429) or does not answer.
const ATTEMPTS: u32 = 5;

/// An object's lock: its mode and the date before which nobody (Compliance)
/// or only a user who may bypass governance (Governance) can delete it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    pub until: Timestamp,
}

impl Retention {
    /// The lock a destination's `policy` gives a set taken at `created`; none
    /// when that date is already (nearly) past: such a set is due for deletion
    /// under the policy, and S3 takes no retention date in the past.
    #[must_use]
    pub fn of_set(policy: &ObjectLock, created: Timestamp, now: Timestamp) -> Option<Self> {
        let seconds = i64::from(policy.retain_days).saturating_mul(day_seconds());
        let until = created.checked_add(jiff::SignedDuration::from_secs(seconds)).ok()?;
        let until = Timestamp::from_second(until.as_second()).ok()?;
        (until.duration_since(now) > jiff::SignedDuration::from_secs(1)).then_some(Self { mode: policy.mode, until })
    }

    fn until_text(&self) -> String {
        self.until.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

/// Seconds in a retention day: 86 400, or, in a build with fault points,
/// `ROOKERY_LOCK_DAY_SECONDS` (so that a test sees a lock expire).
fn day_seconds() -> i64 {
    #[cfg(feature = "failpoints")]
    if let Some(seconds) = std::env::var("ROOKERY_LOCK_DAY_SECONDS").ok().and_then(|v| v.parse().ok()) {
        return seconds;
    }
    86_400
}

/// The signed requests of object lock for one bucket.
pub struct LockRequests {
    http: HttpClient,
    credentials: Arc<dyn CredentialProvider<Credential = AwsCredential>>,
    region: String,
    /// `https://host/bucket` (path style) or `https://bucket.host`, no trailing slash.
    bucket_url: String,
}

impl std::fmt::Debug for LockRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LockRequests({})", self.bucket_url)
    }
}

impl LockRequests {
    /// The requests for the bucket `builder` is for, with the credentials of
    /// the client built from it (the same ones every other request uses).
    ///
    /// # Errors
    /// Settings that make no HTTP client.
    pub(super) fn new(
        builder: &AmazonS3Builder,
        bucket: &str,
        credentials: Arc<dyn CredentialProvider<Credential = AwsCredential>>,
    ) -> Result<Self, String> {
        let value = |key: AmazonS3ConfigKey| builder.get_config_value(&key).filter(|v| !v.is_empty());
        let region = value(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let virtual_hosted = value(AmazonS3ConfigKey::VirtualHostedStyleRequest).is_some_and(|v| v == "true");
        let bucket_url = match (value(AmazonS3ConfigKey::Endpoint), virtual_hosted) {
            (Some(endpoint), true) => endpoint.trim_end_matches('/').to_string(),
            (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let options = ClientOptions::new()
            .with_allow_http(bucket_url.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(60));
        let http = ReqwestConnector::default().connect(&options).map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Self { http, credentials, region, bucket_url })
    }

    /// Whether the bucket was made with object lock (`ObjectLockEnabled`).
    /// A store that does not know object lock answers "no".
    ///
    /// # Errors
    /// When the storage does not answer or refuses the credentials.
    pub async fn enabled(&self) -> std::io::Result<bool> {
        let response = self.send(Method::GET, "", "?object-lock", Vec::new(), Bytes::new()).await?;
        let status = response.status();
        if status.is_success() {
            let body = response.into_body().bytes().await.map_err(fault)?;
            return Ok(String::from_utf8_lossy(&body).contains("<ObjectLockEnabled>Enabled</ObjectLockEnabled>"));
        }
        if matches!(status, StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED) {
            return Err(refused("reading the bucket's object lock configuration", response).await);
        }
        // 404 ObjectLockConfigurationNotFoundError, 400 or 501 from a store without it.
        Ok(false)
    }

    /// Locks an object already written.
    ///
    /// # Errors
    /// A storage failure (among them: the bucket has no object lock).
    pub async fn retain(&self, key: &str, retention: &Retention) -> std::io::Result<()> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            retention.mode.as_s3(),
            retention.until_text()
        );
        let body = Bytes::from(body);
        let headers = vec![("content-md5", content_md5(&body)), ("content-type", "application/xml".into())];
        let response = self.send(Method::PUT, key, "?retention", headers, body).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(refused(&format!("locking {key}"), response).await)
    }

    /// Writes a small object locked from its first moment.
    ///
    /// # Errors
    /// A storage failure; the object then does not exist.
    pub async fn put_locked(&self, key: &str, body: Vec<u8>, retention: &Retention) -> std::io::Result<()> {
        let body = Bytes::from(body);
        let headers = vec![
            ("content-md5", content_md5(&body)),
            (MODE_HEADER, retention.mode.as_s3().to_string()),
            (UNTIL_HEADER, retention.until_text()),
        ];
        let response = self.send(Method::PUT, key, "", headers, body).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(refused(&format!("writing {key} locked"), response).await)
    }

    /// An object's lock, if it has one (none for a missing object too).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn retention_of(&self, key: &str) -> std::io::Result<Option<Retention>> {
        let response = self.send(Method::HEAD, key, "", Vec::new(), Bytes::new()).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(refused(&format!("reading the lock of {key}"), response).await);
        }
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mode = match header(MODE_HEADER).as_deref() {
            Some("GOVERNANCE") => LockMode::Governance,
            Some("COMPLIANCE") => LockMode::Compliance,
            _ => return Ok(None),
        };
        Ok(header(UNTIL_HEADER).and_then(|u| u.parse::<Timestamp>().ok()).map(|until| Retention { mode, until }))
    }

    /// Sends one signed request, again while the storage fails or does not answer.
    async fn send(
        &self,
        method: Method,
        key: &str,
        query: &str,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    ) -> std::io::Result<HttpResponse> {
        let url = format!("{}/{}{query}", self.bucket_url, encode_key(key));
        let url = if key.is_empty() { format!("{}{query}", self.bucket_url) } else { url };
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt.min(4))).await;
            }
            let credential = self.credentials.get_credential().await.map_err(|e| fault(format!("no credentials: {e}")))?;
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .body(HttpRequestBody::from(body.clone()))
                .map_err(|e| fault(format!("cannot make the request: {e}")))?;
            for (name, value) in &headers {
                let value = http::HeaderValue::from_str(value).map_err(|e| fault(e.to_string()))?;
                request.headers_mut().insert(*name, value);
            }
            AwsAuthorizer::new(&credential, "s3", &self.region).authorize(&mut request, None);
            match self.http.execute(request).await {
                Ok(response) if passing(response.status()) => {
                    count(Op::Lock, true);
                    last = format!("the storage answered {}", response.status());
                }
                Ok(response) => {
                    count(Op::Lock, !response.status().is_success() && response.status() != StatusCode::NOT_FOUND);
                    return Ok(response);
                }
                Err(e) => {
                    count(Op::Lock, true);
                    last = format!("the storage did not answer: {e}");
                }
            }
        }
        Err(fault(format!("{method} {url}: {last}")))
    }
}

/// Whether an answer is a failure that may pass, worth asking again: a
/// server error or a request to slow down. Not `501 Not Implemented`: a
/// store without object lock (Garage) says so to every lock request, and
/// asking it again only waits.
fn passing(status: StatusCode) -> bool {
    (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED) || status == StatusCode::TOO_MANY_REQUESTS
}

/// The key's path, each part percent-encoded as S3 wants it.
fn encode_key(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
    percent_encoding::utf8_percent_encode(key, KEEP).to_string()
}

fn content_md5(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(body))
}

/// A failure of the storage (the location wraps it as a storage fault).
fn fault(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A refusal: the request, the status and the storage's error code (never the rest of its body).
async fn refused(what: &str, response: HttpResponse) -> std::io::Error {
    let status = response.status();
    let body = response.into_body().bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    match super::object_requests::error_code(&text) {
        Some(code) => fault(format!("{what}: the storage answered {status} (storage error code {code})")),
        None => fault(format!("{what}: the storage answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_slow_downs_are_asked_again_and_not_implemented_is_an_answer() {
        for status in
            [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE, StatusCode::TOO_MANY_REQUESTS]
        {
            assert!(passing(status), "{status}");
        }
        for status in [StatusCode::NOT_IMPLEMENTED, StatusCode::BAD_REQUEST, StatusCode::FORBIDDEN, StatusCode::NOT_FOUND, StatusCode::OK] {
            assert!(!passing(status), "{status}");
        }
    }

    #[test]
    fn a_sets_lock_runs_from_its_creation_in_whole_seconds_and_never_into_the_past() {
        let policy = ObjectLock { mode: LockMode::Compliance, retain_days: 7 };
        let created: Timestamp = "2026-12-01T10:00:00.750Z".parse().expect("time");
        let now: Timestamp = "2026-12-02T00:00:00Z".parse().expect("time");
        let lock = Retention::of_set(&policy, created, now).expect("locked");
        assert_eq!(lock.until_text(), "2026-12-08T10:00:00Z");
        assert_eq!(lock.mode, LockMode::Compliance);
        let later: Timestamp = "2026-12-09T00:00:00Z".parse().expect("time");
        assert_eq!(Retention::of_set(&policy, created, later), None, "a date already past is no lock");
    }

    #[test]
    fn keys_are_encoded_part_by_part() {
        assert_eq!(encode_key("p/20261201-0000/documents 1.zst"), "p/20261201-0000/documents%201.zst");
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
