//! Names and ids: the status documents, the server's own documents, the system
//! database, the rule every name follows, and the REST base of a database.

/// Id of the backup status document, in the database being backed up.
pub const BACKUP_STATUS_ID: &str = "Raven/Backup/Status";

/// Id of the restore status document, in the system database.
pub const RESTORE_STATUS_ID: &str = "Raven/Restore/Status";

/// Id of the import/export status document.
pub const SMUGGLER_STATUS_ID: &str = "Raven/Smuggler/Status";

/// Id of the compaction status document, in the system database.
pub const COMPACT_STATUS_ID: &str = "Raven/Compact/Status";

/// Id of a selective restore's status document, in the database restored into.
pub const RESTORE_DOCUMENTS_STATUS_ID: &str = "Raven/RestoreDocuments/Status";

/// Id of the status document of a copy of sets between locations, in the system database.
pub const COPY_STATUS_ID: &str = "Raven/Copy/Status";

/// Status documents are never part of a backup.
pub const STATUS_DOCUMENT_IDS: [&str; 6] =
    [BACKUP_STATUS_ID, RESTORE_STATUS_ID, SMUGGLER_STATUS_ID, COMPACT_STATUS_ID, RESTORE_DOCUMENTS_STATUS_ID, COPY_STATUS_ID];

/// Documents whose id starts with this are the server's own (status documents
/// and whatever else it writes): readable by clients, never written by them.
pub const SERVER_OWNED_PREFIX: &str = "Raven/";

/// Whether `id` names a server-owned document (`Raven/...`).
#[must_use]
pub fn is_server_owned(id: &str) -> bool {
    id.starts_with(SERVER_OWNED_PREFIX)
}

/// Name under which the system database is shown in the studio and listings.
pub const SYSTEM_DATABASE: &str = "System";

/// The rule of every name (databases, tasks, users, API keys) as a regular
/// expression, for the OpenAPI description: what [`is_valid_database_name`] accepts.
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$";

/// A name's schema: a string matching [`NAME_PATTERN`].
#[cfg(feature = "openapi")]
pub fn name_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).pattern(Some(NAME_PATTERN)).build()
}

/// [`name_schema`], or null.
#[cfg(feature = "openapi")]
pub fn optional_name_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])).pattern(Some(NAME_PATTERN)).build()
}

/// Whether `name` is a valid name (of a database, a task, a user or an API
/// key): `[A-Za-z0-9_.-]{1,64}`, not starting with `.` ([`NAME_PATTERN`]).
pub fn is_valid_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The REST base path of a database: `` for the system database, `/databases/{name}` otherwise.
pub fn database_base(name: &str) -> String {
    if name.is_empty() || name == SYSTEM_DATABASE {
        String::new()
    } else {
        format!("/databases/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names() {
        assert!(is_valid_database_name("Northwind"));
        assert!(is_valid_database_name("a.b-c_1"));
        assert!(!is_valid_database_name(""));
        assert!(!is_valid_database_name(".hidden"));
        assert!(!is_valid_database_name(".."));
        assert!(!is_valid_database_name("a/b"));
        assert!(!is_valid_database_name("naïve"));
        assert!(!is_valid_database_name(&"x".repeat(65)));
    }
}
