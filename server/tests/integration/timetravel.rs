//! Time travel against real servers: a point's documents, one document, the
//! changes between two points and a selective restore over REST, in a folder
//! and in object storage (moto); the same reads offline with `rookery-backup`.

use std::process::Command;

use serde_json::{json, Value};

use crate::common::s3::S3Server;
use crate::common::{backup_bin, TestServer};
use crate::s3::{put_bulky, server_for};

const BASE: &str = "/databases/Shop";

/// A full set of 1,200 orders, then Tuesday's incremental (orders/17
/// overwritten, orders/18 deleted), then Wednesday's (orders/18 created again).
fn history(s: &TestServer, location: &str, bulky: u64) -> (String, String, String) {
    s.create_db("Shop");
    put_bulky(s, BASE, 0..bulky);
    for i in 0..1200 {
        s.put_doc(BASE, &format!("orders/{i:04}"), json!({"Order": i, "Total": i * 3, "Note": "x".repeat(i % 40)}));
    }
    let monday = s.backup(BASE, location, false)["SetId"].as_str().expect("set").to_string();
    s.put_doc(BASE, "orders/0017", json!({"Order": 17, "Total": 0, "Note": "overwritten by mistake"}));
    assert_eq!(s.delete(&format!("{BASE}/docs/orders/0018")).0, 204);
    let tuesday = s.backup(BASE, location, true)["SetId"].as_str().expect("set").to_string();
    s.put_doc(BASE, "orders/0018", json!({"Order": 18, "Again": true}));
    s.put_doc(BASE, "customers/1", json!({"Name": "Ada"}));
    let wednesday = s.backup(BASE, location, true)["SetId"].as_str().expect("set").to_string();
    (monday, tuesday, wednesday)
}

fn enc(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F").replace('+', "%2B")
}

