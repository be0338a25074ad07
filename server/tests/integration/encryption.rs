//! Encrypted databases: nothing readable at rest, the key in backups unless
//! left out, and restores that need the right key.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{set_dirs, TestServer};

const MARKER: &str = "TOPSECRET-payload";

/// Every file under `dir` (recursively) that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return hits };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if let Ok(bytes) = std::fs::read(&p) {
            let plain = zstd::decode_all(&bytes[..]).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle) || plain.windows(needle.len()).any(|w| w == needle) {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

fn create_encrypted(s: &TestServer, name: &str) -> String {
    let (status, body) = s.put(&format!("/admin/databases/{name}"), json!({"Encrypted": true}));
    assert_eq!(status, 201, "{body}");
    let key = body["EncryptionKey"].as_str().expect("the key, once").to_string();
    assert_eq!(base64_len(&key), 32);
    key
}

fn base64_len(text: &str) -> usize {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).map(|b| b.len()).unwrap_or(0)
}

fn seed(s: &TestServer, db: &str) {
    for i in 0..60 {
        s.put_doc(&format!("/databases/{db}"), &format!("secrets/{i}"), json!({"Value": format!("{MARKER}-{i}"), "n": i}));
    }
}

#[test]
fn an_encrypted_database_keeps_no_plain_text_on_disk() {
    let mut s = TestServer::start();
    create_encrypted(&s, "Vault");
    seed(&s, "Vault");
    s.delete("/databases/Vault/docs/secrets/3");
    assert_eq!(s.get("/databases/Vault/docs/secrets/7").1["Value"], format!("{MARKER}-7"));
    let (_, list) = s.get("/databases");
    assert_eq!(list[0]["Encrypted"], true);
    let master = s.dir.path().join("rookery-master.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&master).expect("the master key file").permissions().mode() & 0o777, 0o600);
    // Journals included: stop the server (it flushes) and look at every byte.
    s.stop();
    let hits = files_containing(&s.data_dir, MARKER.as_bytes());
    assert!(hits.is_empty(), "plain text found in {hits:?}");
    // Ids stay readable (listing by prefix works), bodies come back after a restart.
    s.restart();
    assert_eq!(s.get("/databases/Vault/docs/secrets/7").1["Value"], format!("{MARKER}-7"));
    let (_, page) = s.get("/databases/Vault/docs?startsWith=secrets/1&pageSize=100");
    assert_eq!(page["TotalResults"], 11);
    // Export is plain by design (a portable format).
    let (status, _) = s.call_raw("GET", "/databases/Vault/smuggler/export", None, &[]);
    assert_eq!(status, 200);
}

#[test]
fn a_backup_carries_the_key_by_default_and_restores_on_another_server() {
    let s = TestServer::start();
    create_encrypted(&s, "Vault");
    seed(&s, "Vault");
    let location = s.location("vault-backups");
    let done = s.backup("/databases/Vault", &location, false);
    let warning = done["Messages"].as_array().expect("messages").iter().find(|m| m["Severity"] == "Warning").cloned();
    assert!(warning.is_some_and(|w| w["Message"].as_str().unwrap_or("").contains("plain text")), "{done}");
    let set = Path::new(&location).join(&set_dirs(Path::new(&location))[0]);
    let manifest: Value = serde_json::from_slice(&std::fs::read(set.join("manifest.json")).expect("reads")).expect("json");
    assert!(manifest["Encryption"]["Database"]["Key"].is_string());
    // The documents in the set are still sealed.
    assert!(files_containing(&set, MARKER.as_bytes()).is_empty());

    let root = format!("--backup-root={}", s.dir.path().display());
    let other = TestServer::start_full(&[], &[&root]);
    let restored = other.restore(json!({"BackupLocation": location}));
    assert_eq!(restored["Success"], true, "{restored}");
    assert!(other.all_docs("/databases/Vault") == s.all_docs("/databases/Vault"));
    let (_, list) = other.get("/databases");
    assert_eq!(list[0]["Encrypted"], true);
    let mut other = other;
    other.stop();
    assert!(files_containing(&other.data_dir, MARKER.as_bytes()).is_empty(), "the restored copy is encrypted at rest");
}

#[test]
fn a_backup_without_the_key_needs_the_right_one_to_restore() {
    let s = TestServer::start();
    let key = create_encrypted(&s, "Vault");
    seed(&s, "Vault");
    let location = s.location("keyless");
    let (status, _) = s.post("/databases/Vault/admin/backup", json!({"BackupLocation": location, "IncludeEncryptionKey": false}));
    assert_eq!(status, 202);
    assert_eq!(s.wait_for_job("/databases/Vault", "Raven/Backup/Status")["Success"], true);
    let set = Path::new(&location).join(&set_dirs(Path::new(&location))[0]);
    let manifest = std::fs::read_to_string(set.join("manifest.json")).expect("reads");
    assert!(!manifest.contains(&key), "the key is left out");
    assert!(files_containing(&set, MARKER.as_bytes()).is_empty(), "no plain text in a set without its key");

    let wrong = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    };
    for (request, code) in [
        (json!({"BackupLocation": location, "DatabaseName": "R1"}), "EncryptionKeyRequired"),
        (json!({"BackupLocation": location, "DatabaseName": "R1", "EncryptionKey": wrong}), "InvalidEncryptionKey"),
        (json!({"BackupLocation": location, "DatabaseName": "R1", "EncryptionKey": "not base64!"}), "InvalidEncryptionKey"),
    ] {
        let (status, body) = s.post("/admin/restore", request);
        assert_eq!((status, body["Error"].as_str()), (400, Some(code)), "{body}");
        assert_eq!(s.get("/databases/R1/docs").0, 404, "nothing was created");
    }
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "R1", "EncryptionKey": key}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/R1") == s.all_docs("/databases/Vault"));
}

