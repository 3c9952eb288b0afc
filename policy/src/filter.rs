//! A prefilter in front of the host table, so that a request for a host with no order costs
//! about the same against a million-name table as against an empty one.
//!
//! Two checks, both cheap and both exact in one direction (a "no" is always right):
//! - the set of label counts present among the names (`a.example` has 2): a suffix with a label
//!   count no name has is never looked up;
//! - a blocked Bloom filter (one 64-bit word per name, 3 bits set in it, ~16 bits per name): a
//!   miss costs one memory access instead of the hash map's probe and key comparison.
//!
//! A "maybe" falls through to the hash map, which decides.

/// Names longer than this many labels are all counted as this many (DNS allows up to 127).
const MAX_LABELS: usize = 127;

#[derive(Debug)]
pub(crate) struct Prefilter {
    words: Box<[u64]>,
    mask: usize,
    label_counts: u128,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// murmur3's fmix64: spreads FNV's weak high bits over the whole word.
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// FNV-1a over the bytes, then the avalanche, so that both the word index (low bits) and the
/// bit positions (high bits) are well mixed. The host table hashes with it too (one hash per
/// suffix serves both): its keys come from the operator's policy file and requests only look
/// up, so probe lengths are set by the operator's names, never by a client, and a keyed
/// (DoS-resistant) hash would buy nothing and cost a third of a lookup.
pub(crate) fn hash(name: &[u8]) -> u64 {
    fmix(fnv(FNV_OFFSET, name))
}

fn bits(h: u64) -> u64 {
    (1 << ((h >> 40) & 63)) | (1 << ((h >> 46) & 63)) | (1 << ((h >> 52) & 63))
}

pub(crate) fn labels(name: &str) -> usize {
    (name.bytes().filter(|&b| b == b'.').count() + 1).min(MAX_LABELS)
}

impl Prefilter {
    /// Room for `names` names at about 16 bits each (a power of two of 64-bit words).
    pub(crate) fn with_capacity(names: usize) -> Self {
        let words = (names / 4).max(1).next_power_of_two();
        Prefilter {
            words: vec![0; words].into_boxed_slice(),
            mask: words - 1,
            label_counts: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn insert(&mut self, name: &str) {
        self.add_labels(name);
        self.insert_hash(hash(name.as_bytes()));
    }

    /// Notes `name`'s label count (each name must be both noted and inserted).
    pub(crate) fn add_labels(&mut self, name: &str) {
        self.label_counts |= 1 << labels(name);
    }

    /// Inserts a name by its [`hash`].
    pub(crate) fn insert_hash(&mut self, h: u64) {
        if let Some(w) = self.words.get_mut(h as usize & self.mask) {
            *w |= bits(h);
        }
    }

    /// `false` only when no name equals `suffix` (which has `labels` labels).
    #[cfg(test)]
    pub(crate) fn may_contain(&self, suffix: &str, labels: usize) -> bool {
        self.has_labels(labels) && self.may_contain_hashed(hash(suffix.as_bytes()))
    }

    /// `false` only when no name has `labels` labels.
    pub(crate) fn has_labels(&self, labels: usize) -> bool {
        self.label_counts & (1 << labels.min(MAX_LABELS)) != 0
    }

    /// `false` only when no name has the [`hash`] `h`.
    pub(crate) fn may_contain_hashed(&self, h: u64) -> bool {
        let want = bits(h);
        self.words
            .get(h as usize & self.mask)
            .is_some_and(|w| w & want == want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let n = 100_000;
        let mut f = Prefilter::with_capacity(n);
        for i in 0..n {
            f.insert(&format!("h{i}.example"));
        }
        assert!((0..n).all(|i| f.may_contain(&format!("h{i}.example"), 2)));
        let fp = (n..2 * n)
            .filter(|i| f.may_contain(&format!("h{i}.example"), 2))
            .count();
        assert!(fp < n / 20, "{fp} false positives in {n}");
        assert!(!f.may_contain("www.h1.example", 3), "no 3-label name");
        assert!(!f.may_contain("example", 1));
    }
}
