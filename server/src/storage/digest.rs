//! The content digest of a database: a digest of every (id, body) it holds
//! that does not depend on order and that each write keeps current.
//!
//! It is a homomorphic set hash: the sum, modulo 2^256, of a 256-bit hash
//! of each live document's id and stored body. A write adds the new
//! document's hash and subtracts the old one's; a delete subtracts; so the
//! digest after any history equals the digest of the final set of
//! documents, which is what a restore rebuilds. The server's own `Raven/`
//! documents are not part of it (they are not part of any set either).
//!
//! Two hashes have been summed ([`DigestKind`]):
//! - **xxh3**, kept by every live store and written by sets of format 7 and
//!   later: two 128-bit XXH3 with two seeds. It costs a quarter of SHA-256
//!   (a restore paid 0.7 s of CPU per GB on SHA-256, under 0.2 s on XXH3).
//! - **SHA-256**, written by sets of formats 2 to 6: a restore of such a
//!   set recomputes it over the restored documents to compare.
//!
//! What the digest is for: proving that a restore's merge of a chain, its
//! ingestion and the storage under it rebuilt exactly the documents the
//! source held. A damaged or lost document, a wrong merge or a stale
//! version changes the sum but for a chance of 2^-128 or less. It is not
//! what authenticates a set: whoever can rewrite a set can rewrite its
//! manifest's digest too, so that is the work of the per-file SHA-256 sums
//! and, for encrypted sets, of their authenticated encryption and MAC.

use sha2::{Digest as _, Sha256};
use std::cell::RefCell;

use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Which hash a digest sums (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    /// SHA-256: sets of formats 2 to 6.
    Sha256,
    /// Two seeded XXH3-128: live stores, and sets of format 7 and later.
    Xxh3,
}

/// The seeds of the two XXH3-128 halves (any two distinct constants).
const XXH3_SEEDS: [u64; 2] = [0x526f_6f6b_6572_7931, 0x526f_6f6b_6572_7932];

/// A scratch buffer kept above this is given back after use (a large document).
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    /// The bytes an XXH3 term hashes, laid end to end on each thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `hash` of the id's length, the id and the body laid end to end: one-shot
/// XXH3 over them gives what the streaming hasher gave over the three parts
/// (the same bytes), without its buffering; a restore hashes every document
/// twice (profiled: the streaming hasher was 11% of a 1M-document restore's CPU).
fn with_item_bytes<T>(id_len: &[u8], id: &str, body: &[u8], hash: impl FnOnce(&[u8]) -> T) -> T {
    SCRATCH.with_borrow_mut(|bytes| {
        bytes.clear();
        bytes.extend_from_slice(id_len);
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(body);
        let hashed = hash(bytes);
        if bytes.capacity() > SCRATCH_KEPT {
            *bytes = Vec::new();
        }
        hashed
    })
}

/// A content digest (see the module).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentDigest([u64; 4]);

impl ContentDigest {
    /// The hash of one document as live stores sum it ([`DigestKind::Xxh3`]):
    /// its id and its stored body (sealed when the database is encrypted).
    #[must_use]
    pub fn item(id: &str, body: &[u8]) -> Self {
        Self::item_of(DigestKind::Xxh3, id, body)
    }

    /// The hash of one document under `kind`.
    #[must_use]
    pub fn item_of(kind: DigestKind, id: &str, body: &[u8]) -> Self {
        let id_len = u32::try_from(id.len()).unwrap_or(u32::MAX).to_be_bytes();
        match kind {
            DigestKind::Xxh3 => with_item_bytes(&id_len, id, body, |bytes| {
                let mut limbs = [0u64; 4];
                for (half, seed) in XXH3_SEEDS.into_iter().enumerate() {
                    let h = xxh3_128_with_seed(bytes, seed);
                    // Truncation intended: the low and the high 64 bits.
                    #[allow(clippy::cast_possible_truncation)]
                    let (low, high) = (h as u64, (h >> 64) as u64);
                    limbs[half * 2] = low;
                    limbs[half * 2 + 1] = high;
                }
                Self(limbs)
            }),
            DigestKind::Sha256 => {
                let mut hasher = Sha256::new();
                hasher.update(id_len);
                hasher.update(id.as_bytes());
                hasher.update(body);
                let bytes: [u8; 32] = hasher.finalize().into();
                Self::from_bytes(&bytes).unwrap_or_default()
            }
        }
    }

