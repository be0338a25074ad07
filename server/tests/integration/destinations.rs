//! A task with several destinations against a real server and a real S3
//! server (moto behind a relay that can be cut): every run writes its set
//! into the folder and copies it off-site; while the endpoint is dead the
//! runs still succeed and the folder misses nothing, and the first run after
//! it returns catches up, oldest missing set first; both restore equal.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::s3::S3Server;
use crate::common::{set_dirs, TestServer};
use crate::s3::server_for;

const BASE: &str = "/databases/Shop";
const TASK: &str = "/databases/Shop/admin/backup/tasks/three-two-one";

fn run(s: &TestServer, incremental: bool) -> Value {
    let (status, done) = s.post(&format!("{TASK}/run?incremental={incremental}&wait=true"), json!({}));
    assert_eq!(status, 200, "the run succeeds whatever the other destinations do: {done}");
    done
}

fn offsite_status(s: &TestServer) -> Value {
    let (status, task) = s.get(TASK);
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["Status"]["Destinations"].as_array().map(Vec::len), Some(2), "{task}");
    task["Status"]["Destinations"][1].clone()
}

#[test]
fn a_task_copies_each_set_off_site_and_catches_up_when_the_endpoint_returns() {
    let s3 = S3Server::start("rookery-destinations");
    let s = server_for(&s3, &[]);
    s.create_db("Shop");
    let folder = s.location("local");
    let offsite = s3.url("shop/offsite");
    let task = json!({
        "Destinations": [{"Location": folder, "Retention": {"KeepLast": 20}}, {"Location": offsite, "Retention": {"KeepLast": 20}}],
        "FullBackupFrequency": "0 0 1 1 *",
    });
    // Another database's set in the same folder is not the task's to copy.
    s.create_db("Other");
    s.put_doc("/databases/Other", "o/1", json!({"Other": true}));
    let others = s.backup("/databases/Other", &folder, false)["SetId"].as_str().expect("set").to_string();
    let (status, body) = s.put(TASK, task);
    assert_eq!(status, 201, "{body}");
    let (_, shown) = s.get(TASK);
    assert_eq!((shown["BackupLocation"].as_str(), shown["Retention"]["KeepLast"].as_u64()), (Some(folder.as_str()), Some(20)), "{shown}");

    for i in 0..50 {
        s.put_doc(BASE, &format!("orders/{i}"), json!({"Order": i}));
    }
    let first = run(&s, false)["SetId"].as_str().expect("set").to_string();
    let copy = offsite_status(&s);
    assert_eq!(
        (copy["LastSetId"].as_str(), &copy["LastError"], copy["MissingSets"].as_u64()),
        (Some(first.as_str()), &Value::Null, Some(0)),
        "{copy}"
    );
    assert!(copy["RecoveryPointAgeSeconds"].as_f64().is_some_and(|age| age < 600.0), "{copy}");

    // The endpoint dies for three runs: each run still writes its set into
    // the folder; the copy fails, says why, and counts what it misses.
    s3.cut();
    for round in 1..=3u64 {
        s.put_doc(BASE, &format!("orders/{round}"), json!({"Order": round, "Changed": true}));
        run(&s, true);
        let copy = offsite_status(&s);
        assert!(copy["LastError"].as_str().is_some_and(|e| !e.is_empty()), "{copy}");
        assert_eq!(copy["MissingSets"].as_u64(), Some(round), "{copy}");
        assert_eq!(copy["LastSetId"].as_str(), Some(first.as_str()), "its last set stays: {copy}");
    }
    assert_eq!(set_dirs(Path::new(&folder)).len(), 5, "the folder never missed a set (and holds Other's)");
    let metric = |name: &str| -> f64 {
        let (_, text) = s.call_raw("GET", "/metrics", None, &[]);
        let line = text.lines().find(|l| l.starts_with(name) && l.contains(&format!("location=\"{offsite}\"")));
        let line = line.unwrap_or_else(|| panic!("no {name} for {offsite} in:\n{text}"));
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{line}"))
    };
    assert_eq!(metric("rookery_backup_destination_failing"), 1.0);
    assert_eq!(metric("rookery_backup_destination_missing_sets"), 3.0);

    // Back: the next run catches up, oldest missing set first.
    s3.heal();
    s.put_doc(BASE, "orders/4", json!({"Order": 4, "Changed": true}));
    let newest = run(&s, true)["SetId"].as_str().expect("set").to_string();
    let copy = offsite_status(&s);
    assert_eq!(
        (copy["LastSetId"].as_str(), &copy["LastError"], copy["MissingSets"].as_u64()),
        (Some(newest.as_str()), &Value::Null, Some(0)),
        "{copy}"
    );
    assert_eq!(metric("rookery_backup_destination_failing"), 0.0);
    assert_eq!(metric("rookery_backup_recovery_point_age_seconds"), 0.0, "the copy holds the newest set, nothing changed since");
    for set in set_dirs(Path::new(&folder)).into_iter().filter(|set| *set != others) {
        assert!(s3.keys(&format!("shop/offsite/{set}/")).iter().any(|k| k.ends_with("manifest.json")), "{set} is off-site");
    }
    assert!(s3.keys(&format!("shop/offsite/{others}/")).is_empty(), "another database's set is not copied");
    for (location, name) in [(&folder, "FromFolder"), (&offsite, "FromOffsite")] {
        let done = s.restore(json!({"BackupLocation": location, "DatabaseName": name, "SourceDatabaseName": "Shop"}));
        assert_eq!(done["Success"], true, "{done}");
        assert_eq!(s.all_docs(&format!("/databases/{name}")), s.all_docs(BASE), "{location} restores equal");
    }
}

