//! Cancel: a running backup, restore or import stops on request within a
//! moment, ends with `ErrorCode: "Canceled"`, and leaves what the contract
//! says (no set; no database and no files; the documents imported so far).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{all_entries, set_dirs, TestServer};

/// A job stopped by its cancel: soon after it was asked (well before the
/// work left would have taken), in the middle of its work, with `Canceled`.
fn assert_stopped_early(done: &Value, asked: Instant, total: u64) {
    assert_eq!((done["Success"].as_bool(), done["ErrorCode"].as_str()), (Some(false), Some("Canceled")), "{done}");
    assert!(asked.elapsed() < Duration::from_secs(2), "the job took {:?} to stop after its cancel", asked.elapsed());
    let done_count = done["Progress"]["DocumentsDone"].as_u64().expect("DocumentsDone");
    assert!(done_count < total, "the job finished its work ({done_count} of {total}) before it stopped: {done}");
}

/// Polls a status document until the job runs and has done some work.
fn wait_running(s: &TestServer, base: &str, doc: &str) -> Value {
    for _ in 0..1000 {
        let (status, body) = s.get(&format!("{base}/docs/{doc}"));
        if status == 200 && body["IsRunning"] == true && body["Progress"]["DocumentsDone"].as_u64().unwrap_or(0) > 0 {
            return body;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{doc} never ran");
}

#[test]
fn a_canceled_backup_leaves_no_set_and_the_next_one_runs() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.document=sleep:20")]);
    s.create_db("Big");
    for i in 0..200 {
        s.put_doc("/databases/Big", &format!("d/{i:03}"), json!({"i": i}));
    }
    let (status, body) = s.post("/databases/Big/admin/backup/cancel", json!({}));
    assert_eq!((status, body["Error"].as_str()), (404, Some("NotFound")), "nothing runs yet: {body}");
    let location = s.location("canceled");
    let (status, _) = s.post("/databases/Big/admin/backup", json!({"BackupLocation": location}));
    assert_eq!(status, 202);
    wait_running(&s, "/databases/Big", "Raven/Backup/Status");
    let asked = Instant::now();
    let (status, body) = s.post("/databases/Big/admin/backup/cancel", json!({}));
    assert_eq!(status, 202, "{body}");
    let done = s.wait_for_job("/databases/Big", "Raven/Backup/Status");
    assert_stopped_early(&done, asked, 200);
    assert!(done["Completed"].is_string());
    assert!(all_entries(Path::new(&location)).is_empty(), "a canceled backup left {:?}", all_entries(Path::new(&location)));
    assert_eq!(s.post("/databases/Big/admin/backup/cancel", json!({})).0, 404, "ended");
    // The slot is free again.
    s.backup("/databases/Big", &location, false);
    assert_eq!(set_dirs(Path::new(&location)).len(), 1);
}

#[test]
fn a_canceled_restore_leaves_no_database_and_no_files() {
    // Documents files of 1 KiB: the set's are restored in two halves side
    // by side, and a cancel must stop both.
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "restore.document=sleep:20,backup.documents_file_bytes=value:1024")]);
    s.create_db("Src");
    for i in 0..200 {
        s.put_doc("/databases/Src", &format!("d/{i:03}"), json!({"i": i}));
    }
    let location = s.location("b");
    s.backup("/databases/Src", &location, false);
    assert_eq!(s.post("/admin/restore/cancel", json!({})).0, 404);
    // A restore canceled midway leaves no database and no staging, and
    // frees the name: the same restore then runs to its end.
    let canceled_midway = |name: &str, databases: &[&str]| {
        let (status, _) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": name}));
        assert_eq!(status, 202);
        wait_running(&s, "", "Raven/Restore/Status");
        let asked = Instant::now();
        assert_eq!(s.post("/admin/restore/cancel", json!({})).0, 202);
        let done = s.wait_for_job("", "Raven/Restore/Status");
        assert_stopped_early(&done, asked, 200);
        assert_eq!(s.get(&format!("/databases/{name}/docs")).0, 404);
        assert_eq!(all_entries(&s.data_dir.join("Databases")), databases, "no staging, no half database");
        assert_eq!(s.restore(json!({"BackupLocation": location, "DatabaseName": name}))["Success"], true);
        assert!(s.all_docs(&format!("/databases/{name}")) == s.all_docs("/databases/Src"));
    };
    canceled_midway("Copy", &["Src"]);
    // The same for a chain, whose merge with the incremental's states runs
    // on a thread of its own while the documents are ingested.
    s.put_doc("/databases/Src", "d/150", json!({"changed": true}));
    assert_eq!(s.delete("/databases/Src/docs/d/020").0, 204);
    s.backup("/databases/Src", &location, true);
    canceled_midway("Chain", &["Copy", "Src"]);
}

