//! Documents and databases: health, listings, and the answers of writes.

use serde::{Deserialize, Serialize};

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
}

/// One entry of `GET /databases`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DatabaseInfo {
    pub name: String,
    pub document_count: u64,
    /// Bytes on disk: tables and journals, preallocated journal space included.
    pub size_bytes: u64,
    /// Bytes of the documents themselves (ids and stored records): the data size.
    #[serde(default)]
    pub data_size_bytes: u64,
    pub encrypted: bool,
}

/// Optional body of `PUT /admin/databases/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateDatabaseRequest {
    #[serde(default)]
    pub encrypted: bool,
}

/// Answer of `PUT /admin/databases/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DatabaseCreated {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
}

/// Answer of `PUT {base}/docs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct PutResult {
    pub id: String,
    #[serde(rename = "ETag")]
    pub etag: u64,
}

/// One document in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DocumentEntry {
    pub id: String,
    #[serde(rename = "ETag")]
    pub etag: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub document: serde_json::Value,
}

/// Answer of `GET {base}/docs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct DocumentPage {
    pub results: Vec<DocumentEntry>,
    pub total_results: u64,
}
