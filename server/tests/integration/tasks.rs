//! Backup tasks against a real server: schedules of a few seconds (cron with
//! seconds), runs that wait for a running backup, run now, retention that
//! never breaks a chain, and refusals that change nothing. Polls the task
//! status; never sleeps on a guess.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{set_dirs, TestServer};

/// Polls a task until `done` holds for its answer (at most 60 s).
fn wait_task(s: &TestServer, base: &str, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let (status, task) = s.get(&format!("{base}/admin/backup/tasks/{name}"));
        assert_eq!(status, 200, "{task}");
        if done(&task) {
            return task;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("task {name}: {what} never happened");
}

#[test]
fn bad_tasks_are_refused_and_change_nothing_and_secrets_are_never_returned() {
    let s = TestServer::start();
    s.create_db("Db");
    let location = s.location("tasks");
    let cases = vec![
        (json!({"BackupLocation": location, "FullBackupFrequency": "not cron"}), 400, "InvalidSchedule", "FullBackupFrequency"),
        (json!({"BackupLocation": location, "IncrementalBackupFrequency": "* * *"}), 400, "InvalidSchedule", "IncrementalBackupFrequency"),
        (
            json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * *", "TimeZone": "Mars/Olympus"}),
            400,
            "InvalidSchedule",
            "TimeZone",
        ),
        (json!({"BackupLocation": location}), 400, "InvalidRequest", "FullBackupFrequency"),
        (json!({"BackupLocation": "relative", "FullBackupFrequency": "0 2 * * *"}), 400, "InvalidBackupLocation", "relative"),
        (
            json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * *", "Retention": {"KeepLast": 0}}),
            400,
            "InvalidRequest",
            "KeepLast",
        ),
        (
            json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * *", "Retention": {"MinimumAge": "a week"}}),
            400,
            "InvalidRequest",
            "MinimumAge",
        ),
        (json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * *", "Surprise": 1}), 400, "InvalidRequest", "Surprise"),
    ];
    for (body, status, code, mentions) in cases {
        let (got, answer) = s.put("/databases/Db/admin/backup/tasks/nightly", body.clone());
        assert_eq!((got, answer["Error"].as_str()), (status, Some(code)), "{body}: {answer}");
        assert!(answer["Message"].as_str().unwrap_or("").contains(mentions), "{body}: {answer}");
    }
    let (status, answer) =
        s.put("/databases/Db/admin/backup/tasks/bad%2Fname", json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * *"}));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(s.get("/databases/Db/admin/backup/tasks").1, json!([]), "nothing was created");

    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * 0", "IncrementalBackupFrequency": "0 * * * *",
                      "TimeZone": "Europe/Paris", "BackupPassphrase": "hunter2", "Retention": {"KeepLast": 3}});
    assert_eq!(s.put("/databases/Db/admin/backup/tasks/nightly", task.clone()).0, 201);
    assert_eq!(s.put("/databases/Db/admin/backup/tasks/nightly", task).0, 200, "replaced");
    let (_, listed) = s.get("/databases/Db/admin/backup/tasks");
    assert!(!listed.to_string().contains("hunter2"), "{listed}");
    assert_eq!(listed[0]["HasBackupPassphrase"], true);
    // What a schedule means, for the studio's form.
    let (status, info) = s.get("/admin/backup/schedule?cron=0%202%20*%20*%200&timeZone=Europe/Paris");
    assert_eq!(status, 200, "{info}");
    // The next run is the hourly incremental, unless the hour is the full
    // backup's own (Sunday 02:00 in Paris): the full then takes its place.
    let next = listed[0]["Status"]["NextBackup"].as_str().unwrap_or_else(|| panic!("a next backup: {listed}"));
    let full_next = info["Next"][0].as_str().unwrap_or_else(|| panic!("the full schedule's next time: {info}"));
    let kind = if next == full_next { "Full" } else { "Incremental" };
    assert_eq!(listed[0]["Status"]["NextBackupKind"], kind, "{listed} {info}");
    assert_eq!(s.delete("/databases/Db/admin/backup/tasks/nightly").0, 204);
    assert_eq!(s.delete("/databases/Db/admin/backup/tasks/nightly").0, 404);
    assert_eq!(info["Next"].as_array().map(Vec::len), Some(3), "{info}");
    assert!(!info["Description"].as_str().unwrap_or("").is_empty(), "{info}");
    let (status, info) = s.get("/admin/backup/schedule?cron=nope");
    assert_eq!((status, info["Error"].as_str()), (400, Some("InvalidSchedule")), "{info}");
    assert_eq!(s.post("/databases/Db/admin/backup/tasks/nightly/run", json!({})).0, 404);
}

#[test]
fn a_schedule_runs_fulls_and_incrementals_and_retention_keeps_chains_whole() {
    let s = TestServer::start();
    s.create_db("Db");
    for i in 0..20 {
        s.put_doc("/databases/Db", &format!("d/{i}"), json!({"i": i}));
    }
    let location = s.location("scheduled");
    // A full every 4 seconds, an incremental every second, the newest 3 sets kept.
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "*/4 * * * * *", "IncrementalBackupFrequency": "* * * * * *",
                      "Retention": {"KeepLast": 3}});
    assert_eq!(s.put("/databases/Db/admin/backup/tasks/often", task).0, 201);
    let both = wait_task(&s, "/databases/Db", "often", "a full and an incremental", |t| {
        t["Status"]["LastFullBackup"].is_string() && t["Status"]["LastIncrementalBackup"].is_string()
    });
    assert!(both["Status"]["LastError"].is_null(), "{both}");
    // Retention runs after each backup: the sets deleted are said in the status document.
    let mut pruned = Value::Null;
    for _ in 0..600 {
        let (_, status) = s.get("/databases/Db/docs/Raven/Backup/Status");
        if status["Messages"].to_string().contains("Retention of task 'often': deleted") {
            pruned = status;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pruned.is_object(), "retention never deleted anything");
    assert_eq!(s.delete("/databases/Db/admin/backup/tasks/often").0, 204);
    // Wait until the task's last run has ended.
    for _ in 0..600 {
        if s.get("/databases/Db/docs/Raven/Backup/Status").1["IsRunning"] == false {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // What is left is complete chains: every set verifies and the newest restores.
    let (_, listing) = s.get(&format!("/admin/backup/sets?location={location}"));
    assert!(listing["Problems"].as_array().is_none_or(|p| p.is_empty()), "{listing}");
    for chain in listing["Chains"].as_array().expect("chains") {
        assert_eq!(chain["Sets"][0]["Kind"], "Full", "a chain starts with its full: {chain}");
        for set in chain["Sets"].as_array().expect("sets") {
            assert_eq!(set["Verified"], true, "{set}");
        }
    }
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Back"}));
    assert_eq!(done["Success"], true, "{done}");
    assert!(s.all_docs("/databases/Back") == s.all_docs("/databases/Db"));
    assert!(set_dirs(Path::new(&location)).iter().all(|d| !d.starts_with(".deleting-")));
}

#[test]
fn a_due_run_waits_for_a_running_backup_then_runs() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.before_manifest=sleep:3000")]);
    s.create_db("Db");
    s.put_doc("/databases/Db", "a", json!({}));
    // A manual backup holds the backup slot for 3 s.
    let (status, _) = s.post("/databases/Db/admin/backup", json!({"BackupLocation": s.location("manual")}));
    assert_eq!(status, 202);
    let location = s.location("waiting");
    assert_eq!(
        s.put("/databases/Db/admin/backup/tasks/soon", json!({"BackupLocation": location, "FullBackupFrequency": "* * * * * *"})).0,
        201
    );
    let ran = wait_task(&s, "/databases/Db", "soon", "a run after the manual backup", |t| t["Status"]["LastSetId"].is_string());
    assert!(ran["Status"]["LastError"].is_null(), "the due run failed instead of waiting: {ran}");
    assert_eq!(s.delete("/databases/Db/admin/backup/tasks/soon").0, 204);
}

#[test]
fn run_now_backs_up_and_a_dry_run_of_retention_deletes_nothing() {
    let s = TestServer::start();
    s.create_db("Db");
    s.put_doc("/databases/Db", "a", json!({}));
    let location = s.location("now");
    // A schedule that will not fire during the test (once a year).
    assert_eq!(
        s.put("/databases/Db/admin/backup/tasks/yearly", json!({"BackupLocation": location, "FullBackupFrequency": "0 0 1 1 *"})).0,
        201
    );
    for incremental in [false, true, true] {
        let (status, body) = s.post(&format!("/databases/Db/admin/backup/tasks/yearly/run?incremental={incremental}"), json!({}));
        assert_eq!(status, 202, "{body}");
        let done = s.wait_for_job("/databases/Db", "Raven/Backup/Status");
        assert_eq!(done["Success"], true, "{done}");
        assert_eq!(done["Incremental"], incremental, "{done}");
        s.put_doc("/databases/Db", &format!("more/{incremental}"), json!({}));
    }
    let task = wait_task(&s, "/databases/Db", "yearly", "the runs recorded", |t| t["Status"]["LastIncrementalBackup"].is_string());
    assert!(task["Status"]["LastFullBackup"].is_string(), "{task}");
    let first_chain = set_dirs(Path::new(&location));
    assert_eq!(first_chain.len(), 3);
    let retention = |dry_run: bool| {
        let (status, outcome) = s.post(
            &format!("/databases/Db/admin/backup/retention?location={location}&dryRun={dry_run}"),
            json!({"Retention": {"KeepLast": 1}}),
        );
        assert_eq!(status, 200, "{outcome}");
        outcome
    };
    // One chain: the newest chain is never deleted, whatever the policy.
    let outcome = retention(true);
    assert_eq!(outcome["Deleted"], json!([]), "{outcome}");
    assert_eq!(outcome["Kept"].as_array().map(Vec::len), Some(3));
    // A newer chain: now the policy deletes the first one, and a dry run only says so.
    let (status, body) = s.post("/databases/Db/admin/backup/tasks/yearly/run?wait=true", json!({}));
    assert_eq!(status, 200, "{body}");
    let before = set_dirs(Path::new(&location));
    assert_eq!(before.len(), 4);
    let mut would: Vec<String> =
        retention(true)["Deleted"].as_array().expect("deleted").iter().map(|v| v.as_str().expect("id").to_string()).collect();
    would.sort();
    assert_eq!(would, first_chain, "what a real run deletes");
    assert_eq!(set_dirs(Path::new(&location)), before, "a dry run deletes nothing");
    let mut deleted: Vec<String> =
        retention(false)["Deleted"].as_array().expect("deleted").iter().map(|v| v.as_str().expect("id").to_string()).collect();
    deleted.sort();
    assert_eq!(deleted, first_chain);
    assert_eq!(set_dirs(Path::new(&location)).len(), 1, "the real run deleted what the dry run said");
}

#[test]
fn a_retention_that_fails_is_the_last_error_of_its_task() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "retention.delete=enospc")]);
    s.create_db("Db");
    s.put_doc("/databases/Db", "a", json!({}));
    let location = s.location("kept");
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 0 1 1 *", "Retention": {"KeepLast": 1}});
    assert_eq!(s.put("/databases/Db/admin/backup/tasks/t", task).0, 201);
    for _ in 0..2 {
        let (status, body) = s.post("/databases/Db/admin/backup/tasks/t/run?wait=true", json!({}));
        assert_eq!(status, 200, "{body}");
    }
    let (_, task) = s.get("/databases/Db/admin/backup/tasks/t");
    let error = task["Status"]["LastError"].as_str().unwrap_or_default();
    assert!(error.contains("retention") && error.contains("No space left"), "the retention's failure is not the task's LastError: {task}");
    assert_eq!(set_dirs(Path::new(&location)).len(), 2, "nothing was deleted");
}

