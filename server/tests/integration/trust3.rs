//! Trust, third round: what a careless operator, a hostile Admin and a
//! forged backup location could do, each numbered as the issue that found
//! it. Every test here failed on the code before its fix (the closing note
//! of the issue says what each printed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::s3::S3Server;
use crate::common::{all_entries, backup_bin, server_bin, set_dirs, wait_until, TestServer};
use crate::s3::{put_bulky, server_for};
use crate::trust::reseal_sums;

fn listing(s: &TestServer, location: &str) -> Value {
    let (status, listing) = s.get(&format!("/admin/backup/sets?location={location}"));
    assert_eq!(status, 200, "{listing}");
    listing
}

fn set_count(listing: &Value) -> usize {
    listing["Chains"].as_array().expect("chains").iter().map(|c| c["Sets"].as_array().expect("sets").len()).sum()
}

/// Starts a job with a `POST` (202), then polls its status document until
/// it ends; the final status (without `?wait=true`, so that the same test
/// runs against a build from before it existed).
fn job(s: &TestServer, path: &str, body: Value) -> Value {
    let (status, answer) = s.post(path, body);
    assert_eq!(status, 202, "{path}: {answer}");
    let document = answer["StatusDocument"].as_str().expect("a status document");
    let base = if path.starts_with("/databases/") { path.splitn(4, '/').take(3).collect::<Vec<_>>().join("/") } else { String::new() };
    let base = if document == "Raven/Backup/Status" { base } else { String::new() };
    s.wait_for_job(&base, document)
}

/// A set id no writer of this test uses (its second is long past).
const FOREIGN_SET: &str = "20200101T000000Z-full";

// 1. A backup into a location removed every set of another location nested
//    in it, and any set another writer was still uploading.
#[test]
fn a_backup_into_object_storage_removes_only_what_it_can_prove_is_abandoned() {
    let s3 = S3Server::start("rookery-trust-clean");
    let mut s = server_for(&s3, &[]);
    for db in ["a", "b"] {
        s.create_db(db);
        s.put_doc(&format!("/databases/{db}"), "doc/1", json!({"db": db}));
    }
    let (outer, inner) = (s3.url("prod"), s3.url("prod/b"));
    s.backup("/databases/b", &inner, false);
    // Another writer's upload in progress, in the outer location: no manifest yet.
    s3.put(&format!("prod/{FOREIGN_SET}/documents-0001.zst"), b"being uploaded");
    let done = s.backup("/databases/a", &outer, false);
    assert!(!done.to_string().contains("Removed"), "a backup removed something: {done}");
    let b_sets = listing(&s, &inner);
    assert_eq!(set_count(&b_sets), 1, "the nested location lost its set: {b_sets}");
    assert_eq!(b_sets["Chains"][0]["Sets"][0]["Verified"], true, "{b_sets}");
    assert!(!s3.keys(&format!("prod/{FOREIGN_SET}/")).is_empty(), "another writer's upload in progress was removed");
    let a_sets = listing(&s, &outer);
    assert_eq!(set_count(&a_sets), 1, "{a_sets}");
    assert!(a_sets["Problems"].as_array().expect("problems").is_empty(), "the nested location is not a problem: {a_sets}");
    assert!(a_sets["Unfinished"].to_string().contains(FOREIGN_SET), "{a_sets}");

    // A set this server recorded as its own upload and never finished (a
    // crash after its first file) goes with the next backup, however young.
    let env = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, String)> {
        let mut env = s3.env();
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        env
    };
    let restart = |s: &mut TestServer, env: &[(&'static str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.restart_with(&env);
    };
    // (Uploads complete in the background: the crash comes once the storage acknowledged one.)
    restart(&mut s, &env(&[("ROOKERY_FAILPOINTS", "object.after_upload")]));
    // The server may stop at the failpoint before its answer is sent.
    if let Some((status, body)) = s.post_tolerant("/databases/a/admin/backup", json!({"BackupLocation": outer})) {
        assert_eq!(status, 202, "{body}");
    }
    assert_eq!(s.wait_exit(Duration::from_secs(60)), Some(86), "the server stops at the failpoint");
    let keys = s3.keys("prod/");
    let mut ours: Vec<String> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("prod/").and_then(|k| k.split_once('/')).map(|(id, _)| id.to_string()))
        .filter(|id| id.ends_with("-full") && id != FOREIGN_SET && !keys.contains(&format!("prod/{id}/manifest.json")))
        .collect();
    ours.dedup();
    assert_eq!(ours.len(), 1, "the crash left one unfinished set of ours: {ours:?}");
    restart(&mut s, &env(&[]));
    let done = s.backup("/databases/a", &outer, false);
    assert!(done.to_string().contains(&format!("Removed 1 abandoned unfinished set(s): {}", ours[0])), "{done}");
    assert!(s3.keys(&format!("prod/{}/", ours[0])).is_empty(), "our unfinished set is gone");
    assert!(!s3.keys(&format!("prod/{FOREIGN_SET}/")).is_empty(), "the foreign upload is younger than the grace period");

    // Past the grace period, an abandoned set of set files goes; a "set" that
    // holds anything else was never a set: it stays.
    let odd = "20200101T000001Z-full";
    s3.put(&format!("prod/{odd}/notes.txt"), b"the operator's");
    restart(&mut s, &env(&[("ROOKERY_UNFINISHED_SET_GRACE", "0s")]));
    let done = s.backup("/databases/a", &outer, false);
    assert!(done.to_string().contains(FOREIGN_SET), "{done}");
    assert!(s3.keys(&format!("prod/{FOREIGN_SET}/")).is_empty());
    assert_eq!(s3.keys(&format!("prod/{odd}/")).len(), 1, "a folder of other files is not a set");
    assert_eq!(set_count(&listing(&s, &inner)), 1, "the nested location never loses a set");
}

