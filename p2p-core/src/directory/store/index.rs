//! The SEARCH index of the in-memory directory (PROTOCOL.md §6.2): every word
//! of every publication's file name and description, with the publications
//! that have it.
//!
//! A term matches a publication when it is a prefix of one of its words, so
//! the words are kept sorted: the words a term is a prefix of are one range of
//! the map. Each word's postings are publication sequence numbers in ascending
//! order, which is publication order, so "most recently published first" is a
//! merge of the range's postings from their ends.
//!
//! A query is driven by its most selective term (the fewest postings in its
//! range); each candidate is then checked against every term on its own words.
//! Connection state is not indexed: CONNECT and DISCONNECT change nothing
//! here, and the caller skips candidates whose owner is not connected.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ops::Bound;

use p2p_proto::field::UserName;

/// The words of `text` as SEARCH compares them: maximal runs of letters and
/// digits, lowercased.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Whether every term is a prefix of some word of `file` or `description`.
pub fn matches(terms: &[String], file: &str, description: &str) -> bool {
    let words: Vec<String> = words(file).chain(words(description)).collect();
    terms
        .iter()
        .all(|term| words.iter().any(|word| word.starts_with(term.as_str())))
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct SearchIndex {
    /// Word → sequence numbers of the publications that have it, ascending.
    words: BTreeMap<Box<str>, Vec<u64>>,
    /// Sequence number → the publication's owner.
    owners: HashMap<u64, UserName>,
}

impl SearchIndex {
    /// Indexes publication `seq` of `owner`.
    pub(crate) fn insert(&mut self, seq: u64, owner: &UserName, file: &str, description: &str) {
        let mut own: Vec<String> = words(file).chain(words(description)).collect();
        own.sort_unstable();
        own.dedup();
        for word in own {
            let postings = self.words.entry(word.into_boxed_str()).or_default();
            // Publications arrive in sequence order (PUBLISH, or a durable
            // store's load ordered by sequence); stay correct otherwise.
            match postings.last() {
                Some(&last) if last >= seq => {
                    if let Err(at) = postings.binary_search(&seq) {
                        postings.insert(at, seq);
                    }
                }
                _ => postings.push(seq),
            }
        }
        self.owners.insert(seq, owner.clone());
    }

    /// Forgets the publications `(seq, file, description)`, in one pass over
    /// each word they have (UNREGISTER removes a user's files all at once).
    pub(crate) fn remove<'a>(
        &mut self,
        publications: impl IntoIterator<Item = (u64, &'a str, &'a str)>,
    ) {
        let mut by_word: HashMap<String, Vec<u64>> = HashMap::new();
        for (seq, file, description) in publications {
            self.owners.remove(&seq);
            for word in words(file).chain(words(description)) {
                by_word.entry(word).or_default().push(seq);
            }
        }
        for (word, mut gone) in by_word {
            gone.sort_unstable();
            gone.dedup();
            let emptied = match self.words.get_mut(word.as_str()) {
                Some(postings) => {
                    if gone.len() == 1 {
                        if let Ok(at) = postings.binary_search(&gone[0]) {
                            postings.remove(at);
                        }
                    } else {
                        postings.retain(|seq| gone.binary_search(seq).is_err());
                    }
                    postings.is_empty()
                }
                None => false,
            };
            if emptied {
                self.words.remove(word.as_str());
            }
        }
    }

    /// The owner of publication `seq`.
    pub(crate) fn owner(&self, seq: u64) -> Option<&UserName> {
        self.owners.get(&seq)
    }

    /// Words that start with `term`, with their postings.
    fn range<'a>(&'a self, term: &'a str) -> impl Iterator<Item = &'a Vec<u64>> + 'a {
        self.words
            .range::<str, _>((Bound::Included(term), Bound::Unbounded))
            .take_while(move |(word, _)| word.starts_with(term))
            .map(|(_, postings)| postings)
    }

    /// The publications that may match every term, most recent first, each
    /// once: those of the term with the fewest postings. Callers check the
    /// other terms (and the owner) on each candidate.
    pub(crate) fn candidates<'a>(&'a self, terms: &'a [String]) -> Candidates<'a> {
        // The most selective term: counting stops at the best so far, so a
        // term as short as "a" costs no more than the winner.
        let mut best: Option<(usize, &str)> = None;
        for term in terms {
            let limit = best.map_or(usize::MAX, |(n, _)| n);
            let mut n = 0usize;
            for postings in self.range(term) {
                n += postings.len();
                if n >= limit {
                    break;
                }
            }
            if n < limit {
                best = Some((n, term));
            }
        }
        let lists: Vec<&[u64]> = match best {
            Some((_, term)) => self.range(term).map(Vec::as_slice).collect(),
            None => Vec::new(),
        };
        let heap = lists
            .iter()
            .enumerate()
            .filter_map(|(i, list)| list.last().map(|&seq| (seq, Reverse(i))))
            .collect();
        let ends = lists.iter().map(|list| list.len()).collect();
        Candidates {
            lists,
            ends,
            heap,
            last: None,
        }
    }
}

