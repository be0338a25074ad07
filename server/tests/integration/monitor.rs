//! Operators see and hear about their backups: `/metrics` scraped as
//! Prometheus does, the `Monitor` role, `--metrics-bind`, the protection
//! overview, and webhooks delivered to a real HTTP receiver (signed, once
//! per change, retried across a restart).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::common::receiver::Receiver;
use crate::common::s3::{free_port, S3Server};
use crate::common::{wait_until, TestServer};

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The samples of a scrape: `name{labels}` to value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the one sample of `name` whose labels include every pair of `labels`.
fn sample(all: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    all.iter()
        .filter(|(series, _)| series.starts_with(&format!("{name}{{")) || *series == name)
        .find(|(series, _)| labels.iter().all(|(k, v)| series.contains(&format!("{k}=\"{v}\""))))
        .map(|(_, v)| *v)
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("a key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn a_scrape_describes_backups_tasks_and_databases_and_a_monitor_reads_nothing_else() {
    let s = TestServer::start_full(&[], &["--metrics-bind", "127.0.0.1:0"]);
    for db in ["Orders", "Users"] {
        s.create_db(db);
        s.put_doc(&format!("/databases/{db}"), "doc/1", json!({"n": 1}));
    }
    // A backup by hand, a task that succeeds, and one whose location cannot be written.
    s.backup("/databases/Orders", &s.location("orders"), false);
    let task = |location: &str| json!({"BackupLocation": location, "FullBackupFrequency": "0 2 * * *"});
    assert_eq!(s.put("/databases/Users/admin/backup/tasks/nightly", task(&s.location("users"))).0, 201);
    assert_eq!(s.post("/databases/Users/admin/backup/tasks/nightly/run?wait=true", json!({})).0, 200);
    let broken = s.path("broken");
    assert_eq!(s.put("/databases/Users/admin/backup/tasks/broken", task(&broken.display().to_string())).0, 201);
    std::fs::write(&broken, "a file where the folder should be").expect("writes");
    let (status, body) = s.post("/databases/Users/admin/backup/tasks/broken/run?wait=true", json!({}));
    assert_eq!(status, 400, "{body}");

    // Credentials: an Admin, a Monitor, a reader.
    assert_eq!(s.put("/admin/users/root", json!({"Password": "root-pw", "Role": "Admin"})).0, 201);
    let admin = basic("root", "root-pw");
    let as_admin = |m: &str, p: &str, b: Value| s.call_raw(m, p, Some(b.to_string()), &[("Authorization", admin.as_str())]);
    assert_eq!(as_admin("PUT", "/admin/users/scraper", json!({"Password": "scrape-pw", "Role": "Monitor"})).0, 201);
    assert_eq!(as_admin("PUT", "/admin/users/reader", json!({"Password": "read-pw", "Role": "ReadOnly"})).0, 201);
    let monitor = basic("scraper", "scrape-pw");
    let (status, text) = s.call_raw("GET", "/metrics", None, &[("Authorization", &monitor)]);
    assert_eq!(status, 200, "{text}");
    for (method, path) in [("GET", "/databases"), ("GET", "/docs/doc/1"), ("GET", "/admin/protection"), ("GET", "/databases/Orders/docs")] {
        assert_eq!(s.call_raw(method, path, None, &[("Authorization", &monitor)]).0, 403, "a Monitor may not {method} {path}");
    }
    assert_eq!(s.call_raw("GET", "/metrics", None, &[("Authorization", &basic("reader", "read-pw"))]).0, 403, "a reader may not scrape");
    assert_eq!(s.call_raw("GET", "/metrics", None, &[]).0, 401);

    let all = samples(&text);
    let success = sample(&all, "rookery_backup_last_success_timestamp_seconds", &[("database", "Orders"), ("task", ""), ("kind", "full")]);
    assert!(success.is_some_and(|t| t > 1.7e9), "Orders' backup by hand: {success:?}\n{text}");
    let nightly = [("database", "Users"), ("task", "nightly")];
    assert!(sample(&all, "rookery_backup_last_success_timestamp_seconds", &nightly).is_some_and(|t| t > 1.7e9), "{text}");
    let age = sample(
        &all,
        "rookery_backup_recovery_point_age_seconds",
        &[("database", "Users"), ("task", "nightly"), ("location_kind", "folder")],
    );
    assert!(age.is_some_and(|a| (0.0..600.0).contains(&a)), "{age:?}");
    let broken_labels = [("database", "Users"), ("task", "broken")];
    assert_eq!(sample(&all, "rookery_backup_task_failing", &broken_labels), Some(1.0), "{text}");
    assert!(sample(&all, "rookery_backup_last_failure_timestamp_seconds", &broken_labels).is_some_and(|t| t > 1.7e9));
    assert_eq!(sample(&all, "rookery_backup_task_failing", &nightly), Some(0.0));
    assert!(sample(&all, "rookery_jobs_total", &[("kind", "backup"), ("outcome", "succeeded")]).is_some_and(|n| n >= 2.0), "{text}");
    let puts = [("route", "/databases/{db}/docs/{*id}"), ("method", "PUT"), ("status_class", "2xx")];
    assert!(sample(&all, "rookery_http_request_duration_seconds_count", &puts).is_some_and(|n| n >= 2.0), "{text}");
    assert!(sample(&all, "rookery_document_writes_total", &[("database", "Orders")]).is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&all, "rookery_database_size_bytes", &[("database", "Orders")]).is_some_and(|n| n > 0.0));
    assert!(sample(&all, "rookery_database_data_size_bytes", &[("database", "Users")]).is_some_and(|n| n > 0.0));
    assert!(text.trim_end().ends_with("# EOF"), "an OpenMetrics exposition ends with # EOF");

    // --metrics-bind serves /metrics alone, with no credentials.
    let metrics_url = s.printed_line("Rookery metrics on ").rsplit(' ').next().expect("a URL").to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut answer = agent.get(&metrics_url).call().expect("answers");
    assert_eq!(answer.status().as_u16(), 200);
    assert!(answer.headers().get("content-type").is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/openmetrics-text")));
    assert!(answer.body_mut().read_to_string().expect("text").contains("rookery_backup_last_success_timestamp_seconds"));
    let other = metrics_url.replace("/metrics", "/databases");
    assert_eq!(agent.get(&other).call().expect("answers").status().as_u16(), 404, "nothing else on the metrics address");
}

#[test]
fn the_protection_overview_says_which_databases_are_protected() {
    let s = TestServer::start();
    s.create_db("Kept");
    s.create_db("Bare");
    s.put_doc("/databases/Kept", "a", json!({}));
    let location = s.location("kept");
    let task = json!({"BackupLocation": location, "FullBackupFrequency": crate::common::hourly_not_now(), "RecoveryPointObjective": "6h"});
    assert_eq!(s.put("/databases/Kept/admin/backup/tasks/hourly", task).0, 201);
    assert_eq!(s.post("/databases/Kept/admin/backup/tasks/hourly/run?wait=true", json!({})).0, 200);
    let (status, overview) = s.get("/admin/protection");
    assert_eq!(status, 200);
    let dbs: BTreeMap<String, Value> = overview["Databases"]
        .as_array()
        .expect("databases")
        .iter()
        .map(|d| (d["Database"].as_str().unwrap_or("").to_string(), d.clone()))
        .collect();
    assert_eq!(overview["Databases"][0]["Database"], "System", "the system database first");
    assert_eq!(dbs["Bare"]["State"], "Unprotected");
    let kept = &dbs["Kept"];
    assert_eq!(kept["State"], "Ok", "{kept}");
    assert_eq!(kept["Tasks"][0]["Name"], "hourly");
    assert_eq!(kept["Tasks"][0]["ObjectiveSeconds"], 21_600.0);
    assert_eq!(kept["Tasks"][0]["IntervalSeconds"], 3600.0);
    assert!(kept["Tasks"][0]["LastSetId"].as_str().is_some_and(|id| id.ends_with("-full")));
    assert!(kept["RecoveryPoint"].is_string());
    // A bad objective is refused.
    let bad = json!({"BackupLocation": s.location("kept"), "FullBackupFrequency": "0 * * * *", "RecoveryPointObjective": "5s"});
    assert_eq!(s.put("/databases/Kept/admin/backup/tasks/bad", bad).0, 400);
}

#[test]
fn a_failing_task_is_announced_once_and_its_recovery_once_signed() {
    let s3 = S3Server::start("rookery-notify");
    let env: Vec<(&str, String)> = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = TestServer::start_full(&env, &["--backup-root", "s3://rookery-notify", "--public-url", "https://rookery.example"]);
    s.create_db("Shop");
    s.put_doc("/databases/Shop", "orders/1", json!({"Total": 1}));
    let receiver = Receiver::start();
    let secret = "a-secret-of-at-least-16-bytes";
    let hook = json!({"Url": receiver.url, "Events": ["BackupFailed", "BackupRecovered"], "Secret": secret});
    assert_eq!(s.put("/admin/notifications/ops", hook).0, 201);
    let task = json!({"BackupLocation": s3.url("shop"), "FullBackupFrequency": "0 2 * * *"});
    assert_eq!(s.put("/databases/Shop/admin/backup/tasks/offsite", task).0, 201);
    let run = |incremental: bool| {
        s.post(&format!("/databases/Shop/admin/backup/tasks/offsite/run?wait=true&incremental={incremental}"), json!({}))
    };
    assert_eq!(run(false).0, 200, "a first good run announces nothing");

    // The bucket goes away: two failed runs, one BackupFailed.
    s3.delete_bucket();
    assert_ne!(run(true).0, 200);
    assert_ne!(run(true).0, 200);
    let failed = wait_until("a BackupFailed delivery", || receiver.events("BackupFailed").into_iter().next());
    s3.create_bucket();
    assert_eq!(run(false).0, 200);
    let recovered = wait_until("a BackupRecovered delivery", || receiver.events("BackupRecovered").into_iter().next());
    assert_eq!(receiver.events("BackupFailed").len(), 1, "one BackupFailed for a task that kept failing");
    assert_eq!(receiver.events("BackupRecovered").len(), 1);
    assert_eq!(receiver.received().len(), 2, "and nothing else");

    let body = failed.json();
    assert_eq!(body["Event"], "BackupFailed");
    assert_eq!(body["Database"], "Shop");
    assert_eq!(body["Task"], "offsite");
    assert!(body["ErrorCode"].is_string() && body["Message"].as_str().is_some_and(|m| m.contains("offsite")), "{body}");
    assert_eq!(body["Link"], "https://rookery.example/studio/backup?database=Shop");
    assert!(body["At"].is_string());
    assert_eq!(recovered.json()["SetId"].as_str().map(|id| id.ends_with("-full")), Some(true));
    for delivery in [&failed, &recovered] {
        assert_eq!(delivery.method, "POST");
        assert_eq!(delivery.header("X-Rookery-Signature"), Some(hmac_hex(secret, &delivery.body).as_str()), "signed with the secret");
        assert_ne!(delivery.header("X-Rookery-Signature"), Some(hmac_hex("another-secret-entirely", &delivery.body).as_str()));
        assert!(delivery.header("X-Rookery-Delivery").is_some_and(|id| id.len() >= 32));
    }
    // A forged body does not match its signature.
    let mut forged = failed.body.clone();
    forged.extend_from_slice(b" ");
    assert_ne!(failed.header("X-Rookery-Signature"), Some(hmac_hex(secret, &forged).as_str()));
}

#[test]
fn a_receiver_that_is_down_gets_the_event_when_it_comes_back_even_after_a_restart() {
    let mut s = TestServer::start_with(&[("ROOKERY_NOTIFY_RETRY_SECONDS", "0.2")]);
    s.create_db("Src");
    s.put_doc("/databases/Src", "a", json!({}));
    let location = s.location("src");
    s.backup("/databases/Src", &location, false);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    assert_eq!(s.put("/admin/notifications/later", json!({"Url": url, "Events": ["RestoreSucceeded"]})).0, 201);
    s.restore(json!({"BackupLocation": location, "DatabaseName": "Copy"}));
    // Nobody listens: the delivery waits, with its error said.
    wait_until("a failed attempt", || {
        let (_, hook) = s.get("/admin/notifications/later");
        (hook["PendingDeliveries"] == 1 && hook["LastDelivery"]["LastError"].is_string()).then_some(())
    });
    s.kill9();
    s.restart();
    let receiver = Receiver::start_on(port);
    let delivered = wait_until("the delivery after the restart", || receiver.events("RestoreSucceeded").into_iter().next());
    assert_eq!(delivered.json()["Database"], "Copy");
    wait_until("an empty outbox", || (s.get("/admin/notifications/later").1["PendingDeliveries"] == 0).then_some(()));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(receiver.events("RestoreSucceeded").len(), 1, "delivered once");
}

#[test]
fn webhooks_are_checked_their_secret_never_answered_and_a_test_is_sent_at_once() {
    let s = TestServer::start();
    let receiver = Receiver::start();
    for (body, why) in [
        (json!({"Url": "ftp://x/", "Events": ["BackupFailed"]}), "not http"),
        (json!({"Url": "/relative", "Events": ["BackupFailed"]}), "relative"),
        (json!({"Url": receiver.url, "Events": []}), "no event"),
        (json!({"Url": receiver.url, "Events": ["Test"]}), "Test is not an event to ask for"),
        (json!({"Url": receiver.url, "Events": ["Nope"]}), "an unknown event"),
        (json!({"Url": receiver.url, "Events": ["BackupFailed"], "Secret": "short"}), "a short secret"),
        (json!({"Url": receiver.url, "Events": ["BackupFailed"], "Secrets": "typo-of-the-field"}), "an unknown field"),
    ] {
        let (status, answer) = s.put("/admin/notifications/hook", body);
        assert_eq!(status, 400, "{why}: {answer}");
    }
    assert_eq!(s.get("/admin/notifications").1, json!([]), "nothing was stored");
    assert_eq!(s.put("/admin/notifications/bad%2Fname", json!({"Url": receiver.url, "Events": ["BackupFailed"]})).0, 400);

    let secret = "0123456789abcdef0123";
    assert_eq!(s.put("/admin/notifications/hook", json!({"Url": receiver.url, "Events": ["BackupFailed"], "Secret": secret})).0, 201);
    let (_, listed) = s.get("/admin/notifications");
    assert_eq!(listed[0]["HasSecret"], true);
    assert!(!listed.to_string().contains(secret), "the secret is never answered: {listed}");
    // Replaced without a secret: it keeps its secret; with an empty one, it has none.
    assert_eq!(s.put("/admin/notifications/hook", json!({"Url": receiver.url, "Events": ["BackupFailed", "DrillFailed"]})).0, 200);
    assert_eq!(s.get("/admin/notifications/hook").1["HasSecret"], true);
    let (status, test) = s.post("/admin/notifications/hook/test", json!({}));
    assert_eq!(status, 200);
    assert_eq!(test["Delivered"], true, "{test}");
    assert_eq!(test["StatusCode"], 204);
    let sent = wait_until("the test delivery", || receiver.events("Test").into_iter().next());
    assert_eq!(sent.header("X-Rookery-Signature"), Some(hmac_hex(secret, &sent.body).as_str()));
    assert_eq!(sent.header("X-Rookery-Delivery"), test["DeliveryId"].as_str());
    assert_eq!(sent.json()["Event"], "Test");
    assert_eq!(s.put("/admin/notifications/hook", json!({"Url": receiver.url, "Events": ["BackupFailed"], "Secret": ""})).0, 200);
    assert_eq!(s.get("/admin/notifications/hook").1["HasSecret"], false);
    // A receiver that answers 500 is not a delivery.
    receiver.answer_with(500);
    let (_, test) = s.post("/admin/notifications/hook/test", json!({}));
    assert_eq!(test["Delivered"], false);
    assert_eq!(test["StatusCode"], 500);
    assert_eq!(s.get("/admin/notifications/hook").1["LastDelivery"]["LastStatusCode"], 500);
    assert_eq!(s.delete("/admin/notifications/hook").0, 204);
    assert_eq!(s.get("/admin/notifications/hook").0, 404);
    assert_eq!(s.post("/admin/notifications/hook/test", json!({})).0, 404);
}

/// A real Prometheus (Debian's `prometheus`, which `make test` installs)
/// scrapes `--metrics-bind` every second, finds the backup series and
/// loads the rules that ship in `docs/alerts.yml`.
#[test]
fn prometheus_scrapes_the_backup_series_and_loads_the_shipped_rules() {
    let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].into_iter().find(|p| std::path::Path::new(p).exists());
    let binary = binary.unwrap_or_else(|| panic!("prometheus is not installed: run `make test` (it installs Debian's prometheus package)"));
    let s = TestServer::start_full(&[], &["--metrics-bind", "127.0.0.1:0"]);
    s.create_db("Shop");
    s.put_doc("/databases/Shop", "orders/1", json!({}));
    s.backup("/databases/Shop", &s.location("shop"), false);
    let metrics_url = s.printed_line("Rookery metrics on ").rsplit(' ').next().expect("a URL").to_string();
    let target = metrics_url.trim_start_matches("http://").trim_end_matches("/metrics").to_string();
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/alerts.yml");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: rookery\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        ),
    )
    .expect("writes");
    let port = free_port();
    let mut prometheus = std::process::Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let api = |path: &str| -> Option<Value> {
        let mut answer = agent.get(&format!("http://127.0.0.1:{port}{path}")).call().ok()?;
        serde_json::from_str(&answer.body_mut().read_to_string().ok()?).ok()
    };
    let found = wait_until("Prometheus to scrape the backup series", || {
        let answer = api("/api/v1/query?query=rookery_backup_last_success_timestamp_seconds%7Bdatabase%3D%22Shop%22%7D")?;
        let result = answer["data"]["result"].as_array()?.clone();
        (!result.is_empty()).then_some(result)
    });
    let rules_loaded = api("/api/v1/rules").expect("rules");
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    assert_eq!(found[0]["metric"]["kind"], "full");
    assert_eq!(found[0]["metric"]["job"], "rookery");
    assert!(found[0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(|t| t > 1.7e9), "{found:?}");
    let names: Vec<&str> =
        rules_loaded["data"]["groups"][0]["rules"].as_array().expect("rules").iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(names.contains(&"RookeryBackupFailed") && names.contains(&"RookeryBackupStale"), "{names:?}");
}
