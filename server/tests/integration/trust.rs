//! The holes a hostile client, a hostile backup set or an operator's slip
//! could open, each tried against a real server. Every test here failed on
//! the code before its fix.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{set_dirs, TestServer, SERVER_BIN};

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn call_as(s: &TestServer, auth: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, text) = s.call_raw(method, path, body.map(|b| b.to_string()), &[("Authorization", auth)]);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Rewrites `SHA256SUMS` of a set folder so that it agrees with the files it names.
pub(crate) fn reseal_sums(set: &Path, extra: &[(&str, &Path)]) {
    let sums = std::fs::read_to_string(set.join("SHA256SUMS")).expect("sums");
    let mut out = String::new();
    for line in sums.lines() {
        let (_, name) = line.split_once("  ").expect("a sums line");
        let path = extra.iter().find(|(n, _)| *n == name).map_or_else(|| set.join(name), |(_, p)| p.to_path_buf());
        let bytes = std::fs::read(&path).expect("a listed file");
        out.push_str(&format!("{}  {name}\n", hex::encode(Sha256::digest(&bytes))));
    }
    std::fs::write(set.join("SHA256SUMS"), out).expect("writes sums");
}

/// Edits a set's manifest as JSON and fixes its checksum line.
pub(crate) fn edit_manifest(set: &Path, edit: impl FnOnce(&mut Value)) {
    let path = set.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("json");
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).expect("json")).expect("writes");
    reseal_sums(set, &[]);
}

// 1. A client wrote a status document that pointed crash recovery at a folder.
#[test]
fn a_forged_status_document_is_refused_and_cannot_delete_a_folder() {
    let mut s = TestServer::start();
    s.create_db("Shop");
    let victim = s.path("x/important");
    std::fs::create_dir_all(&victim).expect("mkdir");
    std::fs::write(victim.join("keep.txt"), b"precious").expect("writes");
    let forged = json!({"IsRunning": true, "BackupLocation": s.location("x"), "SetId": "x/../important"});
    let (status, body) = s.put("/databases/Shop/docs/Raven/Backup/Status", forged.clone());
    assert_eq!((status, body["Error"].as_str()), (403, Some("ReservedDocument")), "{body}");
    for id in ["Raven/Restore/Status", "Raven/Smuggler/Status", "Raven/Anything"] {
        let (status, body) = s.put(&format!("/docs/{id}"), forged.clone());
        assert_eq!((status, body["Error"].as_str()), (403, Some("ReservedDocument")), "{id}: {body}");
    }
    // The server's own status document is readable, never deletable by a client.
    s.backup("/databases/Shop", &s.location("shop-backups"), false);
    let (status, body) = s.delete("/databases/Shop/docs/Raven/Backup/Status");
    assert_eq!((status, body["Error"].as_str()), (403, Some("ReservedDocument")), "{body}");
    assert_eq!(s.get("/databases/Shop/docs/Raven/Backup/Status").1["Success"], true);
    // A crash and a start: recovery does not take paths from documents.
    s.kill9();
    s.restart();
    assert!(victim.join("keep.txt").exists(), "the server deleted a folder a client named");
}

// 1, continued: an import does not write server-owned documents either.
#[test]
fn an_import_skips_server_owned_documents() {
    let s = TestServer::start();
    s.create_db("Target");
    let forged = json!({"IsRunning": true, "BackupLocation": "/srv/x", "SetId": "x/../important"});
    let lines = [
        json!({"FormatVersion": 1, "ServerVersion": "0.1.0", "Database": "Shop", "Exported": "2026-11-26T05:00:00Z"}).to_string(),
        json!({"Id": "orders/1", "Document": {"Total": 1}, "Metadata": null}).to_string(),
        json!({"Id": "Raven/Backup/Status", "Document": forged, "Metadata": null}).to_string(),
        json!({"Id": "Raven/Custom/Thing", "Document": {"Forged": true}, "Metadata": null}).to_string(),
        json!({"EndOfDump": true, "DocumentCount": 1}).to_string(),
    ];
    let (status, text) = s.call_raw("POST", "/databases/Target/smuggler/import", Some(lines.join("\n") + "\n"), &[]);
    assert_eq!(status, 200, "{text}");
    let done = s.wait_for_job("/databases/Target", "Raven/Smuggler/Status");
    assert_eq!(done["Success"], true, "{done}");
    assert_eq!(s.get("/databases/Target/docs/orders/1").0, 200);
    assert_eq!(s.get("/databases/Target/docs/Raven/Backup/Status").0, 404, "an import wrote a server-owned document");
    assert_eq!(s.get("/databases/Target/docs/Raven/Custom/Thing").0, 404, "an import wrote a server-owned document");
}