#[test]
fn retention_waits_for_a_running_backup_and_keeps_what_it_wrote() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "backup.document=sleep:300")]);
    s.create_db("Db");
    for i in 0..3 {
        s.put_doc("/databases/Db", &format!("doc/{i}"), json!({"i": i}));
    }
    let location = s.location("racing");
    s.backup("/databases/Db", &location, false);
    s.put_doc("/databases/Db", "doc/9", json!({}));
    let (status, body) = s.post("/databases/Db/admin/backup?incremental=true", json!({"BackupLocation": location}));
    assert_eq!(status, 202, "{body}");
    let (_, running) = s.get("/databases/Db/docs/Raven/Backup/Status");
    assert_eq!(running["IsRunning"], true, "the incremental runs while retention is asked");
    let (status, outcome) =
        s.post(&format!("/databases/Db/admin/backup/retention?location={location}"), json!({"Retention": {"KeepLast": 1}}));
    assert_eq!(status, 200, "{outcome}");
    let (_, after) = s.get("/databases/Db/docs/Raven/Backup/Status");
    assert_eq!(
        (after["IsRunning"].as_bool(), after["Success"].as_bool()),
        (Some(false), Some(true)),
        "retention ran beside the backup: {after}"
    );
    assert_eq!(outcome["Deleted"], json!([]), "{outcome}");
    let kept = outcome["Kept"].to_string();
    assert!(kept.contains(after["SetId"].as_str().expect("id")), "the set the backup wrote is kept: {outcome}");
    assert_eq!(set_dirs(Path::new(&location)).len(), 2);
}

