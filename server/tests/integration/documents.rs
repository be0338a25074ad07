//! The documents and databases REST API, against a real server.

use serde_json::{json, Value};

use crate::common::TestServer;

#[test]
fn health_and_base_url_rule() {
    let s = TestServer::start();
    assert_eq!(s.get("/health"), (200, json!({"Status": "Ok"})));
    s.create_db("Northwind");
    // The root is the system database; /databases/{db} is the named one.
    s.put_doc("", "users/1", json!({"Where": "system"}));
    s.put_doc("/databases/Northwind", "users/1", json!({"Where": "named"}));
    assert_eq!(s.get("/docs/users/1").1, json!({"Where": "system"}));
    assert_eq!(s.get("/databases/Northwind/docs/users/1").1, json!({"Where": "named"}));
    // Names are case-insensitive; System is the system database.
    assert_eq!(s.get("/databases/northwind/docs/users/1").1, json!({"Where": "named"}));
    assert_eq!(s.get("/databases/System/docs/users/1").1, json!({"Where": "system"}));
    let (status, body) = s.get("/databases/Nope/docs/users/1");
    assert_eq!(status, 404);
    assert_eq!(body["Error"], "NotFound");
}

#[test]
fn document_crud_etags_and_if_match() {
    let s = TestServer::start();
    let (status, body) = s.put("/docs/orders/2026/1", json!({"Total": 10, "Lines": [1, 2]}));
    assert_eq!(status, 201);
    assert_eq!(body["Id"], "orders/2026/1");
    let first = body["ETag"].as_u64().expect("etag");
    let (status, body) = s.put("/docs/orders/2026/1", json!({"Total": 11}));
    assert_eq!(status, 200);
    let second = body["ETag"].as_u64().expect("etag");
    assert!(second > first);

    let (status, text) = s.call_raw("GET", "/docs/orders/2026/1", None, &[]);
    assert_eq!((status, text.as_str()), (200, r#"{"Total":11}"#));

    // If-Match: stale etag -> 409, nothing changes; quoted and bare forms both accepted.
    let stale = format!("\"{first}\"");
    let (status, text) = s.call_raw("PUT", "/docs/orders/2026/1", Some(r#"{"Total":99}"#.into()), &[("If-Match", &stale)]);
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("ConcurrencyConflict"));
    assert_eq!(s.get("/docs/orders/2026/1").1, json!({"Total": 11}));
    let current = second.to_string();
    let (status, _) = s.call_raw("PUT", "/docs/orders/2026/1", Some(r#"{"Total":12}"#.into()), &[("If-Match", &current)]);
    assert_eq!(status, 200);

    // Percent-encoded slashes reach the same id.
    assert_eq!(s.get("/docs/orders%2F2026%2F1").1, json!({"Total": 12}));

    assert_eq!(s.delete("/docs/orders/2026/1").0, 204);
    let (status, body) = s.get("/docs/orders/2026/1");
    assert_eq!((status, body["Error"].clone()), (404, json!("NotFound")));
    assert_eq!(s.delete("/docs/orders/2026/1").0, 404);
}

#[test]
fn key_order_of_a_document_is_kept() {
    let s = TestServer::start();
    let (_, _) = s.call_raw("PUT", "/docs/a", Some(r#"{"z":1,"a":2,"m":{"y":1,"b":2}}"#.into()), &[]);
    let (_, text) = s.call_raw("GET", "/docs/a", None, &[]);
    assert_eq!(text, r#"{"z":1,"a":2,"m":{"y":1,"b":2}}"#);
}

#[test]
fn numbers_keep_their_text() {
    let s = TestServer::start();
    let doc =
        r#"{"big":123456789012345678901234567890,"neg0":-0.0,"exp":1.5e3,"tenth":0.1,"huge":1e400,"one":1.0,"int":-9007199254740993}"#;
    let (status, _) = s.call_raw("PUT", "/docs/n", Some(doc.into()), &[]);
    assert_eq!(status, 201);
    let (_, text) = s.call_raw("GET", "/docs/n", None, &[]);
    assert_eq!(text, doc, "every number comes back as it was written");
    // Through a backup and a restore as well.
    let location = s.location("numbers");
    s.backup("", &location, false);
    let done = s.restore(serde_json::json!({"BackupLocation": location, "DatabaseName": "Numbers"}));
    assert_eq!(done["Success"], true, "{done}");
    let (_, text) = s.call_raw("GET", "/databases/Numbers/docs/n", None, &[]);
    assert_eq!(text, doc);
    // Listings keep integers beyond 64 bits and -0.0 too.
    let (_, page) = s.call_raw("GET", "/docs?startsWith=n", None, &[]);
    assert!(page.contains("123456789012345678901234567890") && page.contains("-0.0"), "{page}");
}

#[test]
fn listing_pages_in_id_order_with_status_documents_counted() {
    let s = TestServer::start();
    s.create_db("Paged");
    for i in 0..30 {
        s.put_doc("/databases/Paged", &format!("items/{i:03}"), json!({"i": i}));
    }
    s.put_doc("/databases/Paged", "other/1", json!({}));
    let (_, page) = s.get("/databases/Paged/docs?start=5&pageSize=10&startsWith=items/");
    assert_eq!(page["TotalResults"], 30);
    let ids: Vec<&str> = page["Results"].as_array().expect("results").iter().map(|r| r["Id"].as_str().expect("id")).collect();
    assert_eq!(ids, (5..15).map(|i| format!("items/{i:03}")).collect::<Vec<_>>());
    let (_, page) = s.get("/databases/Paged/docs");
    assert_eq!(page["TotalResults"], 31);
    assert_eq!(page["Results"].as_array().expect("results").len(), 25);
    // pageSize above 1024 is capped, not refused.
    let (status, page) = s.get("/databases/Paged/docs?pageSize=100000");
    assert_eq!(status, 200);
    assert_eq!(page["Results"].as_array().expect("results").len(), 31);
    let (status, body) = s.get("/databases/Paged/docs?pageSize=-1");
    assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidQuery")));
}

#[test]
fn bad_input_gets_a_json_4xx_and_changes_nothing() {
    let s = TestServer::start();
    s.create_db("Safe");
    let etag_before = s.put_doc("/databases/Safe", "keep", json!({"v": 1}));
    let long_id = format!("/databases/Safe/docs/{}", "i".repeat(600));
    let cases: Vec<(&str, &str, Option<String>, u16, &str)> = vec![
        ("PUT", "/databases/Safe/docs/x", Some("[1,2]".into()), 400, "NotAnObject"),
        ("PUT", "/databases/Safe/docs/x", Some("42".into()), 400, "NotAnObject"),
        ("PUT", "/databases/Safe/docs/x", Some("{\"a\":".into()), 400, "InvalidJson"),
        ("PUT", "/databases/Safe/docs/x", Some(String::new()), 400, "InvalidJson"),
        ("PUT", "/databases/Safe/docs/x", Some("[".repeat(100_000)), 400, "InvalidJson"),
        // One byte over the 16 MiB limit: the server reads the whole body before it answers 413. A body a
        // megabyte over was answered, and the connection closed, while the client still wrote: "Broken pipe".
        ("PUT", "/databases/Safe/docs/x", Some(format!("{{\"big\":\"{}\"}}", "x".repeat(16 * 1024 * 1024 - 9))), 413, "BodyTooLarge"),
        ("PUT", &long_id, Some("{}".into()), 400, "InvalidId"),
        ("PUT", "/databases/Safe/docs/keep", Some("{}".into()), 400, "InvalidETag"),
        ("PUT", "/admin/databases/..", None, 400, "InvalidName"),
        ("PUT", "/admin/databases/.hidden", None, 400, "InvalidName"),
        ("PUT", "/admin/databases/a%2Fb", None, 400, "InvalidName"),
        ("PUT", "/admin/databases/na%C3%AFve", None, 400, "InvalidName"),
        ("PUT", "/admin/databases/Safe", None, 409, "DatabaseExists"),
        ("PUT", "/admin/databases/SAFE", None, 409, "DatabaseExists"),
        ("PUT", "/admin/databases/System", None, 409, "DatabaseExists"),
        ("PUT", "/admin/databases/New", Some("{\"Nope\":1}".into()), 400, "InvalidRequest"),
        ("DELETE", "/admin/databases/Missing", None, 404, "NotFound"),
        ("POST", "/databases/Safe/docs/keep", Some("{}".into()), 405, "MethodNotAllowed"),
        ("DELETE", "/databases", None, 405, "MethodNotAllowed"),
        ("GET", "/databases/Missing/docs", None, 404, "NotFound"),
        ("PUT", "/databases/Missing/docs/a", Some("{}".into()), 404, "NotFound"),
    ];
    for (method, path, body, want_status, want_code) in cases {
        let headers: Vec<(&str, &str)> = if path.ends_with("/keep") { vec![("If-Match", "not-a-number")] } else { vec![] };
        let (status, text) = s.call_raw(method, path, body, &headers);
        let json: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        assert_eq!(status, want_status, "{method} {path}: {text}");
        assert_eq!(json["Error"], want_code, "{method} {path}: {text}");
        assert!(json["Message"].as_str().is_some_and(|m| !m.is_empty()), "{method} {path}: a message");
    }
    // Nothing changed.
    let (_, list) = s.get("/databases");
    let names: Vec<&str> = list.as_array().expect("list").iter().map(|d| d["Name"].as_str().expect("name")).collect();
    assert_eq!(names, ["Safe"]);
    assert_eq!(s.all_docs("/databases/Safe").len(), 1);
    let (_, text) = s.call_raw("GET", "/databases/Safe/docs/keep", None, &[]);
    assert_eq!(text, r#"{"v":1}"#);
    assert_eq!(s.put_doc("/databases/Safe", "next", json!({})), etag_before + 1, "no etag was spent on refused writes");
}

#[test]
fn databases_are_listed_in_creation_order_and_deleted() {
    let s = TestServer::start();
    for name in ["Zulu", "alpha", "Mike"] {
        s.create_db(name);
    }
    s.put_doc("/databases/alpha", "a", json!({}));
    let (_, list) = s.get("/databases");
    let names: Vec<&str> = list.as_array().expect("list").iter().map(|d| d["Name"].as_str().expect("name")).collect();
    assert_eq!(names, ["Zulu", "alpha", "Mike"]);
    assert_eq!(list[1]["DocumentCount"], 1);
    assert_eq!(list[1]["Encrypted"], false);
    assert!(list[1]["SizeBytes"].as_u64().expect("size") > 0);
    assert_eq!(s.delete("/admin/databases/alpha").0, 204);
    assert!(!s.data_dir.join("Databases/alpha").exists());
    assert_eq!(s.get("/databases/alpha/docs").0, 404);
    // The name can be used again, for an empty database.
    s.create_db("alpha");
    assert!(s.all_docs("/databases/alpha").is_empty());
}

#[test]
fn openapi_describes_every_route() {
    let s = TestServer::start();
    let (status, spec) = s.get("/openapi.json");
    assert_eq!(status, 200);
    let paths = spec["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/health", vec!["get"]),
        ("/databases", vec!["get"]),
        ("/admin/databases/{name}", vec!["put", "delete"]),
        ("/docs", vec!["get"]),
        ("/docs/{id}", vec!["get", "put", "delete"]),
        ("/databases/{db}/docs", vec!["get"]),
        ("/databases/{db}/docs/{id}", vec!["get", "put", "delete"]),
        ("/admin/backup", vec!["post"]),
        ("/databases/{db}/admin/backup", vec!["post"]),
        ("/admin/backup/sets", vec!["get"]),
        ("/admin/restore", vec!["post"]),
        ("/openapi.json", vec!["get"]),
    ] {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} is missing from /openapi.json"));
        for m in methods {
            assert!(item.get(m).is_some(), "{m} {path} is missing");
        }
    }
    let db_param = &paths["/databases/{db}/docs/{id}"]["get"]["parameters"];
    assert!(db_param.as_array().expect("params").iter().any(|p| p["name"] == "db"));
}

#[test]
fn hostile_ids_names_and_traversal_change_nothing_outside() {
    let s = TestServer::start();
    s.create_db("Hostile");
    // Control characters are valid in an id (any non-empty UTF-8): stored and read back exactly.
    let id = "ctl/\u{1}\u{7}\t\u{1b}[31m";
    let path = format!("/databases/Hostile/docs/{}", rookery::cli::client::percent_encode(id));
    assert_eq!(s.call_raw("PUT", &path, Some("{\"x\":1}".into()), &[]).0, 201);
    assert_eq!(s.get(&path).1, json!({"x": 1}));
    let (_, page) = s.get("/databases/Hostile/docs?startsWith=ctl/");
    assert_eq!(page["Results"][0]["Id"], id);
    // 10 KB ids are refused.
    let long = format!("/databases/Hostile/docs/{}", "k".repeat(10 * 1024));
    let (status, text) = s.call_raw("PUT", &long, Some("{}".into()), &[]);
    assert_eq!(status, 400, "{text}");
    // Names: reserved device names are plain names here; traversal is not a name.
    assert_eq!(s.call_raw("PUT", "/admin/databases/CON", None, &[]).0, 201);
    assert!(s.data_dir.join("Databases/CON").is_dir());
    for path in [
        "/admin/databases/%2e%2e",
        "/admin/databases/%2E%2E%2Fescape",
        "/admin/databases/..%2F..%2Ftmp",
        "/admin/databases/%C3%A9t%C3%A9",
        "/admin/users/%2e%2e%2fx",
    ] {
        let (status, text) = s.call_raw("PUT", path, Some(json!({"Password": "p", "Role": "Admin"}).to_string()), &[]);
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("\"Error\""), "{path}: {text}");
    }
    for path in ["/databases/%2e%2e/docs", "/databases/..%2F..%2Fetc/docs/x", "/databases/%2e%2e%2fSystem/docs"] {
        let (status, text) = s.call_raw("GET", path, None, &[]);
        assert_eq!(status, 404, "{path}: {text}");
    }
    // A traversal-looking document id is only an id: it lands in the database, nowhere else.
    let sneaky = "/databases/Hostile/docs/..%2F..%2F..%2Fescaped";
    assert_eq!(s.call_raw("PUT", sneaky, Some("{}".into()), &[]).0, 201);
    assert_eq!(s.get("/databases/Hostile/docs/..%2F..%2F..%2Fescaped").0, 200);
    assert!(!s.dir.path().join("escaped").exists() && !s.data_dir.join("escaped").exists());
    // Backup and restore locations aimed at the data directory or a database inside it.
    for location in [
        s.data_dir.display().to_string(),
        s.data_dir.join("Databases/Hostile").display().to_string(),
        format!("{}/Databases/../..", s.data_dir.display()),
    ] {
        let (status, body) = s.post("/databases/Hostile/admin/backup", json!({"BackupLocation": location}));
        assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidBackupLocation")), "{location}");
        let (status, body) = s.post("/admin/restore", json!({"BackupLocation": location, "DatabaseName": "X"}));
        assert_eq!((status, body["Error"].as_str()), (400, Some("InvalidBackupLocation")), "{location}");
    }
}

#[test]
fn sizes_say_what_the_data_takes_and_what_the_disk_takes() {
    let s = TestServer::start();
    s.create_db("Small");
    s.put_doc("/databases/Small", "a/1", json!({"Name": "Ann"}));
    s.put_doc("/databases/Small", "a/2", json!({"Name": "Bob"}));
    s.put_doc("/databases/Small", "a/2", json!({"Name": "Bobby"}));
    let (_, list) = s.get("/databases");
    let small = &list[0];
    let data = small["DataSizeBytes"].as_u64().expect("a data size");
    // Two documents of a few bytes each: ids, headers and bodies, not the journal's preallocation.
    assert!(data > 20 && data < 200, "{small}");
    assert!(small["SizeBytes"].as_u64().expect("a disk size") >= data, "{small}");
    // A restored copy holds the same data; deletes give it back.
    let location = s.location("sizes");
    s.backup("/databases/Small", &location, false);
    assert_eq!(s.restore(json!({"BackupLocation": location, "DatabaseName": "Copy"}))["Success"], true);
    let (_, list) = s.get("/databases?includeSystem=true");
    assert_eq!(list[0]["Name"], "System", "{list}");
    let copy = list.as_array().expect("list").iter().find(|d| d["Name"] == "Copy").expect("the copy").clone();
    assert_eq!(copy["DataSizeBytes"].as_u64(), Some(data), "{list}");
    assert_eq!(copy["DocumentCount"], 2);
    // The backup's status document is data too; deleting the two gives back exactly theirs.
    let with_status =
        list.as_array().expect("list").iter().find(|d| d["Name"] == "Small").expect("small")["DataSizeBytes"].as_u64().expect("size");
    assert_eq!(s.delete("/databases/Small/docs/a/1").0, 204);
    assert_eq!(s.delete("/databases/Small/docs/a/2").0, 204);
    let (_, list) = s.get("/databases");
    assert_eq!(list[0]["DataSizeBytes"].as_u64(), Some(with_status - data), "{list}");
}
