//! Authentication and authorization against a real server: every route in
//! the OpenAPI description with no credentials, wrong ones, and each role.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{TestServer, BACKUP_BIN};

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The role each route needs: the test's own table, so that a route added to
/// the API without a rule here fails this test.
fn expected_rule(method: &str, path: &str) -> Option<&'static str> {
    Some(match (method, path) {
        ("get", "/health") | ("get", "/openapi.json") | ("get", "/auth/me") | ("post", "/auth/login") | ("post", "/auth/logout") => {
            "Public"
        }
        ("get", "/databases") => "ReadOnly",
        ("get", "/docs") | ("get", "/docs/{id}") | ("get", "/databases/{db}/docs") | ("get", "/databases/{db}/docs/{id}") => "ReadOnly",
        ("get", "/smuggler/export") | ("get", "/databases/{db}/smuggler/export") => "ReadOnly",
        ("put", "/docs/{id}")
        | ("delete", "/docs/{id}")
        | ("put", "/databases/{db}/docs/{id}")
        | ("delete", "/databases/{db}/docs/{id}") => "ReadWrite",
        ("put", "/admin/databases/{name}")
        | ("delete", "/admin/databases/{name}")
        | ("post", "/admin/backup")
        | ("post", "/databases/{db}/admin/backup")
        | ("get", "/admin/backup/sets")
        | ("post", "/admin/restore")
        | ("post", "/smuggler/import")
        | ("post", "/databases/{db}/smuggler/import")
        | ("post", "/admin/backup/cancel")
        | ("post", "/databases/{db}/admin/backup/cancel")
        | ("post", "/admin/restore/cancel")
        | ("post", "/admin/backup/compact")
        | ("post", "/admin/backup/compact/cancel")
        | ("post", "/admin/backup/copy")
        | ("post", "/admin/backup/copy/cancel")
        | ("get", "/admin/backup/tasks")
        | ("get", "/databases/{db}/admin/backup/tasks")
        | ("put", "/admin/backup/tasks/{name}")
        | ("put", "/databases/{db}/admin/backup/tasks/{name}")
        | ("get", "/admin/backup/tasks/{name}")
        | ("get", "/databases/{db}/admin/backup/tasks/{name}")
        | ("delete", "/admin/backup/tasks/{name}")
        | ("delete", "/databases/{db}/admin/backup/tasks/{name}")
        | ("post", "/admin/backup/tasks/{name}/run")
        | ("post", "/databases/{db}/admin/backup/tasks/{name}/run")
        | ("post", "/admin/backup/retention")
        | ("get", "/admin/backup/schedule")
        | ("post", "/databases/{db}/admin/backup/retention")
        | ("post", "/smuggler/import/cancel")
        | ("post", "/databases/{db}/smuggler/import/cancel")
        | ("put", "/admin/users/{name}")
        | ("delete", "/admin/users/{name}")
        | ("post", "/admin/apikeys")
        | ("delete", "/admin/apikeys/{name}")
        | ("get", "/admin/protection")
        | ("get", "/admin/notifications")
        | ("put", "/admin/notifications/{name}")
        | ("get", "/admin/notifications/{name}")
        | ("delete", "/admin/notifications/{name}")
        | ("post", "/admin/notifications/{name}/test")
        | ("get", "/admin/backup/documents")
        | ("get", "/admin/backup/documents/{id}")
        | ("get", "/admin/backup/diff")
        | ("post", "/admin/restore/documents")
        | ("post", "/databases/{db}/admin/restore/documents")
        | ("post", "/admin/restore/documents/cancel")
        | ("post", "/databases/{db}/admin/restore/documents/cancel") => "Admin",
        ("get", "/metrics") => "Metrics",
        _ => return None,
    })
}

fn rank(role: &str) -> u8 {
    match role {
        "ReadOnly" => 1,
        "ReadWrite" => 2,
        "Admin" => 3,
        _ => 0,
    }
}

/// Whether `role` passes `rule`: `Metrics` is for an Admin or a Monitor; a
/// Monitor passes no other rule.
fn allows(rule: &str, role: &str) -> bool {
    match rule {
        "Metrics" => matches!(role, "Monitor" | "Admin"),
        _ => rank(role) >= rank(rule) && rank(role) > 0,
    }
}

