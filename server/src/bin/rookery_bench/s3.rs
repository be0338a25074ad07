//! Where the object storage rows go: a given endpoint, or a moto server of
//! the bench's own (its CPU time is read, since it shares the cores).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct S3Target {
    pub endpoint: String,
    pub describe: String,
    /// What the rows call the server: `moto`, or `S3 server`.
    pub server: &'static str,
    moto: Option<std::process::Child>,
    /// The server's process on this machine, when known (moto's, or the one given).
    pid: Option<u32>,
    /// moto's request log (one line per request), to count storage requests.
    log: Option<PathBuf>,
}

impl S3Target {
    /// A moto server on a free loopback port, its bucket created; or the
    /// endpoint given (credentials from `AWS_*`), served by `server_pid`
    /// when that is known.
    pub fn start(endpoint: Option<&str>, server_pid: Option<u32>, bucket: &str) -> Option<Self> {
        if let Some(endpoint) = endpoint {
            let describe = match server_pid {
                Some(pid) => format!("{endpoint} (server process {pid})"),
                None => endpoint.to_string(),
            };
            return Some(Self { endpoint: endpoint.to_string(), describe, server: "S3 server", moto: None, pid: server_pid, log: None });
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let log = std::env::temp_dir().join(format!("rookery-bench-moto-{}.log", std::process::id()));
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/venv/bin/python3");
        let python =
            std::env::var("ROOKERY_PYTHON").unwrap_or_else(|_| if Path::new(venv).exists() { venv.into() } else { "python3".into() });
        let child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).ok()?)
            .spawn()
            .ok()?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let pid = Some(child.id());
        let target = Self {
            endpoint: endpoint.clone(),
            describe: format!("moto at {endpoint}"),
            server: "moto",
            moto: Some(child),
            pid,
            log: Some(log),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent.get(&format!("{endpoint}/moto-api/")).call().is_err() {
            if Instant::now() > deadline {
                eprintln!("(moto's S3 server did not start: `bash scripts/install-tools.sh --python` installs it)");
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        agent.put(&format!("{endpoint}/{bucket}")).send_empty().ok()?;
        // The phases connect with the process's AWS_* variables.
        std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
        std::env::set_var("AWS_REGION", "us-east-1");
        Some(target)
    }

    /// CPU seconds the server has used so far (none for a server of elsewhere).
    pub fn cpu_seconds(&self) -> Option<f64> {
        crate::system::cpu_seconds(self.pid?)
    }

    /// moto's request log (one line per request).
    pub fn log(&self) -> Option<&Path> {
        self.log.as_deref()
    }
}

impl Drop for S3Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.moto {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The settings a phase connects with: the endpoint, path-style, and the
/// process's `AWS_*` variables for the rest.
pub fn settings(endpoint: &str) -> rookery_types::S3Settings {
    rookery_types::S3Settings {
        endpoint: Some(endpoint.to_string()),
        region: Some(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())),
        access_key_id: std::env::var("AWS_ACCESS_KEY_ID").ok(),
        secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").ok(),
        force_path_style: Some(true),
        ..Default::default()
    }
}
