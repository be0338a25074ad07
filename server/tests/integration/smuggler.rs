//! Import and export against real servers, through files and between servers.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::common::TestServer;

const SMUGGLER_BIN: &str = env!("CARGO_BIN_EXE_rookery-smuggler");

fn run(args: &[String]) -> (i32, String) {
    let out = Command::new(SMUGGLER_BIN).args(args).output().expect("runs");
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn seed(s: &TestServer, db: &str, n: usize) {
    s.create_db(db);
    for i in 0..n {
        s.put_doc(
            &format!("/databases/{db}"),
            &format!("items/{i:04}"),
            json!({"i": i, "name": format!("item {i}"), "nested": {"tags": ["a", i.to_string()]}}),
        );
    }
}

#[test]
fn round_trip_through_a_file_and_between_servers() {
    let a = TestServer::start();
    let b = TestServer::start();
    seed(&a, "Shop", 300);
    let file = a.path("shop.rookerydump");
    let (code, out) = run(&["out".into(), format!("--url={}/databases/Shop", a.url), format!("--file={}", file.display())]);
    assert_eq!(code, 0, "{out}");
    // `zstd -dc | jq` readable: every line is JSON.
    let text = String::from_utf8(zstd::decode_all(std::fs::File::open(&file).expect("opens")).expect("zstd")).expect("utf8");
    assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    assert_eq!(text.lines().count(), 302);

    b.create_db("Shop");
    let (code, out) = run(&["in".into(), format!("--url={}", b.url), "--database=Shop".into(), format!("--file={}", file.display())]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("300 documents written"), "{out}");
    assert_eq!(b.all_docs("/databases/Shop"), a.all_docs("/databases/Shop"));
    let (_, status) = b.get("/databases/Shop/docs/Raven/Smuggler/Status");
    assert_eq!((status["IsRunning"].clone(), status["Success"].clone()), (json!(false), json!(true)));

    // between: no file; into an empty database of another name.
    b.create_db("Copy");
    let (code, out) = run(&["between".into(), format!("--from={}/databases/Shop", a.url), format!("--to={}/databases/Copy", b.url)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(b.all_docs("/databases/Copy"), a.all_docs("/databases/Shop"));

    // Existing ids are kept unless --overwrite.
    b.put_doc("/databases/Copy", "items/0001", json!({"local": true}));
    let (code, out) = run(&["in".into(), format!("--url={}/databases/Copy", b.url), format!("--file={}", file.display())]);
    assert_eq!(code, 0);
    assert!(out.contains("0 documents written, 300 skipped"), "{out}");
    assert_eq!(b.get("/databases/Copy/docs/items/0001").1, json!({"local": true}));
    let (code, _) =
        run(&["in".into(), format!("--url={}/databases/Copy", b.url), format!("--file={}", file.display()), "--overwrite".into()]);
    assert_eq!(code, 0);
    assert_eq!(b.get("/databases/Copy/docs/items/0001").1["i"], 1);

    // A subset by prefix, over REST.
    a.put_doc("/databases/Shop", "other/1", json!({}));
    let (status, text) = a.call_raw("GET", "/databases/Shop/smuggler/export?startsWith=other/", None, &[]);
    assert_eq!(status, 200);
    let _ = text; // binary; the count is checked through an import below
    let subset = a.path("subset.rookerydump");
    let (code, _) = run(&[
        "out".into(),
        format!("--url={}/databases/Shop", a.url),
        format!("--file={}", subset.display()),
        "--starts-with=other/".into(),
    ]);
    assert_eq!(code, 0);
    b.create_db("Subset");
    let (code, out) = run(&["in".into(), format!("--url={}/databases/Subset", b.url), format!("--file={}", subset.display())]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(b.all_docs("/databases/Subset").len(), 1);
}

#[test]
fn truncated_files_and_bad_lines_give_clear_errors() {
    let a = TestServer::start();
    seed(&a, "Src", 2000);
    let file = a.path("src.rookerydump");
    let (code, _) = run(&["out".into(), format!("--url={}/databases/Src", a.url), format!("--file={}", file.display())]);
    assert_eq!(code, 0);
    let bytes = std::fs::read(&file).expect("reads");
    let cut = a.path("cut.rookerydump");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("writes");
    a.create_db("Target");
    let (code, out) = run(&["in".into(), format!("--url={}/databases/Target", a.url), format!("--file={}", cut.display())]);
    assert_ne!(code, 0);
    assert!(out.contains("InvalidDump") && (out.contains("truncated") || out.contains("cut short")), "{out}");
    let (_, status) = a.get("/databases/Target/docs/Raven/Smuggler/Status");
    assert_eq!((status["IsRunning"].clone(), status["Success"].clone()), (json!(false), json!(false)));

    // A bad line: its number in the error; the lines before it are kept.
    let mut text = String::from_utf8(zstd::decode_all(&bytes[..]).expect("zstd")).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    let mut broken: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    broken[6] = "{\"Id\": \"x\", \"Document\": [not json".into();
    text = broken.join("\n");
    a.create_db("Broken");
    let (status, body) = a.call_raw("POST", "/databases/Broken/smuggler/import", Some(text), &[]);
    assert_eq!(status, 400, "{body}");
    let err: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(err["Error"], "InvalidDump");
    assert!(err["Message"].as_str().expect("message").contains("line 7"), "{err}");
    assert_eq!(a.all_docs("/databases/Broken").len(), 5, "the five documents before line 7 are kept");
    // Unknown database: 404.
    let (status, _) = a.call_raw("POST", "/databases/Nope/smuggler/import", Some(String::new()), &[]);
    assert_eq!(status, 404);
}

/// The documents are written on a thread of their own beside the reading
/// of the dump: when writing fails, the import stops there and says why,
/// and no batch after it is written.
#[test]
fn an_import_whose_writes_fail_stops_and_says_why() {
    let a = TestServer::start_with(&[("ROOKERY_FAILPOINTS", "import.write=enospc")]);
    let mut lines =
        vec![json!({"FormatVersion": 1, "ServerVersion": "t", "Database": "D", "Exported": "2026-12-07T05:00:00Z"}).to_string()];
    for i in 0..5000 {
        lines.push(json!({"Id": format!("d/{i:04}"), "Document": {"i": i}}).to_string());
    }
    lines.push(json!({"EndOfDump": true, "DocumentCount": 5000}).to_string());
    a.create_db("Full");
    let (status, body) = a.call_raw("POST", "/databases/Full/smuggler/import", Some(lines.join("\n") + "\n"), &[]);
    assert_eq!(status, 500, "{body}");
    let err: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(err["Error"], "InternalError", "the answer does not show the server's internals: {err}");
    // The status document says why.
    let (_, done) = a.get("/databases/Full/docs/Raven/Smuggler/Status");
    assert_eq!(
        (done["IsRunning"].clone(), done["Success"].clone(), done["ErrorCode"].clone()),
        (json!(false), json!(false), json!("IoError")),
        "{done}"
    );
    assert!(done.to_string().contains("No space left on device"), "{done}");
    assert_eq!(a.all_docs("/databases/Full").len(), 0, "nothing was written");
}

/// Dumps written by every format version are kept in `tests/fixtures/` and must keep importing.
#[test]
fn format_version_1_fixture_imports() {
    let s = TestServer::start();
    s.create_db("Fixture");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dump-v1.rookerydump");
    let (code, out) = run(&["in".into(), format!("--url={}/databases/Fixture", s.url), format!("--file={}", fixture.display())]);
    assert_eq!(code, 0, "{out}");
    let docs = s.all_docs("/databases/Fixture");
    assert_eq!(docs.len(), 8);
    assert_eq!(docs["people/3"], json!({"Name": "Person 3", "Tags": ["a", "b"], "Nested": {"N": 3}}));
}