/// A k-way merge of posting lists from their ends: sequence numbers in
/// descending order, without repeats.
#[derive(Debug)]
pub(crate) struct Candidates<'a> {
    lists: Vec<&'a [u64]>,
    /// How much of each list is not yet merged.
    ends: Vec<usize>,
    heap: BinaryHeap<(u64, Reverse<usize>)>,
    last: Option<u64>,
}

impl Iterator for Candidates<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        loop {
            let (seq, Reverse(i)) = self.heap.pop()?;
            self.ends[i] -= 1;
            if self.ends[i] > 0 {
                self.heap
                    .push((self.lists[i][self.ends[i] - 1], Reverse(i)));
            }
            if self.last != Some(seq) {
                self.last = Some(seq);
                return Some(seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn terms(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn words_are_runs_of_letters_and_digits_lowercased() {
        let w: Vec<String> = words("The_Beatles-Help.mp3 ÉCOLE straße 2024x").collect();
        assert_eq!(
            w,
            ["the", "beatles", "help", "mp3", "école", "straße", "2024x"]
        );
        assert!(matches(&terms(&["beat"]), "The_Beatles-Help.mp3", ""));
        assert!(!matches(&terms(&["tles"]), "The_Beatles-Help.mp3", ""));
        assert!(matches(&terms(&["help", "song"]), "Help.mp3", "a song"));
        assert!(!matches(&terms(&["help", "song"]), "Help.mp3", "a tune"));
    }

    #[test]
    fn candidates_come_newest_first_once() {
        let owner: UserName = "u".parse().unwrap();
        let mut index = SearchIndex::default();
        index.insert(1, &owner, "beatles help", "");
        index.insert(2, &owner, "beach", "beat");
        index.insert(3, &owner, "other", "");
        index.insert(5, &owner, "bee", "");
        let got: Vec<u64> = index.candidates(&terms(&["be"])).collect();
        assert_eq!(got, [5, 2, 1]);
        index.remove([(2, "beach", "beat")]);
        let got: Vec<u64> = index.candidates(&terms(&["be"])).collect();
        assert_eq!(got, [5, 1]);
        // The most selective term drives: "help" has one posting.
        let got: Vec<u64> = index.candidates(&terms(&["b", "help"])).collect();
        assert_eq!(got, [1]);
        assert_eq!(index.candidates(&terms(&["zzz"])).count(), 0);
        index.remove([(1, "beatles help", ""), (5, "bee", ""), (3, "other", "")]);
        assert!(index.words.is_empty() && index.owners.is_empty());
    }

    proptest! {
        /// The index finds exactly the publications the plain definition
        /// matches, newest first.
        #[test]
        fn the_index_agrees_with_the_definition(
            pubs in proptest::collection::vec(("[a-cA-C _é0-2]{0,12}", "[a-c _-]{0,8}"), 0..40),
            removed in proptest::collection::vec(any::<proptest::sample::Index>(), 0..10),
            query in proptest::collection::vec("[a-cé0-2]{1,3}", 1..4),
        ) {
            let owner: UserName = "u".parse().unwrap();
            let mut index = SearchIndex::default();
            let mut live: BTreeMap<u64, (String, String)> = BTreeMap::new();
            for (i, (file, description)) in pubs.iter().enumerate() {
                let seq = i as u64 + 1;
                index.insert(seq, &owner, file, description);
                live.insert(seq, (file.clone(), description.clone()));
            }
            for r in removed {
                if live.is_empty() {
                    break;
                }
                let seq = *live.keys().nth(r.index(live.len())).unwrap();
                let (file, description) = live.remove(&seq).unwrap();
                index.remove([(seq, file.as_str(), description.as_str())]);
            }
            let query: Vec<String> = query.iter().map(|t| t.to_lowercase()).collect();
            let found: Vec<u64> = index
                .candidates(&query)
                .filter(|seq| {
                    let (f, d) = &live[seq];
                    matches(&query, f, d)
                })
                .collect();
            let expected: Vec<u64> = live
                .iter()
                .rev()
                .filter(|(_, (f, d))| matches(&query, f, d))
                .map(|(&seq, _)| seq)
                .collect();
            prop_assert_eq!(found, expected);
        }
    }
}