// 1. The same rule for folders: a location nested in another is not a
//    damaged set of it, and only old `.tmp-` folders of set files go.
#[test]
fn a_folder_location_keeps_nested_locations_and_young_unfinished_sets() {
    let mut s = TestServer::start();
    for db in ["a", "b"] {
        s.create_db(db);
        s.put_doc(&format!("/databases/{db}"), "doc/1", json!({"db": db}));
    }
    let outer = s.location("prod");
    let inner = format!("{outer}/b");
    s.backup("/databases/b", &inner, false);
    s.backup("/databases/a", &outer, false);
    let restored = s.restore(json!({"BackupLocation": outer, "DatabaseName": "a-copy"}));
    assert_eq!(restored["Success"], true, "the nested location made the outer one unrestorable: {restored}");
    let foreign = Path::new(&outer).join(format!(".tmp-{FOREIGN_SET}"));
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("documents-0001.zst"), b"being written").expect("writes");
    let odd = Path::new(&outer).join(".tmp-20200101T000001Z-full");
    std::fs::create_dir_all(&odd).expect("mkdir");
    std::fs::write(odd.join("notes.txt"), b"the operator's").expect("writes");
    s.backup("/databases/a", &outer, false);
    assert!(foreign.exists() && odd.exists(), "a young unfinished set was removed");
    s.restart_with(&[("ROOKERY_UNFINISHED_SET_GRACE", "0s")]);
    let done = s.backup("/databases/a", &outer, false);
    assert!(done.to_string().contains(FOREIGN_SET), "{done}");
    assert!(!foreign.exists(), "an abandoned unfinished set outlived the grace period");
    assert!(odd.join("notes.txt").exists(), "a folder of other files is not a set");
    assert_eq!(set_dirs(Path::new(&inner)).len(), 1);
}

