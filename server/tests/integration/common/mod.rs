//! A real `rookery-server` process on a free port with its own temp data
//! directory, and small HTTP helpers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod receiver;
pub mod s3;

use serde_json::{json, Value};

/// The server binary under test (built with the `failpoints` feature by `make test`).
pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_rookery-server");
/// The backup CLI under test.
pub const BACKUP_BIN: &str = env!("CARGO_BIN_EXE_rookery-backup");

/// The server binary the servers of these tests run: [`SERVER_BIN`], or
/// `ROOKERY_TEST_SERVER_BIN` (to run a test against another build, say the
/// one before a fix, and see it fail).
#[must_use]
pub fn server_bin() -> String {
    std::env::var("ROOKERY_TEST_SERVER_BIN").unwrap_or_else(|_| SERVER_BIN.to_string())
}

/// The backup CLI these tests run: [`BACKUP_BIN`], or `ROOKERY_TEST_BACKUP_BIN`.
#[must_use]
pub fn backup_bin() -> String {
    std::env::var("ROOKERY_TEST_BACKUP_BIN").unwrap_or_else(|_| BACKUP_BIN.to_string())
}

/// An hourly cron (UTC) whose next run is half an hour away: a task that
/// must not run on its own during a test (one on the hour runs when a test
/// crosses the hour, and a test's own runs then meet a scheduled one).
pub fn hourly_not_now() -> String {
    let minute = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60 % 60);
    format!("{} * * * *", (minute + 30) % 60)
}

/// Polls `probe` every 100 ms until it gives a value (at most 60 s), or panics saying `what`.
pub fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(found) = probe() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within 60 s");
}

