//! Online backup against a real server: consistency, incrementals, the
//! status document, refusals, and crashes in the middle.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rookery::backup::format::{DataRecord, FileContent, Manifest, RecordReader};
use serde_json::{json, Value};

use crate::common::{all_entries, set_dirs, TestServer};

/// Reads a set folder: its manifest, documents (id -> body) and deleted ids.
pub fn read_set(dir: &Path) -> (Manifest, BTreeMap<String, Value>, Vec<String>) {
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest")).expect("parses");
    let mut docs = BTreeMap::new();
    let mut deletions = Vec::new();
    for file in manifest.files.iter().filter(|f| !matches!(f.content, FileContent::DocumentIndex | FileContent::IndexTop)) {
        let mut reader = RecordReader::new(std::fs::File::open(dir.join(&file.name)).expect("opens")).expect("zstd");
        while let Some(record) = reader.next_record().expect("reads") {
            match (file.content, record) {
                (FileContent::Documents, DataRecord::Document { id, body, .. }) => {
                    docs.insert(id, serde_json::from_slice(&body).expect("json"));
                }
                (FileContent::Deletions, DataRecord::Deletion { id, .. }) => deletions.push(id),
                (FileContent::ChangeLog, DataRecord::Change { .. }) => {}
                (content, record) => panic!("{record:?} in a {content:?} file"),
            }
        }
    }
    (manifest, docs, deletions)
}

