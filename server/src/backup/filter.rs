//! A membership filter over the ids of one index block (a Bloom filter,
//! [`BITS_PER_ID`] bits and [`PROBES`] probes per id: under 0.1% false
//! positives, never a false negative), kept in the index top beside the
//! block (format version 6, incrementals only).
//!
//! A lookup walks a chain from its newest set down, and an incremental of
//! 1% holds few of the ids asked for: without a filter each of them costs
//! the incremental's index block (read, checked and decompressed) only to
//! find the id is not there. 100 random ids through 24 such incrementals
//! touched 565 blocks; with the filters about a tenth of that. A full set
//! has none: it is the last set a walk looks in, and it holds nearly every
//! id asked for.
//!
//! The probes are `h1 + i * h2` (Kirsch and Mitzenmacher) of the id's
//! 128-bit XXH3, a hash fixed by its specification: a filter written by one
//! version reads the same in every other.

use xxhash_rust::xxh3::xxh3_128;

/// Filter bits per id of the block. A reader takes the bit count from the
/// filter's length, so sets written with 10 bits (about 1% false positives)
/// read as before. With 16, 100 cold reads from a chain of a full set and
/// 24 incrementals of 1% read about 20 fewer frames (each false positive is
/// a frame read for nothing: about 1 in 100 of the ids an incremental does
/// not hold at 10 bits), for 6 more bits per id in an incremental's top.
pub const BITS_PER_ID: usize = 16;
/// Bits probed per id.
pub const PROBES: u64 = 7;
/// The fewest bytes of a filter.
const MIN_BYTES: usize = 8;

/// The bytes of a filter of `ids` ids at `bits_per_id`.
fn bytes_with(ids: usize, bits_per_id: usize) -> usize {
    (ids * bits_per_id).div_ceil(8).max(MIN_BYTES)
}

/// An id's hash, computed once and probed in every filter of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdHash {
    h1: u64,
    h2: u64,
}

impl IdHash {
    #[must_use]
    pub fn of(id: &str) -> Self {
        let h = xxh3_128(id.as_bytes());
        // An odd step visits PROBES distinct bits of any filter (its bit count is a multiple of 8).
        Self { h1: h as u64, h2: (h >> 64) as u64 | 1 }
    }

    fn probes(self, bits: u64) -> impl Iterator<Item = u64> {
        (0..PROBES).map(move |i| self.h1.wrapping_add(i.wrapping_mul(self.h2)) % bits)
    }
}

/// The filter of one block; empty: no filter (every id may be there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdFilter {
    bits: Vec<u8>,
}

impl IdFilter {
    /// The filter of the ids whose hashes are `hashes`.
    #[must_use]
    pub fn build(hashes: &[IdHash]) -> Self {
        Self::build_with(hashes, BITS_PER_ID)
    }

    /// [`Self::build`] with `bits_per_id` bits per id.
    fn build_with(hashes: &[IdHash], bits_per_id: usize) -> Self {
        let mut bits = vec![0u8; bytes_with(hashes.len(), bits_per_id)];
        let m = bits.len() as u64 * 8;
        for hash in hashes {
            for p in hash.probes(m) {
                bits[(p / 8) as usize] |= 1 << (p % 8);
            }
        }
        Self { bits }
    }

    /// The size of the filter of `ids` ids.
    #[must_use]
    pub fn bytes_for(ids: usize) -> usize {
        bytes_with(ids, BITS_PER_ID)
    }

    /// A filter as stored.
    #[must_use]
    pub fn from_bytes(bits: Vec<u8>) -> Self {
        Self { bits }
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// No filter: [`Self::may_hold`] is true of every id.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// False only when the block certainly does not hold the id.
    #[must_use]
    pub fn may_hold(&self, hash: IdHash) -> bool {
        if self.bits.is_empty() {
            return true;
        }
        let m = self.bits.len() as u64 * 8;
        hash.probes(m).all(|p| self.bits[(p / 8) as usize] & (1 << (p % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_holds_every_id_it_was_built_of_and_few_others() {
        let ids: Vec<String> = (0..512).map(|i| format!("orders/{:07}", i * 97)).collect();
        let filter = IdFilter::build(&ids.iter().map(|id| IdHash::of(id)).collect::<Vec<_>>());
        assert_eq!(filter.as_bytes().len(), 1024);
        assert!(ids.iter().all(|id| filter.may_hold(IdHash::of(id))), "no false negative");
        let others = (0..100_000).filter(|i| filter.may_hold(IdHash::of(&format!("orders/{:07}x", i)))).count();
        assert!(others < 200, "{others} false positives in 100000 (about 0.07% expected)");
        assert!(IdFilter::default().may_hold(IdHash::of("anything")), "no filter holds everything");
        // The bits are fixed by XXH3's specification and the probes: a stored filter reads the same in every version.
        let two = IdFilter::build(&[IdHash::of("orders/1"), IdHash::of("orders/2")]);
        assert_eq!(hex::encode(two.as_bytes()), "400000903f040281");
        // Sets written before 16 bits per id carry filters of 10: a reader
        // takes the bit count from the length, and finds every id in them.
        let older = IdFilter::build_with(&ids.iter().map(|id| IdHash::of(id)).collect::<Vec<_>>(), 10);
        assert_eq!(older.as_bytes().len(), 640);
        assert!(ids.iter().all(|id| older.may_hold(IdHash::of(id))), "no false negative in an older filter");
        let others = (0..100_000).filter(|i| older.may_hold(IdHash::of(&format!("orders/{:07}x", i)))).count();
        assert!((200..2_000).contains(&others), "{others} false positives in 100000 at 10 bits (about 1%)");
        let one = IdFilter::build(&[IdHash::of("a")]);
        assert_eq!(one.as_bytes().len(), 8);
        assert!(one.may_hold(IdHash::of("a")));
    }
}
