//! Restore against a real server: round trips, point in time, refusals,
//! corruption, concurrency, the system database offline, and crashes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{all_entries, set_dirs, TestServer, SERVER_BIN};

pub(crate) type Docs = BTreeMap<String, Value>;

/// Seeds a database, then takes a full set and two incrementals with changes
/// and deletions in between; returns the location and the state at each set.
pub(crate) fn three_sets(s: &TestServer, db: &str) -> (String, Vec<(String, Docs)>) {
    let base = format!("/databases/{db}");
    s.create_db(db);
    for i in 0..300 {
        s.put_doc(&base, &format!("people/{i:03}"), json!({"Name": format!("P{i}"), "Age": i % 90}));
    }
    let location = s.location(&format!("{db}-backups"));
    let mut states = Vec::new();
    let full = s.backup(&base, &location, false);
    states.push((full["SetId"].as_str().expect("id").to_string(), s.all_docs(&base)));
    for i in 0..20 {
        s.put_doc(&base, &format!("people/{i:03}"), json!({"Name": "changed", "Round": 1}));
    }
    for i in 50..60 {
        assert_eq!(s.delete(&format!("{base}/docs/people/{i:03}")).0, 204);
    }
    s.put_doc(&base, "orders/1", json!({"Total": 5}));
    let inc1 = s.backup(&base, &location, true);
    states.push((inc1["SetId"].as_str().expect("id").to_string(), s.all_docs(&base)));
    for i in 100..110 {
        assert_eq!(s.delete(&format!("{base}/docs/people/{i:03}")).0, 204);
    }
    s.put_doc(&base, "people/055", json!({"Name": "back again"}));
    s.put_doc(&base, "orders/1", json!({"Total": 6}));
    // Sets of one second get the `.NN` suffix and still sort in creation order.
    let inc2 = s.backup(&base, &location, true);
    states.push((inc2["SetId"].as_str().expect("id").to_string(), s.all_docs(&base)));
    (location, states)
}

#[test]
fn round_trip_at_every_point_in_time() {
    let s = TestServer::start();
    let (location, states) = three_sets(&s, "Source");
    assert_ne!(states[0].1, states[2].1);

    // The newest chain by default.
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Latest"}));
    assert_eq!(done["Success"], true, "{done}");
    assert_eq!(done["DatabaseName"], "Latest");
    assert_eq!(done["SetId"], states[2].0.as_str());
    assert!(s.all_docs("/databases/Latest") == states[2].1, "the newest restore differs");
    let (_, list) = s.get("/databases");
    let latest = list.as_array().expect("list").iter().find(|d| d["Name"] == "Latest").expect("listed").clone();
    assert_eq!(latest["DocumentCount"].as_u64(), Some(states[2].1.len() as u64));

    // Every set as a point in time, including the middle one.
    for (i, (set_id, expected)) in states.iter().enumerate() {
        let name = format!("At{i}");
        let done = s.restore(json!({"BackupLocation": location, "DatabaseName": name, "RestoreUpTo": set_id}));
        assert_eq!(done["Success"], true, "{done}");
        assert!(&s.all_docs(&format!("/databases/{name}")) == expected, "restore up to {set_id} differs");
    }

    // Etags are kept, and the restored database goes on from there.
    let (_, original) = s.call_raw("GET", "/databases/Source/docs/orders/1", None, &[]);
    let (_, copy) = s.call_raw("GET", "/databases/Latest/docs/orders/1", None, &[]);
    assert_eq!(original, copy);
    let etag = s.put_doc("/databases/Latest", "new", json!({}));
    let (_, page) = s.get("/databases/Latest/docs?startsWith=orders/");
    assert!(etag > page["Results"][0]["ETag"].as_u64().expect("etag"));

    // The name defaults to the one in the backup (taken here), and a restored
    // database can itself be backed up and restored (a second chain).
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location}));
    assert_eq!((status, body["Error"].as_str()), (409, Some("DatabaseExists")));
    let again = s.location("again");
    s.backup("/databases/Latest", &again, false);
    let done = s.restore(json!({"BackupLocation": again, "DatabaseName": "Again"}));
    assert_eq!(done["Success"], true);
    let mut expected = states[2].1.clone();
    expected.insert("new".into(), json!({}));
    assert!(s.all_docs("/databases/Again") == expected);
}