#[test]
fn a_backup_taken_under_writes_is_the_database_at_one_point_in_time() {
    let s = TestServer::start();
    s.create_db("Bank");
    let base = "/databases/Bank";
    // Ten accounts of 1000; a writer moves amounts between them, one document
    // per write, and records every acknowledged write with its etag.
    let mut log: Vec<(u64, String, Value)> = Vec::new();
    for i in 0..10 {
        let body = json!({"Balance": 1000, "Pad": "p".repeat(500)});
        log.push((s.put_doc(base, &format!("accounts/{i}"), body.clone()), format!("accounts/{i}"), body));
    }
    for i in 0..2000 {
        let body = json!({"Filler": i, "Pad": "f".repeat(500)});
        log.push((s.put_doc(base, &format!("filler/{i:05}"), body.clone()), format!("filler/{i:05}"), body));
    }
    let url = s.url.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let writes: Arc<Mutex<Vec<(u64, String, Value)>>> = Arc::new(Mutex::new(log));
    let writer = {
        let (stop, writes) = (stop.clone(), writes.clone());
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let mut balances = [1000i64; 10];
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) && n < 20_000 {
                let (from, to) = (n % 10, (n * 7 + 3) % 10);
                if from != to {
                    for (acc, delta) in [(from, -7i64), (to, 7)] {
                        balances[acc] += delta;
                        let id = format!("accounts/{acc}");
                        let body = json!({"Balance": balances[acc], "Pad": "p".repeat(500)});
                        let mut r = agent.put(&format!("{url}/databases/Bank/docs/{id}")).send(body.to_string()).expect("put");
                        let etag = r.body_mut().read_json::<Value>().expect("json")["ETag"].as_u64().expect("etag");
                        writes.lock().expect("lock").push((etag, id, body));
                    }
                }
                n += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let location = s.location("bank-backups");
    let status = s.backup(base, &location, false);
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");

    let set = Path::new(&location).join(status["SetId"].as_str().expect("set id"));
    let (manifest, docs, _) = read_set(&set);
    // Replay every acknowledged write up to the set's ToEtag: the backup must be exactly that state.
    let mut expected = BTreeMap::new();
    let mut all = writes.lock().expect("lock").clone();
    all.sort_by_key(|w| w.0);
    assert!(all.iter().any(|w| w.0 > manifest.to_etag), "writes went on after the snapshot (the test needs them)");
    for (etag, id, body) in all {
        if etag <= manifest.to_etag {
            expected.insert(id, body);
        }
    }
    assert_eq!(docs.len(), expected.len());
    assert!(docs == expected, "the backup is not the database at etag {}", manifest.to_etag);
    let sum: i64 = (0..10).map(|i| docs[&format!("accounts/{i}")]["Balance"].as_i64().expect("balance")).sum();
    // A transfer is two writes: at any etag the sum is 10000 or 10000 - 7.
    assert!(sum == 10_000 || sum == 9_993, "sum {sum}");
    assert_eq!(manifest.document_count, docs.len() as u64);
    assert!(!docs.contains_key("Raven/Backup/Status"));
}

#[test]
fn an_incremental_holds_exactly_what_changed() {
    let s = TestServer::start();
    s.create_db("Inc");
    let base = "/databases/Inc";
    for i in 0..500 {
        s.put_doc(base, &format!("items/{i:04}"), json!({"i": i, "text": "lorem ipsum ".repeat(40)}));
    }
    let location = s.location("inc");
    let full = s.backup(base, &location, false);
    assert_eq!(full["Incremental"], false);
    for i in [1, 2, 3, 4, 5] {
        s.put_doc(base, &format!("items/{i:04}"), json!({"i": i, "changed": true}));
    }
    for i in [10, 11, 12] {
        assert_eq!(s.delete(&format!("{base}/docs/items/{i:04}")).0, 204);
    }
    s.put_doc(base, "new/1", json!({"fresh": 1}));
    s.put_doc(base, "new/2", json!({"fresh": 2}));
    // Deleted, then created again: a document, not a deletion.
    assert_eq!(s.delete(&format!("{base}/docs/items/0020")).0, 204);
    s.put_doc(base, "items/0020", json!({"reborn": true}));
    // Created then deleted between the two sets: a deletion (of an id the
    // base never had, which a restore applies as a no-op), not a document.
    s.put_doc(base, "ephemeral", json!({}));
    assert_eq!(s.delete(&format!("{base}/docs/ephemeral")).0, 204);

    let inc = s.backup(base, &location, true);
    assert_eq!(inc["Incremental"], true);
    let dir = Path::new(&location);
    let (full_manifest, _, _) = read_set(&dir.join(full["SetId"].as_str().expect("id")));
    let (manifest, docs, mut deletions) = read_set(&dir.join(inc["SetId"].as_str().expect("id")));
    deletions.sort();
    let ids: Vec<&str> = docs.keys().map(String::as_str).collect();
    assert_eq!(ids, ["items/0001", "items/0002", "items/0003", "items/0004", "items/0005", "items/0020", "new/1", "new/2"]);
    assert_eq!(deletions, ["ephemeral", "items/0010", "items/0011", "items/0012"]);
    assert_eq!(docs["items/0020"], json!({"reborn": true}));
    assert_eq!(manifest.base_set_id.as_deref(), Some(full_manifest.set_id.as_str()));
    assert_eq!(manifest.from_etag, full_manifest.to_etag);
    assert_eq!((manifest.document_count, manifest.deletion_count), (8, 4));
    let size = |m: &Manifest| m.files.iter().map(|f| f.size).sum::<u64>();
    assert!(size(&manifest) * 10 < size(&full_manifest), "incremental {} bytes vs full {}", size(&manifest), size(&full_manifest));
    // sha256sum -c passes inside each set folder.
    for set in set_dirs(dir) {
        let out =
            std::process::Command::new("sha256sum").arg("-c").arg("SHA256SUMS").current_dir(dir.join(&set)).output().expect("sha256sum");
        assert!(out.status.success(), "{set}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

/// Past a bound of changed ids (over a million, and an eighth of the
/// database; here any number over an eighth), an incremental reads every
/// document in one ordered pass, scanned on a thread of its own, and hands
/// over only those newer than its base: it holds exactly what changed, in
/// several documents files, and the chain restores to the database.
#[test]
fn an_incremental_of_most_documents_reads_them_in_one_pass_and_holds_exactly_what_changed() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.max_sorted_changes=value:0,backup.documents_file_bytes=value:4096")]);
    s.create_db("Wide");
    let base = "/databases/Wide";
    for i in 0..400 {
        s.put_doc(base, &format!("items/{i:04}"), json!({"i": i, "text": "lorem ipsum ".repeat(10)}));
    }
    let location = s.location("wide");
    let full = s.backup(base, &location, false);
    let mut changed: Vec<String> = (0..400).step_by(3).map(|i| format!("items/{i:04}")).collect();
    for id in &changed {
        s.put_doc(base, id, json!({"changed": id}));
    }
    for i in [1, 2, 400 - 2] {
        assert_eq!(s.delete(&format!("{base}/docs/items/{i:04}")).0, 204);
    }
    for id in ["aaa/new", "zzz/new"] {
        s.put_doc(base, id, json!({"fresh": id}));
        changed.push(id.to_string());
    }
    s.put_doc(base, "ephemeral", json!({}));
    assert_eq!(s.delete(&format!("{base}/docs/ephemeral")).0, 204);
    changed.sort();

    let inc = s.backup(base, &location, true);
    let dir = Path::new(&location);
    let (full_manifest, _, _) = read_set(&dir.join(full["SetId"].as_str().expect("id")));
    let (manifest, docs, mut deletions) = read_set(&dir.join(inc["SetId"].as_str().expect("id")));
    deletions.sort();
    assert_eq!(docs.keys().cloned().collect::<Vec<_>>(), changed, "the incremental holds the changed documents, no other");
    assert_eq!(docs["items/0003"], json!({"changed": "items/0003"}));
    assert_eq!(deletions, ["ephemeral", "items/0001", "items/0002", "items/0398"]);
    assert_eq!(manifest.from_etag, full_manifest.to_etag);
    assert_eq!(manifest.document_count, changed.len() as u64);
    let files = manifest.files.iter().filter(|f| f.content == FileContent::Documents).count();
    assert!(files >= 2, "{files} documents files");

    let expected = s.all_docs(base);
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "WideChain"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/WideChain") == expected, "the restored chain differs");
}

#[test]
fn the_status_document_shows_the_whole_life_of_a_backup() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.document=sleep:4")]);
    s.create_db("Life");
    let base = "/databases/Life";
    for i in 0..300 {
        s.put_doc(base, &format!("d/{i}"), json!({"i": i}));
    }
    let location = s.location("life");
    let (status, body) = s.post(&format!("{base}/admin/backup"), json!({"BackupLocation": location}));
    assert_eq!((status, body), (202, json!({"StatusDocument": "Raven/Backup/Status"})));
    // Right after the 202, the document shows this job running.
    let (_, first) = s.get(&format!("{base}/docs/Raven/Backup/Status"));
    assert_eq!(first["IsRunning"], true, "{first}");
    assert_eq!(first["Success"], false);
    assert_eq!(first["BackupLocation"].as_str().map(|l| l.ends_with("life")), Some(true));
    let mut seen = vec![first["Progress"]["DocumentsDone"].as_u64().expect("done")];
    let mut last = first.clone();
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(50));
        let (_, st) = s.get(&format!("{base}/docs/Raven/Backup/Status"));
        assert_eq!(st["Started"], first["Started"], "the same job");
        seen.push(st["Progress"]["DocumentsDone"].as_u64().expect("done"));
        last = st;
        if last["IsRunning"] == false {
            break;
        }
    }
    assert_eq!(last["IsRunning"], false);
    assert_eq!(last["Success"], true, "{last}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress never goes back: {seen:?}");
    assert!(seen.iter().any(|&d| d > 0 && d < 300), "progress was seen in the middle: {seen:?}");
    assert_eq!(last["Progress"]["DocumentsDone"], 300);
    assert_eq!(last["Progress"]["DocumentsTotal"], 300);
    assert_eq!(last["Progress"]["Percent"], 100.0);
    assert!(last["Progress"]["BytesWritten"].as_u64().expect("bytes") > 0);
    assert!(last["Completed"].as_str().is_some());
    let messages = last["Messages"].as_array().expect("messages");
    assert!(messages.len() >= 2);
    assert!(messages.iter().all(|m| m["Severity"] == "Information"));
    assert!(messages.last().expect("last")["Message"].as_str().expect("text").contains("completed"));
    assert_eq!(last["Error"], Value::Null);
}