#[test]
fn every_route_checks_credentials_and_roles() {
    let s = TestServer::start_full(&[], &["--max-failed-auth=100000"]);
    s.create_db("Walk");
    s.put_doc("/databases/Walk", "walk/1", json!({}));
    // While open (development mode), the first administrator is created over REST.
    let (_, me) = s.get("/auth/me");
    assert_eq!(me["DevelopmentMode"], true);
    assert_eq!(s.put("/admin/users/root", json!({"Password": "root-pw", "Role": "Admin"})).0, 201);
    // From now on, credentials are needed.
    assert_eq!(s.get("/databases").0, 401);
    let admin = basic("root", "root-pw");
    let h = |v: &str| vec![("Authorization", v.to_string())];
    let as_admin = |method: &str, path: &str, body: Value| {
        let (st, text) = s.call_raw(method, path, Some(body.to_string()), &[("Authorization", admin.as_str())]);
        (st, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null))
    };
    assert_eq!(as_admin("PUT", "/admin/users/reader", json!({"Password": "r", "Role": "ReadOnly"})).0, 201);
    assert_eq!(as_admin("PUT", "/admin/users/writer", json!({"Password": "w", "Role": "ReadWrite"})).0, 201);
    assert_eq!(as_admin("PUT", "/admin/users/scraper", json!({"Password": "m", "Role": "Monitor"})).0, 201);
    let (status, key) = as_admin("POST", "/admin/apikeys", json!({"Name": "ci", "Role": "Admin"}));
    assert_eq!(status, 201);
    let api_key = format!("ApiKey {}", key["ApiKey"].as_str().expect("key"));

    let identities: Vec<(&str, Option<String>, Option<&str>)> = vec![
        ("nobody", None, None),
        ("wrong password", Some(basic("root", "nope")), None),
        ("unknown key", Some("ApiKey ci/not-the-secret".into()), None),
        ("monitor", Some(basic("scraper", "m")), Some("Monitor")),
        ("reader", Some(basic("reader", "r")), Some("ReadOnly")),
        ("writer", Some(basic("writer", "w")), Some("ReadWrite")),
        ("admin key", Some(api_key.clone()), Some("Admin")),
        ("admin user", Some(admin.clone()), Some("Admin")),
    ];
    let (_, spec) = s.get("/openapi.json");
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let rule = expected_rule(method, path).unwrap_or_else(|| panic!("{method} {path} has no rule in this test: add one"));
            let concrete = path
                .replace("{db}", "Walk")
                .replace("{id}", "walk/1")
                .replace("{name}", "walker-missing")
                .replace("/admin/backup/sets", "/admin/backup/sets?location=/nonexistent-walk");
            for (who, header, role) in &identities {
                // Logging out ends nothing here (no session); skip the admin's
                // destructive calls that would change later checks.
                let headers: Vec<(&str, String)> = header.as_ref().map(|v| h(v)).unwrap_or_default();
                let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let body = if method == "get" || method == "delete" { None } else { Some("{}".to_string()) };
                let (status, text) = s.call_raw(&method.to_uppercase(), &concrete, body, &headers);
                let what = format!("{who}: {method} {concrete} -> {status} {text}");
                assert!(status < 500, "a server error is never an answer to a client: {what}");
                if rule == "Public" {
                    assert!(status != 401 && status != 403, "{what}");
                } else if role.is_none() {
                    assert_eq!(status, 401, "{what}");
                    assert!(text.contains("\"Unauthorized\""), "{what}");
                } else if !allows(rule, role.unwrap_or_default()) {
                    assert_eq!(status, 403, "{what}");
                    assert!(text.contains("\"Forbidden\""), "{what}");
                } else {
                    assert!(status != 401 && status != 403, "{what}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "{checked} checks");
}

#[test]
fn create_admin_flag_refusal_on_public_address_and_rate_limit() {
    let mut s = TestServer::start_full(&[], &["--max-failed-auth=5"]);
    s.stop();
    // Non-loopback with no administrator: refuses to start, says how to create one.
    let out = std::process::Command::new(crate::common::SERVER_BIN)
        .arg("--data-dir")
        .arg(&s.data_dir)
        .arg("--bind=0.0.0.0:0")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--create-admin"), "{}", String::from_utf8_lossy(&out.stderr));
    // --create-admin reads ROOKERY_PASSWORD, stores, exits.
    let out = std::process::Command::new(crate::common::SERVER_BIN)
        .arg("--data-dir")
        .arg(&s.data_dir)
        .arg("--create-admin=boss")
        .env("ROOKERY_PASSWORD", "b0ss")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.restart();
    let (_, me) = s.get("/auth/me");
    assert_eq!(me["DevelopmentMode"], false);
    let good = basic("boss", "b0ss");
    let (status, _) = s.call_raw("GET", "/databases", None, &[("Authorization", &good)]);
    assert_eq!(status, 200);
    // Five failures from one address, then 429 even with good credentials, for a minute.
    for _ in 0..5 {
        assert_eq!(s.call_raw("GET", "/databases", None, &[("Authorization", &basic("boss", "bad"))]).0, 401);
    }
    let (status, text) = s.call_raw("GET", "/databases", None, &[("Authorization", &good)]);
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("TooManyAttempts"));
}

#[test]
fn studio_sessions_need_the_csrf_token_and_end_at_logout() {
    let s = TestServer::start();
    assert_eq!(s.put("/admin/users/ann", json!({"Password": "pw", "Role": "Admin"})).0, 201);
    let (status, _) = s.call_raw("POST", "/auth/login", Some(json!({"Username": "ann", "Password": "bad"}).to_string()), &[]);
    assert_eq!(status, 401);
    // ureq does not keep cookies: read them from the answer by hand.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let response =
        agent.post(&format!("{}/auth/login", s.url)).send(json!({"Username": "ann", "Password": "pw"}).to_string()).expect("login");
    assert_eq!(response.status().as_u16(), 200);
    let cookies: Vec<String> = response.headers().get_all("set-cookie").iter().map(|v| v.to_str().expect("ascii").to_string()).collect();
    let session = cookies.iter().find(|c| c.starts_with("rookery_session=")).expect("session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"), "{session}");
    let value = |c: &str| c.split(';').next().expect("pair").to_string();
    let csrf_pair = value(cookies.iter().find(|c| c.starts_with("rookery_csrf=")).expect("csrf cookie"));
    let csrf = csrf_pair.trim_start_matches("rookery_csrf=").to_string();
    let cookie_header = format!("{}; {}", value(session), csrf_pair);
    // Reads work with the cookie alone; writes need the token too.
    assert_eq!(s.call_raw("GET", "/databases", None, &[("Cookie", &cookie_header)]).0, 200);
    let (status, text) = s.call_raw("PUT", "/docs/x", Some("{}".into()), &[("Cookie", &cookie_header)]);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("CsrfTokenMissing"));
    assert_eq!(s.call_raw("PUT", "/docs/x", Some("{}".into()), &[("Cookie", &cookie_header), ("X-CSRF-Token", &csrf)]).0, 201);
    let (_, me) = s.call_raw("GET", "/auth/me", None, &[("Cookie", &cookie_header)]);
    assert!(me.contains("\"Name\":\"ann\""), "{me}");
    assert_eq!(s.call_raw("POST", "/auth/logout", None, &[("Cookie", &cookie_header)]).0, 204);
    assert_eq!(s.call_raw("GET", "/databases", None, &[("Cookie", &cookie_header)]).0, 401);
}

