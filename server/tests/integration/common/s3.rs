//! A real S3 server for the tests: moto's server (PyPI `moto[server]`, which
//! `make test` installs into `.tools/venv`), started on a free loopback port, with a bucket; and
//! a TCP relay in front of it that a test can cut, as a dead endpoint or a
//! dropped network would, while moto keeps what it stored.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// moto serves objects to signed requests only; it does not check signatures
/// unless told to, so the fixture's own reads carry this one.
const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=rookery-test/20261126/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

/// The Python that runs moto: `ROOKERY_TEST_PYTHON`, else the project's
/// `.tools/venv`. Stops the test at once, in one line, when moto is not there.
fn python() -> String {
    static CHECKED: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    let found = CHECKED.get_or_init(|| {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/venv/bin/python3");
        let python = std::env::var("ROOKERY_TEST_PYTHON").unwrap_or_else(|_| venv.to_string());
        let ok = Command::new(&python).args(["-c", "import moto.server"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        match ok {
            Ok(s) if s.success() => Ok(python),
            _ => Err(format!("moto is not installed for {python}: run `make test` (it installs moto into .tools/venv)")),
        }
    });
    match found {
        Ok(python) => python.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// A moto S3 server process with one bucket, reached through a relay.
pub struct S3Server {
    child: Child,
    /// moto itself.
    pub direct: String,
    /// The relay (what the server under test is told to use).
    pub endpoint: String,
    pub bucket: String,
    relay: Relay,
    agent: ureq::Agent,
}

impl S3Server {
    /// Starts moto and creates `bucket`.
    pub fn start(bucket: &str) -> Self {
        Self::start_with(bucket, &[])
    }

    /// Starts moto with extra environment (`INITIAL_NO_AUTH_ACTION_COUNT`, ...).
    pub fn start_with(bucket: &str, env: &[(&str, &str)]) -> Self {
        let python = python();
        let port = free_port();
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).stdin(Stdio::null()).spawn().expect("python3 starts");
        let direct = format!("http://127.0.0.1:{port}");
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if agent.get(&format!("{direct}/moto-api/")).call().is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "moto's S3 server ({python}) did not start on {direct} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = agent.put(&format!("{direct}/{bucket}")).send_empty().expect("create bucket").status().as_u16();
        assert_eq!(status, 200, "create bucket {bucket}");
        let relay = Relay::start(port);
        let endpoint = format!("http://127.0.0.1:{}", relay.port);
        Self { child, direct, endpoint, bucket: bucket.to_string(), relay, agent }
    }

    /// The environment that points a server or CLI at this S3 server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "rookery-test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "rookery-test-secret".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("ROOKERY_S3_RETRY_SECONDS", "2".to_string()),
        ]
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// Every key in the bucket under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.keys_in(&self.bucket, prefix)
    }

    /// Every key in `bucket` under `prefix`, sorted.
    pub fn keys_in(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!("{}/{bucket}?list-type=2&prefix={prefix}", self.direct);
            if let Some(t) = &token {
                url.push_str(&format!("&continuation-token={}", urlencode(t)));
            }
            let body =
                self.agent.get(&url).header("Authorization", AUTHORIZATION).call().expect("list").body_mut().read_to_string().expect("xml");
            keys.extend(between_all(&body, "<Key>", "</Key>"));
            token = between_all(&body, "<NextContinuationToken>", "</NextContinuationToken>").into_iter().next();
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// The bytes of an object.
    pub fn get(&self, key: &str) -> Vec<u8> {
        let mut answer =
            self.agent.get(&format!("{}/{}/{key}", self.direct, self.bucket)).header("Authorization", AUTHORIZATION).call().expect("get");
        assert_eq!(answer.status().as_u16(), 200, "get {key}");
        answer.body_mut().with_config().limit(1 << 30).read_to_vec().expect("bytes")
    }

    /// Replaces an object.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let status = self
            .agent
            .put(&format!("{}/{}/{key}", self.direct, self.bucket))
            .header("Authorization", AUTHORIZATION)
            .send(bytes)
            .expect("put")
            .status()
            .as_u16();
        assert_eq!(status, 200, "put {key}");
    }

    /// The keys of the multipart uploads started and neither completed nor aborted.
    pub fn multipart_uploads(&self) -> Vec<String> {
        let body = self
            .agent
            .get(&format!("{}/{}?uploads", self.direct, self.bucket))
            .header("Authorization", AUTHORIZATION)
            .call()
            .expect("list uploads")
            .body_mut()
            .read_to_string()
            .expect("xml");
        between_all(&body, "<Upload>", "</Upload>").iter().flat_map(|u| between_all(u, "<Key>", "</Key>")).collect()
    }

    /// Deletes an object.
    pub fn delete(&self, key: &str) {
        let status = self
            .agent
            .delete(&format!("{}/{}/{key}", self.direct, self.bucket))
            .header("Authorization", AUTHORIZATION)
            .call()
            .expect("delete")
            .status()
            .as_u16();
        assert_eq!(status, 204, "delete {key}");
    }

    /// Deletes the bucket and everything in it (as an operator's mistake would).
    pub fn delete_bucket(&self) {
        for key in self.keys("") {
            self.delete(&key);
        }
        let url = format!("{}/{}", self.direct, self.bucket);
        let status = self.agent.delete(&url).header("Authorization", AUTHORIZATION).call().expect("delete bucket").status().as_u16();
        assert_eq!(status, 204, "delete bucket");
    }

    /// Creates another bucket, made with object lock when `locked` (S3 turns
    /// object lock on only when a bucket is created).
    pub fn create_other_bucket(&self, name: &str, locked: bool) {
        let mut request = self.agent.put(&format!("{}/{name}", self.direct));
        if locked {
            request = request.header("x-amz-bucket-object-lock-enabled", "true");
        }
        let status = request.send_empty().expect("create bucket").status().as_u16();
        assert_eq!(status, 200, "create bucket {name}");
    }

    /// Every version of every object in `bucket` under `prefix`: (key, version id).
    pub fn versions(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        let url = format!("{}/{bucket}?versions&prefix={}", self.direct, urlencode(prefix));
        let body =
            self.agent.get(&url).header("Authorization", AUTHORIZATION).call().expect("versions").body_mut().read_to_string().expect("xml");
        between_all(&body, "<Version>", "</Version>")
            .iter()
            .filter_map(|v| Some((between_all(v, "<Key>", "</Key>").pop()?, between_all(v, "<VersionId>", "</VersionId>").pop()?)))
            .collect()
    }

    /// `DELETE` of one version of an object, as anyone holding the bucket's
    /// keys could send it (with `bypass`: asking to lift a Governance lock);
    /// the status and the storage's error code.
    pub fn delete_version(&self, bucket: &str, key: &str, version: &str, bypass: bool) -> (u16, String) {
        let url = format!("{}/{bucket}/{key}?versionId={}", self.direct, urlencode(version));
        let mut request = self.agent.delete(&url).header("Authorization", AUTHORIZATION);
        if bypass {
            request = request.header("x-amz-bypass-governance-retention", "true");
        }
        let mut answer = request.call().expect("delete version");
        let status = answer.status().as_u16();
        let body = answer.body_mut().read_to_string().unwrap_or_default();
        (status, between_all(&body, "<Code>", "</Code>").pop().unwrap_or_default())
    }

    /// An object's lock, as `HEAD` tells it: (mode, retain until).
    pub fn lock_of(&self, bucket: &str, key: &str) -> Option<(String, String)> {
        let answer =
            self.agent.head(&format!("{}/{bucket}/{key}", self.direct)).header("Authorization", AUTHORIZATION).call().expect("head");
        let header = |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        Some((header("x-amz-object-lock-mode")?, header("x-amz-object-lock-retain-until-date")?))
    }

    /// Creates the bucket again.
    pub fn create_bucket(&self) {
        let status = self.agent.put(&format!("{}/{}", self.direct, self.bucket)).send_empty().expect("create bucket").status().as_u16();
        assert_eq!(status, 200, "create bucket");
    }

    /// Cuts the relay: every open connection is dropped and new ones are
    /// closed at once, as a dead endpoint would.
    pub fn cut(&self) {
        self.relay.set_alive(false);
    }

    /// Restores the relay.
    pub fn heal(&self) {
        self.relay.set_alive(true);
    }

    /// Bytes sent to the storage through the relay so far: the requests of
    /// the server under test (and, with them, a count of connections opened).
    pub fn request_bytes(&self) -> (u64, u64) {
        (self.relay.sent.load(Ordering::SeqCst), self.relay.connections.load(Ordering::SeqCst))
    }

    /// Bytes the storage answered through the relay so far (downloads).
    pub fn answered_bytes(&self) -> u64 {
        self.relay.received.load(Ordering::SeqCst)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn between_all(text: &str, open: &str, close: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(close) else { break };
        out.push(after[..end].replace("&amp;", "&"));
        rest = &after[end + close.len()..];
    }
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A TCP relay to a local port that can be cut and healed.
struct Relay {
    port: u16,
    alive: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let alive = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (sent, connections) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let received = Arc::new(AtomicU64::new(0));
        let (a, o, counted, opened, answered) = (alive.clone(), open.clone(), sent.clone(), connections.clone(), received.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !a.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                opened.fetch_add(1, Ordering::SeqCst);
                if let (Ok(c), Ok(u)) = (client.try_clone(), upstream.try_clone()) {
                    o.lock().expect("lock").extend([c, u]);
                }
                pipe(client.try_clone().expect("clone"), upstream.try_clone().expect("clone"), Some(counted.clone()));
                pipe(upstream, client, Some(answered.clone()));
            }
        });
        Self { port, alive, sent, received, connections, open }
    }

    fn set_alive(&self, alive: bool) {
        self.alive.store(alive, Ordering::SeqCst);
        if !alive {
            for stream in self.open.lock().expect("lock").drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, counter: Option<Arc<AtomicU64>>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(counter) = &counter {
                        counter.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