#[test]
fn restore_into_a_second_server_and_with_defrag_and_a_location() {
    let s = TestServer::start();
    let (location, states) = three_sets(&s, "Origin");
    // The second server may read the first one's backups: a backup root.
    let root = format!("--backup-root={}", s.dir.path().display());
    let other = TestServer::start_full(&[], &[&root]);
    let db_location = other.data_dir.join("Elsewhere/origin-db");
    let (status, body) = other
        .post("/admin/restore?defrag=true", json!({"BackupLocation": location, "DatabaseLocation": db_location.display().to_string()}));
    assert_eq!(status, 202, "{body}");
    let done = other.wait_for_job("", "Raven/Restore/Status");
    assert_eq!(done["Success"], true, "{done}");
    assert!(done["Messages"].to_string().contains("Defragmented"));
    assert!(other.all_docs("/databases/Origin") == states[2].1);
    assert!(db_location.is_dir());
    assert!(all_entries(db_location.parent().expect("parent")).iter().all(|e| !e.contains("restoring")), "no staging left");
    // It survives a restart of the second server.
    let mut other = other;
    other.restart();
    assert!(other.all_docs("/databases/Origin") == states[2].1);
}

#[test]
fn refusals_create_nothing() {
    let s = TestServer::start();
    let (location, _) = three_sets(&s, "Src");
    // Restore locations must be inside the data directory (or a --database-root).
    let occupied = s.data_dir.join("Mine/occupied");
    std::fs::create_dir_all(&occupied).expect("mkdir");
    std::fs::write(occupied.join("keep.txt"), b"mine").expect("writes");
    let empty_dir = s.data_dir.join("Mine/empty");
    std::fs::create_dir_all(&empty_dir).expect("mkdir");
    std::fs::create_dir_all(s.path("empty-location")).expect("mkdir");
    let newer = s.path("newer");
    copy_dir(Path::new(&location), &newer);
    for set in set_dirs(&newer) {
        let manifest = newer.join(&set).join("manifest.json");
        let text = std::fs::read_to_string(&manifest)
            .expect("reads")
            .replace(&format!("\"FormatVersion\": {}", rookery::backup::format::FORMAT_VERSION), "\"FormatVersion\": 99");
        std::fs::write(&manifest, text).expect("writes");
    }
    let cases = vec![
        (json!({"BackupLocation": location, "DatabaseName": "Src"}), 409, "DatabaseExists"),
        (json!({"BackupLocation": location, "DatabaseName": "src"}), 409, "DatabaseExists"),
        (json!({"BackupLocation": location, "DatabaseName": "System"}), 409, "DatabaseExists"),
        (
            json!({"BackupLocation": location, "DatabaseName": "X1", "DatabaseLocation": occupied.display().to_string()}),
            409,
            "DestinationNotEmpty",
        ),
        (json!({"BackupLocation": location, "DatabaseName": "bad/name"}), 400, "InvalidName"),
        (json!({"BackupLocation": location, "DatabaseName": "X2", "RestoreUpTo": "20000101T000000Z-full"}), 404, "SetNotFound"),
        (json!({"BackupLocation": s.location("empty-location"), "DatabaseName": "X3"}), 400, "NoBackupFound"),
        (json!({"BackupLocation": s.location("missing"), "DatabaseName": "X4"}), 400, "NoBackupFound"),
        (json!({"BackupLocation": "relative", "DatabaseName": "X5"}), 400, "InvalidBackupLocation"),
        (json!({"BackupLocation": s.data_dir.display().to_string(), "DatabaseName": "X6"}), 400, "InvalidBackupLocation"),
        (json!({"BackupLocation": newer.display().to_string(), "DatabaseName": "X7"}), 422, "UnsupportedFormatVersion"),
        (json!({"BackupLocation": location, "DatabaseName": "X8", "DatabaseLocation": "relative/dir"}), 400, "InvalidDatabaseLocation"),
        (
            json!({"BackupLocation": location, "DatabaseName": "X9", "DatabaseLocation": s.data_dir.join("System/inside").display().to_string()}),
            400,
            "InvalidDatabaseLocation",
        ),
        (
            json!({"BackupLocation": location, "DatabaseName": "X10", "DatabaseLocation": s.location("outside-db")}),
            400,
            "InvalidDatabaseLocation",
        ),
    ];
    for (request, want_status, want_code) in cases {
        let (status, body) = s.post("/admin/restore", request.clone());
        assert_eq!((status, body["Error"].as_str()), (want_status, Some(want_code)), "{request}: {body}");
    }
    let (_, list) = s.get("/databases");
    assert_eq!(list.as_array().expect("list").len(), 1, "no database was created: {list}");
    assert_eq!(all_entries(&occupied), ["keep.txt"]);
    assert!(all_entries(&s.data_dir.join("Databases")).iter().all(|e| e == "Src"), "{:?}", all_entries(&s.data_dir.join("Databases")));
    // An empty existing folder is a fine destination.
    let done =
        s.restore(json!({"BackupLocation": location, "DatabaseName": "IntoEmpty", "DatabaseLocation": empty_dir.display().to_string()}));
    assert_eq!(done["Success"], true, "{done}");
}