fn read_points(s: &TestServer, location: &str, (monday, tuesday, wednesday): &(String, String, String)) {
    let loc = enc(location);
    // One document at each point, with the set it came from.
    let (status, body) = s.call_raw("GET", &format!("/admin/backup/documents/orders/0017?location={loc}&upTo={monday}"), None, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("json"), json!({"Order": 17, "Total": 51, "Note": "x".repeat(17)}));
    let (_, now) = s.get(&format!("/admin/backup/documents/orders/0017?location={loc}"));
    assert_eq!(now["Note"], "overwritten by mistake");
    let (status, gone) = s.get(&format!("/admin/backup/documents/orders/0018?location={loc}&upTo={tuesday}"));
    assert_eq!(status, 404, "{gone}");
    assert_eq!(gone["Error"], "NotFound");
    assert!(gone["Message"].as_str().expect("message").contains(tuesday.as_str()), "names the set that deleted it: {gone}");
    let (status, again) = s.get(&format!("/admin/backup/documents/orders/0018?location={loc}&upTo={wednesday}"));
    assert_eq!((status, &again["Again"]), (200, &json!(true)), "{again}");

    // A page of the point's documents.
    let (status, page) = s.get(&format!("/admin/backup/documents?location={loc}&upTo={tuesday}&startsWith=orders/001&start=5&pageSize=3"));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["SetId"], tuesday.as_str());
    let ids: Vec<&str> = page["Results"].as_array().expect("results").iter().map(|d| d["Id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["orders/0015", "orders/0016", "orders/0017"]);
    let seventeen = &page["Results"][2];
    assert!(seventeen["ETag"].as_u64().is_some() && seventeen["SizeBytes"].as_u64() > Some(10), "{seventeen}");
    assert!(seventeen["LastModified"].as_str().expect("time").ends_with('Z'), "{seventeen}");
    let (_, next) = s.get(&format!("/admin/backup/documents?location={loc}&upTo={tuesday}&startsWith=orders/001&start=8&pageSize=3"));
    let ids: Vec<&str> = next["Results"].as_array().expect("results").iter().map(|d| d["Id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["orders/0019"], "orders/0018 was deleted at Tuesday");

    // What changed from Monday to Wednesday.
    let (status, diff) = s.get(&format!("/admin/backup/diff?location={loc}&from={monday}&to={wednesday}"));
    assert_eq!(status, 200, "{diff}");
    assert_eq!(
        diff["Results"],
        json!([{"Id": "customers/1", "Change": "Created"}, {"Id": "orders/0017", "Change": "Changed"}, {"Id": "orders/0018", "Change": "Changed"}])
    );
    let (_, diff) = s.get(&format!("/admin/backup/diff?location={loc}&from={monday}&to={tuesday}"));
    assert_eq!(diff["Results"], json!([{"Id": "orders/0017", "Change": "Changed"}, {"Id": "orders/0018", "Change": "Deleted"}]));
}

fn restore_selected(s: &TestServer, location: &str, monday: &str) {
    // Overwrite: the live document becomes Monday's, byte for byte; every other write stays.
    s.put_doc(BASE, "orders/0020", json!({"Live": "kept"}));
    let request =
        json!({"BackupLocation": location, "RestoreUpTo": monday, "Ids": ["orders/0017", "orders/0020", "orders/9999"], "Mode": "Skip"});
    let (status, done) = s.post(&format!("{BASE}/admin/restore/documents?wait=true"), request.clone());
    assert_eq!(status, 200, "{done}");
    assert_eq!((done["Restored"].as_u64(), done["Skipped"].as_u64(), done["NotFound"].as_u64()), (Some(0), Some(2), Some(1)), "{done}");
    let mut overwrite = request;
    overwrite["Ids"] = json!(["orders/0017"]);
    overwrite["Mode"] = json!("Overwrite");
    let (status, accepted) = s.post(&format!("{BASE}/admin/restore/documents"), overwrite);
    assert_eq!((status, &accepted["StatusDocument"]), (202, &json!("Raven/RestoreDocuments/Status")), "{accepted}");
    let done = s.wait_for_job(BASE, "Raven/RestoreDocuments/Status");
    assert_eq!((done["Success"].as_bool(), done["Restored"].as_u64()), (Some(true), Some(1)), "{done}");
    let (_, old) = s.call_raw("GET", &format!("/admin/backup/documents/orders/0017?location={}&upTo={monday}", enc(location)), None, &[]);
    let (_, live) = s.call_raw("GET", &format!("{BASE}/docs/orders/0017"), None, &[]);
    assert_eq!(live, old, "the restored body is the backed-up one, byte for byte");
    assert_eq!(s.get(&format!("{BASE}/docs/orders/0020")).1, json!({"Live": "kept"}));
}

#[test]
fn browse_compare_and_restore_selected_documents_from_a_folder() {
    let s = TestServer::start();
    let location = s.location("shop");
    let points = history(&s, &location, 0);
    read_points(&s, &location, &points);
    restore_selected(&s, &location, &points.0);
    // The newest point moves with the next set: a chain kept open from the
    // reads above is not used once the location holds another set.
    s.backup(BASE, &location, true);
    let (_, now) = s.get(&format!("/admin/backup/documents/orders/0017?location={}", enc(&location)));
    assert_eq!(now["Total"], 51, "the newest set holds the restored document: {now}");

    // Refused before anything is read: outside the roots, bad points, a bad body.
    let (status, body) = s.get("/admin/backup/documents?location=/etc");
    assert_eq!((status, &body["Error"]), (400, &json!("InvalidBackupLocation")), "{body}");
    let (status, body) = s.get(&format!("/admin/backup/documents?location={}&upTo=20200101T000000Z-full", enc(&location)));
    assert_eq!((status, &body["Error"]), (404, &json!("SetNotFound")), "{body}");
    let (status, body) = s.get(&format!("/admin/backup/diff?location={}", enc(&location)));
    assert_eq!((status, &body["Error"]), (400, &json!("InvalidQuery")), "{body}");
    let (status, body) =
        s.post(&format!("{BASE}/admin/restore/documents"), json!({"BackupLocation": location, "Ids": ["a"], "StartsWith": "b"}));
    assert_eq!((status, &body["Error"]), (400, &json!("InvalidRequest")), "{body}");
    let (status, body) = s.post(&format!("{BASE}/admin/restore/documents"), json!({"BackupLocation": location, "Idz": ["a"]}));
    assert_eq!((status, &body["Error"]), (400, &json!("InvalidRequest")), "{body}");

    // Offline, the same answers from the command line.
    let run = |args: &[String]| {
        let out = Command::new(backup_bin()).args(args).output().expect("runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let dest = format!("--dest={location}");
    let (code, out, err) = run(&[dest.clone(), "--cat=orders/0017".into(), format!("--up-to={}", points.0)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json")["Total"], 51, "{out}");
    assert!(err.contains(&points.0), "{err}");
    let (code, out, err) = run(&[dest.clone(), "--ls=orders/001".into(), format!("--up-to={}", points.1)]);
    assert_eq!(code, 0, "{err}");
    let ids: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).map(|l| l.split('\t').next().unwrap_or("")).collect();
    assert_eq!(ids.len(), 9, "{out}");
    assert!(!ids.contains(&"orders/0018"), "{out}");
    let (code, out, err) = run(&[dest.clone(), format!("--diff={}..{}", points.0, points.1)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Changed\torders/0017") && out.contains("Deleted\torders/0018"), "{out}");
    let (code, _, err) = run(&[dest, "--cat=orders/0018".into(), format!("--up-to={}", points.1)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("deleted by set"), "{err}");
}

#[test]
fn browse_and_restore_selected_documents_from_object_storage_with_ranged_reads() {
    let s3 = S3Server::start("rookery-timetravel");
    let s = server_for(&s3, &[]);
    let location = s3.url("shop/daily");
    let points = history(&s, &location, 200);
    // A document read fetches its index pages and one frame, not the set.
    let documents_file: usize =
        s3.keys(&format!("shop/daily/{}/", points.0)).iter().filter(|k| k.ends_with(".zst")).map(|k| s3.get(k).len()).sum();
    let before = s3.answered_bytes();
    let (status, _) = s.get(&format!("/admin/backup/documents/orders/0999?location={}&upTo={}", enc(&location), points.0));
    assert_eq!(status, 200);
    let fetched = s3.answered_bytes() - before;
    assert!((fetched as usize) < documents_file / 20, "one document fetched {fetched} bytes of a {documents_file}-byte documents file");
    // Opening the three sets' point costs per set its manifest, index top,
    // small index and (where it deletes) deletions file, with two listings
    // and the frame: no checksum list or per-set listing first.
    let before = s.storage_requests();
    let (status, _) = s.get(&format!("/admin/backup/documents/orders/0999?location={}&upTo={}", enc(&location), points.2));
    assert_eq!(status, 200);
    let sent = s.storage_requests() - before;
    assert!(sent <= 2 + 4 * 3 + 1, "opening a point of three sets sent {sent} requests");
    read_points(&s, &location, &points);
    restore_selected(&s, &location, &points.0);
}
