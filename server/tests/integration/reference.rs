//! The project's own reference stays complete: every error code the server
//! can emit (the `ErrorCode` enum, which every module's error maps to) is
//! explained in `docs/reference.md` and listed in `/openapi.json`.

use rookery_types::ErrorCode;

use crate::common::TestServer;

#[test]
fn every_error_code_is_in_the_reference_and_in_openapi() {
    let reference = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reference.md")).expect("docs/reference.md");
    let s = TestServer::start();
    let (status, spec) = s.get("/openapi.json");
    assert_eq!(status, 200);
    let listed: Vec<String> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("an ErrorCode enum in the spec")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut missing = Vec::new();
    for code in ErrorCode::ALL {
        let name = code.as_str();
        if !reference.contains(&format!("`{name}`")) {
            missing.push(format!("{name} is not explained in docs/reference.md"));
        }
        // Its row in the error table says the one status the server answers it with.
        let row = format!("| `{name}` | {} ", code.status());
        if !reference.contains(&row) {
            missing.push(format!("the error table of docs/reference.md does not give {name} its status {}", code.status()));
        }
        if !listed.iter().any(|l| l == name) {
            missing.push(format!("{name} is not in /openapi.json"));
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
    // And the reference does not send readers outside the repository.
    assert!(!reference.contains("shared/") && !reference.contains("CONTRACT"), "docs/reference.md points outside the repository");
}