#[test]
fn a_canceled_import_keeps_what_it_imported() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "import.document=sleep:10")]);
    s.create_db("Target");
    let mut lines =
        vec![json!({"FormatVersion": 1, "ServerVersion": "t", "Database": "D", "Exported": "2026-11-26T05:00:00Z"}).to_string()];
    for i in 0..3000 {
        lines.push(json!({"Id": format!("d/{i:04}"), "Document": {"i": i}, "Metadata": null}).to_string());
    }
    lines.push(json!({"EndOfDump": true, "DocumentCount": 3000}).to_string());
    let body = lines.join("\n") + "\n";
    assert_eq!(s.post("/databases/Target/smuggler/import/cancel", json!({})).0, 404);
    let url = s.url.clone();
    let import = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut r = agent.post(&format!("{url}/databases/Target/smuggler/import")).send(body).expect("answers");
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default())
    });
    wait_running(&s, "/databases/Target", "Raven/Smuggler/Status");
    assert_eq!(s.post("/databases/Target/smuggler/import/cancel", json!({})).0, 202);
    let (status, text) = import.join().expect("joins");
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("\"Canceled\""), "{text}");
    let done = s.wait_for_job("/databases/Target", "Raven/Smuggler/Status");
    assert_eq!(done["ErrorCode"], "Canceled", "{done}");
    let kept = s.all_docs("/databases/Target").len();
    assert!(kept > 0 && kept < 3000, "kept {kept} documents");
}

#[test]
fn ctrl_c_in_rookery_backup_cancels_the_backup_it_started() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.document=sleep:30")]);
    s.create_db("Big");
    for i in 0..150 {
        s.put_doc("/databases/Big", &format!("d/{i:03}"), json!({"i": i}));
    }
    let location = s.location("cli");
    let child = std::process::Command::new(crate::common::BACKUP_BIN)
        .arg(format!("--url={}/databases/Big", s.url))
        .arg(format!("--dest={location}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    wait_running(&s, "/databases/Big", "Raven/Backup/Status");
    let _ = std::process::Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("Canceled"), "the tool says how the job ended: {stderr}");
    let done = s.wait_for_job("/databases/Big", "Raven/Backup/Status");
    assert_eq!(done["ErrorCode"], "Canceled", "{done}");
    assert!(all_entries(Path::new(&location)).is_empty());
}

#[test]
fn a_cancel_between_files_and_between_sets_leaves_nothing_either() {
    // A backup paused after its first data file.
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.after_data_file=sleep:1500,restore.after_set=sleep:1500")]);
    s.create_db("Src");
    for i in 0..20 {
        s.put_doc("/databases/Src", &format!("d/{i:03}"), json!({"i": i}));
    }
    let location = s.location("b");
    let (status, _) = s.post("/databases/Src/admin/backup", json!({"BackupLocation": location}));
    assert_eq!(status, 202);
    for _ in 0..3000 {
        let temp = all_entries(Path::new(&location)).into_iter().find(|e| e.starts_with(".tmp-"));
        if temp.is_some_and(|t| all_entries(&Path::new(&location).join(t)).iter().any(|f| f == "documents-0001.zst")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(s.post("/databases/Src/admin/backup/cancel", json!({})).0, 202);
    let done = s.wait_for_job("/databases/Src", "Raven/Backup/Status");
    assert_eq!(done["ErrorCode"], "Canceled", "{done}");
    assert!(all_entries(Path::new(&location)).is_empty());

    // A restore paused after the first set of a chain of two.
    s.backup("/databases/Src", &location, false);
    s.put_doc("/databases/Src", "more", json!({}));
    s.backup("/databases/Src", &location, true);
    let (status, _) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Copy"}));
    assert_eq!(status, 202);
    wait_running(&s, "", "Raven/Restore/Status");
    assert_eq!(s.post("/admin/restore/cancel", json!({})).0, 202);
    let done = s.wait_for_job("", "Raven/Restore/Status");
    assert_eq!(done["ErrorCode"], "Canceled", "{done}");
    assert_eq!(all_entries(&s.data_dir.join("Databases")), ["Src"]);
}

#[test]
fn a_canceled_snapshot_leaves_no_set_and_no_staging() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "snapshot.after_file=sleep:200")]);
    s.create_db("Big");
    crate::s3::put_bulky(&s, "/databases/Big", 0..300);
    // An encrypted snapshot copies (and pauses after) each file.
    let location = s.location("snapshot");
    let (status, body) =
        s.post("/databases/Big/admin/backup", json!({"BackupLocation": location, "BackupType": "Snapshot", "BackupPassphrase": "pw"}));
    assert_eq!(status, 202, "{body}");
    let running = wait_running(&s, "/databases/Big", "Raven/Backup/Status");
    let total = running["Progress"]["DocumentsTotal"].as_u64().expect("a total");
    let asked = Instant::now();
    assert_eq!(s.post("/databases/Big/admin/backup/cancel", json!({})).0, 202);
    let done = s.wait_for_job("/databases/Big", "Raven/Backup/Status");
    assert_stopped_early(&done, asked, total);
    assert!(all_entries(Path::new(&location)).is_empty(), "a canceled snapshot left {:?}", all_entries(Path::new(&location)));
    let staging: Vec<String> = all_entries(&s.data_dir.join("Databases")).into_iter().filter(|e| e.starts_with('.')).collect();
    assert!(staging.is_empty(), "a canceled snapshot left its staging folder: {staging:?}");
    assert_eq!(s.all_docs("/databases/Big").len(), 300, "the database is unharmed");
}