// 2. An offline system restore accepted a snapshot set: a named database's
//    files (and its registry) became the system database.
#[test]
fn the_system_restore_refuses_snapshot_sets_and_other_databases_chains() {
    let s = TestServer::start();
    s.create_db("b");
    s.put_doc("/databases/b", "doc/1", json!({"n": 1}));
    let location = s.location("snap");
    let body = job(&s, "/databases/b/admin/backup", json!({"BackupLocation": location, "BackupType": "Snapshot"}));
    assert_eq!(body["Success"], true, "{body}");
    let set = Path::new(&location).join(body["SetId"].as_str().expect("a set id"));
    let restore = |target: &Path| {
        Command::new(server_bin())
            .arg(format!("--restore-source={location}"))
            .arg(format!("--restore-destination={}", target.display()))
            .arg("--restore-system-database")
            .output()
            .expect("runs")
    };
    let target = s.path("system-from-b");
    let out = restore(&target);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a named database's set became the system database: {}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("NoBackupFound") && stderr.contains('b'), "{stderr}");
    assert!(!target.join("System").exists());
    // Forged to say it is the system database's: still a snapshot, refused.
    crate::trust::edit_manifest(&set, |m| m["DatabaseName"] = json!("System"));
    let out = restore(&target);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a snapshot set became the system database");
    assert!(stderr.contains("CorruptBackup") && stderr.contains("snapshot"), "{stderr}");
    assert!(!target.join("System").exists());
}

fn task_ran(s: &TestServer, base: &str, name: &str) -> Value {
    wait_until(&format!("task {name} ran"), || {
        let (status, task) = s.get(&format!("{base}/admin/backup/tasks/{name}"));
        assert_eq!(status, 200, "{task}");
        task["Status"]["LastSetId"].is_string().then_some(task)
    })
}

// 3. A restored copy inherited its original's backup tasks and wrote into
//    the original's location, where a restore then took the copy's chain.
#[test]
fn a_restored_copy_has_no_tasks_and_a_location_of_two_databases_is_ambiguous() {
    let s = TestServer::start();
    s.create_db("b");
    s.put_doc("/databases/b", "doc/1", json!({"of": "b"}));
    let orders = s.location("orders");
    let (status, body) = s.put("/databases/b/admin/backup/tasks/n", json!({"BackupLocation": orders, "FullBackupFrequency": "0 0 1 1 *"}));
    assert_eq!(status, 201, "{body}");
    job(&s, "/databases/b/admin/backup/tasks/n/run", json!({}));
    task_ran(&s, "/databases/b", "n");
    let snaps = s.location("snap");
    let body = job(&s, "/databases/b/admin/backup", json!({"BackupLocation": snaps, "BackupType": "Snapshot"}));
    assert_eq!(body["Success"], true, "{body}");
    let body = job(&s, "/admin/restore", json!({"BackupLocation": snaps, "DatabaseName": "b-copy"}));
    assert_eq!(body["Success"], true, "{body}");
    let (status, tasks) = s.get("/databases/b-copy/admin/backup/tasks");
    assert_eq!(status, 200, "{tasks}");
    assert_eq!(tasks, json!([]), "the copy inherited its original's tasks");
    assert_eq!(s.delete("/databases/b/admin/backup/tasks/n").0, 204);

    // A location holding the chains of two databases: a restore must be told which.
    s.create_db("c");
    s.put_doc("/databases/c", "doc/1", json!({"of": "c"}));
    let c_set = s.backup("/databases/c", &orders, false)["SetId"].as_str().expect("id").to_string();
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": orders, "DatabaseName": "which"}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("AmbiguousBackup")), "{body}");
    let message = body["Message"].as_str().expect("a message");
    assert!(message.contains('b') && message.contains('c') && message.contains("SourceDatabaseName"), "{message}");
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": orders, "RestoreUpTo": "2099-01-01T00:00:00Z"}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("AmbiguousBackup")), "a time does not say which: {body}");
    let body = job(&s, "/admin/restore", json!({"BackupLocation": orders, "SourceDatabaseName": "b", "DatabaseName": "b2"}));
    assert_eq!(body["Success"], true, "{body}");
    assert_eq!(s.all_docs("/databases/b2")["doc/1"]["of"], "b");
    let body = job(&s, "/admin/restore", json!({"BackupLocation": orders, "RestoreUpTo": c_set, "DatabaseName": "c2"}));
    assert_eq!(body["Success"], true, "{body}");
    assert_eq!(s.all_docs("/databases/c2")["doc/1"]["of"], "c");
    // The command line says the same, and takes the choice.
    let cli = |extra: &[&str]| {
        Command::new(server_bin())
            .args([&format!("--restore-source={orders}"), &format!("--restore-database={}", s.url)])
            .args(extra)
            .output()
            .expect("runs")
    };
    let out = cli(&["--restore-database-name=c3"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("AmbiguousBackup"), "{out:?}");
    let out = cli(&["--restore-database-name=c3", "--restore-source-database-name=c"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.all_docs("/databases/c3")["doc/1"]["of"], "c");
}

// 4. A typo in a field name was ignored: "BackupPasphrase" wrote a set in clear.
#[test]
fn a_misspelt_field_or_a_body_of_the_wrong_type_changes_nothing() {
    let s = TestServer::start();
    s.create_db("Db");
    s.put_doc("/databases/Db", "doc/1", json!({"secret": "plain"}));
    let location = s.location("typo");
    let (status, body) = s.post("/databases/Db/admin/backup", json!({"BackupLocation": location, "BackupPasphrase": "correct horse"}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidRequest")), "{body}");
    assert!(body["Message"].as_str().expect("message").contains("BackupPasphrase"), "{body}");
    assert!(!Path::new(&location).exists(), "a set was written");
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseNmae": "x"}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidRequest")), "{body}");
    let (status, text) = s.call_raw("PUT", "/admin/databases/Listed", Some("[]".into()), &[]);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("InvalidRequest"), "{text}");
    assert_eq!(s.get("/databases/Listed/docs").0, 404, "a database was created from []");
    let (status, text) = s.call_raw("PUT", "/databases/Db/admin/backup/tasks/t", Some("\"x\"".into()), &[]);
    assert_eq!((status, text.contains("InvalidRequest")), (400, true), "{text}");
}

