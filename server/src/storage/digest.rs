//! The content digest of a database: a digest of every (id, body) it holds
//! that does not depend on order and that each write keeps current.
//!
//! It is a homomorphic set hash: the sum, modulo 2^256, of the SHA-256 of
//! each live document's id and stored body. A write adds the new document's
//! hash and subtracts the old one's; a delete subtracts; so the digest after
//! any history equals the digest of the final set of documents, which is
//! what a restore rebuilds. Finding two different sets with one sum would
//! take a generalized birthday attack on 256-bit sums (Wagner), far beyond
//! what checking backups against damage asks. The server's own `Raven/`
//! documents are not part of it (they are not part of any set either).

use sha2::{Digest as _, Sha256};

/// A content digest (see the module).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentDigest([u64; 4]);

impl ContentDigest {
    /// The hash of one document: its id and its stored body (sealed when the database is encrypted).
    #[must_use]
    pub fn item(id: &str, body: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(u32::try_from(id.len()).unwrap_or(u32::MAX).to_be_bytes());
        hasher.update(id.as_bytes());
        hasher.update(body);
        let bytes: [u8; 32] = hasher.finalize().into();
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut chunk = [0u8; 8];
            chunk.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            *limb = u64::from_le_bytes(chunk);
        }
        Self(limbs)
    }

    /// A document's term of its database's digest: its [`Self::item`], or
    /// none for a server-owned document (`Raven/...`), which no digest counts.
    #[must_use]
    pub fn term(id: &str, body: &[u8]) -> Option<Self> {
        (!rookery_types::is_server_owned(id)).then(|| Self::item(id, body))
    }

    /// Adds a document (modulo 2^256).
    pub fn add(&mut self, other: &Self) {
        let mut carry = false;
        for (a, b) in self.0.iter_mut().zip(other.0) {
            let (sum, c1) = a.overflowing_add(b);
            let (sum, c2) = sum.overflowing_add(u64::from(carry));
            *a = sum;
            carry = c1 || c2;
        }
    }

    /// Removes a document (modulo 2^256).
    pub fn sub(&mut self, other: &Self) {
        let mut borrow = false;
        for (a, b) in self.0.iter_mut().zip(other.0) {
            let (diff, b1) = a.overflowing_sub(b);
            let (diff, b2) = diff.overflowing_sub(u64::from(borrow));
            *a = diff;
            borrow = b1 || b2;
        }
    }

    /// The 32 bytes, little-endian limbs.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// From [`Self::to_bytes`].
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 32 {
            return None;
        }
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut chunk = [0u8; 8];
            chunk.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            *limb = u64::from_le_bytes(chunk);
        }
        Some(Self(limbs))
    }

    /// Hex, as manifests carry it.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_depends_on_the_set_not_on_the_history() {
        let (a, b, c) = (ContentDigest::item("a", b"1"), ContentDigest::item("b", b"2"), ContentDigest::item("a", b"3"));
        let mut history = ContentDigest::default();
        history.add(&a);
        history.add(&b);
        history.sub(&a);
        history.add(&c);
        let mut direct = ContentDigest::default();
        direct.add(&b);
        direct.add(&c);
        assert_eq!(history, direct);
        assert_ne!(direct, ContentDigest::default());
        let mut empty = direct;
        empty.sub(&c);
        empty.sub(&b);
        assert_eq!(empty, ContentDigest::default());
        assert_eq!(ContentDigest::from_bytes(&direct.to_bytes()), Some(direct));
    }
}