// 2. /auth/me answered every password guess.
#[test]
fn every_credential_check_counts_toward_the_limit() {
    let s = TestServer::start();
    assert_eq!(s.put("/admin/users/admin", json!({"Password": "right", "Role": "Admin"})).0, 201);
    let wrong = basic("admin", "wrong");
    let mut answers = Vec::new();
    for _ in 0..25 {
        answers.push(s.call_raw("GET", "/auth/me", None, &[("Authorization", &wrong)]).0);
    }
    assert!(answers[20..].iter().all(|&a| a == 429), "/auth/me kept answering guesses: {answers:?}");
    let (status, _) = s.call_raw("GET", "/auth/me", None, &[("Authorization", &basic("admin", "right"))]);
    assert_eq!(status, 429, "the right password was confirmed while the address was blocked");
    let (status, _) = s.call_raw("POST", "/auth/login", Some(json!({"Username": "admin", "Password": "right"}).to_string()), &[]);
    assert_eq!(status, 429);
}

// 3. Deleting the last administrator turned a protected server open.
#[test]
fn the_last_administrator_cannot_be_removed_and_the_server_never_turns_open() {
    let s = TestServer::start();
    assert_eq!(s.put("/admin/users/admin", json!({"Password": "the-admin-password-in-clear", "Role": "Admin"})).0, 201);
    let admin = basic("admin", "the-admin-password-in-clear");
    let (status, body) = call_as(&s, &admin, "DELETE", "/admin/users/admin", None);
    assert_eq!((status, body["Error"].as_str()), (409, Some("LastAdministrator")), "{body}");
    let (status, body) = call_as(&s, &admin, "PUT", "/admin/users/admin", Some(json!({"Password": "pw", "Role": "ReadOnly"})));
    assert_eq!((status, body["Error"].as_str()), (409, Some("LastAdministrator")), "{body}");
    assert_eq!(s.put("/admin/databases/Pwned", json!({})).0, 401);
    // With a second administrator (an API key), the user may go; the key then may not.
    let (status, key) = call_as(&s, &admin, "POST", "/admin/apikeys", Some(json!({"Name": "ops", "Role": "Admin"})));
    assert_eq!(status, 201);
    let key = format!("ApiKey {}", key["ApiKey"].as_str().expect("a key"));
    assert_eq!(call_as(&s, &key, "DELETE", "/admin/users/admin", None).0, 204);
    let (status, body) = call_as(&s, &key, "DELETE", "/admin/apikeys/ops", None);
    assert_eq!((status, body["Error"].as_str()), (409, Some("LastAdministrator")), "{body}");
    let (status, _) = s.put("/admin/databases/Pwned", json!({}));
    assert_eq!(status, 401, "anonymous requests must stay refused");
    assert_eq!(s.get("/auth/me").1["DevelopmentMode"], false);
}

