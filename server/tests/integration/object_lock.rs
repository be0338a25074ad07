//! Immutable sets: a task's destinations in a bucket made with S3 Object
//! Lock (moto implements it), one in Governance and one in Compliance mode.
//! Every object of every set is locked until `Created + RetainDays`; neither
//! Rookery's retention nor a direct `DELETE` of an object's version removes a
//! set before that date, and retention removes it after. A retention day is
//! `ROOKERY_LOCK_DAY_SECONDS` long here (a build with fault points), so that
//! the test sees a lock expire.

use std::process::Command;

use serde_json::{json, Value};

use crate::common::s3::S3Server;
use crate::common::{backup_bin, TestServer};

const BASE: &str = "/databases/Shop";
const TASK: &str = "/databases/Shop/admin/backup/tasks/immutable";
const LOCKED: &str = "rookery-locked";
const PLAIN: &str = "rookery-plain";
/// Seconds in a retention day for this test: long enough for the checks
/// made while the sets are locked (on a loaded machine too), short enough
/// to wait for.
const DAY_SECONDS: &str = "60";

fn sets(s: &TestServer, location: &str) -> Vec<Value> {
    let (status, listing) = s.get(&format!("/admin/backup/sets?location={location}"));
    assert_eq!(status, 200, "{listing}");
    listing["Chains"].as_array().expect("chains").iter().flat_map(|c| c["Sets"].as_array().expect("sets").clone()).collect()
}

fn retention(s: &TestServer, location: &str, dry_run: bool) -> Value {
    let path = format!("{BASE}/admin/backup/retention?location={location}&dryRun={dry_run}");
    let (status, outcome) = s.post(&path, json!({"Retention": {"KeepLast": 1}}));
    assert_eq!(status, 200, "{outcome}");
    outcome
}

fn ids(value: &Value) -> Vec<String> {
    value.as_array().expect("ids").iter().map(|v| v.as_str().expect("id").to_string()).collect()
}

