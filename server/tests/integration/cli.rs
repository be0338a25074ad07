//! The command-line tools against a real server.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::common::{set_dirs, TestServer, BACKUP_BIN, SERVER_BIN};

fn run(bin: &str, args: &[String]) -> (i32, String, String) {
    let out = Command::new(bin).args(args).env_remove("ROOKERY_API_KEY").output().expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn rookery_backup_full_incremental_list_verify_and_errors() {
    let s = TestServer::start();
    s.create_db("Cli");
    for i in 0..40 {
        s.put_doc("/databases/Cli", &format!("c/{i}"), json!({"i": i}));
    }
    let dest = s.location("cli-backups");
    let (code, out, err) = run(BACKUP_BIN, &[format!("--url={}/databases/Cli", s.url), format!("--dest={dest}")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Backup completed"), "{out}");
    s.put_doc("/databases/Cli", "c/new", json!({}));
    let (code, out, err) =
        run(BACKUP_BIN, &[format!("--url={}", s.url), "--database=Cli".into(), format!("--dest={dest}"), "--incremental".into()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(set_dirs(Path::new(&dest)).len(), 2);
    assert!(set_dirs(Path::new(&dest)).iter().any(|d| d.ends_with("-incremental")));

    // --nowait returns at once; the job then finishes on the server.
    let (code, out, _) = run(BACKUP_BIN, &[format!("--url={}/databases/Cli", s.url), format!("--dest={dest}"), "--nowait".into()]);
    assert_eq!(code, 0);
    assert!(out.contains("Backup started"));
    assert_eq!(s.wait_for_job("/databases/Cli", "Raven/Backup/Status")["Success"], true);

    let (code, out, _) = run(BACKUP_BIN, &["--list".into(), format!("--dest={dest}")]);
    assert_eq!(code, 0);
    assert!(out.contains("Chain of database 'Cli'") && out.contains("Incremental"), "{out}");
    let (code, out, _) = run(BACKUP_BIN, &["--verify".into(), format!("--dest={dest}")]);
    assert_eq!(code, 0, "{out}");

    // A damaged file: --verify names it and fails.
    let set = set_dirs(Path::new(&dest))[0].clone();
    let victim = Path::new(&dest).join(&set).join("documents-0001.zst");
    let mut bytes = std::fs::read(&victim).expect("reads");
    bytes[10] ^= 0xff;
    std::fs::write(&victim, bytes).expect("writes");
    let (code, _, err) = run(BACKUP_BIN, &["--verify".into(), format!("--dest={dest}")]);
    assert_ne!(code, 0);
    assert!(err.contains("documents-0001.zst"), "{err}");

    // Errors are one clear line and a non-zero exit.
    let (code, _, err) = run(BACKUP_BIN, &[format!("--url={}/databases/Nope", s.url), format!("--dest={dest}")]);
    assert_ne!(code, 0);
    assert!(err.contains("NotFound") && err.lines().count() == 1, "{err}");
    let (code, _, err) = run(BACKUP_BIN, &[format!("--url={}/databases/Cli", s.url), "--dest=relative".into()]);
    assert_ne!(code, 0);
    assert!(err.contains("InvalidBackupLocation"), "{err}");
    let (code, _, err) = run(BACKUP_BIN, &["--url=http://127.0.0.1:9".into(), format!("--dest={dest}"), "--timeout=2000".into()]);
    assert_ne!(code, 0);
    assert!(err.contains("Unreachable") && err.lines().count() == 1, "{err}");
    // A failed job: exit non-zero with the server's message.
    let file = s.path("a-file");
    std::fs::write(&file, b"x").expect("writes");
    let (code, _, err) = run(BACKUP_BIN, &[format!("--url={}/databases/Cli", s.url), format!("--dest={}/sub", file.display())]);
    assert_ne!(code, 0);
    assert!(err.contains("backup failed"), "{err}");
}

#[test]
fn restore_client_mode_of_the_server() {
    let s = TestServer::start();
    s.create_db("Src");
    for i in 0..30 {
        s.put_doc("/databases/Src", &format!("s/{i}"), json!({"i": i}));
    }
    let dest = s.location("backups");
    s.backup("/databases/Src", &dest, false);
    let (code, out, err) = run(
        SERVER_BIN,
        &[
            format!("--restore-source={dest}"),
            format!("--restore-database={}", s.url),
            "--restore-database-name=Copy".into(),
            "--restore-defrag".into(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Restore completed"), "{out}");
    assert_eq!(s.all_docs("/databases/Copy"), s.all_docs("/databases/Src"));
    // The same name again: the server's refusal, one line, non-zero.
    let (code, _, err) = run(
        SERVER_BIN,
        &[format!("--restore-source={dest}"), format!("--restore-database={}", s.url), "--restore-database-name=Copy".into()],
    );
    assert_ne!(code, 0);
    assert!(err.contains("DatabaseExists"), "{err}");
    // --restore-no-wait returns at once.
    let (code, out, _) = run(
        SERVER_BIN,
        &[
            format!("--restore-source={dest}"),
            format!("--restore-database={}", s.url),
            "--restore-database-name=Later".into(),
            "--restore-no-wait".into(),
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("Restore started"));
    assert_eq!(s.wait_for_job("", "Raven/Restore/Status")["Success"], true);
}

#[test]
fn rookery_load_runs_both_phases_and_verifies_the_restore() {
    let s = TestServer::start();
    let dest = s.location("load-backups");
    let out = Command::new(env!("CARGO_BIN_EXE_rookery-load"))
        .args([
            format!("--url={}", s.url),
            format!("--backup-dest={dest}"),
            "--seconds=1".into(),
            "--documents=200".into(),
            "--connections=2".into(),
        ])
        .output()
        .expect("runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("without backups") && text.contains("during backups") && text.contains("identical to the database"), "{text}");
    assert!(text.contains("errors: 0"), "{text}");
}