// 3, continued: a changed or deleted user's sessions follow the change at once.
#[test]
fn a_changed_user_s_sessions_follow_the_change() {
    let s = TestServer::start();
    assert_eq!(s.put("/admin/users/admin", json!({"Password": "the-admin-password-in-clear", "Role": "Admin"})).0, 201);
    let admin = basic("admin", "the-admin-password-in-clear");
    assert_eq!(call_as(&s, &admin, "PUT", "/admin/users/writer", Some(json!({"Password": "w", "Role": "ReadWrite"}))).0, 201);
    let login = |user: &str, password: &str| -> (String, String) {
        let url = format!("{}/auth/login", s.url);
        let response = ureq::post(&url).send_json(json!({"Username": user, "Password": password})).expect("signs in");
        let cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").to_string())
            .collect();
        let csrf = cookies.iter().find_map(|c| c.strip_prefix("rookery_csrf=")).expect("csrf").to_string();
        (cookies.join("; "), csrf)
    };
    let (cookie, csrf) = login("writer", "w");
    let put = |n: u32| s.call_raw("PUT", &format!("/docs/notes/{n}"), Some("{}".into()), &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)]).0;
    assert_eq!(put(1), 201);
    assert_eq!(call_as(&s, &admin, "PUT", "/admin/users/writer", Some(json!({"Password": "w", "Role": "ReadOnly"}))).0, 200);
    let after_downgrade = put(2);
    assert!(after_downgrade == 401 || after_downgrade == 403, "a downgraded user's session still writes: {after_downgrade}");
    let (cookie, csrf) = login("writer", "w");
    assert_eq!(s.call_raw("GET", "/docs/notes/1", None, &[("Cookie", &cookie)]).0, 200);
    assert_eq!(call_as(&s, &admin, "DELETE", "/admin/users/writer", None).0, 204);
    assert_eq!(s.call_raw("GET", "/docs/notes/1", None, &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)]).0, 401);
}

// 4. A manifest that names a file outside its set made the restore read it.
#[test]
fn a_manifest_cannot_name_files_outside_its_set() {
    let s = TestServer::start();
    s.create_db("Src");
    for i in 0..20 {
        s.put_doc("/databases/Src", &format!("items/{i}"), json!({"n": i}));
    }
    let location = s.location("hostile");
    s.backup("/databases/Src", &location, false);
    let set = Path::new(&location).join(&set_dirs(Path::new(&location))[0]);
    // Move the data file out of the set and point the manifest at it.
    let outside = s.path("outside.bin");
    std::fs::rename(set.join("documents-0001.zst"), &outside).expect("moves");
    let escape = "../../outside.bin";
    let manifest_path = set.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).expect("m")).expect("json");
    for f in manifest["Files"].as_array_mut().expect("files") {
        if f["Name"] == "documents-0001.zst" {
            f["Name"] = json!(escape);
        }
    }
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).expect("json")).expect("writes");
    let sums = std::fs::read_to_string(set.join("SHA256SUMS")).expect("sums").replace("documents-0001.zst", escape);
    std::fs::write(set.join("SHA256SUMS"), sums).expect("writes");
    reseal_sums(&set, &[(escape, &outside)]);

    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Escaped"}));
    assert_eq!((status, body["Error"].as_str()), (422, Some("CorruptBackup")), "{body}");
    assert_eq!(s.get("/databases/Escaped/docs").0, 404);
    let (status, listing) = s.get(&format!("/admin/backup/sets?location={location}"));
    assert_eq!(status, 200);
    assert!(listing.to_string().contains("outside"), "the listing names the bad file: {listing}");
    // An absolute name is refused the same way.
    edit_manifest(&set, |m| m["Files"][0]["Name"] = json!(outside.display().to_string()));
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Escaped"}));
    assert_eq!((status, body["Error"].as_str()), (422, Some("CorruptBackup")), "{body}");
}

