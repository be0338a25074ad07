//! The on-disk encoding of a document record and of etag keys.
//!
//! A record is `[version u8][flags u8][etag u64 BE][modified_ms i64 BE][body]`.
//! The body is the document's compact JSON (or, in an encrypted database, its
//! ciphertext). Keys of the change log and of the deletion log are big-endian
//! etags, so that a range scan from an etag reads changes in etag order.

use super::error::StorageError;

const RECORD_VERSION: u8 = 1;
/// Bytes before the body in an encoded record.
pub const HEADER_LEN: usize = 1 + 1 + 8 + 8;

/// A decoded document record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub etag: u64,
    pub modified_ms: i64,
    pub body: Vec<u8>,
}

impl Record {
    /// Encodes the record for the `docs` keyspace.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        encode_parts(self.etag, self.modified_ms, &self.body)
    }

    /// Decodes a value of the `docs` keyspace.
    ///
    /// # Errors
    /// `StorageError::Corrupt` when the value is too short or of an unknown version.
    pub fn decode(raw: &[u8]) -> Result<Self, StorageError> {
        let (etag, modified_ms) = decode_header(raw)?;
        Ok(Self { etag, modified_ms, body: raw[HEADER_LEN..].to_vec() })
    }
}

/// Flag: the body is sealed with the database key (see [`crate::crypto`]).
pub const FLAG_ENCRYPTED: u8 = 1;

/// Encodes a record from its parts without building a `Record`.
#[must_use]
pub fn encode_parts(etag: u64, modified_ms: i64, body: &[u8]) -> Vec<u8> {
    encode_with_flags(etag, modified_ms, 0, body)
}

/// Encodes a record whose body carries `flags` ([`FLAG_ENCRYPTED`]).
#[must_use]
pub fn encode_with_flags(etag: u64, modified_ms: i64, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header(etag, modified_ms, flags));
    out.extend_from_slice(body);
    out
}

/// The bytes a record starts with, before its body.
#[must_use]
pub fn header(etag: u64, modified_ms: i64, flags: u8) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0] = RECORD_VERSION;
    out[1] = flags;
    out[2..10].copy_from_slice(&etag.to_be_bytes());
    out[10..18].copy_from_slice(&modified_ms.to_be_bytes());
    out
}

/// The stored value of a record, built in place: the header and the body
/// copied once into the storage's own buffer (a bulk ingestion's value).
#[must_use]
pub fn value_with_flags(etag: u64, modified_ms: i64, flags: u8, body: &[u8]) -> byteview::ByteView {
    byteview::ByteView::fused(&header(etag, modified_ms, flags), body)
}

/// Reads only the etag and modification time of an encoded record.
///
/// # Errors
/// `StorageError::Corrupt` when the value is too short or of an unknown version.
pub fn decode_header(raw: &[u8]) -> Result<(u64, i64), StorageError> {
    if raw.len() < HEADER_LEN || raw[0] != RECORD_VERSION {
        return Err(StorageError::Corrupt("document record header".into()));
    }
    let etag = u64::from_be_bytes(raw[2..10].try_into().map_err(|_| corrupt())?);
    let modified = i64::from_be_bytes(raw[10..18].try_into().map_err(|_| corrupt())?);
    Ok((etag, modified))
}

/// The flags byte of an encoded record.
#[must_use]
pub fn flags(raw: &[u8]) -> u8 {
    raw.get(1).copied().unwrap_or(0)
}

/// The big-endian key of an etag.
#[must_use]
pub fn etag_key(etag: u64) -> [u8; 8] {
    etag.to_be_bytes()
}

/// Decodes a big-endian etag key.
///
/// # Errors
/// `StorageError::Corrupt` when the key is not 8 bytes long.
pub fn decode_etag_key(key: &[u8]) -> Result<u64, StorageError> {
    Ok(u64::from_be_bytes(key.try_into().map_err(|_| corrupt())?))
}

fn corrupt() -> StorageError {
    StorageError::Corrupt("etag key".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = Record { etag: 42, modified_ms: 1_700_000_000_000, body: br#"{"a":1}"#.to_vec() };
        let raw = r.encode();
        assert_eq!(Record::decode(&raw).expect("decodes"), r);
        assert_eq!(decode_header(&raw).expect("header"), (42, 1_700_000_000_000));
    }

    #[test]
    fn corrupt_records_are_refused() {
        assert!(Record::decode(&[1, 0, 0]).is_err());
        let mut raw = Record { etag: 1, modified_ms: 0, body: vec![] }.encode();
        raw[0] = 9;
        assert!(Record::decode(&raw).is_err());
    }

    #[test]
    fn etag_keys_sort_numerically() {
        assert!(etag_key(255) < etag_key(256));
        assert_eq!(decode_etag_key(&etag_key(77)).expect("decodes"), 77);
    }
}