#[test]
fn corruption_is_caught_before_anything_is_visible() {
    let s = TestServer::start();
    let (location, _) = three_sets(&s, "Good");
    let sets = set_dirs(Path::new(&location));
    let mut n = 0;
    for set in &sets {
        let files: Vec<String> = all_entries(&Path::new(&location).join(set));
        for file in files {
            for damage in ["flip", "truncate", "delete"] {
                n += 1;
                let copy = s.path(&format!("bad-{n}"));
                copy_dir(Path::new(&location), &copy);
                let target = copy.join(set).join(&file);
                match damage {
                    "flip" => {
                        let mut bytes = std::fs::read(&target).expect("reads");
                        let mid = bytes.len() / 2;
                        bytes[mid] ^= 0x01;
                        std::fs::write(&target, bytes).expect("writes");
                    }
                    "truncate" => {
                        let bytes = std::fs::read(&target).expect("reads");
                        std::fs::write(&target, &bytes[..bytes.len() * 2 / 3]).expect("writes");
                    }
                    _ => std::fs::remove_file(&target).expect("removes"),
                }
                let name = format!("Bad{n}");
                let (code, message) = s.refused_restore(json!({"BackupLocation": copy.display().to_string(), "DatabaseName": name}));
                assert!(
                    ["ChecksumMismatch", "BrokenChain", "NoBackupFound", "CorruptBackup"].contains(&code.as_str()),
                    "{damage} {set}/{file}: {code}"
                );
                if code == "ChecksumMismatch" && damage != "delete" && file != "SHA256SUMS" {
                    assert!(message.contains(&file), "names the file: {message}");
                }
            }
        }
    }
    assert!(n >= 30);
    assert_eq!(all_entries(&s.data_dir.join("Databases")), ["Good"]);
}

#[test]
fn two_restores_at_once_one_waits_and_a_short_timeout_is_refused() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "restore.after_set=sleep:2000")]);
    let (location, states) = three_sets(&s, "Twice");
    let (status, _) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "First"}));
    assert_eq!(status, 202);
    // A short timeout: refused while the first one runs.
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Second", "RestoreStartTimeout": 1}));
    let first = s.get("/docs/Raven/Restore/Status").1;
    assert_eq!((status, body["Error"].as_str()), (409, Some("RestoreAlreadyRunning")), "{body}; first: {first}");
    // A long one waits for the first to end, then runs.
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Third", "RestoreStartTimeout": 30}));
    assert_eq!(status, 202, "{body}");
    let done = s.wait_for_job("", "Raven/Restore/Status");
    assert_eq!(done["DatabaseName"], "Third");
    assert_eq!(done["Success"], true);
    assert!(s.all_docs("/databases/First") == states[2].1);
    assert!(s.all_docs("/databases/Third") == states[2].1);
    assert_eq!(s.get("/databases/Second/docs").0, 404);
}

