//! Request bodies: read within the size limit, then parsed strictly. A body
//! is a JSON object whose every field the request knows: a misspelt field
//! (`BackupPasphrase`) or a body of another JSON type (`[]`) is refused with
//! 400 `InvalidRequest` naming what is wrong, so that a typo can never change
//! what the server does (a set written in clear, say).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use rookery_types::ErrorCode;

/// Reads a request body, turning an oversized or broken one into a JSON error.
pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::BodyTooLarge, "The request body is larger than the server accepts.")
        } else {
            ApiError::new(ErrorCode::InvalidBody, format!("The request body cannot be read: {}", e.body_text()))
        }
    })
}

/// A required request body: a JSON object that deserializes as `T`.
///
/// # Errors
/// 400 `InvalidJson` for bytes that are not JSON, `InvalidRequest` for
/// another JSON type, an unknown field, a missing one or a field of the wrong type.
pub(crate) fn json_request<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body_bytes(body)?;
    match parse_object(&bytes)? {
        Some(object) => from_object(object),
        None => Err(not_an_object("nothing")),
    }
}

/// An optional request body: empty, `null`, or a JSON object that
/// deserializes as `T`; the first two give `T::default()`.
///
/// # Errors
/// As [`json_request`].
pub(crate) fn optional_json_request<T: DeserializeOwned + Default>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body_bytes(body)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    match parse_object(&bytes)? {
        Some(object) => from_object(object),
        None => Ok(T::default()),
    }
}

/// The body as a JSON object; `None` for `null`.
fn parse_object(bytes: &[u8]) -> Result<Option<serde_json::Value>, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("The body is not valid JSON: {e}")))?;
    match value {
        serde_json::Value::Object(_) => Ok(Some(value)),
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Array(_) => Err(not_an_object("an array")),
        serde_json::Value::String(_) => Err(not_an_object("a string")),
        serde_json::Value::Number(_) => Err(not_an_object("a number")),
        serde_json::Value::Bool(_) => Err(not_an_object("a boolean")),
    }
}

fn from_object<T: DeserializeOwned>(object: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(object).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("The request is not valid: {e}.")))
}

fn not_an_object(found: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, format!("The body must be a JSON object ({{...}}), not {found}."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery_types::{BackupRequest, CreateDatabaseRequest};

    fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
        json_request(Ok(Bytes::from(text.to_string())))
    }

    #[test]
    fn a_misspelt_field_is_refused_naming_it() {
        let err = parse::<BackupRequest>(r#"{"BackupLocation": "/b", "BackupPasphrase": "x"}"#).expect_err("refused");
        assert_eq!((err.status, err.code), (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest));
        assert!(err.message.contains("BackupPasphrase"), "{}", err.message);
        let ok: BackupRequest = parse(r#"{"BackupLocation": "/b", "BackupPassphrase": "x"}"#).expect("parses");
        assert_eq!(ok.backup_passphrase.as_deref(), Some("x"));
    }

    #[test]
    fn other_json_types_are_refused_and_empty_optional_bodies_are_defaults() {
        for body in ["[]", "\"x\"", "1", "true"] {
            let err = optional_json_request::<CreateDatabaseRequest>(Ok(Bytes::from(body))).expect_err(body);
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
        }
        let err = parse::<BackupRequest>("{").expect_err("not JSON");
        assert_eq!(err.code, ErrorCode::InvalidJson);
        for body in ["", "  ", "null"] {
            let parsed = optional_json_request::<CreateDatabaseRequest>(Ok(Bytes::from(body))).expect(body);
            assert!(!parsed.encrypted);
        }
        let err = parse::<BackupRequest>(r#"{"BackupLocation": 7}"#).expect_err("wrong type");
        assert!(err.message.contains("invalid type"), "{}", err.message);
    }
}
