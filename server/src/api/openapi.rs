//! `GET /openapi.json`: the OpenAPI description of every route.
//!
//! Per-database routes are declared at the root (the system database) and
//! mounted again under `/databases/{db}`, exactly as the router does.

use axum::Json;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{OpenApi as OpenApiDoc, Required};
use utoipa::OpenApi;

use super::routes::per_database_routes;
use super::{auth, browse, databases, documents, health, jobs, monitor, notifications, smuggler, tasks};
use rookery_types::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rookery",
        description = "A document database with online backup and verified restore. Errors are `{\"Error\": code, \"Message\": text}`."
    ),
    paths(
        health::health,
        spec,
        databases::list,
        databases::create,
        databases::delete,
        documents::list,
        documents::get,
        documents::put,
        documents::delete,
        jobs::start_backup,
        jobs::start_restore,
        jobs::list_sets,
        smuggler::export_dump,
        smuggler::import_dump,
        smuggler::cancel_import,
        jobs::cancel_backup,
        jobs::cancel_restore,
        jobs::start_compaction,
        jobs::cancel_compaction,
        jobs::start_copy,
        jobs::cancel_copy,
        tasks::put_task,
        tasks::list_tasks,
        tasks::get_task,
        tasks::delete_task,
        tasks::run_task,
        tasks::retention,
        tasks::describe_schedule,
        auth::put_user,
        auth::delete_user,
        auth::create_api_key,
        auth::delete_api_key,
        auth::whoami,
        auth::login,
        auth::logout,
        monitor::metrics,
        monitor::protection,
        notifications::put_notification,
        notifications::list_notifications,
        notifications::get_notification,
        notifications::delete_notification,
        notifications::test_notification,
        browse::list_documents,
        browse::get_document,
        browse::diff,
        browse::restore_documents,
        browse::cancel_restore_documents,
    ),
    components(schemas(
        documents::IfNoneMatch,
        ErrorBody,
        ErrorCode,
        Health,
        DatabaseInfo,
        CreateDatabaseRequest,
        DatabaseCreated,
        PutResult,
        DocumentEntry,
        DocumentPage,
        BackupRequest,
        BackupType,
        JobAccepted,
        RestoreRequest,
        CompactRequest,
        CopyRequest,
        S3Settings,
        JobStatus,
        JobProgress,
        StatusMessage,
        Severity,
        BackupListing,
        BackupChainInfo,
        BackupSetInfo,
        Role,
        PutUserRequest,
        CreateApiKeyRequest,
        ApiKeyCreated,
        LoginRequest,
        Me,
        ProtectionOverview,
        DatabaseProtection,
        TaskProtection,
        ProtectionState,
        NotificationEvent,
        PutNotificationRequest,
        NotificationInfo,
        NotificationDeliveryInfo,
        NotificationBody,
        TestDelivery,
        BackupDocument,
        BackupDocumentPage,
        DocumentChange,
        DiffEntry,
        DiffPage,
        RestoreDocumentsMode,
        RestoreDocumentsRequest,
    ))
)]
struct ApiDoc;

/// The OpenAPI form of a route's path (`{*id}` is `{id}`).
pub(crate) fn described_path(route: &str) -> String {
    route.replace("{*", "{")
}

/// Paths served at the root for the system database and under
/// `/databases/{db}` for named ones: the router's own list.
fn is_per_database(path: &str) -> bool {
    per_database_routes().iter().any(|(route, _, _)| described_path(route) == path)
}

/// The whole description.
#[must_use]
pub fn document() -> OpenApiDoc {
    let mut doc = ApiDoc::openapi();
    let per_database: Vec<_> =
        doc.paths.paths.iter().filter(|(p, _)| is_per_database(p)).map(|(p, item)| (p.clone(), item.clone())).collect();
    for (path, mut item) in per_database {
        for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
            add_db_parameter(op);
            add_unknown_database(op);
            if let Some(id) = op.operation_id.as_mut() {
                id.push_str("_named");
            }
        }
        doc.paths.paths.insert(format!("/databases/{{db}}{path}"), item);
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [("GET", &mut item.get), ("PUT", &mut item.put), ("POST", &mut item.post), ("DELETE", &mut item.delete)] {
            let Some(op) = op.as_mut() else { continue };
            name_pattern(op);
            if crate::auth::required_access(method, path) != crate::auth::Access::Public {
                add_error(op, "401", "Unauthorized: credentials are missing or wrong (a protected server)");
                add_error(op, "403", "Forbidden: the role may not; CsrfTokenMissing: a session's write without its token");
                add_error(op, "429", "TooManyAttempts: too many failed credential checks from this address");
            }
        }
    }
    doc
}

/// Every `{name}` in a path (a database, a task, a user, an API key) follows [`NAME_PATTERN`].
fn name_pattern(op: &mut Operation) {
    for parameter in op.parameters.iter_mut().flatten() {
        if parameter.name == "name" && parameter.parameter_in == ParameterIn::Path {
            let schema =
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).pattern(Some(NAME_PATTERN));
            parameter.schema = Some(schema.into());
        }
    }
}

/// Documents an error answer of an operation, unless it already is.
fn add_error(op: &mut Operation, status: &str, description: &str) {
    if !op.responses.responses.contains_key(status) {
        let response = utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody"))).build(),
            )
            .build();
        op.responses.responses.insert(status.to_string(), response.into());
    }
}

