//! Proof under faults: a crash at every step of backup and restore, a full
//! disk, corruption beyond single bytes, and `kill -9` at random moments
//! under write load (`ROOKERY_SOAK_ROUNDS` rounds; a few in `make test`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{all_entries, set_dirs, TestServer, BACKUP_BIN};

const FAILPOINT_EXIT: i32 = 86;

fn verify(location: &str) -> (bool, String) {
    let out = Command::new(BACKUP_BIN).arg("--verify").arg(format!("--dest={location}")).output().expect("runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn seed(s: &TestServer, base: &str, n: usize) -> Vec<(String, Value)> {
    (0..n)
        .map(|i| {
            let id = format!("f/{i:04}");
            let body = json!({"i": i, "text": "fault tolerance ".repeat(8)});
            s.put_doc(base, &id, body.clone());
            (id, body)
        })
        .collect()
}

fn assert_acked(s: &TestServer, base: &str, acked: &[(String, Value)]) {
    for (id, body) in acked {
        assert_eq!(&s.get(&format!("{base}/docs/{id}")).1, body, "acknowledged {id} is there");
    }
}

#[test]
fn a_crash_at_every_backup_step_leaves_no_wrong_set_and_recovers() {
    for point in
        ["backup.after_data_file", "backup.before_manifest", "backup.after_manifest", "backup.before_rename", "backup.after_rename"]
    {
        let mut s = TestServer::start();
        s.create_db("Crash");
        let acked = seed(&s, "/databases/Crash", 200);
        let location = s.location("crash-backups");
        s.backup("/databases/Crash", &location, false);
        s.put_doc("/databases/Crash", "f/0001", json!({"changed": true}));
        let mut acked = acked;
        acked[1].1 = json!({"changed": true});
        s.restart_with(&[("ROOKERY_FAILPOINTS", point)]);
        s.post_tolerant("/databases/Crash/admin/backup?incremental=true", json!({"BackupLocation": location}));
        assert_eq!(s.wait_exit(Duration::from_secs(20)), Some(FAILPOINT_EXIT), "{point}: the server stopped at the point");

        // Whatever is under a final name verifies; only the last point shows the new set.
        let (ok, report) = verify(&location);
        assert!(ok, "{point}: {report}");
        let sets = set_dirs(Path::new(&location));
        assert_eq!(sets.len(), if point == "backup.after_rename" { 2 } else { 1 }, "{point}: {sets:?}");

        s.restart();
        assert_acked(&s, "/databases/Crash", &acked);
        let (_, status) = s.get("/databases/Crash/docs/Raven/Backup/Status");
        assert_eq!(status["IsRunning"], false, "{point}: {status}");
        assert!(all_entries(Path::new(&location)).iter().all(|e| !e.starts_with(".tmp-")), "{point}: unfinished files removed");
        // The same backup then succeeds, and the chain restores to the database.
        s.backup("/databases/Crash", &location, true);
        let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Check"}));
        assert_eq!(done["Success"], true, "{point}: {done}");
        assert!(s.all_docs("/databases/Check") == s.all_docs("/databases/Crash"), "{point}: restore differs");
    }
}

#[test]
fn a_crash_at_every_restore_step_leaves_no_half_database_and_recovers() {
    for point in ["restore.document", "restore.after_set", "restore.before_move", "restore.after_move", "restore.before_register"] {
        let mut s = TestServer::start();
        s.create_db("Src");
        let acked = seed(&s, "/databases/Src", 150);
        let location = s.location("restore-backups");
        s.backup("/databases/Src", &location, false);
        s.restart_with(&[("ROOKERY_FAILPOINTS", point)]);
        s.post_tolerant("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Copy"}));
        assert_eq!(s.wait_exit(Duration::from_secs(20)), Some(FAILPOINT_EXIT), "{point}");
        s.restart();
        assert_eq!(s.get("/databases/Copy/docs").0, 404, "{point}: no half database");
        assert_eq!(all_entries(&s.data_dir.join("Databases")), ["Src"], "{point}: no staging or half folder");
        let (_, status) = s.get("/docs/Raven/Restore/Status");
        assert_eq!(status["IsRunning"], false, "{point}");
        assert_acked(&s, "/databases/Src", &acked);
        let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Copy"}));
        assert_eq!(done["Success"], true, "{point}: {done}");
        assert!(s.all_docs("/databases/Copy") == s.all_docs("/databases/Src"));
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_the_database_keeps_serving() {
    let mut s = TestServer::start();
    s.create_db("Full");
    seed(&s, "/databases/Full", 100);
    let good = s.location("good");
    s.backup("/databases/Full", &good, false);
    s.restart_with(&[("ROOKERY_FAILPOINTS", "backup.write=enospc,restore.write=enospc")]);

    let location = s.location("full-disk");
    let (status, _) = s.post("/databases/Full/admin/backup", json!({"BackupLocation": location}));
    assert_eq!(status, 202);
    let done = s.wait_for_job("/databases/Full", "Raven/Backup/Status");
    assert_eq!(done["Success"], false);
    assert!(done["Error"].as_str().expect("error").contains("No space left on device"), "{done}");
    assert!(all_entries(Path::new(&location)).is_empty(), "partial files removed: {:?}", all_entries(Path::new(&location)));
    s.put_doc("/databases/Full", "after", json!({"still": "serving"}));
    assert_eq!(s.get("/databases/Full/docs/after").1, json!({"still": "serving"}));

    let (status, _) = s.post("/admin/restore", json!({"BackupLocation": good, "DatabaseName": "Restored"}));
    assert_eq!(status, 202);
    let done = s.wait_for_job("", "Raven/Restore/Status");
    assert_eq!(done["Success"], false);
    assert!(done["Error"].as_str().expect("error").contains("No space left on device"), "{done}");
    assert_eq!(s.get("/databases/Restored/docs").0, 404);
    assert_eq!(all_entries(&s.data_dir.join("Databases")), ["Full"], "no files left behind");
    // With space again, both work.
    s.restart();
    s.backup("/databases/Full", &location, false);
    assert_eq!(s.restore(json!({"BackupLocation": good, "DatabaseName": "Restored"}))["Success"], true);
}

/// A folder set's files are fsynced in the background while the next ones
/// are written: an fsync that fails there fails the set, before its
/// manifest, and leaves nothing behind.
#[test]
fn a_file_that_cannot_be_synced_fails_the_set_before_its_manifest() {
    let mut s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.sync=enospc")]);
    s.create_db("Sync");
    seed(&s, "/databases/Sync", 100);
    let location = s.location("unsynced");
    let (status, _) = s.post("/databases/Sync/admin/backup", json!({"BackupLocation": location}));
    assert_eq!(status, 202);
    let done = s.wait_for_job("/databases/Sync", "Raven/Backup/Status");
    assert_eq!(done["Success"], false, "{done}");
    let error = done["Error"].as_str().expect("error");
    assert!(error.contains("cannot sync the set's files") && error.contains("No space left on device"), "{done}");
    assert!(all_entries(Path::new(&location)).is_empty(), "nothing left: {:?}", all_entries(Path::new(&location)));
    s.restart();
    s.backup("/databases/Sync", &location, false);
    assert_eq!(set_dirs(Path::new(&location)).len(), 1);
}

#[test]
fn corruption_beyond_single_bytes_is_refused_and_verify_names_it() {
    let s = TestServer::start();
    s.create_db("C");
    seed(&s, "/databases/C", 100);
    let location = s.location("corrupt");
    s.backup("/databases/C", &location, false);
    s.put_doc("/databases/C", "more", json!({}));
    s.backup("/databases/C", &location, true);
    let sets = set_dirs(Path::new(&location));
    assert_eq!(sets.len(), 2);
    let copy = |name: &str| {
        let target = s.path(name);
        let out = Command::new("cp").arg("-r").arg(&location).arg(&target).status().expect("cp");
        assert!(out.success());
        target
    };
    type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "a documents file swapped between the two sets",
            Box::new(|dir: &Path| {
                let a = dir.join(&sets[0]).join("documents-0001.zst");
                let b = dir.join(&sets[1]).join("documents-0001.zst");
                let tmp = dir.join("swap");
                std::fs::rename(&a, &tmp).expect("mv");
                std::fs::rename(&b, &a).expect("mv");
                std::fs::rename(&tmp, &b).expect("mv");
            }),
            "ChecksumMismatch",
        ),
        (
            "a manifest that lies about a checksum (SHA256SUMS rewritten to agree)",
            Box::new(|dir: &Path| {
                let set = dir.join(&sets[1]);
                let manifest_path = set.join("manifest.json");
                let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).expect("reads")).expect("json");
                manifest["Files"][0]["Sha256"] = json!("0".repeat(64));
                let text = serde_json::to_vec_pretty(&manifest).expect("json");
                std::fs::write(&manifest_path, &text).expect("writes");
                let sums = std::fs::read_to_string(set.join("SHA256SUMS")).expect("reads");
                let name = manifest["Files"][0]["Name"].as_str().expect("name").to_string();
                let manifest_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&text));
                let rewritten: String = sums
                    .lines()
                    .map(|l| {
                        if l.ends_with(&format!("  {name}")) {
                            format!("{}  {name}\n", "0".repeat(64))
                        } else if l.ends_with("  manifest.json") {
                            format!("{manifest_sha}  manifest.json\n")
                        } else {
                            format!("{l}\n")
                        }
                    })
                    .collect();
                std::fs::write(set.join("SHA256SUMS"), rewritten).expect("writes");
            }),
            "ChecksumMismatch",
        ),
        (
            "an incremental whose base is missing",
            Box::new(|dir: &Path| std::fs::remove_dir_all(dir.join(&sets[0])).expect("rm")),
            "BrokenChain",
        ),
        (
            "a manifest deleted from the newest set",
            Box::new(|dir: &Path| std::fs::remove_file(dir.join(&sets[1]).join("manifest.json")).expect("rm")),
            "ChecksumMismatch",
        ),
    ];
    for (i, (what, damage, code)) in cases.iter().enumerate() {
        let dir = copy(&format!("case-{i}"));
        damage(&dir);
        let name = format!("Bad{i}");
        let (got, message) = s.refused_restore(json!({"BackupLocation": dir.display().to_string(), "DatabaseName": name}));
        assert_eq!(got, *code, "{what}: {message}");
        let (ok, report) = verify(&dir.display().to_string());
        assert!(!ok, "{what}: --verify must fail: {report}");
    }
}