/// A running server that owns its data directory.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub url: String,
    child: Option<Child>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    agent: ureq::Agent,
    /// Started in its temp folder with `--data-dir ./data` (as `make run` does).
    relative: bool,
    /// The lines the server printed after its first (since its last start).
    printed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts a server on a fresh temp data directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra environment (`ROOKERY_FAILPOINTS`, ...).
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        Self::start_full(env, &[])
    }

    /// Starts a server with extra environment and flags.
    pub fn start_full(env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut server = Self::unstarted(env, args);
        server.spawn();
        server
    }

    /// Starts a server in its temp folder with a relative `--data-dir ./data`,
    /// as `make run` starts one.
    pub fn start_relative() -> Self {
        let mut server = Self::unstarted(&[], &[]);
        server.relative = true;
        server.spawn();
        server
    }

    fn unstarted(env: &[(&str, &str)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        // No pooled connections: a server may close one after refusing a request
        // whose body it did not read, and a reused dead connection is not what is tested.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_idle_connections_per_host(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let args = args.iter().map(|a| a.to_string()).collect();
        Self { dir, data_dir, url: String::new(), child: None, env, args, agent, relative: false, printed: std::sync::Arc::default() }
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// A path inside this test's temp folder (outside the data directory).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A backup location inside this test's temp folder, as a string.
    pub fn location(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(server_bin());
        if self.relative {
            cmd.current_dir(self.dir.path()).arg("--data-dir").arg("./data");
        } else {
            cmd.arg("--data-dir").arg(&self.data_dir);
        }
        cmd.arg("--bind").arg("127.0.0.1:0");
        cmd.env("RUST_LOG", "warn").env("LEPTOS_SITE_ROOT", self.dir.path().join("site"));
        cmd.args(&self.args);
        cmd.env_remove("ROOKERY_FAILPOINTS");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("the server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("the server prints its address").expect("utf8");
        let url = first.rsplit(' ').next().expect("an address").to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "unexpected first line: {first}");
        // Keep draining stdout so the server never blocks on a full pipe.
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        self.printed = printed.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                printed.lock().expect("lock").push(line);
            }
        });
        self.url = url;
        self.child = Some(child);
    }

    /// The first line the server printed (after its address) that starts with `prefix`.
    pub fn printed_line(&self, prefix: &str) -> String {
        wait_until(&format!("a line starting with '{prefix}'"), || {
            self.printed.lock().expect("lock").iter().find(|l| l.starts_with(prefix)).cloned()
        })
    }

    /// Restarts the server on the same data directory (after a kill or a stop).
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// Restarts with another environment.
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.stop();
        self.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.spawn();
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY-free: use the kill command to send SIGTERM.
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit by itself (a failpoint), returning its code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty or not JSON).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (status, text) = self.call_raw(method, path, body.map(|b| b.to_string()), &[]);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends a raw body with headers; returns the status and the body text.
    pub fn call_raw(&self, method: &str, path: &str, body: Option<String>, headers: &[(&str, &str)]) -> (u16, String) {
        let url = format!("{}{path}", self.url);
        let result = match method {
            "GET" | "DELETE" => {
                let mut r = if method == "GET" { self.agent.get(&url) } else { self.agent.delete(&url) };
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                r.call()
            }
            _ => {
                let mut r = match method {
                    "PUT" => self.agent.put(&url),
                    "POST" => self.agent.post(&url),
                    other => panic!("method {other}"),
                };
                r = r.header("content-type", "application/json");
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                r.send(body.unwrap_or_default())
            }
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().with_config().limit(256 * 1024 * 1024).read_to_string().unwrap_or_default();
        (status, text)
    }

    /// Requests the server has sent to object storage, every operation (its `/metrics`).
    pub fn storage_requests(&self) -> u64 {
        let (_, text) = self.call_raw("GET", "/metrics", None, &[]);
        text.lines()
            .filter(|l| l.starts_with("rookery_object_storage_requests_total"))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum::<f64>() as u64
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    pub fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PUT", path, Some(&body))
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(&body))
    }

    /// POSTs to a server that may exit (at a failpoint) before its answer
    /// is sent: the status and body when it answered, `None` when the
    /// connection dropped first.
    pub fn post_tolerant(&self, path: &str, body: Value) -> Option<(u16, Value)> {
        let mut response =
            self.agent.post(&format!("{}{path}", self.url)).header("content-type", "application/json").send(body.to_string()).ok()?;
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Some((response.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None)
    }

    /// Creates a named database.
    pub fn create_db(&self, name: &str) {
        let (status, body) = self.call("PUT", &format!("/admin/databases/{name}"), None);
        assert_eq!(status, 201, "create {name}: {body}");
    }

    /// Puts a document; returns its etag.
    pub fn put_doc(&self, base: &str, id: &str, body: Value) -> u64 {
        let (status, answer) = self.put(&format!("{base}/docs/{id}"), body);
        assert!(status == 200 || status == 201, "put {id}: {status} {answer}");
        answer["ETag"].as_u64().expect("an etag")
    }

    /// Every document of a database except status documents, by id.
    pub fn all_docs(&self, base: &str) -> std::collections::BTreeMap<String, Value> {
        let mut out = std::collections::BTreeMap::new();
        let mut start = 0;
        loop {
            let (status, page) = self.get(&format!("{base}/docs?start={start}&pageSize=1024"));
            assert_eq!(status, 200, "{page}");
            let results = page["Results"].as_array().expect("results").clone();
            if results.is_empty() {
                break;
            }
            start += results.len();
            for r in results {
                let id = r["Id"].as_str().expect("id").to_string();
                if !id.starts_with("Raven/") {
                    out.insert(id, r["Document"].clone());
                }
            }
        }
        out
    }

    /// Starts a backup and waits for its status document to show the end.
    pub fn backup(&self, base: &str, location: &str, incremental: bool) -> Value {
        let (status, body) = self.post(&format!("{base}/admin/backup?incremental={incremental}"), json!({ "BackupLocation": location }));
        assert_eq!(status, 202, "backup: {body}");
        let done = self.wait_for_job(base, "Raven/Backup/Status");
        assert_eq!(done["Success"], true, "backup failed: {done}");
        done
    }

    /// Starts a restore and waits for it; returns the final status.
    pub fn restore(&self, request: Value) -> Value {
        let (status, body) = self.post("/admin/restore", request);
        assert_eq!(status, 202, "restore: {body}");
        self.wait_for_job("", "Raven/Restore/Status")
    }

    /// A restore that must fail, before its 202 (cheap checks) or in its job
    /// (file hashes are checked while the files stream): returns the error
    /// code and message either way, and that nothing became visible.
    pub fn refused_restore(&self, request: Value) -> (String, String) {
        let (status, body) = self.post("/admin/restore", request.clone());
        let (code, message) = if status == 202 {
            let done = self.wait_for_job("", "Raven/Restore/Status");
            assert_eq!(done["Success"], false, "{request}: the restore succeeded: {done}");
            (done["ErrorCode"].as_str().unwrap_or("").to_string(), done["Error"].as_str().unwrap_or("").to_string())
        } else {
            assert!(status == 400 || status == 404 || status == 422, "{request}: {status} {body}");
            (body["Error"].as_str().unwrap_or("").to_string(), body["Message"].as_str().unwrap_or("").to_string())
        };
        if let Some(name) = request["DatabaseName"].as_str() {
            assert_eq!(self.get(&format!("/databases/{name}/docs")).0, 404, "{request}: nothing visible");
        }
        (code, message)
    }

    /// Polls a status document until `IsRunning` is false (at most 600 polls, 100 ms apart).
    pub fn wait_for_job(&self, base: &str, doc: &str) -> Value {
        for _ in 0..600 {
            let (status, body) = self.get(&format!("{base}/docs/{doc}"));
            if status == 200 && body["IsRunning"] == false {
                return body;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{doc} still running after 60 s");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Names of the set folders in a location (complete sets only).
pub fn set_dirs(location: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(location)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| !n.starts_with('.')).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Every entry name in a folder (hidden ones included).
pub fn all_entries(location: &Path) -> Vec<String> {
    let mut out: Vec<String> =
        std::fs::read_dir(location).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect()).unwrap_or_default();
    out.sort();
    out
}