#[test]
fn the_system_database_restores_offline_then_serves() {
    let mut s = TestServer::start();
    for i in 0..50 {
        s.put_doc("", &format!("config/{i}"), json!({"Setting": i}));
    }
    let location = s.location("system-backups");
    s.backup("", &location, false);
    s.delete("/docs/config/7");
    s.put_doc("", "config/new", json!({"Setting": "new"}));
    s.backup("", &location, true);
    let expected = s.all_docs("");
    s.stop();

    let target = s.path("restored-data");
    let out = std::process::Command::new(SERVER_BIN)
        .arg(format!("--restore-source={location}"))
        .arg(format!("--restore-destination={}", target.display()))
        .arg("--restore-system-database")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(target.join("System").is_dir());
    // A second run refuses: the destination is no longer empty.
    let out = std::process::Command::new(SERVER_BIN)
        .arg(format!("--restore-source={location}"))
        .arg(format!("--restore-destination={}", target.display()))
        .arg("--restore-system-database")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DestinationNotEmpty"));

    s.data_dir = target;
    s.restart();
    assert!(s.all_docs("") == expected);
    assert_eq!(expected.len(), 50);
}

#[test]
fn a_server_killed_mid_restore_shows_no_half_database_and_the_restore_runs_again() {
    let mut s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "restore.after_set=sleep:4000")]);
    let (location, states) = three_sets(&s, "Orig");
    let (status, _) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Half"}));
    assert_eq!(status, 202);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(s.get("/databases/Half/docs").0, 404, "not visible while it runs");
    s.kill9();
    s.restart();
    assert_eq!(s.get("/databases/Half/docs").0, 404);
    let (_, st) = s.get("/docs/Raven/Restore/Status");
    assert_eq!(st["IsRunning"], false);
    assert_eq!(st["ErrorCode"], "Interrupted");
    assert_eq!(all_entries(&s.data_dir.join("Databases")), ["Orig"], "no staging or half database left");
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Half"}));
    assert_eq!(done["Success"], true);
    assert!(s.all_docs("/databases/Half") == states[2].1);
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("reads").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copies");
        }
    }
}

/// Sets written by every format version are kept in `tests/fixtures/` and must
/// keep restoring to the same documents.
#[test]
fn format_version_1_fixture_restores() {
    let s = TestServer::start();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let location = s.path("fixture-v1");
    copy_dir(&fixtures.join("backup-v1"), &location);
    let expected: Docs = serde_json::from_slice(&std::fs::read(fixtures.join("backup-v1.expected.json")).expect("reads")).expect("json");
    let done = s.restore(json!({"BackupLocation": location.display().to_string()}));
    assert_eq!(done["Success"], true, "{done}");
    assert_eq!(done["DatabaseName"], "Fixture");
    assert!(s.all_docs("/databases/Fixture") == expected);
    assert!(!expected.contains_key("people/2") && expected.contains_key("people/9"));
}