/// `kill -9` at random moments of backups and restores under write load,
/// aimed: every round kills a backup between its first data file and its
/// manifest, and a restore between its first record and its end; then checks
/// what the location and the data directory hold, document by document.
#[test]
fn kill_9_at_random_moments_under_load() {
    let rounds: usize = std::env::var("ROOKERY_SOAK_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    // Pauses that make the windows to aim at: after each data file of a
    // backup, and at each record of a restore.
    const PAUSES: &str = "backup.after_data_file=sleep:400,restore.document=sleep:2";
    let mut s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", PAUSES)]);
    s.create_db("Soak");
    let mut acked = seed(&s, "/databases/Soak", 300);
    let location = s.location("soak");
    let mut seed_value: u64 = 0x5eed ^ rounds as u64;
    let mut next = move || {
        seed_value ^= seed_value << 13;
        seed_value ^= seed_value >> 7;
        seed_value ^= seed_value << 17;
        seed_value
    };
    // What the newest complete set holds (its restore must equal it).
    let mut expected: Option<std::collections::BTreeMap<String, Value>> = None;
    let (mut backups_cut, mut restores_cut) = (0, 0);
    for round in 0..rounds {
        // A backup in flight, writes, then kill -9 once its first file is written.
        let sets_before = set_dirs(Path::new(&location));
        let incremental = round % 2 == 1;
        s.post_tolerant(&format!("/databases/Soak/admin/backup?incremental={incremental}"), json!({"BackupLocation": location}));
        let writes = (next() % 40) as usize;
        for w in 0..writes {
            let id = format!("soak/{round}/{w}");
            let body = json!({"round": round, "w": w});
            s.put_doc("/databases/Soak", &id, body.clone());
            acked.push((id, body));
        }
        let mut first_file_written = false;
        for _ in 0..2000 {
            let temp = all_entries(Path::new(&location)).into_iter().find(|e| e.starts_with(".tmp-"));
            if temp.is_some_and(|t| all_entries(&Path::new(&location).join(t)).iter().any(|f| f.ends_with(".zst"))) {
                first_file_written = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(first_file_written, "round {round}: the backup never wrote its first file");
        s.kill9();
        backups_cut += 1;
        assert_eq!(set_dirs(Path::new(&location)), sets_before, "round {round}: a backup cut between its files left a visible set");
        let (ok, report) = verify(&location);
        assert!(ok || sets_before.is_empty(), "round {round}: a visible set fails to verify: {report}");
        s.restart_with(&[("ROOKERY_FAILPOINTS", PAUSES)]);
        assert!(all_entries(Path::new(&location)).iter().all(|e| !e.starts_with(".tmp-")), "round {round}: unfinished folder left");
        assert_acked(&s, "/databases/Soak", &acked);
        let (_, status) = s.get("/databases/Soak/docs/Raven/Backup/Status");
        assert_eq!(status["IsRunning"], false, "round {round}");

        // A complete set to restore from: the newest one's content is known.
        if expected.is_none() {
            s.backup("/databases/Soak", &location, false);
            expected = Some(s.all_docs("/databases/Soak"));
        }
        let expected_docs = expected.clone().expect("a set");

        // A restore killed between its first record and its end leaves nothing.
        let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": format!("R{round}")}));
        assert_eq!(status, 202, "round {round}: {body}");
        let mut started = false;
        for _ in 0..2000 {
            let (_, status) = s.get("/docs/Raven/Restore/Status");
            if status["IsRunning"] == true && status["Progress"]["DocumentsDone"].as_u64().unwrap_or(0) > 0 {
                started = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(started, "round {round}: the restore never started streaming: {}", s.get("/docs/Raven/Restore/Status").1);
        std::thread::sleep(Duration::from_millis(next() % 100));
        s.kill9();
        restores_cut += 1;
        s.restart_with(&[("ROOKERY_FAILPOINTS", PAUSES)]);
        let visible = s.get(&format!("/databases/R{round}/docs")).0 == 200;
        let entries = all_entries(&s.data_dir.join("Databases"));
        assert!(entries.iter().all(|e| !e.contains("restoring")), "round {round}: staging left: {entries:?}");
        if visible {
            assert!(s.all_docs(&format!("/databases/R{round}")) == expected_docs, "round {round}: a visible restore is a whole one");
        } else {
            assert!(!entries.contains(&format!("R{round}")), "round {round}: half database folder: {entries:?}");
            // Run again, it restores to the end, document for document.
            let done = s.restore(json!({"BackupLocation": location, "DatabaseName": format!("R{round}")}));
            assert_eq!(done["Success"], true, "round {round}: {done}");
            assert!(s.all_docs(&format!("/databases/R{round}")) == expected_docs, "round {round}: the restored documents differ");
        }
    }
    assert_eq!((backups_cut, restores_cut), (rounds, rounds), "every round cut a backup and a restore mid-way");
    // Finally, with everything quiet: the last backup restores to exactly the database.
    s.restart();
    s.backup("/databases/Soak", &location, true);
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Final"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/Final") == s.all_docs("/databases/Soak"));
}
