//! Copies of sets between locations against real servers and the real CLI:
//! folder to folder and folder to object storage (moto), resumed after a
//! `kill -9`, run twice (a set copied twice is one set), and refused where
//! it would mix backups or touch what is not its own; the source is never
//! changed, and every copy restores equal.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::s3::S3Server;
use crate::common::{backup_bin, set_dirs, wait_until, TestServer};
use crate::s3::server_for;

const BASE: &str = "/databases/Shop";

/// A full set and two incrementals of Shop in `location`; their ids.
fn chain(s: &TestServer, location: &str) -> Vec<String> {
    s.create_db("Shop");
    let mut ids = Vec::new();
    for round in 0..3u64 {
        for i in 0..400u64 {
            if round == 0 || i % 7 == round {
                s.put_doc(BASE, &format!("orders/{i:04}"), json!({"Order": i, "Round": round, "Note": "n".repeat((i % 50) as usize)}));
            }
        }
        if round == 2 {
            assert_eq!(s.delete(&format!("{BASE}/docs/orders/0003")).0, 204);
        }
        ids.push(s.backup(BASE, location, round > 0)["SetId"].as_str().expect("set id").to_string());
    }
    ids
}

/// Every file under `dir` with the SHA-256 of its bytes (what "unchanged" means).
fn fingerprint(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("reads").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("inside").display().to_string();
                out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&path).expect("reads"))));
            }
        }
    }
    out
}

fn copy(s: &TestServer, body: Value) -> (u16, Value) {
    s.post("/admin/backup/copy?wait=true", body)
}

/// Restores the newest point of `location` as `name` and compares it with Shop.
fn restores_equal(s: &TestServer, location: &str, name: &str) {
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": name}));
    assert_eq!(done["Success"], true, "restore of the copy in {location}: {done}");
    assert_eq!(s.all_docs(&format!("/databases/{name}")), s.all_docs(BASE), "the copy in {location} restores equal");
}

#[test]
fn sets_copy_to_a_folder_and_to_object_storage_once_and_the_source_stays_untouched() {
    let s3 = S3Server::start("rookery-copies");
    let s = server_for(&s3, &[]);
    let source = s.location("primary");
    let ids = chain(&s, &source);
    let before = fingerprint(Path::new(&source));

    // Folder to folder: three sets, bases first; again: nothing to copy.
    let second = s.location("second");
    let (status, done) = copy(&s, json!({"From": source, "To": second}));
    assert_eq!(status, 200, "{done}");
    assert_eq!((done["SetsCopied"].as_u64(), done["SetsPresent"].as_u64()), (Some(3), Some(0)), "{done}");
    assert_eq!((done["CopyFrom"].as_str(), done["BackupLocation"].as_str()), (Some(source.as_str()), Some(second.as_str())));
    assert_eq!(set_dirs(Path::new(&second)), ids);
    let (status, again) = copy(&s, json!({"From": source, "To": second}));
    assert_eq!((status, again["SetsCopied"].as_u64(), again["SetsPresent"].as_u64()), (200, Some(0), Some(3)), "{again}");
    restores_equal(&s, &second, "FromSecond");
    let (_, listed) = s.get(&format!("/admin/backup/sets?location={}&verify=true", second.replace('/', "%2F")));
    assert!(listed["Chains"][0]["Sets"].as_array().expect("sets").iter().all(|set| set["Verified"] == true), "{listed}");

    // Folder to object storage, as a job with its status document.
    let offsite = s3.url("shop/offsite");
    let (status, accepted) = s.post("/admin/backup/copy", json!({"From": source, "To": offsite}));
    assert_eq!((status, &accepted["StatusDocument"]), (202, &json!("Raven/Copy/Status")), "{accepted}");
    let done = s.wait_for_job("", "Raven/Copy/Status");
    assert_eq!((done["Success"].as_bool(), done["SetsCopied"].as_u64()), (Some(true), Some(3)), "{done}");
    assert!(done["Progress"]["BytesWritten"].as_u64() > Some(5_000), "{done}");
    restores_equal(&s, &offsite, "FromOffsite");

    // Up to a point: only that chain, up to it.
    let first_only = s.location("first-only");
    let (status, done) = copy(&s, json!({"From": source, "To": first_only, "UpTo": ids[0]}));
    assert_eq!((status, done["SetsCopied"].as_u64()), (200, Some(1)), "{done}");
    assert_eq!(set_dirs(Path::new(&first_only)), ids[..1]);

    // Refused, and nothing changes: the same location twice, outside the
    // roots, a misspelt field, a destination holding another set under a
    // source's id.
    let (status, body) = copy(&s, json!({"From": source, "To": source}));
    assert_eq!((status, &body["Error"]), (400, &json!("InvalidBackupLocation")), "{body}");
    let (status, body) = copy(&s, json!({"From": source, "To": "/etc/rookery"}));
    assert_eq!((status, &body["Error"]), (400, &json!("InvalidBackupLocation")), "{body}");
    let (status, body) = copy(&s, json!({"From": source, "To": second, "UpT0": ids[0]}));
    assert_eq!((status, &body["Error"]), (400, &json!("InvalidRequest")), "{body}");
    let manifest = Path::new(&second).join(&ids[1]).join("manifest.json");
    let mut forged: Value = serde_json::from_slice(&std::fs::read(&manifest).expect("reads")).expect("json");
    forged["DurationMs"] = json!(forged["DurationMs"].as_u64().unwrap_or(0) + 1);
    std::fs::write(&manifest, serde_json::to_vec_pretty(&forged).expect("json")).expect("writes");
    let mixed = fingerprint(Path::new(&second));
    let (status, body) = copy(&s, json!({"From": source, "To": second}));
    assert_eq!((status, &body["Error"]), (409, &json!("ChainMismatch")), "{body}");
    assert!(body["Message"].as_str().expect("message").contains(&ids[1]), "{body}");
    assert_eq!(fingerprint(Path::new(&second)), mixed, "the destination is unchanged");

    // A damaged source file: the set is not copied; the sets before it are.
    let damaged = s.location("damaged");
    let status = Command::new("cp").arg("-r").arg(&source).arg(&damaged).status().expect("cp");
    assert!(status.success());
    let docs = std::fs::read_dir(Path::new(&damaged).join(&ids[2]))
        .expect("set")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "zst"))
        .expect("a documents file");
    let mut bytes = std::fs::read(&docs).expect("reads");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&docs, bytes).expect("writes");
    let third = s.location("third");
    let (status, body) = copy(&s, json!({"From": damaged, "To": third}));
    assert_eq!((status, &body["Error"]), (422, &json!("ChecksumMismatch")), "{body}");
    assert_eq!(set_dirs(Path::new(&third)), ids[..2], "the sets before the damaged one are complete");
    assert!(!Path::new(&third).join(format!(".tmp-{}", ids[2])).exists(), "the damaged set's files are removed");

    assert_eq!(fingerprint(Path::new(&source)), before, "the source was only read");
}