#[test]
fn locked_sets_outlive_every_delete_until_their_date_and_retention_removes_them_after() {
    let s3 = S3Server::start("rookery-lock-default");
    s3.create_other_bucket(LOCKED, true);
    s3.create_other_bucket(PLAIN, false);
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("ROOKERY_LOCK_DAY_SECONDS", DAY_SECONDS.to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tmp_root = std::env::temp_dir().display().to_string();
    let roots = ["--backup-root", "s3://rookery-locked", "--backup-root", "s3://rookery-plain", "--backup-root", &tmp_root];
    let s = TestServer::start_full(&env, &roots);
    s.create_db("Shop");
    let folder = s.location("local");
    let (governance, compliance) = ("s3://rookery-locked/gov".to_string(), "s3://rookery-locked/comp".to_string());
    let destination = |location: &str, lock: Value| json!({"Location": location, "Retention": {"KeepLast": 1}, "ObjectLock": lock});
    let task = |lock_location: &str, lock: Value| {
        json!({
            "Destinations": [{"Location": folder, "Retention": {"KeepLast": 1}}, destination(lock_location, lock)],
            "FullBackupFrequency": "0 0 1 1 *",
        })
    };

    // Refused, and nothing saved: a bucket made without object lock, a
    // folder, a lock of no days, a mode S3 does not have.
    let refusals = [
        (task("s3://rookery-plain/x", json!({"Mode": "Compliance", "RetainDays": 1})), "ObjectLockUnavailable", "object lock"),
        (task(&s.location("other"), json!({"Mode": "Compliance", "RetainDays": 1})), "InvalidRequest", "folder"),
        (task(&compliance, json!({"Mode": "Compliance", "RetainDays": 0})), "InvalidRequest", "RetainDays"),
        (task(&compliance, json!({"Mode": "Forever", "RetainDays": 1})), "InvalidRequest", "Forever"),
    ];
    for (body, code, says) in refusals {
        let (status, answer) = s.put(TASK, body);
        assert_eq!((status, answer["Error"].as_str()), (400, Some(code)), "{answer}");
        assert!(answer["Message"].as_str().is_some_and(|m| m.contains(says)), "{answer}");
        assert_eq!(s.get(TASK).0, 404, "a refused task is not saved");
    }

    let mut body = task(&governance, json!({"Mode": "Governance", "RetainDays": 1}));
    body["Destinations"].as_array_mut().expect("list").push(destination(&compliance, json!({"Mode": "Compliance", "RetainDays": 1})));
    let (status, answer) = s.put(TASK, body);
    assert_eq!(status, 201, "{answer}");
    let (_, shown) = s.get(TASK);
    assert_eq!(shown["Destinations"][2]["ObjectLock"], json!({"Mode": "Compliance", "RetainDays": 1}), "{shown}");

    // Two chains: a full and an incremental, then a new full.
    let mut taken = Vec::new();
    for (i, incremental) in [false, true, false].into_iter().enumerate() {
        s.put_doc(BASE, &format!("orders/{i}"), json!({"Order": i}));
        let (status, done) = s.post(&format!("{TASK}/run?incremental={incremental}&wait=true"), json!({}));
        assert_eq!(status, 200, "{done}");
        taken.push(done["SetId"].as_str().expect("set").to_string());
    }
    let (_, shown) = s.get(TASK);
    for d in shown["Status"]["Destinations"].as_array().expect("destinations") {
        assert_eq!((&d["LastError"], d["LastSetId"].as_str()), (&Value::Null, Some(taken[2].as_str())), "{shown}");
    }

    for (location, mode, prefix) in [(&governance, "Governance", "gov"), (&compliance, "Compliance", "comp")] {
        // Every set is listed with its lock; the destination's retention
        // (KeepLast 1) deleted nothing, since every set is locked.
        let listed = sets(&s, location);
        assert_eq!(listed.len(), 3, "{listed:?}");
        for set in &listed {
            assert_eq!((set["LockMode"].as_str(), set["Verified"].as_bool()), (Some(mode), Some(true)), "{set}");
            let until: jiff::Timestamp = set["LockedUntil"].as_str().expect("locked").parse().expect("a time");
            let created: jiff::Timestamp = set["Created"].as_str().expect("created").parse().expect("a time");
            let locked_for = until.duration_since(created).as_secs_f64();
            assert!((59.0..=60.0).contains(&locked_for), "locked from Created for one (test) day: {set}");
        }
        // Every object of a set carries the lock, as the storage tells it.
        for key in s3.keys_in(LOCKED, &format!("{prefix}/{}/", taken[0])) {
            let (found_mode, _) = s3.lock_of(LOCKED, &key).unwrap_or_else(|| panic!("{key} is not locked"));
            assert_eq!(found_mode, mode.to_uppercase(), "{key}");
        }
        // Rookery's retention keeps the older chain (locked), and says so.
        let plan = retention(&s, location, true);
        assert_eq!(ids(&plan["Deleted"]), Vec::<String>::new(), "{plan}");
        assert_eq!(ids(&plan["Locked"]).len(), 3, "{plan}");
        // A direct DELETE of a locked version is refused by the storage.
        let versions = s3.versions(LOCKED, &format!("{prefix}/{}/", taken[0]));
        assert!(versions.len() >= 3, "{versions:?}");
        for (key, version) in &versions {
            let (status, code) = s3.delete_version(LOCKED, key, version, false);
            assert_eq!((status, code.as_str()), (403, "AccessDenied"), "{key} must not be deletable before its date");
        }
    }
    // The folder (no lock) kept only its newest chain.
    assert_eq!(sets(&s, &folder).len(), 1);

    // Governance yields to a user allowed to bypass it; Compliance to nobody.
    let manifest = |prefix: &str| format!("{prefix}/{}/manifest.json", taken[0]);
    let version_of = |key: &str| s3.versions(LOCKED, key).pop().expect("a version").1;
    let (status, code) = s3.delete_version(LOCKED, &manifest("comp"), &version_of(&manifest("comp")), true);
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "Compliance cannot be bypassed");
    let (status, _) = s3.delete_version(LOCKED, &manifest("gov"), &version_of(&manifest("gov")), true);
    assert_eq!(status, 204, "Governance can be bypassed by who may");

    // `--verify` shows each set's lock.
    let out = Command::new(backup_bin())
        .args([format!("--dest={compliance}"), "--verify".into()])
        .envs(env.iter().copied())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.matches("locked until").count(), 3, "{text}");
    assert!(text.contains("(Compliance)"), "{text}");

    // After the date, retention removes the older chain.
    let newest_lock: jiff::Timestamp =
        sets(&s, &compliance).iter().filter_map(|set| set["LockedUntil"].as_str()?.parse().ok()).max().expect("a lock");
    // A known date, not a guess: wait until it has passed.
    while jiff::Timestamp::now() <= newest_lock {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let done = retention(&s, &compliance, false);
    assert_eq!((ids(&done["Deleted"]).len(), ids(&done["Locked"]).len()), (2, 0), "{done}");
    let left = sets(&s, &compliance);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["SetId"].as_str(), Some(taken[2].as_str()));
}
