//! A small blocking client of the REST API, used by the CLIs (and the tests).

use std::time::Duration;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::Credentials;
use rookery_types::{ErrorBody, JobStatus};

/// An error a CLI prints as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// The server's error code, or a local one (`Unreachable`, `BadResponse`).
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} ({s} {}): {}", self.code, reason(s), self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for ClientError {}

fn reason(status: u16) -> &'static str {
    ureq::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}

/// Splits `http://host:port/databases/Name` into the server root and the database.
#[must_use]
pub fn split_url(url: &str) -> (String, Option<String>) {
    let trimmed = url.trim_end_matches('/');
    match trimmed.find("/databases/") {
        Some(at) => {
            let rest = &trimmed[at + "/databases/".len()..];
            let name = rest.split('/').next().unwrap_or("").to_string();
            (trimmed[..at].to_string(), (!name.is_empty()).then_some(name))
        }
        None => (trimmed.to_string(), None),
    }
}

/// A connection to one server, optionally about one database.
#[derive(Debug, Clone)]
pub struct Client {
    root: String,
    database: Option<String>,
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl Client {
    /// A client of the server at `url` (a root URL or a database URL);
    /// `database` overrides the one in the URL.
    #[must_use]
    pub fn new(url: &str, database: Option<&str>, timeout: Option<Duration>, credentials: &Credentials) -> Self {
        let (root, from_url) = split_url(url);
        let database = database.map(str::to_string).or(from_url).filter(|d| !d.eq_ignore_ascii_case(rookery_types::SYSTEM_DATABASE));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(timeout.or(Some(Duration::from_secs(120))))
            .build()
            .into();
        Self { root, database, agent, authorization: authorization(credentials) }
    }

    /// The server root URL.
    #[must_use]
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The database this client is about (`None`: the system database).
    #[must_use]
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The base URL of the database (`root` or `root/databases/{db}`).
    #[must_use]
    pub fn base(&self) -> String {
        match &self.database {
            Some(db) => format!("{}/databases/{}", self.root, percent_encode(db)),
            None => self.root.clone(),
        }
    }

    /// `GET` a JSON answer.
    ///
    /// # Errors
    /// The server's error, or a transport error.
    pub fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, ClientError> {
        let request = self.authorize(self.agent.get(url));
        Self::answer(request.call(), url)
    }

    /// `POST` a JSON body, read a JSON answer.
    ///
    /// # Errors
    /// The server's error, or a transport error.
    pub fn post_json<T: DeserializeOwned>(&self, url: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let request = self.authorize(self.agent.post(url));
        Self::answer(request.send_json(body), url)
    }

    /// `PUT` a JSON body, read a JSON answer.
    ///
    /// # Errors
    /// The server's error, or a transport error.
    pub fn put_json<T: DeserializeOwned>(&self, url: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let request = self.authorize(self.agent.put(url));
        Self::answer(request.send_json(body), url)
    }

    /// Reads a status document of this client's database (`None` if it does not exist yet).
    ///
    /// # Errors
    /// The server's error, or a transport error.
    pub fn status(&self, base: &str, doc_id: &str) -> Result<Option<JobStatus>, ClientError> {
        match self.get_json(&format!("{base}/docs/{doc_id}")) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.status == Some(404) && e.code == "NotFound" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT` a body as it is (a document), expecting a 2xx.
    ///
    /// # Errors
    /// The server's error, or a transport error.
    pub fn put_raw(&self, url: &str, content_type: &str, body: String) -> Result<(), ClientError> {
        let request = self.authorize(self.agent.put(url)).header("content-type", content_type);
        Self::answer::<serde::de::IgnoredAny>(request.send(body), url).map(|_| ())
    }

    /// `GET`, expecting a 2xx; the body is read and dropped.
    ///
    /// # Errors
    /// The server's error, or a transport error.
    pub fn get_ok(&self, url: &str) -> Result<(), ClientError> {
        Self::answer::<serde::de::IgnoredAny>(self.authorize(self.agent.get(url)).call(), url).map(|_| ())
    }

    /// `DELETE`, expecting a 2xx.
    ///
    /// # Errors
    /// The server's error, or a transport error.
    pub fn delete(&self, url: &str) -> Result<(), ClientError> {
        let answer = Self::answer::<serde::de::IgnoredAny>(self.authorize(self.agent.delete(url)).call(), url);
        match answer {
            // A 204 has no JSON to read.
            Err(e) if e.code == "BadResponse" && e.status.is_some_and(|s| (200..300).contains(&s)) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// `GET` a stream (an export), with no time limit: its reader, once
    /// the server answered 2xx.
    ///
    /// # Errors
    /// The server's error, or a transport error.
    pub fn get_stream(&self, url: &str) -> Result<impl std::io::Read, ClientError> {
        let request = self.authorize(self.agent.get(url)).config().timeout_global(None).build();
        let mut response = request.call().map_err(|e| unreachable(url, &e))?;
        let status = response.status().as_u16();
        if status >= 300 {
            return Err(error_of(status, response.body_mut().read_to_string().unwrap_or_default()));
        }
        Ok(response.into_body().into_reader())
    }

    /// `POST` a stream (an import), with no time limit, read a JSON answer.
    ///
    /// # Errors
    /// The server's error, or a transport error.
    pub fn post_stream<T: DeserializeOwned>(&self, url: &str, content_type: &str, body: &mut dyn std::io::Read) -> Result<T, ClientError> {
        let request = self.authorize(self.agent.post(url)).header("content-type", content_type).config().timeout_global(None).build();
        Self::answer(request.send(ureq::SendBody::from_reader(body)), url)
    }

    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    fn answer<T: DeserializeOwned>(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>, url: &str) -> Result<T, ClientError> {
        let mut response = result.map_err(|e| unreachable(url, &e))?;
        let status = response.status().as_u16();
        let text = response.body_mut().with_config().limit(64 * 1024 * 1024).read_to_string().map_err(|e| ClientError {
            status: Some(status),
            code: "BadResponse".into(),
            message: format!("cannot read the answer: {e}"),
        })?;
        if (200..300).contains(&status) {
            serde_json::from_str(&text).map_err(|e| ClientError {
                status: Some(status),
                code: "BadResponse".into(),
                message: format!("unexpected answer from {url}: {e}"),
            })
        } else {
            Err(error_of(status, text))
        }
    }
}

fn unreachable(url: &str, e: &ureq::Error) -> ClientError {
    ClientError { status: None, code: "Unreachable".into(), message: format!("cannot reach {url}: {e}") }
}

/// The error of a non-2xx answer: the server's `{"Error", "Message"}`, or the start of its text.
fn error_of(status: u16, text: String) -> ClientError {
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(b) => ClientError { status: Some(status), code: b.error, message: b.message },
        Err(_) => ClientError { status: Some(status), code: "HttpError".into(), message: text.chars().take(300).collect() },
    }
}

/// The `Authorization` header value for `credentials`: `ApiKey name/secret`
/// or HTTP Basic; `None` without credentials.
#[must_use]
pub fn authorization(credentials: &Credentials) -> Option<String> {
    match (&credentials.api_key, &credentials.username) {
        (Some(key), _) => Some(format!("ApiKey {key}")),
        (None, Some(user)) => {
            let pair = format!("{user}:{}", credentials.password.clone().unwrap_or_default());
            Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
        }
        (None, None) => None,
    }
}

/// Percent-encodes a path segment (ids may hold `/`, which stays as is).
#[must_use]
pub fn percent_encode(segment: &str) -> String {
    rookery_types::encode_path(segment)
}

/// Follows a status document until the job it shows ends, calling
/// `on_status` with every new version. `started` is the job's own `Started`
/// (from the first read after the 202), so an older job's result is never taken.
///
/// # Errors
/// Transport errors, or `Timeout` after `limit`.
pub fn follow_status(
    client: &Client,
    base: &str,
    doc_id: &str,
    limit: Duration,
    on_status: &mut dyn FnMut(&JobStatus),
) -> Result<JobStatus, ClientError> {
    let deadline = std::time::Instant::now() + limit;
    let mut started: Option<String> = None;
    loop {
        if let Some(status) = client.status(base, doc_id)? {
            if started.is_none() {
                started.clone_from(&status.started);
            }
            if status.started == started {
                on_status(&status);
                if !status.is_running {
                    return Ok(status);
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(ClientError { status: None, code: "Timeout".into(), message: format!("the job did not finish within {limit:?}") });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_root_and_database() {
        assert_eq!(split_url("http://h:1/"), ("http://h:1".to_string(), None));
        assert_eq!(split_url("http://h:1/databases/North"), ("http://h:1".to_string(), Some("North".to_string())));
        assert_eq!(split_url("http://h:1/databases/North/"), ("http://h:1".to_string(), Some("North".to_string())));
    }

    #[test]
    fn percent_encoding_keeps_slashes() {
        assert_eq!(percent_encode("users/1 a%"), "users/1%20a%25");
    }
}