/// Every route under `/databases/{db}` answers 404 `NotFound` for an unknown database.
fn add_unknown_database(op: &mut Operation) {
    add_error(op, "404", "NotFound: no database of that name");
}

fn add_db_parameter(op: &mut Operation) {
    let db: Parameter = ParameterBuilder::new()
        .name("db")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("A named database"))
        .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).pattern(Some(NAME_PATTERN))))
        .build();
    op.parameters.get_or_insert_with(Vec::new).insert(0, db);
}

/// This description.
#[utoipa::path(get, path = "/openapi.json", tag = "server", responses((status = 200, description = "OpenAPI 3.1", body = Object)))]
pub async fn spec() -> Json<OpenApiDoc> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    /// Every path the router serves, in the description's form.
    fn routed_paths() -> BTreeSet<String> {
        use crate::api::routes::server_routes;
        let per_database = per_database_routes();
        let root = server_routes().into_iter().chain(per_database_routes()).map(|(p, _, _)| described_path(p));
        // The router adds `/openapi.json` itself (this file's `spec`).
        let root = root.chain(std::iter::once("/openapi.json".to_string()));
        root.chain(per_database.into_iter().map(|(p, _, _)| format!("/databases/{{db}}{}", described_path(p)))).collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_description_and_the_router_serve_the_same_routes_and_methods() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rookery = Arc::new(crate::engine::Rookery::open(crate::config::Config::for_tests(&dir.path().join("data"))).expect("opens"));
        rookery.catalog().create("db").expect("creates");
        let router = crate::api::router::router(rookery);
        let doc = document();
        let described: BTreeSet<String> = doc.paths.paths.keys().cloned().collect();
        assert_eq!(described, routed_paths(), "the description and the router list the same paths");
        for (path, item) in &doc.paths.paths {
            let uri = path.replace("{db}", "db").replace("{id}", "some/id").replace("{name}", "nobody");
            for (method, op) in [("GET", &item.get), ("PUT", &item.put), ("POST", &item.post), ("DELETE", &item.delete)] {
                let request = Request::builder().method(method).uri(&uri).body(Body::empty()).expect("request");
                let response = router.clone().oneshot(request).await.expect("answers");
                let status = response.status();
                let body = response.into_body().collect().await.expect("body").to_bytes();
                let routed = status != StatusCode::METHOD_NOT_ALLOWED && !(status == StatusCode::NOT_FOUND && body.is_empty());
                assert_eq!(routed, op.is_some(), "{method} {uri}: described {} but answered {status}", op.is_some());
            }
        }
    }

    #[test]
    fn every_name_follows_the_one_name_pattern() {
        let doc = serde_json::to_value(document()).expect("serializes");
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for op in item.as_object().expect("an item").values() {
                for parameter in op["parameters"].as_array().into_iter().flatten() {
                    if parameter["in"] == "path" && (parameter["name"] == "name" || parameter["name"] == "db") {
                        assert_eq!(parameter["schema"]["pattern"], NAME_PATTERN, "{path} {}", parameter["name"]);
                        seen += 1;
                    }
                }
            }
        }
        assert!(seen > 20, "{seen} name parameters");
        let schemas = &doc["components"]["schemas"];
        for (schema, field) in
            [("RestoreRequest", "DatabaseName"), ("RestoreRequest", "SourceDatabaseName"), ("CreateApiKeyRequest", "Name")]
        {
            assert_eq!(schemas[schema]["properties"][field]["pattern"], NAME_PATTERN, "{schema}.{field}");
        }
        let re = regex::Regex::new(NAME_PATTERN).expect("a regex");
        for name in ["Northwind", "a.b-c_1", "", ".hidden", "..", "a/b", "naïve", "-x", "_", &"x".repeat(64), &"x".repeat(65)] {
            assert_eq!(re.is_match(name), is_valid_database_name(name), "{name:?}");
        }
    }

    #[test]
    fn set_id_patterns_accept_every_kind_of_set_id_and_times() {
        let doc = serde_json::to_value(document()).expect("serializes");
        let schemas = &doc["components"]["schemas"];
        let patterns = [
            schemas["CompactRequest"]["properties"]["UpTo"]["pattern"].as_str().expect("UpTo pattern"),
            schemas["RestoreRequest"]["properties"]["RestoreUpTo"]["pattern"].as_str().expect("RestoreUpTo pattern"),
        ];
        let mut taken = std::collections::BTreeSet::new();
        let mut ids = Vec::new();
        for kind in crate::backup::SetKind::ALL {
            for _ in 0..2 {
                let id = crate::backup::format::new_set_id(&taken, kind);
                taken.insert(id.clone());
                ids.push(id);
            }
        }
        ids.push("20261126T050000Z-2-full".into()); // version 1's form
        for pattern in patterns {
            let re = regex::Regex::new(pattern).expect("a regex");
            for id in &ids {
                assert!(crate::backup::format::is_valid_set_id(id), "{id}");
                assert!(re.is_match(id), "{pattern} refuses the set id {id}");
            }
            assert!(!re.is_match("../20261126T050000Z-full"), "{pattern}");
        }
        let restore = regex::Regex::new(patterns[1]).expect("a regex");
        for time in ["2026-11-26T05:00:00Z", "2026-11-26T05:00:00.123+01:00"] {
            assert!(restore.is_match(time), "{time}");
        }
    }
}