/// Whether any file of a set shows document content (bodies or ids), raw or decompressed.
fn set_has_plain_text(set: &Path) -> bool {
    !files_containing(set, MARKER.as_bytes()).is_empty() || !files_containing(set, b"secrets/").is_empty()
}

#[test]
fn encrypted_sets_round_trip_with_a_key_or_a_passphrase_and_refuse_wrong_ones() {
    let s = TestServer::start();
    s.create_db("Plain");
    seed(&s, "Plain");
    let raw_key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode([42u8; 32])
    };
    for (label, secret) in
        [("key", json!({"BackupEncryptionKey": raw_key})), ("passphrase", json!({"BackupPassphrase": "correct horse battery"}))]
    {
        let location = s.location(&format!("sealed-{label}"));
        let mut request = secret.clone();
        request["BackupLocation"] = json!(location);
        let (status, body) = s.post("/databases/Plain/admin/backup", request.clone());
        assert_eq!(status, 202, "{body}");
        assert_eq!(s.wait_for_job("/databases/Plain", "Raven/Backup/Status")["Success"], true);
        s.put_doc("/databases/Plain", &format!("after/{label}"), json!({"Value": format!("{MARKER}-after")}));
        let (status, _) = s.post("/databases/Plain/admin/backup?incremental=true", request);
        assert_eq!(status, 202);
        assert_eq!(s.wait_for_job("/databases/Plain", "Raven/Backup/Status")["Success"], true);
        let sets = set_dirs(Path::new(&location));
        for set in &sets {
            let dir = Path::new(&location).join(set);
            assert!(!set_has_plain_text(&dir), "{label}: no document content in an encrypted set");
            let manifest = std::fs::read_to_string(dir.join("manifest.json")).expect("reads");
            assert!(manifest.contains("\"Set\"") && !manifest.contains("correct horse") && !manifest.contains(&raw_key), "{manifest}");
            // Checksums verify without the key.
            let out = std::process::Command::new("sha256sum").arg("-c").arg("SHA256SUMS").current_dir(&dir).output().expect("runs");
            assert!(out.status.success());
        }
        // Missing and wrong secrets are refused before anything is written.
        let name = format!("Sealed{label}");
        let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": name}));
        assert_eq!((status, body["Error"].as_str()), (400, Some("EncryptionKeyRequired")), "{body}");
        let mut wrong = json!({"BackupLocation": location, "DatabaseName": name});
        if label == "key" {
            use base64::Engine as _;
            wrong["BackupEncryptionKey"] = json!(base64::engine::general_purpose::STANDARD.encode([1u8; 32]));
        } else {
            wrong["BackupPassphrase"] = json!("wrong horse");
        }
        let (status, body) = s.post("/admin/restore", wrong);
        assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidEncryptionKey")), "{body}");
        assert_eq!(s.get(&format!("/databases/{name}/docs")).0, 404);
        let mut right = secret.clone();
        right["BackupLocation"] = json!(location);
        right["DatabaseName"] = json!(name);
        let done = s.restore(right);
        assert_eq!(done["Success"], true, "{label}: {done}");
        let mut expected = s.all_docs("/databases/Plain");
        if label == "key" {
            expected.remove("after/passphrase");
        }
        assert!(s.all_docs(&format!("/databases/{name}")) == expected, "{label}: restore differs");
    }
}