#[test]
fn a_second_backup_while_one_runs_gets_409_and_bad_locations_400() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.before_manifest=sleep:1500")]);
    s.create_db("One");
    s.create_db("Two");
    s.put_doc("/databases/One", "a", json!({}));
    let (status, _) = s.post("/databases/One/admin/backup", json!({"BackupLocation": s.location("one")}));
    assert_eq!(status, 202);
    // Any backup on the server: another database too.
    let (status, body) = s.post("/databases/Two/admin/backup", json!({"BackupLocation": s.location("two")}));
    assert_eq!((status, body["Error"].as_str()), (409, Some("BackupAlreadyRunning")), "{body}");
    // Validation comes before the running check.
    let (status, body) = s.post("/databases/Two/admin/backup", json!({"BackupLocation": "relative/path"}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidBackupLocation")));
    // A busy database cannot be deleted.
    let (status, body) = s.delete("/admin/databases/One");
    assert_eq!((status, body["Error"].as_str()), (409, Some("DatabaseBusy")));
    let done = s.wait_for_job("/databases/One", "Raven/Backup/Status");
    assert_eq!(done["Success"], true);
    assert!(!Path::new(&s.location("two")).exists(), "a refused backup writes nothing");

    for bad in [
        json!({"BackupLocation": ""}),
        json!({}),
        json!({"BackupLocation": "/"}),
        json!({"BackupLocation": "/tmp/../etc"}),
        json!({"BackupLocation": s.data_dir.display().to_string()}),
        json!({"BackupLocation": s.data_dir.join("Databases/One").display().to_string()}),
    ] {
        let (status, body) = s.post("/databases/One/admin/backup", bad.clone());
        assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidBackupLocation")), "{bad}: {body}");
    }
    let (status, body) = s.post("/databases/One/admin/backup?incremental=maybe", json!({"BackupLocation": s.location("x")}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidQuery")));
}

#[test]
fn an_incremental_into_another_databases_chain_is_refused() {
    let s = TestServer::start();
    s.create_db("A");
    s.create_db("B");
    s.put_doc("/databases/A", "x", json!({}));
    let location = s.location("shared");
    s.backup("/databases/A", &location, false);
    let before = all_entries(Path::new(&location));
    let (status, body) = s.post("/databases/B/admin/backup?incremental=true", json!({"BackupLocation": location}));
    assert_eq!((status, body["Error"].as_str()), (409, Some("ChainMismatch")), "{body}");
    assert_eq!(all_entries(Path::new(&location)), before, "nothing written");
    // A full backup of B in the same location is fine; then B's incrementals follow B's chain.
    s.backup("/databases/B", &location, false);
    let inc = s.backup("/databases/B", &location, true);
    assert_eq!(inc["Incremental"], true);
    // An incremental into an empty location is a full set.
    let fresh = s.backup("/databases/A", &s.location("fresh"), true);
    assert_eq!(fresh["Incremental"], false);
}

#[test]
fn a_failed_backup_says_why_and_the_database_keeps_serving() {
    let s = TestServer::start();
    s.create_db("Fails");
    s.put_doc("/databases/Fails", "a", json!({"v": 1}));
    // A location below a regular file cannot be created.
    let file = s.path("a-file");
    std::fs::write(&file, b"x").expect("writes");
    let location = file.join("sub").display().to_string();
    let (status, _) = s.post("/databases/Fails/admin/backup", json!({"BackupLocation": location}));
    assert_eq!(status, 202);
    let done = s.wait_for_job("/databases/Fails", "Raven/Backup/Status");
    assert_eq!(done["Success"], false);
    assert!(done["Error"].as_str().expect("error").contains("cannot create"), "{done}");
    let messages = done["Messages"].as_array().expect("messages");
    assert_eq!(messages.last().expect("last")["Severity"], "Error");
    // Still serving reads and writes, and the next backup works.
    s.put_doc("/databases/Fails", "b", json!({"v": 2}));
    assert_eq!(s.get("/databases/Fails/docs/a").1, json!({"v": 1}));
    s.backup("/databases/Fails", &s.location("good"), false);
    // A location that is a file is refused at once.
    let (status, body) = s.post("/databases/Fails/admin/backup", json!({"BackupLocation": file.display().to_string()}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidBackupLocation")));
}

#[test]
fn a_server_killed_mid_backup_leaves_no_set_and_recovers() {
    let mut s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.before_manifest=sleep:5000")]);
    s.create_db("Crash");
    for i in 0..100 {
        s.put_doc("/databases/Crash", &format!("c/{i}"), json!({"i": i}));
    }
    let location = s.location("crash");
    let (status, _) = s.post("/databases/Crash/admin/backup", json!({"BackupLocation": location}));
    assert_eq!(status, 202);
    // Wait until the data files are written, then kill.
    let loc = Path::new(&location);
    for _ in 0..100 {
        if all_entries(loc).iter().any(|e| e.starts_with(".tmp-")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    s.kill9();
    assert!(set_dirs(loc).is_empty(), "no set under a final name: {:?}", all_entries(loc));
    assert!(all_entries(loc).iter().all(|e| e.starts_with(".tmp-")));

    s.restart();
    let (_, st) = s.get("/databases/Crash/docs/Raven/Backup/Status");
    assert_eq!(st["IsRunning"], false, "{st}");
    assert_eq!(st["Success"], false);
    assert_eq!(st["ErrorCode"], "Interrupted");
    assert!(all_entries(loc).is_empty(), "the unfinished folder is removed: {:?}", all_entries(loc));
    let done = s.backup("/databases/Crash", &location, false);
    assert_eq!(done["Progress"]["DocumentsDone"], 100);
    assert_eq!(set_dirs(loc).len(), 1);
}