#[test]
fn destinations_that_disagree_or_carry_credentials_are_refused() {
    let s = TestServer::start();
    s.create_db("Shop");
    let (a, b) = (s.location("a"), s.location("b"));
    let refused = [
        json!({"BackupLocation": b, "Destinations": [{"Location": a}, {"Location": b}], "FullBackupFrequency": "0 0 * * *"}),
        json!({"Destinations": [{"Location": a}, {"Location": a}], "FullBackupFrequency": "0 0 * * *"}),
        json!({"Destinations": [{"Location": a}, {"Location": "s3://bucket/x", "S3": {"SecretAccessKey": "kept in a task"}}], "FullBackupFrequency": "0 0 * * *"}),
        json!({"Destinations": [{"Location": a, "Retention": {"KeepLast": 2}}], "Retention": {"KeepLast": 3}, "FullBackupFrequency": "0 0 * * *"}),
        json!({"Destinations": [{"Location": a}, {"Location": "/etc/elsewhere"}], "FullBackupFrequency": "0 0 * * *"}),
        json!({"Destinations": [{"Location": a, "Lock": true}], "FullBackupFrequency": "0 0 * * *"}),
    ];
    for task in refused {
        let (status, body) = s.put(TASK, task.clone());
        assert_eq!(status, 400, "{task}: {body}");
        assert!(body["Error"].as_str().is_some() && body["Message"].as_str().is_some(), "{body}");
    }
    assert_eq!(s.get(TASK).0, 404, "nothing was stored");
}

/// A copy that stops on a bug (a panic in its thread) is a failed copy: the
/// destination says so and counts what it misses, instead of looking as if
/// nothing had happened.
#[test]
fn a_copy_that_panics_is_recorded_as_failed() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "copy.mid_file=panic")]);
    s.create_db("Shop");
    let (folder, copy) = (s.location("local"), s.location("copy"));
    let task = json!({"Destinations": [{"Location": folder}, {"Location": copy}], "FullBackupFrequency": "0 0 1 1 *"});
    assert_eq!(s.put(TASK, task).0, 201);
    s.put_doc(BASE, "orders/1", json!({"Order": 1}));
    run(&s, false);
    let copy = offsite_status(&s);
    assert!(copy["LastError"].as_str().is_some_and(|e| e.contains("stopped unexpectedly")), "{copy}");
    assert_eq!((copy["MissingSets"].as_u64(), copy["IsCopying"].as_bool()), (Some(1), Some(false)), "{copy}");
}
