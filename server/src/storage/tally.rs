//! What a store keeps counted of its documents: how many there are, the
//! bytes they take (id and record), and their content digest (see
//! [`super::digest`]). The store keeps its tally in memory under the
//! writer's lock and writes it to `meta` in every commit that changes it.

use super::digest::ContentDigest;

/// A document as a [`Tally`] counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    /// Its id's and stored record's bytes.
    pub size: u64,
    /// Its digest term (none for the server's own documents).
    pub term: Option<ContentDigest>,
}

/// Documents, their bytes and their digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub documents: u64,
    pub data_bytes: u64,
    pub digest: ContentDigest,
}

impl Tally {
    /// A document that was `old` (none: it did not exist) is now `new`
    /// (none: it was deleted). Counts never go below zero.
    pub fn change(&mut self, old: Option<Counted>, new: Option<Counted>) {
        match (&old, &new) {
            (None, Some(_)) => self.documents += 1,
            (Some(_), None) => self.documents = self.documents.saturating_sub(1),
            _ => {}
        }
        if let Some(old) = old {
            self.data_bytes = self.data_bytes.saturating_sub(old.size);
            if let Some(term) = old.term {
                self.digest.sub(&term);
            }
        }
        if let Some(new) = new {
            self.data_bytes += new.size;
            if let Some(term) = new.term {
                self.digest.add(&term);
            }
        }
    }

    /// Adds the tally of other documents (the other half of a restore's
    /// documents, none of them counted here).
    pub fn add(&mut self, other: &Self) {
        self.documents += other.documents;
        self.data_bytes += other.data_bytes;
        self.digest.add(&other.digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::digest::DigestKind;

    fn doc(id: &str, body: &str) -> Counted {
        Counted { size: (id.len() + body.len()) as u64, term: ContentDigest::term_of(DigestKind::Xxh3, id, body.as_bytes()) }
    }

    #[test]
    fn created_replaced_and_deleted_documents_are_counted_as_a_fresh_tally_of_what_is_left() {
        let (a1, a2, b) = (doc("a", r#"{"v":1}"#), doc("a", r#"{"v":22}"#), doc("b", "{}"));
        let server_owned = Counted { size: 40, term: None };
        let mut tally = Tally::default();
        tally.change(None, Some(a1));
        tally.change(None, Some(b));
        tally.change(None, Some(server_owned));
        tally.change(Some(a1), Some(a2));
        tally.change(Some(b), None);

        let mut fresh = Tally::default();
        fresh.change(None, Some(a2));
        fresh.change(None, Some(server_owned));
        assert_eq!(tally, fresh, "a replaced and a deleted document leave no trace");
        assert_eq!((tally.documents, tally.data_bytes), (2, a2.size + 40));

        tally.change(Some(a2), None);
        tally.change(Some(server_owned), None);
        assert_eq!(tally, Tally::default(), "nothing left, nothing counted");
        tally.change(Some(a1), None);
        assert_eq!((tally.documents, tally.data_bytes), (0, 0), "a tally that is wrong already never goes below zero");
    }

    #[test]
    fn two_halves_added_are_the_tally_of_all() {
        let docs = [doc("a", "{}"), doc("b", r#"{"v":1}"#), Counted { size: 40, term: None }, doc("c", "[]")];
        let tally_of = |docs: &[Counted]| {
            let mut tally = Tally::default();
            docs.iter().for_each(|d| tally.change(None, Some(*d)));
            tally
        };
        let mut first = tally_of(&docs[..2]);
        first.add(&tally_of(&docs[2..]));
        assert_eq!(first, tally_of(&docs));
        assert_eq!(first.documents, 4);
    }
}