#[test]
fn a_tampered_encrypted_chunk_is_detected_and_nothing_is_visible() {
    let s = TestServer::start();
    s.create_db("T");
    seed(&s, "T");
    let location = s.location("tamper");
    let both = json!({"BackupLocation": location, "BackupPassphrase": "pw", "BackupEncryptionKey": "x"});
    let (status, body) = s.post("/databases/T/admin/backup", both.clone());
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidRequest")), "{body}");
    let (status, body) = s.post("/admin/restore", both);
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidRequest")), "{body}");
    let (status, _) = s.post("/databases/T/admin/backup", json!({"BackupLocation": location, "BackupPassphrase": "pw"}));
    assert_eq!(status, 202);
    assert_eq!(s.wait_for_job("/databases/T", "Raven/Backup/Status")["Success"], true);
    let set = Path::new(&location).join(&set_dirs(Path::new(&location))[0]);
    // Change a byte inside the sealed chunk, and make every checksum agree, as
    // an attacker with write access to the bucket could.
    let file = set.join("documents-0001.zst");
    let mut bytes = std::fs::read(&file).expect("reads");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&file, &bytes).expect("writes");
    let sha = |b: &[u8]| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b));
    let manifest_path = set.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).expect("reads")).expect("json");
    for f in manifest["Files"].as_array_mut().expect("files") {
        if f["Name"] == "documents-0001.zst" {
            f["Sha256"] = json!(sha(&bytes));
        }
    }
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("json");
    std::fs::write(&manifest_path, &manifest_bytes).expect("writes");
    let sums: String = manifest["Files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| format!("{}  {}\n", f["Sha256"].as_str().expect("sha"), f["Name"].as_str().expect("name")))
        .chain(std::iter::once(format!("{}  manifest.json\n", sha(&manifest_bytes))))
        .collect();
    std::fs::write(set.join("SHA256SUMS"), sums).expect("writes");

    // Checksums agree; the manifest's MAC under the set key does not (and the
    // chunk would not open): tampering, found before anything is written.
    let (code, message) = s.refused_restore(json!({"BackupLocation": location, "DatabaseName": "T2", "BackupPassphrase": "pw"}));
    assert_eq!(code, "CorruptBackup", "{message}");
    assert!(message.contains("tampered"), "{message}");
    assert!(crate::common::all_entries(&s.data_dir.join("Databases")).iter().all(|e| e == "T"));
}

#[test]
fn an_encrypted_database_in_an_encrypted_set_seals_its_key_with_the_set_key() {
    let s = TestServer::start();
    let key = create_encrypted(&s, "Vault");
    seed(&s, "Vault");
    let location = s.location("double");
    let (status, _) = s.post("/databases/Vault/admin/backup", json!({"BackupLocation": location, "BackupPassphrase": "pw"}));
    assert_eq!(status, 202);
    assert_eq!(s.wait_for_job("/databases/Vault", "Raven/Backup/Status")["Success"], true);
    let set = Path::new(&location).join(&set_dirs(Path::new(&location))[0]);
    let manifest = std::fs::read_to_string(set.join("manifest.json")).expect("reads");
    assert!(manifest.contains("SealedKey") && !manifest.contains(&key), "the database key is sealed: {manifest}");
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Copy", "BackupPassphrase": "pw"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/Copy") == s.all_docs("/databases/Vault"));
}