/// A loopback HTTP endpoint that answers every request 403 with an S3 error
/// body, and keeps each request's head.
struct CapturingEndpoint {
    url: String,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl CapturingEndpoint {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                seen.lock().expect("lock").push(String::from_utf8_lossy(&head).to_string());
                let body =
                    "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>endpoint-body-text-never-relayed</Message></Error>";
                let answer = format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        Self { url, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }
}

// 5. A request's S3.Endpoint took the server's credentials anywhere, and
//    the endpoint's answer came back in the error message.
#[test]
fn another_endpoint_never_gets_the_server_s_credentials_nor_relays_its_answer() {
    let s3 = S3Server::start("rookery-trust-endpoint");
    let s = server_for(&s3, &[("AWS_SESSION_TOKEN", "server-session-token")]);
    s.create_db("Db");
    s.put_doc("/databases/Db", "doc/1", json!({}));
    let endpoint = CapturingEndpoint::start();
    let location = s3.url("elsewhere");
    let (status, body) = s.post("/databases/Db/admin/backup", json!({"BackupLocation": location, "S3": {"Endpoint": endpoint.url}}));
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidRequest")), "{body}");
    assert!(endpoint.heads().is_empty(), "the server called another endpoint with its own credentials: {:?}", endpoint.heads());
    let (status, body) = s.post(
        "/databases/Db/admin/backup",
        json!({"BackupLocation": location, "S3": {"Endpoint": endpoint.url, "AccessKeyId": "their-key-id", "SecretAccessKey": "their-secret"}}),
    );
    assert_eq!((status, body["Error"].as_str()), (400, Some("BackupStorageError")), "{body}");
    let message = body["Message"].as_str().expect("message");
    assert!(message.contains("AccessDenied") && message.contains("403"), "the storage's code and status: {message}");
    assert!(!message.contains("endpoint-body-text-never-relayed"), "the endpoint's body was relayed: {message}");
    let heads = endpoint.heads().join("\n");
    assert!(heads.contains("their-key-id"), "{heads}");
    assert!(!heads.contains("rookery-test") && !heads.contains("server-session-token"), "the server's credentials went out: {heads}");
}

/// Every `.drill-` folder in the data directory.
fn drill_folders(data_dir: &Path) -> Vec<String> {
    all_entries(data_dir).into_iter().filter(|e| e.starts_with(".drill-")).collect()
}

/// A database with a task that backs it up (once, now) and drills on `drill`.
fn drilled_database(s: &TestServer, drill: &str) -> String {
    s.create_db("Db");
    put_bulky(s, "/databases/Db", 0..40);
    let location = s.location("drilled");
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 0 1 1 *", "Drill": {"Frequency": drill}});
    assert_eq!(s.put("/databases/Db/admin/backup/tasks/t", task).0, 201);
    let body = job(s, "/databases/Db/admin/backup/tasks/t/run", json!({}));
    assert_eq!(body["Success"], true, "{body}");
    task_ran(s, "/databases/Db", "t");
    location
}

fn last_drill(s: &TestServer, seen: Option<&str>) -> Value {
    wait_until("a drill", || {
        let (_, task) = s.get("/databases/Db/admin/backup/tasks/t");
        let drill = task["Status"]["LastDrill"].clone();
        (drill.is_object() && drill["At"].as_str() != seen).then_some(drill)
    })
}

// 6. A drill interrupted by a crash left a full copy of the database in the
//    data directory for good.
#[test]
fn a_drill_cut_short_by_a_crash_leaves_no_copy_behind() {
    let mut s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "drill.after_restore")]);
    drilled_database(&s, "* * * * * *");
    assert_eq!(s.wait_exit(Duration::from_secs(60)), Some(86), "the server stops in the middle of a drill");
    assert_eq!(drill_folders(&s.data_dir).len(), 1, "the crash left the drill's copy");
    s.restart_with(&[]);
    assert!(drill_folders(&s.data_dir).is_empty(), "the next start did not remove the drill's copy");
}