/// Format 6 wrote a content digest summing SHA-256; format 7 sums XXH3. A
/// chain (full and incremental) and a snapshot set written by format 6 keep
/// restoring, `--verify --deep` keeps proving them, each compared with the
/// SHA-256 sum it recorded; a compaction of the chain keeps that sum (and
/// so format 6); the restored database's own sets are format 7.
#[test]
fn format_version_6_fixtures_restore_against_their_sha256_digest() {
    let s = TestServer::start();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let expected: Docs = serde_json::from_slice(&std::fs::read(fixtures.join("backup-v6.expected.json")).expect("reads")).expect("json");
    assert!(!expected.contains_key("people/2") && expected["people/3"] == json!({"Name": "Changed"}));
    let chain = s.path("fixture-v6");
    copy_dir(&fixtures.join("backup-v6"), &chain);
    let snapshot = s.path("fixture-v6-snapshot");
    copy_dir(&fixtures.join("snapshot-v6"), &snapshot);
    let deep = |location: &Path| {
        let out = std::process::Command::new(crate::common::BACKUP_BIN)
            .args(["--verify", "--deep", &format!("--dest={}", location.display())])
            .output()
            .expect("runs");
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    for (location, name) in [(&chain, "Chain6"), (&snapshot, "Snapshot6")] {
        let done = s.restore(json!({"BackupLocation": location.display().to_string(), "DatabaseName": name}));
        assert_eq!(done["Success"], true, "{done}");
        assert!(s.all_docs(&format!("/databases/{name}")) == expected, "{name}");
        let (code, out) = deep(location);
        assert_eq!(code, Some(0), "{out}");
    }

    // The restored database's sets sum XXH3, as format 7; the same
    // documents' XXH3 sum is not what a format-6 set may claim.
    s.put_doc("/databases/Chain6", "people/3", json!({"Name": "Changed"}));
    let own = s.location("own-sets");
    let full = s.backup("/databases/Chain6", &own, false);
    let own_manifest: Value = serde_json::from_slice(
        &std::fs::read(Path::new(&own).join(full["SetId"].as_str().expect("id")).join("manifest.json")).expect("reads"),
    )
    .expect("json");
    assert_eq!(own_manifest["FormatVersion"], 7);
    let done = s.restore(json!({"BackupLocation": own, "DatabaseName": "Own"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/Own") == expected);
    let tip = chain.join(set_dirs(&chain).last().expect("sets"));
    let sha256_sum = std::fs::read_to_string(tip.join("manifest.json")).expect("reads");
    rewrite_manifest(&tip, |m| m["ContentDigest"] = own_manifest["ContentDigest"].clone());
    let (code, message) = s.refused_restore(json!({"BackupLocation": chain.display().to_string(), "DatabaseName": "Mixed"}));
    assert_eq!(code, "CorruptBackup", "{message}");
    assert!(message.contains("content digest"), "{message}");
    let (code, out) = deep(&chain);
    assert_eq!(code, Some(1), "{out}");
    std::fs::write(tip.join("manifest.json"), sha256_sum).expect("writes");
    rewrite_manifest(&tip, |_| {});

    // A compaction copies the SHA-256 sum, so it writes format 6.
    let (status, done) = s.post("/admin/backup/compact?wait=true", json!({"BackupLocation": chain.display().to_string()}));
    assert_eq!(status, 200, "{done}");
    let compacted = chain.join(done["SetId"].as_str().expect("id"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(compacted.join("manifest.json")).expect("reads")).expect("json");
    assert_eq!(manifest["FormatVersion"], 6, "{manifest}");
    let done = s.restore(json!({"BackupLocation": chain.display().to_string(), "DatabaseName": "Compacted6"}));
    assert_eq!(done["Success"], true, "{done}");
    assert_eq!(done["SetId"], manifest["SetId"], "{done}");
    assert!(s.all_docs("/databases/Compacted6") == expected);
}

#[test]
fn restore_up_to_a_time_takes_the_newest_set_created_at_or_before_it() {
    let s = TestServer::start();
    let (location, states) = three_sets(&s, "Timed");
    let (_, listing) = s.get(&format!("/admin/backup/sets?location={location}&verify=false"));
    let created: Vec<String> =
        listing["Chains"][0]["Sets"].as_array().expect("sets").iter().map(|s| s["Created"].as_str().expect("time").to_string()).collect();
    assert_eq!(created.len(), 3);
    let at = |t: &str| -> jiff::Timestamp { t.parse().expect("a time") };
    // Exactly the second set's time: that set. A millisecond before it: the first.
    let exact = s.restore(json!({"BackupLocation": location, "DatabaseName": "AtSecond", "RestoreUpTo": created[1]}));
    assert_eq!(exact["SetId"], states[1].0.as_str(), "{exact}");
    assert!(s.all_docs("/databases/AtSecond") == states[1].1);
    let before = (at(&created[1]) - jiff::SignedDuration::from_millis(1)).to_string();
    assert!(at(&before) >= at(&created[0]), "the sets are a millisecond apart at least");
    let earlier = s.restore(json!({"BackupLocation": location, "DatabaseName": "BeforeSecond", "RestoreUpTo": before}));
    assert_eq!(earlier["SetId"], states[0].0.as_str(), "{earlier}");
    assert!(s.all_docs("/databases/BeforeSecond") == states[0].1);
    // A time zone offset is a time like any other; a time after every set is the newest.
    let later = s.restore(json!({"BackupLocation": location, "DatabaseName": "Later", "RestoreUpTo": "2999-01-01T00:00:00+02:00"}));
    assert_eq!(later["SetId"], states[2].0.as_str(), "{later}");
    // Before every set: nothing to restore.
    let (code, message) =
        s.refused_restore(json!({"BackupLocation": location, "DatabaseName": "TooEarly", "RestoreUpTo": "2000-01-01T00:00:00Z"}));
    assert_eq!(code, "SetNotFound", "{message}");
}

#[test]
fn damage_that_still_decodes_is_reported_as_damage_not_as_a_malformed_set() {
    use rookery::backup::format::{RecordReader, RecordWriter};
    let s = TestServer::start();
    s.create_db("Shop");
    for i in 0..50 {
        s.put_doc("/databases/Shop", &format!("orders/{i:03}"), json!({"n": i}));
    }
    let location = s.location("decodes");
    let full = s.backup("/databases/Shop", &location, false);
    let file = Path::new(&location).join(full["SetId"].as_str().expect("id")).join("documents-0001.zst");
    // The same records in reverse order: valid zstd and valid records, other bytes than the manifest's.
    let mut reader = RecordReader::new(std::fs::File::open(&file).expect("opens")).expect("reads");
    let mut records = Vec::new();
    while let Some(record) = reader.next_record().expect("a record") {
        records.push(record);
    }
    records.reverse();
    let mut writer = RecordWriter::new(std::fs::File::create(&file).expect("creates"), 1).expect("writes");
    for record in &records {
        writer.write(record).expect("writes");
    }
    writer.finish().expect("finishes");
    // The manifest says the new size (so only the hash can tell), and SHA256SUMS agrees with the manifest.
    let size = std::fs::metadata(&file).expect("size").len();
    rewrite_manifest(file.parent().expect("set folder"), |m| m["Files"][0]["Size"] = json!(size));
    let (code, message) = s.refused_restore(json!({"BackupLocation": location, "DatabaseName": "Reordered"}));
    assert_eq!(code, "ChecksumMismatch", "{message}");
    assert!(message.contains("documents-0001.zst"), "{message}");
}

/// Changes a plain set's manifest and keeps SHA256SUMS in agreement with it
/// (what someone who rewrites a set can do; an encrypted set's Mac stops it).
fn rewrite_manifest(set_dir: &Path, change: impl FnOnce(&mut Value)) {
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(set_dir.join("manifest.json")).expect("reads")).expect("json");
    change(&mut manifest);
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("json");
    std::fs::write(set_dir.join("manifest.json"), &manifest_bytes).expect("writes");
    let sums = std::fs::read_to_string(set_dir.join("SHA256SUMS")).expect("reads");
    let manifest_sum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&manifest_bytes));
    let sums: String = sums
        .lines()
        .map(|l| if l.ends_with("manifest.json") { format!("{manifest_sum}  manifest.json\n") } else { format!("{l}\n") })
        .collect();
    std::fs::write(set_dir.join("SHA256SUMS"), sums).expect("writes");
}

#[test]
fn a_restore_that_does_not_reproduce_the_recorded_content_digest_is_refused() {
    let s = TestServer::start();
    let (location, states) = three_sets(&s, "Digest");
    let deep = |location: &str| {
        let out = std::process::Command::new(crate::common::BACKUP_BIN)
            .args(["--verify", "--deep", &format!("--dest={location}")])
            .output()
            .expect("runs");
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let (code, out) = deep(&location);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("deep: {} restored", states[2].0)) && out.contains("matched"), "{out}");

    // The newest set says another digest than its chain restores to.
    let tip = Path::new(&location).join(&states[2].0);
    rewrite_manifest(&tip, |m| m["ContentDigest"] = json!("00".repeat(32)));
    let (code, message) = s.refused_restore(json!({"BackupLocation": location, "DatabaseName": "WrongDigest"}));
    assert_eq!(code, "CorruptBackup", "{message}");
    assert!(message.contains("content digest"), "{message}");
    let (code, out) = deep(&location);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("content digest"), "{out}");
    // An earlier point still restores.
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Earlier", "RestoreUpTo": states[1].0}));
    assert_eq!(done["Success"], true, "{done}");
}

