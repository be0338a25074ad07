//! Compaction: a chain folded into one new full set, from the sets alone.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{all_entries, set_dirs, TestServer, BACKUP_BIN};
use crate::restore::three_sets;

fn manifest(location: &str, set_id: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(location).join(set_id).join("manifest.json")).expect("a manifest");
    serde_json::from_str(&text).expect("json")
}

fn compact(s: &TestServer, body: Value) -> Value {
    let (status, answer) = s.post("/admin/backup/compact", body);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["StatusDocument"], "Raven/Compact/Status");
    s.wait_for_job("", "Raven/Compact/Status")
}

#[test]
fn a_chain_compacts_into_one_full_set_that_restores_the_same_and_incrementals_continue_from_it() {
    let s = TestServer::start();
    let (location, states) = three_sets(&s, "Shop");
    let ids: Vec<String> = states.iter().map(|(id, _)| id.clone()).collect();

    // Up to the first incremental: the database as it was then.
    let done = compact(&s, json!({"BackupLocation": location, "UpTo": ids[1]}));
    assert_eq!(done["Success"], true, "{done}");
    let early = done["SetId"].as_str().expect("set id").to_string();
    let m = manifest(&location, &early);
    assert_eq!(m["Kind"], "Full");
    assert_eq!(m["CompactedFrom"], json!([ids[0], ids[1]]));
    assert_eq!(m["ToEtag"], manifest(&location, &ids[1])["ToEtag"]);
    assert_eq!(m["DatabaseId"], manifest(&location, &ids[0])["DatabaseId"]);
    assert_eq!(m["DeletionCount"], 0);
    let restored = s.restore(json!({"BackupLocation": location, "DatabaseName": "Early", "RestoreUpTo": early}));
    assert_eq!(restored["Success"], true, "{restored}");
    assert!(s.all_docs("/databases/Early") == states[1].1, "the compacted set differs from the chain at its point");

    // The whole chain (the default): the newest point.
    let done = compact(&s, json!({"BackupLocation": location}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(done["Messages"].to_string().contains("every byte checked as it is read"), "{done}");
    let whole = done["SetId"].as_str().expect("set id").to_string();
    assert_eq!(manifest(&location, &whole)["CompactedFrom"], json!(ids));
    let restored = s.restore(json!({"BackupLocation": location, "DatabaseName": "Whole"}));
    assert_eq!(restored["SetId"], whole.as_str(), "the default restore takes the compacted chain: {restored}");
    assert!(s.all_docs("/databases/Whole") == states[2].1);
    let (_, list) = s.get("/databases");
    let whole_info = list.as_array().expect("list").iter().find(|d| d["Name"] == "Whole").expect("listed").clone();
    assert_eq!(whole_info["DocumentCount"].as_u64(), Some(states[2].1.len() as u64));

    // The next incremental builds on the compacted set; the chain restores to the database.
    s.put_doc("/databases/Shop", "orders/2", json!({"Total": 9}));
    let next = s.backup("/databases/Shop", &location, true);
    assert_eq!(next["Incremental"], true, "{next}");
    assert_eq!(manifest(&location, next["SetId"].as_str().expect("id"))["BaseSetId"], whole.as_str());
    let restored = s.restore(json!({"BackupLocation": location, "DatabaseName": "Next"}));
    assert_eq!(restored["Success"], true, "{restored}");
    assert!(s.all_docs("/databases/Next") == s.all_docs("/databases/Shop"));

    // Refusals before any job.
    let (status, body) = s.post("/admin/backup/compact", json!({"BackupLocation": location, "UpTo": "20200101T000000Z-full"}));
    assert_eq!((status, body["Error"].as_str()), (404, Some("SetNotFound")), "{body}");
    let (status, body) = s.post("/admin/backup/compact", json!({"BackupLocation": "relative/path"}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidBackupLocation")), "{body}");
    let (status, body) = s.post("/admin/backup/compact", json!({"BackupLocation": location, "UpTo": whole}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("NoBackupFound")), "a full set alone has nothing to fold: {body}");
    let (status, body) = s.post("/admin/backup/compact/cancel", json!({}));
    assert_eq!((status, body["Error"].as_str()), (404, Some("NotFound")), "{body}");
}

#[test]
fn a_damaged_input_fails_the_compaction_and_leaves_nothing() {
    let s = TestServer::start();
    let (location, states) = three_sets(&s, "Shop");
    let before = all_entries(Path::new(&location));
    // The full set's file (its frames are copied, never decoded) and the tip's (decoded).
    for set in [&states[0].0, &states[2].0] {
        let damaged = Path::new(&location).join(set).join("documents-0001.zst");
        let good = std::fs::read(&damaged).expect("reads");
        let mut bytes = good.clone();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&damaged, bytes).expect("writes");
        let done = compact(&s, json!({"BackupLocation": location}));
        assert_eq!(done["Success"], false, "{set}: {done}");
        assert_eq!(done["ErrorCode"], "ChecksumMismatch", "{set}: {done}");
        let error = done["Error"].as_str().expect("error");
        assert!(error.contains(&format!("{set}/documents-0001.zst")), "{set}: {done}");
        assert_eq!(all_entries(Path::new(&location)), before, "{set}: nothing is left of the new set");
        std::fs::write(&damaged, good).expect("writes");
    }
}

/// The compaction scratch folders in a data directory.
fn compact_scratch(data_dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(data_dir).expect("the data directory");
    entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with(".compact-")).collect()
}

#[test]
fn a_crash_at_any_step_of_a_compaction_leaves_no_half_set() {
    for point in ["compact.after_index", "backup.after_data_file", "compact.before_manifest", "backup.before_rename"] {
        let mut s = TestServer::start();
        let (location, states) = three_sets(&s, "Shop");
        // The failpoints that backups share are armed after the sets exist: the server restarts armed.
        s.restart_with(&[("ROOKERY_FAILPOINTS", point)]);
        let before = set_dirs(Path::new(&location));
        // The server may stop at the failpoint before its answer is sent.
        if let Some((status, body)) = s.post_tolerant("/admin/backup/compact", json!({"BackupLocation": location})) {
            assert_eq!(status, 202, "{point}: {body}");
        }
        assert_eq!(s.wait_exit(Duration::from_secs(60)), Some(86), "{point}: the server stops at the failpoint");
        // The compaction's scratch is the server's own folder, in its data
        // directory (not the system's temporary folder, where a stop left it
        // for good), and the next start removes it.
        assert_eq!(compact_scratch(&s.data_dir).len(), 1, "{point}: the scratch is in the data directory");
        s.restart();
        assert_eq!(compact_scratch(&s.data_dir), Vec::<String>::new(), "{point}: the start removed the scratch");
        assert!(!all_entries(Path::new(&location)).iter().any(|e| e.starts_with(".tmp-")), "{point}: a half set was left");
        assert_eq!(set_dirs(Path::new(&location)), before, "{point}: no set appeared");
        let (_, status) = s.get("/docs/Raven/Compact/Status");
        assert_eq!(status["IsRunning"], false, "{point}: {status}");
        assert_eq!(status["ErrorCode"], "Interrupted", "{point}: {status}");
        let restored = s.restore(json!({"BackupLocation": location, "DatabaseName": "After"}));
        assert_eq!(restored["Success"], true, "{point}: {restored}");
        assert!(s.all_docs("/databases/After") == states[2].1, "{point}");
        let done = compact(&s, json!({"BackupLocation": location}));
        assert_eq!(done["Success"], true, "{point}: compacting again works: {done}");
    }
}

#[test]
fn rookery_backup_compacts_offline() {
    let s = TestServer::start();
    let (location, states) = three_sets(&s, "Shop");
    let out = Command::new(BACKUP_BIN)
        .args(["--compact", &format!("--dest={location}"), &format!("--up-to={}", states[1].0)])
        .output()
        .expect("runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Compaction completed"), "{text}");
    let compacted = set_dirs(Path::new(&location)).into_iter().find(|id| !states.iter().any(|(s, _)| s == id)).expect("a new set");
    let restored = s.restore(json!({"BackupLocation": location, "DatabaseName": "Offline", "RestoreUpTo": compacted}));
    assert_eq!(restored["Success"], true, "{restored}");
    assert!(s.all_docs("/databases/Offline") == states[1].1);
    // A full set alone: nothing to fold, exit 1 with the code.
    let out = Command::new(BACKUP_BIN)
        .args(["--compact", &format!("--dest={location}"), &format!("--up-to={compacted}")])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoBackupFound"));
}

#[test]
fn a_forever_incremental_task_keeps_its_chain_short() {
    let s = TestServer::start();
    let base = "/databases/Shop";
    s.create_db("Shop");
    let location = s.location("forever");
    let hourly = crate::common::hourly_not_now();
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * 0", "IncrementalBackupFrequency": hourly, "Compact": true, "Retention": {"KeepLast": 1}});
    let (status, body) = s.put(&format!("{base}/admin/backup/tasks/forever"), task);
    assert_eq!(status, 201, "{body}");
    assert_eq!(s.get(&format!("{base}/admin/backup/tasks/forever")).1["Compact"], true);
    let last_set = || s.get(&format!("{base}/admin/backup/tasks/forever")).1["Status"]["LastSetId"].as_str().map(str::to_string);
    let run = |incremental: bool| {
        let previous = last_set();
        let (status, body) = s.post(&format!("{base}/admin/backup/tasks/forever/run?incremental={incremental}"), json!({}));
        assert_eq!(status, 202, "{body}");
        for _ in 0..600 {
            let (_, task) = s.get(&format!("{base}/admin/backup/tasks/forever"));
            let last = task["Status"]["LastSetId"].as_str().map(str::to_string);
            if let Some(id) = last.filter(|id| task["Status"]["IsRunning"] == false && Some(id) != previous.as_ref()) {
                assert!(task["Status"]["LastError"].is_null(), "{task}");
                return id;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the task run did not finish");
    };
    // Full sets read from the database: written by the database's own backup
    // job (its status document names the set), not by a compaction.
    let mut full_reads = Vec::new();
    let mut count_full_read = |id: &str| {
        let (_, backup) = s.get(&format!("{base}/docs/Raven/Backup/Status"));
        if backup["SetId"] == id && id.ends_with("-full") {
            full_reads.push(id.to_string());
        }
    };
    for week in 0..3 {
        for day in 0..3 {
            s.put_doc(base, &format!("orders/{week}-{day}"), json!({"Week": week}));
            let id = run(true);
            count_full_read(&id);
        }
        let id = run(false);
        count_full_read(&id);
        let (_, compaction) = s.get("/docs/Raven/Compact/Status");
        assert_eq!(compaction["SetId"], id.as_str(), "week {week}: the full was folded by a compaction");
        let m = manifest(&location, &id);
        assert!(m["CompactedFrom"].is_array(), "week {week}: the full was folded from the chain: {m}");
    }
    assert_eq!(
        full_reads.len(),
        1,
        "only the first set (an incremental asked of an empty location) reads the whole database: {full_reads:?}"
    );
    // The chain never grows past one week of incrementals; retention dropped the folded sets.
    let (_, listing) = s.get(&format!("/admin/backup/sets?location={location}&verify=false"));
    let chains = listing["Chains"].as_array().expect("chains");
    assert!(chains.iter().all(|c| c["Sets"].as_array().map_or(0, Vec::len) <= 4), "{listing}");
    let restored = s.restore(json!({"BackupLocation": location, "DatabaseName": "Copy"}));
    assert_eq!(restored["Success"], true, "{restored}");
    assert!(s.all_docs("/databases/Copy") == s.all_docs(base));
}

/// Incrementals of format 1 are not in id order: their compaction sorts them
/// through the on-disk index (sets of format 4 and later are merged as
/// sorted streams), and the folded set restores to the fixture's documents.
#[test]
fn a_chain_of_format_version_1_compacts_to_the_same_documents() {
    let s = TestServer::start();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let location = s.path("fixture-v1");
    crate::restore::copy_dir(&fixtures.join("backup-v1"), &location);
    let expected: crate::restore::Docs =
        serde_json::from_slice(&std::fs::read(fixtures.join("backup-v1.expected.json")).expect("reads")).expect("json");
    let done = compact(&s, json!({"BackupLocation": location.display().to_string()}));
    assert_eq!(done["Success"], true, "{done}");
    let set_id = done["SetId"].as_str().expect("set id").to_string();
    assert_eq!(manifest(&location.display().to_string(), &set_id)["Kind"], "Full");
    let restored = s.restore(json!({"BackupLocation": location.display().to_string(), "DatabaseName": "Folded", "RestoreUpTo": set_id}));
    assert_eq!(restored["Success"], true, "{restored}");
    assert!(s.all_docs("/databases/Folded") == expected);
}

/// Records as a set's data file holds them, compressed: documents in the
/// order given, then the end record.
fn documents_file(ids: &[&str]) -> Vec<u8> {
    let mut raw = Vec::new();
    for (etag, id) in ids.iter().enumerate() {
        let body = br#"{"forged":true}"#;
        raw.push(b'D');
        raw.extend_from_slice(&(id.len() as u32).to_le_bytes());
        raw.extend_from_slice(id.as_bytes());
        raw.extend_from_slice(&(1000 + etag as u64).to_le_bytes());
        raw.extend_from_slice(&0i64.to_le_bytes());
        raw.extend_from_slice(&(body.len() as u32).to_le_bytes());
        raw.extend_from_slice(body);
    }
    raw.push(b'Z');
    raw.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    zstd::encode_all(&raw[..], 1).expect("compresses")
}

/// An incremental of format 4 and later is merged as a sorted stream: one
/// whose documents are out of id order (forged, with checksums that agree)
/// fails the compaction as a damaged set, and nothing is written.
#[test]
fn an_incremental_whose_documents_are_out_of_id_order_fails_the_compaction() {
    let s = TestServer::start();
    let (location, states) = three_sets(&s, "Forged");
    let tip = Path::new(&location).join(&states[2].0);
    let forged = documents_file(&["people/9", "people/1"]);
    std::fs::write(tip.join("documents-0001.zst"), &forged).expect("writes");
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&forged));
    crate::trust::edit_manifest(&tip, |m| {
        for f in m["Files"].as_array_mut().expect("files") {
            if f["Name"] == "documents-0001.zst" {
                f["Sha256"] = json!(sha);
                f["Size"] = json!(forged.len());
                f["Records"] = json!(2);
            }
        }
    });
    let before = set_dirs(Path::new(&location));
    let done = compact(&s, json!({"BackupLocation": location}));
    assert_eq!(done["Success"], false, "{done}");
    assert!(done["Error"].to_string().contains("not in id order"), "{done}");
    assert_eq!(set_dirs(Path::new(&location)), before, "a failed compaction writes no set");
}

/// A full set whose change log is out of etag order (forged, with checksums
/// that agree) is refused as a damaged set, naming its log, by both the
/// compaction and the restore of its chain: they walk the log alongside the
/// etags the incrementals replaced, which only works in order.
#[test]
fn a_full_set_whose_change_log_is_out_of_etag_order_is_refused_by_compaction_and_restore() {
    use rookery::backup::format::{RecordReader, RecordWriter};
    let s = TestServer::start();
    let (location, states) = three_sets(&s, "Log");
    let full = Path::new(&location).join(&states[0].0);
    let log = manifest(&location, &states[0].0)["Files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["Content"] == "ChangeLog")
        .and_then(|f| f["Name"].as_str())
        .expect("a change log")
        .to_string();
    let mut reader = RecordReader::new(std::fs::File::open(full.join(&log)).expect("opens")).expect("reads");
    let mut records = Vec::new();
    while let Some(record) = reader.next_record().expect("a record") {
        records.push(record);
    }
    assert!(records.len() > 100, "the full set logs every document");
    records.swap(10, 20);
    let mut writer = RecordWriter::new(std::fs::File::create(full.join(&log)).expect("creates"), 1).expect("writes");
    for record in &records {
        writer.write(record).expect("writes");
    }
    writer.finish().expect("finishes");
    let forged = std::fs::read(full.join(&log)).expect("reads");
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&forged));
    crate::trust::edit_manifest(&full, |m| {
        for f in m["Files"].as_array_mut().expect("files") {
            if f["Name"] == log.as_str() {
                f["Sha256"] = json!(sha);
                f["Size"] = json!(forged.len());
            }
        }
    });
    let before = all_entries(Path::new(&location));
    let done = compact(&s, json!({"BackupLocation": location}));
    assert_eq!((done["Success"].clone(), done["ErrorCode"].clone()), (json!(false), json!("CorruptBackup")), "{done}");
    let error = done["Error"].as_str().expect("error");
    assert!(error.contains(&format!("{}/{log}", states[0].0)) && error.contains("not in etag order"), "{done}");
    assert_eq!(all_entries(Path::new(&location)), before, "a failed compaction writes nothing");

    let (code, message) = s.refused_restore(json!({"BackupLocation": location, "DatabaseName": "Disordered"}));
    assert_eq!(code, "CorruptBackup", "{message}");
    assert!(message.contains(&format!("{}/{log}", states[0].0)) && message.contains("not in etag order"), "{message}");
}