// 6. A drill copied whatever a manifest claimed (no free-space check), and a
//    drill that panicked was tried again at every tick.
#[test]
fn a_drill_checks_free_space_first_and_one_that_panics_waits_for_its_next_time() {
    let s = TestServer::start();
    let location = drilled_database(&s, "0 0 1 1 *");
    // A snapshot set that claims a 1 TiB journal (a sparse file: it takes no room).
    let body = job(&s, "/databases/Db/admin/backup", json!({"BackupLocation": location, "BackupType": "Snapshot"}));
    assert_eq!(body["Success"], true, "{body}");
    let set = Path::new(&location).join(body["SetId"].as_str().expect("id"));
    let huge = set.join("9.jnl");
    std::fs::File::create(&huge).expect("creates").set_len(1 << 40).expect("a sparse file");
    let fake_sha = "ab".repeat(32);
    crate::trust::edit_manifest(&set, |m| {
        m["Files"]
            .as_array_mut()
            .expect("files")
            .push(json!({"Name": "9.jnl", "Size": 1u64 << 40, "Sha256": fake_sha, "Content": "Storage", "Records": 0}));
    });
    let sums = std::fs::read_to_string(set.join("SHA256SUMS")).expect("sums");
    std::fs::write(set.join("SHA256SUMS"), format!("{sums}{fake_sha}  9.jnl\n")).expect("writes");
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Huge"}));
    assert_eq!((status, body["Error"].as_str()), (507, Some("InsufficientSpace")), "{body}");

    // The drill says the same, before it writes anything.
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 0 1 1 *", "Drill": {"Frequency": "* * * * * *"}});
    assert_eq!(s.put("/databases/Db/admin/backup/tasks/t", task).0, 200);
    let drill = last_drill(&s, None);
    assert_eq!(drill["Success"], false, "{drill}");
    assert!(drill["Error"].as_str().expect("an error").contains("free"), "{drill}");
    assert!(drill_folders(&s.data_dir).is_empty());
    drop(s);

    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "drill.run=panic")]);
    drilled_database(&s, "*/3 * * * * *");
    let first = last_drill(&s, None);
    assert_eq!(first["Success"], false, "{first}");
    assert!(first["Error"].as_str().expect("error").contains("panic"), "{first}");
    let second = last_drill(&s, first["At"].as_str());
    let at = |d: &Value| d["At"].as_str().expect("at").parse::<jiff::Timestamp>().expect("a time");
    let gap = at(&second).duration_since(at(&first)).as_secs_f64();
    assert!(gap >= 2.0, "a failed drill ran again after {gap} s, before its next scheduled time");
}