#[test]
fn clis_send_credentials_and_say_so_when_wrong() {
    let s = TestServer::start();
    assert_eq!(s.put("/admin/users/op", json!({"Password": "op-pw", "Role": "Admin"})).0, 201);
    let admin = basic("op", "op-pw");
    assert_eq!(s.call_raw("PUT", "/admin/databases/Cred", None, &[("Authorization", &admin)]).0, 201);
    let dest = s.location("cred-backups");
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(BACKUP_BIN);
        cmd.arg(format!("--url={}/databases/Cred", s.url)).arg(format!("--dest={dest}")).args(extra);
        cmd.env_remove("ROOKERY_USERNAME").env_remove("ROOKERY_PASSWORD").env_remove("ROOKERY_API_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("runs");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, err) = run(&["--username=op", "--password=wrong"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("Unauthorized") && err.trim().lines().count() == 1, "{err}");
    let (code, err) = run(&[], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("Unauthorized"), "{err}");
    let (code, err) = run(&["--username=op", "--password=op-pw"], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(&[], &[("ROOKERY_USERNAME", "op"), ("ROOKERY_PASSWORD", "op-pw")]);
    assert_eq!(code, 0, "{err}");
    // An API key with a role too low: Forbidden.
    let (_, key) = {
        let (st, text) = s.call_raw(
            "POST",
            "/admin/apikeys",
            Some(json!({"Name": "viewer", "Role": "ReadOnly"}).to_string()),
            &[("Authorization", &admin)],
        );
        (st, serde_json::from_str::<Value>(&text).expect("json"))
    };
    let (code, err) = run(&[&format!("--api-key={}", key["ApiKey"].as_str().expect("key"))], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("Forbidden"), "{err}");
}

#[test]
fn backup_locations_stay_inside_the_roots() {
    let root = tempfile::tempdir().expect("tempdir");
    let root_arg = format!("--backup-root={}", root.path().display());
    let s = TestServer::start_full(&[], &[&root_arg]);
    s.create_db("Rooted");
    let inside = root.path().join("ok").display().to_string();
    s.backup("/databases/Rooted", &inside, false);
    let outside = s.location("outside");
    let escape = format!("{}/../escape", root.path().display());
    let link = root.path().join("link");
    std::os::unix::fs::symlink(s.dir.path(), &link).expect("symlink");
    let through_link = link.join("x").display().to_string();
    for bad in [outside.as_str(), escape.as_str(), through_link.as_str()] {
        let (status, body) = s.post("/databases/Rooted/admin/backup", json!({"BackupLocation": bad}));
        assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidBackupLocation")), "{bad}: {body}");
        let (status, body) = s.post("/admin/restore", json!({"BackupLocation": bad, "DatabaseName": "R2"}));
        assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidBackupLocation")), "{bad}: {body}");
    }
    assert!(!std::path::Path::new(&outside).exists());
}
