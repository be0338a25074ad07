//! The README's examples run as written: every ```sh block of README.md, in
//! order, as one paste each, against a fresh server started the way
//! `make run` starts one. Only the server's address and the scratch folder
//! `/tmp/rookery-*` are swapped for the test's own; every request must answer
//! 2xx and every command succeed. A block after `<!-- readme-test: skip (why) -->` is not
//! run; one after `<!-- readme-test: server stopped -->` runs while the server
//! is stopped, which is then started again.

use std::path::Path;
use std::process::Command;

use crate::common::{TestServer, SERVER_BIN};

struct Block {
    line: usize,
    directive: Option<String>,
    text: String,
}

fn sh_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines().enumerate().peekable();
    let mut directive: Option<String> = None;
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim();
        if let Some(d) = trimmed.strip_prefix("<!-- readme-test:") {
            directive = Some(d.trim_end_matches("-->").trim().to_string());
            continue;
        }
        if trimmed == "```sh" {
            let mut text = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                text.push_str(l);
                text.push('\n');
            }
            blocks.push(Block { line: n + 1, directive: directive.take(), text });
        } else if !trimmed.is_empty() {
            directive = None;
        }
    }
    blocks
}

/// Each block runs as a person pastes it: the same commands in the same
/// order, nothing waited for that the block does not wait for (a job a
/// later line needs is started with `?wait=true`, or by a CLI that waits).
/// Two things are added to see what happened, and change nothing of it:
/// the shell stops at the first command that fails, and `curl` also writes
/// each answer's HTTP status to standard error, for the test to check.
const PRELUDE: &str = r#"
set -euo pipefail
curl() { command curl -w '%{stderr}readme-test-status %{http_code}\n' "$@"; }
"#;

#[test]
fn every_readme_example_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 5, "found {} sh blocks", blocks.len());
    assert_eq!(blocks[0].directive.as_deref().map(|d| d.starts_with("skip")), Some(true), "the README starts with the set-up commands");
    assert!(blocks[0].text.contains("make run") && blocks[0].text.contains("make test"));

    // As `make run` does: the same flags, with the test's scratch folder.
    let scratch_dir = tempfile::tempdir().expect("tempdir");
    let scratch = scratch_dir.path().to_path_buf();
    let backups = format!("--backup-root={}/rookery-backups", scratch.display());
    let mut s = TestServer::start_full(&[], &[&backups]);
    let bin_dir = Path::new(SERVER_BIN).parent().expect("bin dir").to_path_buf();
    let mut ran = 0;
    for block in &blocks {
        match block.directive.as_deref() {
            Some(d) if d.starts_with("skip") => continue,
            Some("server stopped") => s.stop(),
            Some(other) => panic!("README line {}: unknown directive '{other}'", block.line),
            None => {}
        }
        let address = s.url.trim_start_matches("http://").to_string();
        let text = block
            .text
            .replace("localhost:3000", &address)
            .replace("127.0.0.1:3000", &address)
            .replace("/tmp/rookery-", &format!("{}/rookery-", scratch.display()));
        let script = format!("{PRELUDE}\n{text}");
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(s.data_dir.parent().expect("the data directory's parent"))
            .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()))
            .env_remove("ROOKERY_PASSWORD")
            .env_remove("ROOKERY_API_KEY")
            .env_remove("ROOKERY_USERNAME")
            .output()
            .expect("bash runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let failed_requests: Vec<&str> =
            stderr.lines().filter_map(|l| l.strip_prefix("readme-test-status ")).filter(|code| !code.starts_with('2')).collect();
        assert!(
            out.status.success() && failed_requests.is_empty(),
            "README block at line {} failed (HTTP statuses that are not 2xx: {failed_requests:?}):\n{}\n--- stdout\n{}\n--- stderr\n{}",
            block.line,
            block.text,
            String::from_utf8_lossy(&out.stdout),
            stderr
        );
        if block.directive.as_deref() == Some("server stopped") {
            s.restart_with(&[]);
        }
        ran += 1;
    }
    assert!(ran >= 5, "{ran} blocks ran");
    // What the walkthrough did is there: the copies, and a protected server.
    assert_eq!(s.get("/databases").0, 401, "the last examples protect the server");
}
