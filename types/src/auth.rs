//! Roles, users, API keys and sessions.

use serde::{Deserialize, Serialize};

/// What an identity may do. Ordered: `Monitor` < `ReadOnly` < `ReadWrite` < `Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Read `/metrics` and `/health`, and nothing else (a scraper's credentials).
    Monitor,
    /// Read documents and listings.
    ReadOnly,
    /// Also write documents.
    ReadWrite,
    /// Also manage databases, users and keys, back up, restore and import.
    Admin,
}

/// Body of `PUT /admin/users/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutUserRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub password: String,
    pub role: Role,
}

/// Body of `POST /admin/apikeys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::names::name_schema))]
    pub name: String,
    pub role: Role,
}

/// Answer of `POST /admin/apikeys`: the key, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ApiKeyCreated {
    pub api_key: String,
}

/// Body of `POST /auth/login` (the studio's sign-in).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// `GET /auth/me`: who the request is from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct Me {
    pub authenticated: bool,
    pub name: Option<String>,
    pub role: Option<Role>,
    /// No user and no key exist: the server is open to anyone who can reach it.
    pub development_mode: bool,
}