#[test]
fn an_offline_copy_killed_mid_set_resumes_and_leaves_what_is_not_its_own() {
    let s = TestServer::start();
    let source = s.location("primary");
    let ids = chain(&s, &source);
    let to = s.location("copy");
    let run = |env: &[(&str, &str)]| {
        Command::new(backup_bin())
            .args(["--copy", &format!("--from={source}"), &format!("--to={to}")])
            .envs(env.iter().copied())
            .spawn()
            .expect("runs")
    };

    // Killed in the middle of the first set's first file: nothing complete,
    // a `.tmp-` folder holding the copy's marker and part of the set.
    let mut child = run(&[("ROOKERY_FAILPOINTS", "copy.mid_file=sleep:60000")]);
    let leftover = Path::new(&to).join(format!(".tmp-{}", ids[0]));
    wait_until("the copy is inside its first file", || {
        (leftover.join(".rookery-copy").exists() && std::fs::read_dir(&leftover).ok()?.count() >= 2).then_some(())
    });
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    assert!(set_dirs(Path::new(&to)).is_empty(), "no set looks complete");

    // A `.tmp-` folder without the marker is not the copy's: refused, untouched.
    let foreign = Path::new(&to).join(format!(".tmp-{}", ids[2]));
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("in-use"), b"a backup writing").expect("writes");
    let out = run(&[]).wait_with_output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(foreign.join("in-use").exists(), "the foreign folder is untouched");
    assert_eq!(set_dirs(Path::new(&to)), ids[..2], "the set the killed run left is copied again, and the next");
    std::fs::remove_dir_all(&foreign).expect("the operator clears it");

    // Run again: it resumes, and copies nothing twice.
    let out = Command::new(backup_bin()).args(["--copy", &format!("--from={source}"), &format!("--to={to}")]).output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Copying 1 set") && stdout.contains("2 already there"), "{stdout}");
    assert_eq!(set_dirs(Path::new(&to)), ids);
    assert!(!leftover.exists());
    restores_equal(&s, &to, "Resumed");
    let verify = Command::new(backup_bin()).args([&format!("--dest={to}"), "--verify"]).output().expect("runs");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}
