//! Logs written to a file or a pipe are plain text (no terminal colour codes),
//! and `--log-format json` writes one JSON object per line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::SERVER_BIN;

/// Runs a server whose standard error goes to a file; creates a database
/// (which logs), stops it, and returns the log.
fn log_of(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Command::new(SERVER_BIN)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--bind", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a first line").expect("utf8");
    let url = first.rsplit(' ').next().expect("an address").to_string();
    let status = ureq::put(&format!("{url}/admin/databases/Logged")).send_empty().expect("creates").status();
    assert_eq!(status.as_u16(), 201);
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    std::fs::read_to_string(&log_path).expect("the log")
}

#[test]
fn logs_in_a_file_have_no_colour_codes_and_json_lines_parse() {
    let text = log_of(&[]);
    assert!(text.contains("database created"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape codes in a log file: {text:?}");

    let json = log_of(&["--log-format", "json"]);
    let mut parsed = 0;
    for line in json.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value.get("level").is_some() && value.get("fields").is_some(), "{line}");
        parsed += 1;
    }
    assert!(parsed >= 2, "{json}");
    assert!(json.contains("database created"));
}