// 5. A system-database backup lost every credential.
#[test]
fn a_system_backup_restores_users_and_api_keys() {
    let mut s = TestServer::start();
    assert_eq!(s.put("/admin/users/admin", json!({"Password": "the-admin-password-in-clear", "Role": "Admin"})).0, 201);
    let admin = basic("admin", "the-admin-password-in-clear");
    let (_, key) = call_as(&s, &admin, "POST", "/admin/apikeys", Some(json!({"Name": "ci", "Role": "ReadOnly"})));
    let key = format!("ApiKey {}", key["ApiKey"].as_str().expect("a key"));
    assert_eq!(call_as(&s, &admin, "PUT", "/docs/config/1", Some(json!({"A": 1}))).0, 201);
    let location = s.location("system-backups");
    let (status, body) =
        call_as(&s, &admin, "POST", "/admin/backup", Some(json!({"BackupLocation": location, "BackupPassphrase": "sys-pass"})));
    assert_eq!(status, 202, "{body}");
    for _ in 0..600 {
        let (_, st) = call_as(&s, &admin, "GET", "/docs/Raven/Backup/Status", None);
        if st["IsRunning"] == false {
            assert_eq!(st["Success"], true, "{st}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // No password in plain text in a set: hashes only. (Read in a set that
    // is not encrypted, decompressed: the credentials file as a reader sees it.)
    let plain = s.location("system-plain");
    let (status, body) = call_as(&s, &admin, "POST", "/admin/backup?wait=true", Some(json!({"BackupLocation": plain})));
    assert_eq!(status, 200, "{body}");
    let credentials = Path::new(&plain).join(body["SetId"].as_str().expect("id")).join("credentials.zst");
    let records = zstd::decode_all(std::fs::File::open(&credentials).expect("the credentials file")).expect("decompresses");
    let contains = |needle: &[u8]| records.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"auth/users/admin") && contains(b"auth/apikeys/ci"), "the credentials are in the set");
    assert!(contains(b"$argon2id$"), "a password hash");
    assert!(!contains(b"the-admin-password-in-clear"), "a password in plain text in {}", credentials.display());
    s.stop();

    let target = s.path("restored-data");
    let restore = |extra: &[&str]| {
        std::process::Command::new(SERVER_BIN)
            .arg(format!("--restore-source={location}"))
            .arg(format!("--restore-destination={}", target.display()))
            .arg("--restore-system-database")
            .args(extra)
            .output()
            .expect("runs")
    };
    let out = restore(&[]);
    assert!(!out.status.success(), "an encrypted set restored without its passphrase");
    let out = restore(&["--restore-backup-passphrase=sys-pass"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.data_dir = target;
    s.restart();
    assert_eq!(s.get("/databases").0, 401, "the restored server runs open");
    assert_eq!(s.get("/auth/me").1["DevelopmentMode"], false);
    assert_eq!(call_as(&s, &admin, "GET", "/docs/config/1", None).0, 200);
    assert_eq!(call_as(&s, &key, "GET", "/docs/config/1", None).0, 200);
    assert_eq!(call_as(&s, &key, "PUT", "/docs/config/2", Some(json!({}))).0, 403);
}

// Restore locations follow the rules of backup locations.
#[test]
fn a_restore_location_must_be_inside_the_data_directory_or_a_database_root() {
    let s = TestServer::start();
    s.create_db("Src");
    s.put_doc("/databases/Src", "a", json!({}));
    let location = s.location("b");
    s.backup("/databases/Src", &location, false);
    let outside = s.location("elsewhere/copy");
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Copy", "DatabaseLocation": outside}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidDatabaseLocation")), "{body}");
    assert!(!Path::new(&outside).exists());
    // Inside a backup root's sets: refused too.
    let inside_backups = format!("{location}/copy");
    let (status, body) =
        s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Copy", "DatabaseLocation": inside_backups}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidDatabaseLocation")), "{body}");
    // Inside the data directory: accepted.
    let inside = s.data_dir.join("Elsewhere/Copy").display().to_string();
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Copy", "DatabaseLocation": inside}));
    assert_eq!(done["Success"], true, "{done}");
}

// A restore's POST answers at once: file hashes are checked in the job.
#[test]
fn a_damaged_data_file_fails_the_restore_job_and_leaves_nothing() {
    let s = TestServer::start();
    s.create_db("Src");
    for i in 0..50 {
        s.put_doc("/databases/Src", &format!("items/{i}"), json!({"n": i}));
    }
    let location = s.location("b");
    s.backup("/databases/Src", &location, false);
    let set = Path::new(&location).join(&set_dirs(Path::new(&location))[0]);
    let data = set.join("documents-0001.zst");
    let mut bytes = std::fs::read(&data).expect("reads");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&data, bytes).expect("writes");
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Copy"}));
    assert_eq!(status, 202, "the POST hashed every file before answering: {body}");
    let done = s.wait_for_job("", "Raven/Restore/Status");
    assert_eq!(done["Success"], false);
    assert_eq!(done["ErrorCode"], "ChecksumMismatch", "{done}");
    assert!(done["Error"].as_str().unwrap_or("").contains("documents-0001.zst"), "{done}");
    assert_eq!(s.get("/databases/Copy/docs").0, 404);
    assert!(!s.data_dir.join("Databases/Copy").exists());
}