// 7. A drill and `--verify --deep` of a snapshot set never read a document:
//    a table damaged before it was hashed into the set passed.
#[test]
fn a_snapshot_set_whose_table_was_damaged_before_hashing_fails_deep_checks() {
    let s = TestServer::start();
    s.create_db("Db");
    put_bulky(&s, "/databases/Db", 0..600);
    let location = s.location("rotten");
    let body = job(&s, "/databases/Db/admin/backup", json!({"BackupLocation": location, "BackupType": "Snapshot"}));
    assert_eq!(body["Success"], true, "{body}");
    let set = Path::new(&location).join(body["SetId"].as_str().expect("id"));
    // The largest table: the documents'.
    let table = files_under(&set)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/tables/"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a table");
    let mut bytes = std::fs::read(&table).expect("reads");
    let at = bytes.len() / 4;
    bytes[at] ^= 0x01;
    std::fs::remove_file(&table).expect("unlinks"); // not through the link into the database
    std::fs::write(&table, bytes).expect("writes");
    let name = table.strip_prefix(&set).expect("inside").display().to_string();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&table).expect("reads")));
    crate::trust::edit_manifest(&set, |m| {
        for f in m["Files"].as_array_mut().expect("files") {
            if f["Name"] == name.as_str() {
                f["Sha256"] = json!(sha);
            }
        }
    });
    reseal_sums(&set, &[]);
    let out = Command::new(backup_bin()).args(["--verify", "--deep", &format!("--dest={location}")]).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "deep verification passed a damaged table: {}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("read back") || stderr.contains("digest"), "{stderr}");
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 0 1 1 *", "Drill": {"Frequency": "* * * * * *"}});
    assert_eq!(s.put("/databases/Db/admin/backup/tasks/t", task).0, 201);
    let drill = last_drill(&s, None);
    assert_eq!(drill["Success"], false, "the drill passed a damaged table: {drill}");
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).expect("reads").flatten() {
            if e.path().is_dir() {
                pending.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

// 8. Counts from an untrusted manifest overflowed (a panic), and a restore
//    thread that panicked kept its name reserved and its staging folder.
#[test]
fn untrusted_counts_never_overflow_and_a_panicking_restore_leaves_nothing() {
    let s = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "restore.document=panic")]);
    s.create_db("Db");
    s.put_doc("/databases/Db", "doc/1", json!({}));
    let location = s.location("counts");
    let set_id = s.backup("/databases/Db", &location, false)["SetId"].as_str().expect("id").to_string();
    let forged = s.location("forged");
    let copy = Path::new(&forged).join(&set_id);
    std::fs::create_dir_all(&copy).expect("mkdir");
    for f in std::fs::read_dir(Path::new(&location).join(&set_id)).expect("reads").flatten() {
        std::fs::copy(f.path(), copy.join(f.file_name())).expect("copies");
    }
    crate::trust::edit_manifest(&copy, |m| {
        m["DocumentCount"] = json!(u64::MAX);
        m["DeletionCount"] = json!(1);
    });
    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": forged, "DatabaseName": "Overflow"}));
    assert_eq!((status, body["Error"].as_str()), (422, Some("CorruptBackup")), "{body}");

    let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "Panics"}));
    assert_eq!(status, 202, "{body}");
    let done = s.wait_for_job("", "Raven/Restore/Status");
    assert_eq!(done["Success"], false, "{done}");
    let left: Vec<String> = all_entries(&s.data_dir.join("Databases")).into_iter().filter(|e| e.contains("Panics")).collect();
    assert!(left.is_empty(), "a panicking restore left {left:?}");
    assert_eq!(s.call("PUT", "/admin/databases/Panics", None).0, 201, "a panicking restore kept its name reserved");
}

// 9. Unknown API paths answered with the studio's HTML page.
#[test]
fn unknown_api_paths_answer_json_404() {
    let s = TestServer::start();
    s.create_db("X");
    for path in ["/databases/X/doc/1", "/admin/nothing", "/auth/nothing", "/docsx", "/smuggler/x", "/databases/X/admin/nope"] {
        let (status, text) = s.call_raw("GET", path, None, &[]);
        assert_eq!(status, 404, "{path}");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text:.200}"));
        assert_eq!(body["Error"], "NotFound", "{path}: {body}");
    }
}

