//! Off-site backups: S3-compatible object storage as a backup location and a
//! restore source, against a real S3 server (moto's) on a loopback port.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::s3::{free_port, S3Server};
use crate::common::{TestServer, BACKUP_BIN, SERVER_BIN};

/// A server whose backups may go to the S3 server's bucket (and to its temp folder).
pub(crate) fn server_for(s3: &S3Server, extra_env: &[(&str, &str)]) -> TestServer {
    let mut env: Vec<(&str, String)> = s3.env();
    env.extend(extra_env.iter().map(|(k, v)| (*k, v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tmp_root = std::env::temp_dir().display().to_string();
    TestServer::start_full(&env, &["--backup-root", &s3.url(""), "--backup-root", &tmp_root])
}

/// Documents that do not compress away: enough bytes for multipart uploads.
pub(crate) fn put_bulky(s: &TestServer, base: &str, range: std::ops::Range<u64>) {
    for i in range {
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let noise: String = (0..40_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b"0123456789abcdef"[(x % 16) as usize])
            })
            .collect();
        s.put_doc(base, &format!("bulky/{i}"), json!({"i": i, "noise": noise}));
    }
}

fn status_docs_text(s: &TestServer, base: &str) -> String {
    let (_, backup) = s.get(&format!("{base}/docs/Raven/Backup/Status"));
    let (_, restore) = s.get("/docs/Raven/Restore/Status");
    format!("{backup}{restore}")
}

#[test]
fn full_incremental_encrypted_and_point_in_time_restores_through_object_storage() {
    let s3 = S3Server::start("rookery-chain");
    let s = server_for(&s3, &[]);
    let base = "/databases/Shop";
    s.create_db("Shop");
    put_bulky(&s, base, 0..600);
    for i in 0..50 {
        s.put_doc(base, &format!("orders/{i}"), json!({"n": i}));
    }
    let location = s3.url("shop/daily");
    let full = s.backup(base, &location, false);
    assert_eq!(full["BackupLocation"], location);
    assert_eq!(full["Incremental"], false);
    let at_full = s.all_docs(base);

    for i in 0..5 {
        s.put_doc(base, &format!("orders/{i}"), json!({"n": i, "changed": true}));
    }
    for i in 40..43 {
        assert_eq!(s.delete(&format!("{base}/docs/orders/{i}")).0, 204);
    }
    put_bulky(&s, base, 600..620);
    let inc = s.backup(base, &location, true);
    assert_eq!(inc["Incremental"], true, "{inc}");
    let now = s.all_docs(base);

    // The same layout as a folder: two sets, each with its manifest, SHA256SUMS and data.
    let keys = s3.keys("shop/daily/");
    let manifests: Vec<&String> = keys.iter().filter(|k| k.ends_with("/manifest.json")).collect();
    assert_eq!(manifests.len(), 2, "{keys:?}");
    assert_eq!(keys.iter().filter(|k| k.ends_with("/SHA256SUMS")).count(), 2, "{keys:?}");
    let full_id = full["SetId"].as_str().expect("set id");
    let documents = s3.get(&format!("shop/daily/{full_id}/documents-0001.zst"));
    assert!(documents.len() > 9 * 1024 * 1024, "more than one part's bytes: {} bytes", documents.len());

    // Listing, every checksum verified.
    let (status, listing) = s.get(&format!("/admin/backup/sets?location={location}"));
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["Location"], location);
    let sets = listing["Chains"][0]["Sets"].as_array().expect("sets");
    assert_eq!(sets.len(), 2, "{listing}");
    assert!(sets.iter().all(|set| set["Verified"] == true && set["SizeBytes"].as_u64() > Some(0)), "{listing}");

    // The newest state, and the state at the full set.
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "ShopNow"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/ShopNow") == now, "the newest restore differs");
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "ShopThen", "RestoreUpTo": full_id}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/ShopThen") == at_full, "the point-in-time restore differs");

    // An encrypted chain in object storage: sealed files, and the passphrase is needed.
    let sealed = s3.url("shop/sealed");
    let (status, body) =
        s.post(&format!("{base}/admin/backup"), json!({"BackupLocation": sealed, "BackupPassphrase": "correct horse battery staple"}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(s.wait_for_job(base, "Raven/Backup/Status")["Success"], true);
    let (code, _) = s.refused_restore(json!({"BackupLocation": sealed, "DatabaseName": "NoKey"}));
    assert_eq!(code, "EncryptionKeyRequired");
    let done =
        s.restore(json!({"BackupLocation": sealed, "DatabaseName": "ShopSealed", "BackupPassphrase": "correct horse battery staple"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/ShopSealed") == now);

    // Per-request settings work, against another endpoint than the server's
    // (moto itself, not the relay the server is configured with), and their
    // secrets go nowhere.
    assert_ne!(s3.direct, s3.endpoint);
    let (status, body) = s.post(
        &format!("{base}/admin/backup?incremental=true"),
        json!({"BackupLocation": location, "S3": {"Endpoint": s3.direct, "Region": "us-east-1", "AccessKeyId": "per-request", "SecretAccessKey": "per-request-secret-value", "ForcePathStyle": true}}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(s.wait_for_job(base, "Raven/Backup/Status")["Success"], true);
    let text = status_docs_text(&s, base);
    assert!(!text.contains("per-request-secret-value") && !text.contains("rookery-test-secret"), "a secret in a status document: {text}");
}

#[test]
fn a_damaged_object_is_refused_by_restore_and_verify_and_the_cli_reads_object_storage() {
    let s3 = S3Server::start("rookery-verify");
    let mut s = server_for(&s3, &[]);
    for i in 0..30 {
        s.put_doc("", &format!("config/{i}"), json!({"Setting": i}));
    }
    let location = s3.url("system");
    let full = s.backup("", &location, false);
    let set_id = full["SetId"].as_str().expect("set id").to_string();
    let env = s3.env();
    let cli = |args: &[String]| {
        let mut cmd = Command::new(BACKUP_BIN);
        cmd.args(args).env_remove("ROOKERY_API_KEY");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("runs");
        (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };

    let (code, out) = cli(&[format!("--dest={location}"), "--verify".into()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK: every checksum and link verified.") && out.contains(&set_id), "{out}");
    let (code, out) = cli(&[format!("--dest={location}"), "--list".into()]);
    assert_eq!(code, 0, "{out}");

    // Offline restore of the system database, straight from object storage.
    s.stop();
    let target = s.path("restored-data");
    let mut cmd = Command::new(SERVER_BIN);
    cmd.arg(format!("--restore-source={location}"))
        .arg(format!("--restore-destination={}", target.display()))
        .arg("--restore-system-database");
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(target.join("System").is_dir());
    let server_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.restart_with(&server_env);

    // One flipped byte in a data object.
    let key = format!("system/{set_id}/documents-0001.zst");
    let mut bytes = s3.get(&key);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    s3.put(&key, &bytes);
    let (code, out) = cli(&[format!("--dest={location}"), "--verify".into()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{set_id}/documents-0001.zst")) && out.contains("checksum mismatch"), "{out}");
    let (code, message) = s.refused_restore(json!({"BackupLocation": location, "DatabaseName": "Damaged"}));
    assert_eq!(code, "ChecksumMismatch", "{message}");
    assert!(message.contains("documents-0001.zst"), "{message}");
}

/// Starts a backup of `base` into `prefix` of `s3` and cuts the storage
/// once its first object is up; the location.
fn backup_then_cut(s: &TestServer, s3: &S3Server, base: &str, prefix: &str) -> String {
    let location = s3.url(prefix);
    let (status, body) = s.post(&format!("{base}/admin/backup"), json!({"BackupLocation": location}));
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while s3.keys(&format!("{prefix}/")).is_empty() {
        assert!(Instant::now() < deadline, "no object was uploaded");
        std::thread::sleep(Duration::from_millis(20));
    }
    s3.cut();
    location
}

#[test]
fn a_backup_whose_storage_dies_mid_upload_leaves_no_complete_set_and_the_next_one_cleans_up() {
    let s3 = S3Server::start("rookery-dies");
    // Each data file, once uploaded, pauses the backup: the storage dies then.
    let s = server_for(&s3, &[("ROOKERY_FAILPOINTS", "backup.after_data_file=sleep:1500")]);
    let base = "/databases/Shop";
    s.create_db("Shop");
    for i in 0..200 {
        s.put_doc(base, &format!("orders/{i}"), json!({"n": i}));
    }
    let location = backup_then_cut(&s, &s3, base, "dies");
    let done = s.wait_for_job(base, "Raven/Backup/Status");
    assert_eq!(done["Success"], false, "{done}");
    assert_eq!(done["ErrorCode"], "BackupStorageError", "{done}");
    s3.heal();

    // What reached the storage is not a set: no manifest, listed as unfinished, never restored.
    let keys = s3.keys("dies/");
    assert!(!keys.is_empty() && keys.iter().all(|k| !k.ends_with("manifest.json")), "{keys:?}");
    let (status, listing) = s.get(&format!("/admin/backup/sets?location={location}"));
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["Chains"].as_array().map(Vec::len), Some(0), "{listing}");
    assert_eq!(listing["Unfinished"].as_array().map(Vec::len), Some(1), "{listing}");
    let (code, _) = s.refused_restore(json!({"BackupLocation": location, "DatabaseName": "Nothing"}));
    assert_eq!(code, "NoBackupFound");
    assert_eq!(s.get("/databases/Shop/docs/orders/1").0, 200, "the database kept serving");

    // The next backup removes the unfinished objects and writes a set that restores.
    let done = s.backup(base, &location, false);
    let messages = done["Messages"].to_string();
    assert!(messages.contains("unfinished set"), "{messages}");
    let set_id = done["SetId"].as_str().expect("set id");
    let keys = s3.keys("dies/");
    assert!(keys.iter().all(|k| k.starts_with(&format!("dies/{set_id}/"))), "{keys:?}");
    let restored = s.restore(json!({"BackupLocation": location, "DatabaseName": "Back"}));
    assert_eq!(restored["Success"], true, "{restored}");
    assert_eq!(s.all_docs("/databases/Back").len(), 200);
}

/// A backup whose storage stops answering while its uploads are in flight
/// stops soon after it is canceled: it does not wait out the storage's
/// retries (a minute here) before it ends, and what reached the storage is
/// no set (the next backup into the location removes it).
#[test]
fn a_canceled_backup_does_not_wait_out_a_dead_storage() {
    let s3 = S3Server::start("rookery-cancel-dead");
    // Each data file, once closed, pauses the backup: the storage dies then.
    let env = [("ROOKERY_FAILPOINTS", "backup.after_data_file=sleep:500"), ("ROOKERY_S3_RETRY_SECONDS", "60")];
    let s = server_for(&s3, &env);
    let base = "/databases/Shop";
    s.create_db("Shop");
    put_bulky(&s, base, 0..40);
    let location = backup_then_cut(&s, &s3, base, "dead");
    let asked = Instant::now();
    let (status, body) = s.post(&format!("{base}/admin/backup/cancel"), json!({}));
    assert_eq!(status, 202, "{body}");
    let done = s.wait_for_job(base, "Raven/Backup/Status");
    // Its remaining files' pauses (0.5 s each) and a bounded clean-up, not
    // a minute of retries per request.
    assert!(asked.elapsed() < Duration::from_secs(10), "the backup took {:?} to end after its cancel", asked.elapsed());
    assert_eq!((done["Success"].as_bool(), done["ErrorCode"].as_str()), (Some(false), Some("Canceled")), "{done}");
    s3.heal();
    let (status, listing) = s.get(&format!("/admin/backup/sets?location={location}"));
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["Chains"].as_array().map(Vec::len), Some(0), "a canceled backup left a set: {listing}");
    // The slot is free, and the next backup leaves only its own set.
    let done = s.backup(base, &location, false);
    let set_id = done["SetId"].as_str().expect("set id");
    assert!(s3.keys("dead/").iter().all(|k| k.starts_with(&format!("dead/{set_id}/"))), "{:?}", s3.keys("dead/"));
}

#[test]
fn storage_problems_and_bad_locations_are_refused_before_the_job() {
    let s3 = S3Server::start("rookery-refusals");
    let s = server_for(&s3, &[]);
    let base = "/databases/Shop";
    s.create_db("Shop");
    s.put_doc(base, "orders/1", json!({}));
    let refused = |body: Value| -> (u16, String, String) {
        let (status, answer) = s.post(&format!("{base}/admin/backup"), body);
        (status, answer["Error"].as_str().unwrap_or("").to_string(), answer["Message"].as_str().unwrap_or("").to_string())
    };

    // A location the rules refuse: outside the roots, '..', a bucket name S3 refuses.
    for bad in ["s3://another-bucket/x", "s3://rookery-refusals/a/../b", "s3://BAD/x", "s3://rookery-refusals/a//b"] {
        let (status, code, message) = refused(json!({"BackupLocation": bad}));
        assert_eq!((status, code.as_str()), (400, "InvalidBackupLocation"), "{bad}: {message}");
    }
    // Another endpoint than the server's never gets the server's credentials:
    // without its own, the request is refused before anything is sent.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (status, code, message) = refused(json!({"BackupLocation": "s3://rookery-refusals/x", "S3": {"Endpoint": dead}}));
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"), "{message}");
    assert!(message.contains("AccessKeyId"), "{message}");
    // The storage's own answers, before any job: a missing bucket, a dead endpoint.
    let own = |endpoint: &str| json!({"Endpoint": endpoint, "AccessKeyId": "own-key", "SecretAccessKey": "own-secret-value"});
    let (status, code, message) = refused(json!({"BackupLocation": "s3://rookery-refusals/x", "S3": own(&dead)}));
    assert_eq!((status, code.as_str()), (400, "BackupStorageError"), "{message}");
    let missing = S3Server::start("rookery-present");
    let (status, code, message) = refused(json!({"BackupLocation": "s3://rookery-refusals/x", "S3": own(&missing.endpoint)}));
    assert_eq!((status, code.as_str()), (400, "BackupStorageError"), "{message}");
    assert!(message.contains("NoSuchBucket"), "the storage's code: {message}");
    // Refused credentials: a server that checks them.
    let strict = S3Server::start_with("rookery-refusals", &[("INITIAL_NO_AUTH_ACTION_COUNT", "1")]);
    let (status, code, message) = refused(json!({
        "BackupLocation": "s3://rookery-refusals/x",
        "S3": {"Endpoint": strict.endpoint, "AccessKeyId": "nobody", "SecretAccessKey": "wrong-secret-value"}
    }));
    assert_eq!((status, code.as_str()), (400, "BackupStorageError"), "{message}");
    assert!(message.contains("InvalidAccessKeyId") || message.contains("403"), "the storage's answer: {message}");
    assert!(!message.contains("wrong-secret-value"));
    // A restore and a listing say the same.
    let (status, answer) = s.post("/admin/restore", json!({"BackupLocation": "s3://rookery-refusals/x", "S3": own(&missing.endpoint)}));
    assert_eq!((status, answer["Error"].as_str()), (400, Some("BackupStorageError")), "{answer}");
    // Nothing was written where the storage works.
    assert!(s3.keys("").is_empty());

    // A server without an s3:// root refuses every object storage location.
    let plain = TestServer::start();
    let (status, answer) = plain.post("/admin/backup", json!({"BackupLocation": "s3://rookery-refusals/x"}));
    assert_eq!((status, answer["Error"].as_str()), (400, Some("InvalidBackupLocation")), "{answer}");
}

#[test]
fn retention_and_tasks_work_on_object_storage() {
    let s3 = S3Server::start("rookery-retention");
    let s = server_for(&s3, &[]);
    let base = "/databases/Shop";
    s.create_db("Shop");
    let location = s3.url("kept");
    let mut ids = Vec::new();
    for round in 0..3 {
        s.put_doc(base, &format!("orders/{round}"), json!({}));
        ids.push(s.backup(base, &location, false)["SetId"].as_str().expect("id").to_string());
    }
    let (status, outcome) = s.post(&format!("{base}/admin/backup/retention?location={location}"), json!({"Retention": {"KeepLast": 1}}));
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["Kept"], json!([ids[2]]));
    let keys = s3.keys("kept/");
    assert!(!keys.is_empty() && keys.iter().all(|k| k.starts_with(&format!("kept/{}/", ids[2]))), "{keys:?}");

    // A backup task into object storage, run now, with its retention.
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * *", "Retention": {"KeepLast": 1}});
    let (status, body) = s.put(&format!("{base}/admin/backup/tasks/offsite"), task);
    assert_eq!(status, 201, "{body}");
    let (status, body) = s.post(&format!("{base}/admin/backup/tasks/offsite/run"), json!({}));
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = loop {
        let (_, task) = s.get(&format!("{base}/admin/backup/tasks/offsite"));
        if task["Status"]["IsRunning"] == false && task["Status"]["LastSetId"].is_string() {
            break task["Status"]["LastSetId"].as_str().expect("id").to_string();
        }
        assert!(Instant::now() < deadline, "the task did not run: {task}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Retention ran after the task's backup: only its set is left.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let keys = s3.keys("kept/");
        if !keys.is_empty() && keys.iter().all(|k| k.starts_with(&format!("kept/{last}/"))) {
            break;
        }
        assert!(Instant::now() < deadline, "retention left {keys:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_encrypted_chain_in_object_storage_compacts_and_stays_encrypted() {
    let s3 = S3Server::start("rookery-compact");
    let s = server_for(&s3, &[]);
    let base = "/databases/Vault";
    let (status, _) = s.put("/admin/databases/Vault", json!({"Encrypted": true}));
    assert_eq!(status, 201);
    let location = s3.url("vault");
    let passphrase = "correct horse battery staple";
    let mut ids = Vec::new();
    for round in 0..3 {
        for i in 0..20 {
            s.put_doc(base, &format!("secrets/{i}"), json!({"Round": round, "Pin": i}));
        }
        if round > 0 {
            assert_eq!(s.delete(&format!("{base}/docs/secrets/{round}")).0, 204);
        }
        let (status, body) = s.post(
            &format!("{base}/admin/backup?incremental={}", round > 0),
            json!({"BackupLocation": location, "BackupPassphrase": passphrase}),
        );
        assert_eq!(status, 202, "{body}");
        let done = s.wait_for_job(base, "Raven/Backup/Status");
        assert_eq!(done["Success"], true, "{done}");
        ids.push(done["SetId"].as_str().expect("id").to_string());
    }
    let expected = s.all_docs(base);

    let (status, body) = s.post("/admin/backup/compact", json!({"BackupLocation": location}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidEncryptionKey")), "the chain's key is needed: {body}");
    let (status, body) = s.post("/admin/backup/compact", json!({"BackupLocation": location, "BackupPassphrase": passphrase}));
    assert_eq!(status, 202, "{body}");
    let done = s.wait_for_job("", "Raven/Compact/Status");
    assert_eq!(done["Success"], true, "{done}");
    let compacted = done["SetId"].as_str().expect("id").to_string();
    let manifest: Value = serde_json::from_slice(&s3.get(&format!("vault/{compacted}/manifest.json"))).expect("json");
    assert_eq!(manifest["CompactedFrom"], json!(ids));
    assert!(manifest["Encryption"]["Set"].is_object() && manifest["Mac"].is_string(), "still encrypted: {manifest}");
    assert!(manifest["Encryption"]["Database"]["SealedKey"].is_string(), "the database key travels sealed: {manifest}");

    let (code, _) = s.refused_restore(json!({"BackupLocation": location, "DatabaseName": "NoKey", "RestoreUpTo": compacted}));
    assert_eq!(code, "EncryptionKeyRequired");
    let done = s.restore(
        json!({"BackupLocation": location, "DatabaseName": "VaultCopy", "RestoreUpTo": compacted, "BackupPassphrase": passphrase}),
    );
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/VaultCopy") == expected);
}

#[test]
fn a_continuous_task_ships_changes_within_its_lag_and_asks_nothing_of_the_storage_when_idle() {
    let s3 = S3Server::start("rookery-continuous");
    let s = server_for(&s3, &[]);
    let base = "/databases/Live";
    s.create_db("Live");
    let location = s3.url("live");
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * 0", "Continuous": {"MaxLagSeconds": 1}});
    let (status, body) = s.put(&format!("{base}/admin/backup/tasks/live"), task);
    assert_eq!(status, 201, "{body}");
    let status_of = || s.get(&format!("{base}/admin/backup/tasks/live")).1["Status"].clone();
    let shipped_up_to = |etag: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let st = status_of();
            if st["LastShippedEtag"].as_u64() >= Some(etag) && st["IsRunning"] == false {
                return st;
            }
            assert!(Instant::now() < deadline, "etag {etag} was not shipped: {st}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // A burst of writes for three seconds: shipped as it goes, at most one set a second.
    let started = Instant::now();
    let mut last = 0;
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(3) {
        last = s.put_doc(base, &format!("events/{i}"), json!({"i": i}));
        i += 1;
    }
    let st = shipped_up_to(last);
    let elapsed = started.elapsed().as_secs();
    let (_, listing) = s.get(&format!("/admin/backup/sets?location={location}&verify=false"));
    let sets = listing["Chains"][0]["Sets"].as_array().map_or(0, Vec::len) as u64;
    assert!(sets >= 2 && sets <= elapsed + 2, "{sets} sets in {elapsed} s: {listing}");
    assert_eq!(st["LagSeconds"].as_f64(), Some(0.0), "{st}");

    // Idle: no set, and not one byte to the storage.
    let before = (s3.request_bytes(), s3.keys("live/").len());
    let idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(3) {
        let st = status_of();
        assert_eq!(st["IsRunning"], false, "a run while idle: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!((s3.request_bytes(), s3.keys("live/").len()), before, "the idle database asked something of the storage");

    // One more change is shipped within the lag, and the location restores to the database.
    let etag = s.put_doc(base, "events/last", json!({"last": true}));
    let changed = Instant::now();
    shipped_up_to(etag);
    assert!(changed.elapsed() < Duration::from_secs(5), "shipped after {:?}", changed.elapsed());
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "LiveCopy"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/LiveCopy") == s.all_docs(base));
}

#[test]
fn a_continuous_task_loses_at_most_its_lag_when_the_server_is_killed() {
    let s3 = S3Server::start("rookery-rpo");
    let mut s = server_for(&s3, &[]);
    let base = "/databases/Orders";
    s.create_db("Orders");
    let location = s3.url("continuous");
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * 0", "Continuous": {"MaxLagSeconds": 1}});
    let (status, body) = s.put(&format!("{base}/admin/backup/tasks/live"), task);
    assert_eq!(status, 201, "{body}");
    // Writes until a moment that is not a round number of lags, then kill -9.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let run_for = Duration::from_millis(2500 + u64::from(nanos % 2000));
    let started = Instant::now();
    let mut acknowledged = Vec::new();
    let mut i = 0;
    while started.elapsed() < run_for {
        s.put_doc(base, &format!("orders/{i:06}"), json!({"i": i}));
        acknowledged.push((format!("orders/{i:06}"), Instant::now()));
        i += 1;
    }
    let killed = Instant::now();
    s.kill9();
    let env: Vec<(&str, String)> = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.restart_with(&env);
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Recovered"}));
    assert_eq!(done["Success"], true, "{done}");
    let recovered = s.all_docs("/databases/Recovered");
    // The promise: MaxLagSeconds, plus one second for the set that ships it.
    let horizon = Duration::from_secs(2);
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|(_, at)| killed.duration_since(*at) > horizon)
        .map(|(id, _)| id)
        .filter(|id| !recovered.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} writes acknowledged more than {horizon:?} before the kill are missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(recovered.len() < acknowledged.len() + 1);
}

#[test]
fn restore_drills_prove_a_good_location_and_name_the_damaged_file() {
    let s3 = S3Server::start("rookery-drills");
    let s = server_for(&s3, &[]);
    let base = "/databases/Drilled";
    s.create_db("Drilled");
    for i in 0..40 {
        s.put_doc(base, &format!("orders/{i}"), json!({"n": i}));
    }
    let location = s3.url("drilled");
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * 0", "Drill": {"Frequency": "* * * * * *"}});
    let (status, body) = s.put(&format!("{base}/admin/backup/tasks/proven"), task);
    assert_eq!(status, 201, "{body}");
    let (status, _) = s.post(&format!("{base}/admin/backup/tasks/proven/run"), json!({}));
    assert_eq!(status, 202);
    let drill_after = |previous: Option<String>, success: bool| -> Value {
        for _ in 0..300 {
            let (_, task) = s.get(&format!("{base}/admin/backup/tasks/proven"));
            let last = &task["Status"]["LastDrill"];
            if last["Success"] == success && last["SetId"].is_string() && last["At"].as_str().map(str::to_string) != previous {
                return last.clone();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no drill with Success {success}");
    };
    let good = drill_after(None, true);
    let set_id = good["SetId"].as_str().expect("id").to_string();
    assert!(s3.keys("drilled/").iter().all(|k| k.starts_with(&format!("drilled/{set_id}/"))));
    assert!(good["Error"].is_null(), "{good}");
    // A drill leaves no files and no database. The task drills every
    // second, so the next drill's folder may exist at any look: a drill
    // that left its folder behind would leave one at every look.
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(&s.data_dir)
            .expect("data dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(".drill-"))
            .collect()
    };
    let mut left = leftovers();
    for _ in 0..3000 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        left = leftovers();
    }
    assert!(left.is_empty(), "{left:?}");
    let (_, list) = s.get("/databases");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    // One damaged byte: the next drill fails and names the file.
    let key = format!("drilled/{set_id}/documents-0001.zst");
    let mut bytes = s3.get(&key);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    s3.put(&key, &bytes);
    let bad = drill_after(good["At"].as_str().map(str::to_string), false);
    let error = bad["Error"].as_str().expect("an error");
    assert!(error.contains(&format!("{set_id}/documents-0001.zst")), "{bad}");
}

/// Requests of `operation` the server has sent to object storage.
fn requests_of(s: &TestServer, operation: &str) -> u64 {
    let (_, text) = s.call_raw("GET", "/metrics", None, &[]);
    let label = format!("rookery_object_storage_requests_total{{operation=\"{operation}\"}}");
    text.lines().find_map(|l| l.strip_prefix(&label)).and_then(|v| v.trim().parse::<f64>().ok()).map_or(0, |v| v as u64)
}

#[test]
fn a_file_of_up_to_16_mib_goes_up_in_one_put_and_a_larger_one_in_parts_of_8_mib() {
    let s3 = S3Server::start("rookery-parts");
    let s = server_for(&s3, &[]);
    let base = "/databases/Parts";
    s.create_db("Parts");
    put_bulky(&s, base, 0..600);
    let full = s.backup(base, &s3.url("one-put"), false);
    let set_id = full["SetId"].as_str().expect("set id");
    let documents = s3.get(&format!("one-put/{set_id}/documents-0001.zst"));
    assert!((9 << 20..16 << 20).contains(&documents.len()), "a documents file of 9 to 16 MiB: {} bytes", documents.len());
    assert_eq!(requests_of(&s, "create_multipart"), 0, "a file under 16 MiB went up in parts");
    assert_eq!(requests_of(&s, "upload_part"), 0);

    put_bulky(&s, base, 600..1300);
    let full = s.backup(base, &s3.url("parts"), false);
    let set_id = full["SetId"].as_str().expect("set id");
    let documents = s3.get(&format!("parts/{set_id}/documents-0001.zst"));
    assert!(documents.len() > 16 << 20, "a documents file over 16 MiB: {} bytes", documents.len());
    let parts = documents.len().div_ceil(8 << 20) as u64;
    assert_eq!(requests_of(&s, "create_multipart"), 1, "only the documents file is over 16 MiB");
    assert_eq!(requests_of(&s, "upload_part"), parts, "parts of 8 MiB");
    assert_eq!(requests_of(&s, "complete_multipart"), 1);
    let done = s.restore(json!({"BackupLocation": s3.url("parts"), "DatabaseName": "PartsBack"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/PartsBack") == s.all_docs(base), "the restored database differs");

    // The documents file longer in the storage than its manifest says:
    // refused as a changed file, as one with a byte changed past its first 8 MiB.
    let key = format!("parts/{set_id}/documents-0001.zst");
    let mut longer = documents.clone();
    longer.extend_from_slice(b"appended");
    s3.put(&key, &longer);
    let (code, message) = s.refused_restore(json!({"BackupLocation": s3.url("parts"), "DatabaseName": "Longer"}));
    assert_eq!(code, "ChecksumMismatch", "{message}");
    assert!(message.contains("documents-0001.zst"), "{message}");
    let mut changed = documents.clone();
    changed[(8 << 20) + 12345] ^= 0x40;
    s3.put(&key, &changed);
    let (code, message) = s.refused_restore(json!({"BackupLocation": s3.url("parts"), "DatabaseName": "Changed"}));
    assert_eq!(code, "ChecksumMismatch", "{message}");
    assert!(message.contains("documents-0001.zst"), "{message}");
}

/// Waits until no multipart upload is left open in the bucket (an abort is
/// sent without waiting for it); the keys still open after 60 s otherwise.
fn wait_no_open_uploads(s3: &S3Server) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = s3.multipart_uploads();
        if open.is_empty() || Instant::now() > deadline {
            return open;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_canceled_or_failed_upload_of_many_parts_leaves_no_multipart_upload_open() {
    let s3 = S3Server::start("rookery-multipart");
    let s = server_for(&s3, &[("ROOKERY_FAILPOINTS", "backup.document=sleep:5")]);
    let base = "/databases/Big";
    s.create_db("Big");
    put_bulky(&s, base, 0..1300);
    let location = s3.url("big");
    // Cancel in the middle of a documents file of several 8 MiB parts.
    let (status, body) = s.post(&format!("{base}/admin/backup"), json!({"BackupLocation": location}));
    assert_eq!(status, 202, "{body}");
    let mut started = false;
    for _ in 0..600 {
        if !s3.multipart_uploads().is_empty() {
            started = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started, "the documents file went up as a multipart upload");
    assert_eq!(s.post(&format!("{base}/admin/backup/cancel"), json!({})).0, 202);
    let done = s.wait_for_job(base, "Raven/Backup/Status");
    assert_eq!(done["ErrorCode"], "Canceled", "{done}");
    assert_eq!(wait_no_open_uploads(&s3), Vec::<String>::new(), "a canceled backup left a multipart upload open");
    assert!(s3.keys("big/").iter().all(|k| !k.ends_with("manifest.json")), "no complete set");
    drop(s);

    // A backup that fails while its parts go up: the upload is aborted too.
    let s = server_for(&s3, &[("ROOKERY_FAILPOINTS", "backup.write=enospc")]);
    s.create_db("Big");
    put_bulky(&s, base, 0..1300);
    let (status, body) = s.post(&format!("{base}/admin/backup"), json!({"BackupLocation": s3.url("failed")}));
    assert_eq!(status, 202, "{body}");
    let done = s.wait_for_job(base, "Raven/Backup/Status");
    assert_eq!(done["Success"], false, "{done}");
    assert_eq!(wait_no_open_uploads(&s3), Vec::<String>::new(), "a failed backup left a multipart upload open");
}

/// A server with `failpoints` armed and a database `name` with one document,
/// backed up in full into the prefix `name` in lower case: the server, the
/// database's path and the location.
fn full_set_in(s3: &S3Server, name: &str, failpoints: &str) -> (TestServer, String, String) {
    let s = server_for(s3, &[("ROOKERY_FAILPOINTS", failpoints)]);
    let base = format!("/databases/{name}");
    s.create_db(name);
    let location = s3.url(&name.to_lowercase());
    s.put_doc(&base, "changes/0", json!({"Change": 0}));
    s.backup(&base, &location, false);
    (s, base, location)
}

/// An incremental and the requests it sent to object storage.
fn incremental_counted(s: &TestServer, base: &str, location: &str, change: u64) -> (String, u64) {
    s.put_doc(base, &format!("changes/{change}"), json!({"Change": change}));
    let before = s.storage_requests();
    let done = s.backup(base, location, true);
    let set_id = done["SetId"].as_str().expect("a set id").to_string();
    (set_id, s.storage_requests() - before)
}

#[test]
fn an_incremental_asks_the_storage_as_much_at_the_end_of_a_long_chain_as_near_its_start() {
    let s3 = S3Server::start("rookery-long-chain");
    // Nothing remembered is due to be read again within this test.
    let (s, base, location) = full_set_in(&s3, "Long", "backup.recheck_after_seconds=value:100000");
    let base = base.as_str();
    incremental_counted(&s, base, &location, 1);
    let (second, near_start) = incremental_counted(&s, base, &location, 2);
    assert!(second.ends_with("-incremental"), "{second}");
    for change in 3..30 {
        incremental_counted(&s, base, &location, change);
    }
    let (last, at_the_end) = incremental_counted(&s, base, &location, 30);
    assert!(last.ends_with("-incremental"), "the chain went on: {last}");
    assert_eq!(at_the_end, near_start, "requests of the 3rd and of the 31st set of a chain");
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "LongBack"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/LongBack") == s.all_docs(base), "the restored database differs");
}

#[test]
fn damage_behind_the_tip_of_a_remembered_chain_is_found_when_its_sets_are_read_again() {
    let s3 = S3Server::start("rookery-remembered");
    // Every remembered set is due to be read again at once (by default after a minute).
    let (s, base, location) = full_set_in(&s3, "Kept", "backup.recheck_after_seconds=value:0");
    let base = base.as_str();
    let (first, _) = incremental_counted(&s, base, &location, 1);
    let (second, _) = incremental_counted(&s, base, &location, 2);
    assert!(second.ends_with("-incremental"), "{second}");

    // The first incremental, behind the tip, loses a file.
    s3.delete(&format!("kept/{first}/documents-0001.zst"));
    let (next, _) = incremental_counted(&s, base, &location, 3);
    assert!(next.ends_with("-full"), "a chain with a missing file was extended: {next}");
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "KeptBack"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/KeptBack") == s.all_docs(base), "the restored database differs");
}