    /// A document's term of its database's digest: its [`Self::item`], or
    /// none for a server-owned document (`Raven/...`), which no digest counts.
    #[must_use]
    pub fn term(id: &str, body: &[u8]) -> Option<Self> {
        Self::term_of(DigestKind::Xxh3, id, body)
    }

    /// [`Self::term`] under `kind`.
    #[must_use]
    pub fn term_of(kind: DigestKind, id: &str, body: &[u8]) -> Option<Self> {
        (!rookery_types::is_server_owned(id)).then(|| Self::item_of(kind, id, body))
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

    /// The SHA-256 terms are what formats 2 to 6 wrote: a document's term is
    /// the SHA-256 of its id's length (4 bytes, big-endian), id and body, as
    /// four little-endian limbs. Changing it would refuse every older set.
    #[test]
    fn each_kind_hashes_the_same_bytes_as_the_sets_that_carry_it() {
        let sha = ContentDigest::item_of(DigestKind::Sha256, "people/1", b"{}");
        let mut bytes = vec![0, 0, 0, 8];
        bytes.extend_from_slice(b"people/1{}");
        let expected: [u8; 32] = Sha256::digest(&bytes).into();
        assert_eq!(sha.to_bytes(), expected);
        let xxh = ContentDigest::item("people/1", b"{}");
        assert_eq!(xxh, ContentDigest::item_of(DigestKind::Xxh3, "people/1", b"{}"));
        let halves: Vec<u128> = XXH3_SEEDS.iter().map(|&seed| xxhash_rust::xxh3::xxh3_128_with_seed(&bytes, seed)).collect();
        let mut expected = [0u8; 32];
        expected[..16].copy_from_slice(&halves[0].to_le_bytes());
        expected[16..].copy_from_slice(&halves[1].to_le_bytes());
        assert_eq!(xxh.to_bytes(), expected);
        assert_ne!(xxh, sha);
        // The id's length keeps the id and the body apart.
        assert_ne!(ContentDigest::item("ab", b"c"), ContentDigest::item("a", b"bc"));
        assert_eq!(ContentDigest::term("Raven/Backup/Status", b"{}"), None);
    }

    /// Live stores and sets since format 7 carry sums of terms that the
    /// streaming hasher made over the id's length, the id and the body, fed
    /// in three parts: the one-shot hash must give the same terms at every
    /// length XXH3 treats apart (up to 16, 128 and 240 bytes, a stripe block
    /// of 1 KiB, more), and after a large document has come and gone.
    #[test]
    fn xxh3_terms_are_those_of_the_streaming_hasher_at_every_length() {
        let streamed = |id: &str, body: &[u8]| {
            let id_len = u32::try_from(id.len()).expect("short").to_be_bytes();
            let halves: Vec<u128> = XXH3_SEEDS
                .iter()
                .map(|&seed| {
                    let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(seed);
                    hasher.update(&id_len);
                    hasher.update(id.as_bytes());
                    hasher.update(body);
                    hasher.digest128()
                })
                .collect();
            let mut bytes = [0u8; 32];
            bytes[..16].copy_from_slice(&halves[0].to_le_bytes());
            bytes[16..].copy_from_slice(&halves[1].to_le_bytes());
            ContentDigest::from_bytes(&bytes).expect("32 bytes")
        };
        let body: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let lengths = [0, 1, 3, 4, 8, 9, 16, 17, 100, 128, 129, 200, 240, 241, 1000, 1024, 1025, 4096, 70_000, 300_000, 12];
        for id in ["", "a", "orders/0000000001", &"x".repeat(300)] {
            for len in lengths {
                assert_eq!(ContentDigest::item(id, &body[..len]), streamed(id, &body[..len]), "id {} bytes, body {len} bytes", id.len());
            }
        }
    }
}