// An incremental does not extend a chain it cannot stand on.
#[test]
fn an_incremental_on_a_damaged_or_impossible_chain_is_written_as_a_full() {
    let s = TestServer::start();
    s.create_db("Db");
    for i in 0..10 {
        s.put_doc("/databases/Db", &format!("a/{i}"), json!({"n": i}));
    }
    let location = s.location("chain");
    s.backup("/databases/Db", &location, false);
    let first = Path::new(&location).join(&set_dirs(Path::new(&location))[0]);
    // The base's data file is damaged: an incremental on it would never restore.
    let data = first.join("documents-0001.zst");
    let mut bytes = std::fs::read(&data).expect("reads");
    bytes[10] ^= 1;
    std::fs::write(&data, bytes).expect("writes");
    s.put_doc("/databases/Db", "a/new", json!({}));
    let done = s.backup("/databases/Db", &location, true);
    assert_eq!(done["Incremental"], false, "an incremental was written on a damaged base: {done}");
    let warned = done["Messages"].as_array().expect("messages").iter().any(|m| m["Severity"] == "Warning");
    assert!(warned, "no warning says why: {done}");

    // A base that claims more than the database ever had (ToEtag above its last etag).
    let newest = Path::new(&location).join(done["SetId"].as_str().expect("the full's set id"));
    edit_manifest(&newest, |m| m["ToEtag"] = json!(1_000_000));
    let done = s.backup("/databases/Db", &location, true);
    assert_eq!(done["Incremental"], false, "an incremental was written above the database's last etag: {done}");
}

// Encrypted sets: a file moved from another set of the same key is tampering.
#[test]
fn a_file_swapped_between_encrypted_sets_is_tampering() {
    let s = TestServer::start();
    s.create_db("Db");
    for i in 0..20 {
        s.put_doc("/databases/Db", &format!("a/{i}"), json!({"v": "first"}));
    }
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let first_location = s.location("first");
    let (status, _) = s.post("/databases/Db/admin/backup", json!({"BackupLocation": first_location, "BackupEncryptionKey": key}));
    assert_eq!(status, 202);
    assert_eq!(s.wait_for_job("/databases/Db", "Raven/Backup/Status")["Success"], true);
    for i in 0..20 {
        s.put_doc("/databases/Db", &format!("a/{i}"), json!({"v": "second"}));
    }
    let second_location = s.location("second");
    let (status, _) = s.post("/databases/Db/admin/backup", json!({"BackupLocation": second_location, "BackupEncryptionKey": key}));
    assert_eq!(status, 202);
    assert_eq!(s.wait_for_job("/databases/Db", "Raven/Backup/Status")["Success"], true);
    let first = Path::new(&first_location).join(&set_dirs(Path::new(&first_location))[0]);
    let second = Path::new(&second_location).join(&set_dirs(Path::new(&second_location))[0]);
    // Roll the second set's documents back to the first's, with checksums that agree.
    std::fs::copy(first.join("documents-0001.zst"), second.join("documents-0001.zst")).expect("copies");
    let (size, sha) = {
        let bytes = std::fs::read(second.join("documents-0001.zst")).expect("reads");
        (bytes.len(), hex::encode(Sha256::digest(&bytes)))
    };
    edit_manifest(&second, |m| {
        for f in m["Files"].as_array_mut().expect("files") {
            if f["Name"] == "documents-0001.zst" {
                f["Size"] = json!(size);
                f["Sha256"] = json!(sha);
            }
        }
    });
    let (status, body) =
        s.post("/admin/restore", json!({"BackupLocation": second_location, "DatabaseName": "Rolled", "BackupEncryptionKey": key}));
    let refused_now = status == 422;
    let failed_later = status == 202 && s.wait_for_job("", "Raven/Restore/Status")["Success"] == false;
    assert!(refused_now || failed_later, "a rolled-back encrypted set restored: {status} {body}");
    assert_eq!(s.get("/databases/Rolled/docs").0, 404);
}