// 12. Pasted as written, the README's walk-through raced its jobs: a job's
//     POST now takes `?wait=true` and answers when the job has ended.
#[test]
fn wait_true_answers_with_the_end_of_every_kind_of_job() {
    let s = TestServer::start_full(&[("ROOKERY_FAILPOINTS", "backup.document=sleep:400")], &["--request-timeout=1"]);
    s.create_db("Db");
    for i in 0..4 {
        s.put_doc("/databases/Db", &format!("doc/{i}"), json!({"i": i}));
    }
    let location = s.location("waited");
    let started = Instant::now();
    let (status, done) = s.post("/databases/Db/admin/backup?wait=true", json!({"BackupLocation": location}));
    assert_eq!(status, 200, "a job longer than the request timeout: {done}");
    assert!(started.elapsed() >= Duration::from_millis(1600), "answered before the job ended");
    assert_eq!((done["IsRunning"].as_bool(), done["Success"].as_bool()), (Some(false), Some(true)), "{done}");
    assert!(set_dirs(Path::new(&location)).contains(&done["SetId"].as_str().expect("id").to_string()));
    s.put_doc("/databases/Db", "doc/9", json!({}));
    let (status, done) = s.post("/databases/Db/admin/backup?incremental=true&wait=true", json!({"BackupLocation": location}));
    assert_eq!(status, 200, "{done}");
    let (status, done) = s.post("/admin/backup/compact?wait=true", json!({"BackupLocation": location}));
    assert_eq!((status, done["Success"].as_bool()), (200, Some(true)), "{done}");
    let (status, done) = s.post("/admin/restore?wait=true", json!({"BackupLocation": location, "DatabaseName": "Copy"}));
    assert_eq!((status, done["DatabaseName"].as_str()), (200, Some("Copy")), "{done}");
    assert_eq!(s.all_docs("/databases/Copy"), s.all_docs("/databases/Db"), "the answer came after the database was there");
    let task = json!({"BackupLocation": location, "FullBackupFrequency": "0 0 1 1 *", "Retention": {"KeepLast": 1}});
    assert_eq!(s.put("/databases/Db/admin/backup/tasks/t", task).0, 201);
    let (status, done) = s.post("/databases/Db/admin/backup/tasks/t/run?wait=true", json!({}));
    assert_eq!(status, 200, "{done}");
    let (_, task) = s.get("/databases/Db/admin/backup/tasks/t");
    assert_eq!(task["Status"]["LastSetId"], done["SetId"], "the answer came before the run was recorded: {task}");
    // A job that fails answers its error, with that code's status.
    let damaged = Path::new(&location).join(task["Status"]["LastSetId"].as_str().expect("id")).join("documents-0001.zst");
    let mut bytes = std::fs::read(&damaged).expect("reads");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&damaged, bytes).expect("writes");
    let (status, body) = s.post("/admin/restore?wait=true", json!({"BackupLocation": location, "DatabaseName": "Damaged"}));
    assert_eq!((status, body["Error"].as_str()), (422, Some("ChecksumMismatch")), "{body}");
}

/// A server started as `make run` starts it, with a relative `--data-dir
/// ./data`, still has every database after a restart: the catalog records
/// where each database lives as an absolute path, and reads back the
/// relative ones an older server recorded from the folder it starts in.
#[test]
fn a_server_started_with_a_relative_data_dir_keeps_its_databases_across_restarts() {
    let mut s = TestServer::start_relative();
    s.create_db("Kept");
    s.put_doc("/databases/Kept", "doc/1", json!({"n": 1}));
    let location = s.location("sets");
    s.backup("/databases/Kept", &location, false);
    s.restore(json!({"BackupLocation": location, "DatabaseName": "Restored"}));
    s.restart();
    let (status, listed) = s.get("/databases");
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed.as_array().expect("a list").iter().filter_map(|d| d["Name"].as_str()).collect();
    assert_eq!(names, ["Kept", "Restored"], "the databases after a restart: {listed}");
    assert_eq!(s.get("/databases/Kept/docs/doc/1").1, json!({"n": 1}));
    assert_eq!(s.get("/databases/Restored/docs/doc/1").1, json!({"n": 1}));
}
