//! The newcomer's paths: the Makefile's cheap targets do what the README
//! says, a `make release` folder serves its own studio files, and a config
//! file is TOML whose mistakes stop the server at once; the server's
//! process runs without transparent huge pages.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::{server_bin, TestServer};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

/// What `make -n TARGET VARS...` would run (nothing is run).
fn make_dry(target: &str, vars: &[String]) -> String {
    let out = Command::new("make").current_dir(repo()).arg("-n").arg(target).args(vars).output().expect("make runs");
    assert!(out.status.success(), "make -n {target}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

/// The value after `flag` in a command line.
fn flag_value(commands: &str, flag: &str) -> String {
    let line = commands.lines().find(|l| l.contains(flag)).unwrap_or_else(|| panic!("no {flag} in:\n{commands}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == flag).unwrap_or_else(|| panic!("{flag} in {line}"));
    words[at + 1].to_string()
}

#[test]
fn every_makefile_target_is_declared_and_expands() {
    let makefile = std::fs::read_to_string(repo().join("Makefile")).expect("the Makefile");
    let phony = makefile.lines().find_map(|l| l.strip_prefix(".PHONY:")).expect("a .PHONY line");
    let targets: Vec<&str> = phony.split_whitespace().collect();
    for target in ["run", "test", "house", "load", "reset", "release", "bench"] {
        assert!(targets.contains(&target), "{target} is not declared");
    }
    for target in targets {
        assert!(makefile.lines().any(|l| l.starts_with(&format!("{target}:"))), "{target} has no rule");
        make_dry(target, &[]);
    }
}

#[test]
fn make_load_writes_inside_the_backup_root_of_make_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backups = dir.path().join("rookery-backups");
    let vars = [format!("BACKUPS={}", backups.display())];
    let root = flag_value(&make_dry("run", &vars), "--backup-root");
    let dest = flag_value(&make_dry("load", &vars), "--backup-dest");
    assert!(Path::new(&dest).starts_with(&root), "make load writes to {dest}, outside make run's root {root}");
    // The server that `make run` starts takes a backup there.
    let server = TestServer::start_full(&[], &["--backup-root", &root]);
    server.create_db("Load");
    server.put_doc("/databases/Load", "doc/1", json!({"n": 1}));
    let (status, body) = server.post("/databases/Load/admin/backup?wait=true", json!({"BackupLocation": dest}));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn make_reset_clears_the_data_the_master_key_and_the_backups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("walk/data");
    let backups = dir.path().join("backups");
    let key = dir.path().join("walk/rookery-master.key");
    let keep = dir.path().join("walk/notes.txt");
    for folder in [&data, &backups] {
        std::fs::create_dir_all(folder.join("inside")).expect("creates");
    }
    std::fs::write(&key, "k").expect("writes");
    std::fs::write(&keep, "mine").expect("writes");
    let status = Command::new("make")
        .current_dir(repo())
        .args(["-s", "reset", &format!("DATA={}", data.display()), &format!("BACKUPS={}", backups.display())])
        .status()
        .expect("make runs");
    assert!(status.success());
    assert!(!data.exists() && !backups.exists() && !key.exists(), "make reset left something");
    assert!(keep.exists(), "make reset removed a file it does not own");
}

#[test]
fn a_release_folder_serves_the_studio_files_beside_its_executable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(dist.join("site/pkg")).expect("creates");
    std::fs::copy(server_bin(), dist.join("rookery-server")).expect("copies the server");
    std::fs::write(dist.join("site/pkg/rookery.css"), "/* the release's stylesheet */").expect("writes");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("creates");
    let mut child = Command::new(dist.join("rookery-server"))
        .current_dir(&elsewhere)
        .args(["--data-dir", "data", "--bind", "127.0.0.1:0"])
        .env_remove("LEPTOS_SITE_ROOT")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starts");
    let first = BufReader::new(child.stdout.take().expect("stdout")).lines().next().expect("a line").expect("utf8");
    let url = first.rsplit(' ').next().expect("an address").to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = agent.get(&format!("{url}/pkg/rookery.css")).call().expect("answers");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
    assert!(body.contains("the release's stylesheet"), "{body}");
}

#[test]
fn a_config_file_is_toml_and_its_mistakes_stop_the_server_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rookery.toml");
    std::fs::write(&file, "data-dir = \"/tmp/x\"\nbackup_root = \"/b\"\n").expect("writes");
    let out = Command::new(server_bin()).arg("--config").arg(&file).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'backup_root' is not a flag"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // A good file serves, and the command line narrows its roots.
    let data = dir.path().join("data");
    let wide = dir.path().join("wide");
    let narrow = dir.path().join("narrow");
    std::fs::write(
        &file,
        format!(
            "data-dir = \"{}\"\nbackup-root = [\"{}\", \"{}\"]\ndurability = \"os\"\n",
            data.display(),
            wide.display(),
            narrow.display()
        ),
    )
    .expect("writes");
    let server = TestServer::start_full(&[], &["--config", &file.display().to_string(), "--backup-root", &narrow.display().to_string()]);
    server.put_doc("", "doc/1", json!({}));
    let (status, body) = server.post("/admin/backup?wait=true", json!({"BackupLocation": wide.join("s").display().to_string()}));
    assert_eq!(status, 400, "the file's other root was replaced: {body}");
    let (status, body) = server.post("/admin/backup?wait=true", json!({"BackupLocation": narrow.join("s").display().to_string()}));
    assert_eq!(status, 200, "{body}");
}

/// The server's heap without transparent huge pages (`rookery::process`):
/// the kernel says so for its process.
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let s = TestServer::start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).expect("the server's status");
    let line = status.lines().find(|l| l.starts_with("THP_enabled:")).expect("the kernel reports THP_enabled");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