#[test]
fn a_canceled_compaction_leaves_no_set() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.document=sleep:15")]);
    s.create_db("Src");
    for i in 0..120 {
        s.put_doc("/databases/Src", &format!("d/{i:03}"), json!({"i": i}));
    }
    let location = s.location("chain");
    s.backup("/databases/Src", &location, false);
    s.put_doc("/databases/Src", "more", json!({}));
    s.backup("/databases/Src", &location, true);
    let before = set_dirs(Path::new(&location));
    let (status, body) = s.post("/admin/backup/compact", json!({"BackupLocation": location}));
    assert_eq!(status, 202, "{body}");
    wait_running(&s, "", "Raven/Compact/Status");
    let asked = Instant::now();
    assert_eq!(s.post("/admin/backup/compact/cancel", json!({})).0, 202);
    let done = s.wait_for_job("", "Raven/Compact/Status");
    assert_stopped_early(&done, asked, 121);
    assert_eq!(all_entries(Path::new(&location)), before, "a canceled compaction left something");
}

/// A backup held by its `MaxBytesPerSecond` (here 1 byte a second, so each
/// file it writes is followed by minutes of pacing) stops as soon as it is
/// canceled, whether it writes documents or copies a snapshot's files: the
/// pace's wait is cut short by the cancel, not waited out.
#[test]
fn a_backup_held_by_its_pace_stops_at_once_when_canceled() {
    let s = TestServer::start();
    s.create_db("Paced");
    for i in 0..200 {
        s.put_doc("/databases/Paced", &format!("d/{i:03}"), json!({"i": i}));
    }
    let kinds = [
        ("snapshot", json!({"MaxBytesPerSecond": 1, "BackupType": "Snapshot", "BackupPassphrase": "pw"})),
        ("logical", json!({"MaxBytesPerSecond": 1})),
    ];
    for (kind, options) in kinds {
        let location = s.location(kind);
        let mut body = options.clone();
        body["BackupLocation"] = json!(location);
        let (status, answer) = s.post("/databases/Paced/admin/backup", body);
        assert_eq!(status, 202, "{kind}: {answer}");
        // Held by its pace: a logical backup paces as it closes each file
        // (its status shows every document written meanwhile), a snapshot
        // as it copies each file it pinned.
        let held = |status: &Value| {
            let pinned = status["Messages"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["Message"].as_str().is_some_and(|t| t.starts_with("Pinned"))));
            pinned || status["Progress"]["DocumentsDone"] == 200
        };
        for attempt in 0.. {
            let (_, status) = s.get("/databases/Paced/docs/Raven/Backup/Status");
            if status["IsRunning"] == true && held(&status) {
                break;
            }
            assert!(attempt < 1000, "{kind}: the backup never reached its pace: {status}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let asked = Instant::now();
        assert_eq!(s.post("/databases/Paced/admin/backup/cancel", json!({})).0, 202, "{kind}");
        let done = s.wait_for_job("/databases/Paced", "Raven/Backup/Status");
        assert_eq!((done["Success"].as_bool(), done["ErrorCode"].as_str()), (Some(false), Some("Canceled")), "{kind}: {done}");
        assert!(asked.elapsed() < Duration::from_secs(2), "{kind}: the backup took {:?} to stop after its cancel", asked.elapsed());
        assert!(all_entries(Path::new(&location)).is_empty(), "{kind}: a canceled backup left {:?}", all_entries(Path::new(&location)));
    }
}