#[test]
fn a_crash_in_the_middle_of_retention_leaves_only_complete_or_invisible_sets() {
    let mut s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "retention.after_hide")]);
    s.create_db("Db");
    s.put_doc("/databases/Db", "a", json!({}));
    let location = s.location("pruned");
    // Two chains: a full and an incremental, then a newer full.
    s.backup("/databases/Db", &location, false);
    s.put_doc("/databases/Db", "b", json!({}));
    s.backup("/databases/Db", &location, true);
    s.put_doc("/databases/Db", "c", json!({}));
    s.backup("/databases/Db", &location, false);
    assert_eq!(set_dirs(Path::new(&location)).len(), 3);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    // The server dies after hiding the first set it deletes.
    let _ = agent
        .post(&format!("{}/databases/Db/admin/backup/retention?location={location}", s.url))
        .send(json!({"Retention": {"KeepLast": 1}}).to_string());
    assert_eq!(s.wait_exit(Duration::from_secs(20)), Some(86), "the server stopped at the failpoint");
    s.restart_with(&[]);
    // Only complete sets list, and they restore: the hidden one is no set at all.
    let (_, listing) = s.get(&format!("/admin/backup/sets?location={location}"));
    assert!(listing["Problems"].as_array().is_none_or(|p| p.is_empty()), "{listing}");
    let done = s.restore(json!({"BackupLocation": location, "DatabaseName": "Back"}));
    assert_eq!(done["Success"], true, "{done}");
    // The next retention finishes the job and removes what the crash left.
    let (status, outcome) =
        s.post(&format!("/databases/Db/admin/backup/retention?location={location}"), json!({"Retention": {"KeepLast": 1}}));
    assert_eq!(status, 200, "{outcome}");
    let left: Vec<String> =
        std::fs::read_dir(&location).expect("location").flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
    assert_eq!(left.len(), 1, "only the newest chain (one full) is left: {left:?}");
    assert!(!left[0].starts_with('.'), "{left:?}");
}