// Deletes and jobs: a job's hold comes first; a delete meanwhile is refused.
#[test]
fn a_database_being_exported_cannot_be_deleted_and_is_deleted_after() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "export.document=sleep:1500")]);
    s.create_db("Busy");
    s.put_doc("/databases/Busy", "a", json!({"n": 1}));
    let url = format!("{}/databases/Busy/smuggler/export", s.url);
    let (started, answered) = std::sync::mpsc::channel();
    let export = std::thread::spawn(move || {
        let mut response = ureq::get(&url).call().expect("the export starts");
        started.send(()).expect("signals");
        response.body_mut().read_to_vec().expect("the export ends").len()
    });
    // The answer's headers come once the export holds the database (it then
    // pauses 1.5 s at its document): a delete now is refused.
    answered.recv_timeout(std::time::Duration::from_secs(30)).expect("the export answered");
    let (status, body) = s.delete("/admin/databases/Busy");
    assert_eq!((status, body["Error"].as_str()), (409, Some("DatabaseBusy")), "deleted under a running export: {body}");
    assert!(export.join().expect("joins") > 0);
    let mut deleted = false;
    for _ in 0..200 {
        let (status, _) = s.delete("/admin/databases/Busy");
        if status == 204 {
            deleted = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(deleted, "the database could not be deleted after the export");
    assert!(!s.data_dir.join("Databases/Busy").exists());
}

// A database that failed to open at start can still be deleted.
#[test]
fn a_database_that_failed_to_open_can_be_deleted() {
    let mut s = TestServer::start();
    let (status, _) = s.put("/admin/databases/Vault", json!({"Encrypted": true}));
    assert_eq!(status, 201);
    s.stop();
    // Without its master key the encrypted database cannot be opened.
    std::fs::remove_file(s.dir.path().join("rookery-master.key")).expect("removes the key");
    s.restart();
    assert_eq!(s.get("/databases/Vault/docs").0, 404);
    let (status, body) = s.delete("/admin/databases/Vault");
    assert_eq!(status, 204, "{body}");
    assert!(!s.data_dir.join("Databases/Vault").exists());
    assert_eq!(s.put("/admin/databases/Vault", json!({})).0, 201, "the name is free again");
}

// A chain is encrypted throughout or not at all: a key given for a plain
// chain (a chain put where an encrypted one was expected) is refused, and a
// backup never extends a chain with a set encrypted differently.
#[test]
fn a_plain_chain_is_not_restored_when_a_key_was_given_and_chains_never_mix() {
    let s = TestServer::start();
    s.create_db("Db");
    s.put_doc("/databases/Db", "a", json!({"v": 1}));
    let location = s.location("mixed");
    s.backup("/databases/Db", &location, false);
    let (code, message) =
        s.refused_restore(json!({"BackupLocation": location, "DatabaseName": "X", "BackupPassphrase": "expected-encrypted"}));
    assert_eq!(code, "CorruptBackup", "{message}");
    // An encrypted incremental asked on the plain chain is written as a full, with a warning.
    s.put_doc("/databases/Db", "b", json!({"v": 2}));
    let (status, _) = s.post("/databases/Db/admin/backup?incremental=true", json!({"BackupLocation": location, "BackupPassphrase": "pw"}));
    assert_eq!(status, 202);
    let done = s.wait_for_job("/databases/Db", "Raven/Backup/Status");
    assert_eq!((done["Success"].as_bool(), done["Incremental"].as_bool()), (Some(true), Some(false)), "{done}");
    assert!(done["Messages"].to_string().contains("not encrypted and this backup is"), "{done}");
    let restored = s.restore(json!({"BackupLocation": location, "DatabaseName": "Y", "BackupPassphrase": "pw"}));
    assert_eq!(restored["Success"], true, "{restored}");
}

// A session cookie the server does not know (ended, or from before a
// restart) is not a guess: it must not lock its address out.
#[test]
fn stale_session_cookies_do_not_count_as_failed_sign_ins() {
    let s = TestServer::start_full(&[], &["--max-failed-auth=3"]);
    assert_eq!(s.put("/admin/users/admin", json!({"Password": "pw", "Role": "Admin"})).0, 201);
    for _ in 0..6 {
        let (status, _) = s.call_raw("GET", "/databases", None, &[("Cookie", "rookery_session=stale-from-before-a-restart")]);
        assert_eq!(status, 401);
        assert_eq!(s.call_raw("GET", "/auth/me", None, &[("Cookie", "rookery_session=stale")]).0, 200);
    }
    let (status, _) = s.call_raw("GET", "/databases", None, &[("Authorization", &basic("admin", "pw"))]);
    assert_eq!(status, 200, "a stale cookie locked the address out");
}