#[test]
fn a_set_of_many_documents_files_and_its_chain_restore_in_two_ingestions_and_refuse_files_out_of_order() {
    // Documents files of 4 KiB: a few hundred documents make several.
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.documents_file_bytes=value:4096")]);
    s.create_db("Many");
    for i in 0..400 {
        s.put_doc("/databases/Many", &format!("people/{i:04}"), json!({"Name": format!("Person number {i}"), "Age": i % 90}));
    }
    let expected = s.all_docs("/databases/Many");
    let location = s.location("many");
    let full = s.backup("/databases/Many", &location, false);
    let set_dir = Path::new(&location).join(full["SetId"].as_str().expect("id"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(set_dir.join("manifest.json")).expect("reads")).expect("json");
    let positions: Vec<usize> = manifest["Files"]
        .as_array()
        .expect("files")
        .iter()
        .enumerate()
        .filter(|(_, f)| f["Content"] == "Documents")
        .map(|(i, _)| i)
        .collect();
    assert!(positions.len() >= 4, "{} documents files", positions.len());

    // Both halves of the files, ingested side by side, make the same database.
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Whole"}));
    assert_eq!(done["Success"], true, "{done}");
    assert_eq!(done["Progress"]["DocumentsDone"].as_u64(), Some(400), "{done}");
    assert!(s.all_docs("/databases/Whole") == expected, "the restored database differs");
    let etag = s.put_doc("/databases/Whole", "people/9999", json!({}));
    assert!(etag > 400, "writes go on after the restored etags: {etag}");

    // A chain on it, changed in both halves and around where they meet:
    // merged and ingested as two runs, it makes the same database.
    for i in (0..400).step_by(7) {
        s.put_doc("/databases/Many", &format!("people/{i:04}"), json!({"Name": "changed", "Round": 1}));
    }
    for i in (3..400).step_by(11) {
        assert_eq!(s.delete(&format!("/databases/Many/docs/people/{i:04}")).0, 204);
    }
    for id in ["aaa/first", "people/0199x", "people/0200x", "people/0201x", "zzz/last"] {
        s.put_doc("/databases/Many", id, json!({"Name": "new"}));
    }
    s.backup("/databases/Many", &location, true);
    for i in (1..400).step_by(13) {
        s.put_doc("/databases/Many", &format!("people/{i:04}"), json!({"Name": "changed again", "Round": 2}));
    }
    assert_eq!(s.delete("/databases/Many/docs/people/0200x").0, 204);
    s.backup("/databases/Many", &location, true);
    let chain_end = s.all_docs("/databases/Many");
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Chain"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/Chain") == chain_end, "the restored chain differs");
    let (_, listed) = s.get("/databases/Chain/changes");
    let before = s.put_doc("/databases/Chain", "people/0001", json!({"Name": "after"}));
    assert!(before > 400, "{listed}");

    // The last file of the first half listed after the first file of the
    // second: each half is still in order, the whole is not.
    let half = positions.len().div_ceil(2);
    rewrite_manifest(&set_dir, |m| {
        let files = m["Files"].as_array_mut().expect("files");
        files.swap(positions[half - 1], positions[half]);
    });
    let full_id = full["SetId"].as_str().expect("id");
    let request = json!({"BackupLocation": location, "DatabaseName": "Shuffled", "RestoreUpTo": full_id});
    let (code, message) = s.refused_restore(request);
    assert_eq!(code, "CorruptBackup", "{message}");
    assert!(message.contains("not in id order"), "{message}");
    // And so is the chain on it.
    let (code, message) = s.refused_restore(json!({"BackupLocation": location, "DatabaseName": "ShuffledChain"}));
    assert_eq!(code, "CorruptBackup", "{message}");
    assert!(message.contains("not in id order"), "{message}");
}