#[test]
fn times_missed_while_the_server_was_stopped_make_one_run_after_it_starts() {
    let mut s = TestServer::start();
    s.create_db("Db");
    s.put_doc("/databases/Db", "a", json!({}));
    // Two occurrences a few seconds ahead (seconds field), in one minute, then
    // not again for a year.
    let now = time::OffsetDateTime::now_utc();
    let (first, second) = (2..50)
        .map(|o| (now + time::Duration::seconds(o), now + time::Duration::seconds(o + 1)))
        .find(|(a, b)| a.minute() == b.minute() && a.hour() == b.hour())
        .expect("two seconds in one minute");
    let cron =
        format!("{},{} {} {} {} {} *", first.second(), second.second(), first.minute(), first.hour(), first.day(), u8::from(first.month()));
    let location = s.location("missed");
    assert_eq!(s.put("/databases/Db/admin/backup/tasks/once", json!({"BackupLocation": location, "FullBackupFrequency": cron})).0, 201);
    s.stop();
    // Both occurrences pass while the server is stopped.
    while time::OffsetDateTime::now_utc() <= second + time::Duration::milliseconds(300) {
        std::thread::sleep(Duration::from_millis(50));
    }
    s.restart_with(&[]);
    let ran = wait_task(&s, "/databases/Db", "once", "the missed run", |t| t["Status"]["LastFullBackup"].is_string());
    assert!(ran["Status"]["LastError"].is_null(), "{ran}");
    // One run for the two missed times, and the next is a year away.
    assert_eq!(set_dirs(Path::new(&location)).len(), 1, "{:?}", set_dirs(Path::new(&location)));
    assert!(ran["Status"]["NextBackup"].as_str().unwrap_or("").starts_with(&(first.year() + 1).to_string()), "{ran}");
}

/// Every file under `dir`, with its bytes.
fn files_with_bytes(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).expect("reads").flatten() {
            if e.path().is_dir() {
                pending.push(e.path());
            } else {
                out.push((e.path(), std::fs::read(e.path()).expect("reads")));
            }
        }
    }
    out
}

#[test]
fn a_task_s_secrets_are_never_on_disk_in_clear() {
    let mut s = TestServer::start();
    s.create_db("Db");
    let location = s.location("sealed");
    let passphrase = "a-passphrase-never-on-disk";
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 0 1 1 *", "BackupPassphrase": passphrase});
    assert_eq!(s.put("/databases/Db/admin/backup/tasks/sealed-task", task).0, 201);
    // The run uses it: the set is encrypted.
    let (status, done) = s.post("/databases/Db/admin/backup/tasks/sealed-task/run?wait=true", json!({}));
    assert_eq!(status, 200, "{done}");
    s.stop();
    let files = files_with_bytes(&s.data_dir);
    let contains = |bytes: &[u8], needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(files.iter().any(|(_, b)| contains(b, b"sealed-task")), "the task's record is in the data directory's files");
    let clear: Vec<String> =
        files.iter().filter(|(_, b)| contains(b, passphrase.as_bytes())).map(|(p, _)| p.display().to_string()).collect();
    assert!(clear.is_empty(), "the passphrase in clear in {clear:?}");
    let set = Path::new(&location).join(done["SetId"].as_str().expect("id"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(set.join("manifest.json")).expect("manifest")).expect("json");
    assert!(manifest["Encryption"]["Set"].is_object(), "the task's set is sealed with its passphrase: {manifest}");
}
