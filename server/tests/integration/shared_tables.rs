//! Snapshot sets in object storage share their tables: each table is stored
//! once for the location (`tables/<sha256>`), so a second snapshot uploads
//! only what changed. The acceptance figure: 200,000 documents, 1% of them
//! changed, the second snapshot uploads at most 0.1 of the first's bytes
//! (counted on the wire, by the relay in front of the S3 server). Retention
//! removes a table only when no set names it; the second set still restores
//! and verifies; a manifest that points outside `tables/` is refused.

use std::process::Command;

use serde_json::{json, Value};

use crate::common::s3::S3Server;
use crate::common::{backup_bin, TestServer};

const BASE: &str = "/databases/Big";
const DOCUMENTS: u64 = 200_000;

/// A dump of `range`, each document marked with `round` (an import writes each).
fn dump(range: std::ops::Range<u64>, round: u64) -> String {
    let mut text =
        String::from("{\"FormatVersion\":1,\"ServerVersion\":\"t\",\"Database\":\"Big\",\"Exported\":\"2026-12-03T00:00:00Z\"}\n");
    let count = range.end - range.start;
    for i in range {
        let line =
            json!({"Id": format!("items/{i}"), "Document": {"Item": i, "Round": round, "Text": format!("item {i} of a larger catalogue")}});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    text.push_str(&format!("{{\"EndOfDump\":true,\"DocumentCount\":{count}}}\n"));
    text
}

fn import(s: &TestServer, text: String) {
    let (status, body) = s.call_raw("POST", &format!("{BASE}/smuggler/import?overwrite=true"), Some(text), &[]);
    assert!((200..300).contains(&status), "{status} {body}");
    let done = s.wait_for_job(BASE, "Raven/Smuggler/Status");
    assert_eq!(done["Success"], true, "{done}");
}

/// A snapshot into `location` and the bytes the server sent to the storage for it.
fn snapshot(s: &TestServer, s3: &S3Server, location: &str) -> (String, u64) {
    let before = s3.request_bytes().0;
    let (status, answer) = s.post(&format!("{BASE}/admin/backup?wait=true"), json!({"BackupLocation": location, "BackupType": "Snapshot"}));
    assert_eq!(status, 200, "{answer}");
    (answer["SetId"].as_str().expect("set").to_string(), s3.request_bytes().0 - before)
}

fn manifest(s3: &S3Server, prefix: &str, set_id: &str) -> Value {
    serde_json::from_slice(&s3.get(&format!("{prefix}/{set_id}/manifest.json"))).expect("a manifest")
}

fn shared(manifest: &Value) -> Vec<String> {
    let files = manifest["Files"].as_array().expect("files");
    files.iter().filter(|f| f["Shared"] == true).map(|f| f["Sha256"].as_str().expect("sha").to_string()).collect()
}

#[test]
fn a_second_snapshot_uploads_what_changed_and_retention_keeps_every_table_a_set_names() {
    let s3 = S3Server::start("rookery-shared");
    let env: Vec<(&str, String)> = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tmp_root = std::env::temp_dir().display().to_string();
    let s = TestServer::start_full(&env, &["--backup-root", &s3.url(""), "--backup-root", &tmp_root, "--unfinished-set-grace", "0s"]);
    s.create_db("Big");
    import(&s, dump(0..DOCUMENTS, 0));
    let location = s3.url("big");

    let (first, first_bytes) = snapshot(&s, &s3, &location);
    // 1% of the documents change.
    import(&s, dump(0..DOCUMENTS / 100, 1));
    let (second, second_bytes) = snapshot(&s, &s3, &location);
    let ratio = second_bytes as f64 / first_bytes as f64;
    println!("figure: second snapshot to S3 / first, {DOCUMENTS} documents, 1% changed: {second_bytes} / {first_bytes} bytes = {ratio:.3}");
    assert!(ratio <= 0.1, "the second snapshot sent {second_bytes} bytes, the first {first_bytes}: {ratio:.3} > 0.1");

    // The tables are in `tables/`, once; the sets hold the rest.
    let (one, two) = (manifest(&s3, "big", &first), manifest(&s3, "big", &second));
    let (one_tables, two_tables) = (shared(&one), shared(&two));
    assert!(!one_tables.is_empty() && !two_tables.is_empty(), "{one}");
    assert!(two_tables.iter().any(|t| one_tables.contains(t)), "the second set names tables of the first");
    for sha in one_tables.iter().chain(&two_tables) {
        assert_eq!(s3.keys(&format!("big/tables/{sha}")).len(), 1, "{sha} is stored once");
    }
    assert!(s3.keys(&format!("big/{first}/")).iter().all(|k| !k.contains("/tables/")), "no table inside the set");

    // A file under `tables/` that no set ever named (another writer's, or a
    // crashed upload's) is not the server's to remove, whatever its name.
    let foreign = "f".repeat(64);
    s3.put(&format!("big/tables/{foreign}"), b"not a table of any set");
    // Retention: the first set goes, with the tables only it named.
    let (status, outcome) =
        s.post(&format!("{BASE}/admin/backup/retention?location={location}&dryRun=false"), json!({"Retention": {"KeepLast": 1}}));
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["Deleted"], json!([first]), "{outcome}");
    let left: Vec<String> = s3.keys("big/tables/").iter().map(|k| k.rsplit('/').next().expect("name").to_string()).collect();
    let mut expected = two_tables.clone();
    expected.push(foreign);
    expected.sort();
    expected.dedup();
    assert_eq!(left, expected, "exactly the tables the remaining set names, and the file no set named");

    // The second set still verifies and restores, equal.
    let out = Command::new(backup_bin())
        .args([format!("--dest={location}"), "--verify".into()])
        .envs(env.iter().copied())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let (status, done) = s.post("/admin/restore?wait=true", json!({"BackupLocation": location, "DatabaseName": "Restored"}));
    assert_eq!(status, 200, "{done}");
    let (_, changed) = s.get("/databases/Restored/docs/items/7");
    assert_eq!(changed["Round"], 1, "{changed}");
    let (_, kept) = s.get(&format!("/databases/Restored/docs/items/{}", DOCUMENTS - 1));
    assert_eq!(kept["Round"], 0, "{kept}");
    let (_, stats) = s.get("/databases/Restored/docs?pageSize=1");
    assert!(stats.to_string().contains("items/"), "{stats}");

    // A forged manifest naming a table outside `tables/` is refused, and
    // changes nothing.
    let mut forged = two.clone();
    let forged_id = "20261231T235959Z-snapshot".to_string();
    forged["SetId"] = json!(forged_id);
    let file = forged["Files"].as_array_mut().expect("files").iter_mut().find(|f| f["Shared"] == true).expect("a shared file");
    file["Sha256"] = json!("../../rookery-shared-other/stolen");
    for key in s3.keys(&format!("big/{second}/")) {
        let name = key.rsplit_once(&format!("{second}/")).expect("inside").1.to_string();
        if name != "manifest.json" {
            s3.put(&format!("big/{forged_id}/{name}"), &s3.get(&key));
        }
    }
    s3.put(&format!("big/{forged_id}/manifest.json"), forged.to_string().as_bytes());
    let (status, refused) =
        s.post("/admin/restore?wait=true", json!({"BackupLocation": location, "DatabaseName": "Forged", "RestoreUpTo": forged_id}));
    assert_eq!(status, 404, "the forged set is no set: {refused}");
    let (_, listing) = s.get(&format!("/admin/backup/sets?location={location}&verify=false"));
    let problems = listing["Problems"].to_string();
    assert!(problems.contains(&forged_id) && problems.contains("shared under"), "{listing}");
    assert_eq!(s.get("/databases/Forged/docs?pageSize=1").0, 404, "no database was made");
}
