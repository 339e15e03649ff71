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

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use p2p_proto::directory::{SearchTerm, search_words};
use p2p_proto::field::UserName;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct SearchIndex {
    /// Word → sequence numbers of the publications that have it, ascending.
    /// Hashed, so that indexing a publication costs a hash per word rather
    /// than a string comparison per level of a tree.
    words: HashMap<Arc<str>, Vec<u64>>,
    /// The same words in order, for the range of words a term is a prefix of.
    sorted: BTreeSet<Arc<str>>,
    /// Sequence number → the publication's owner (one shared name per user).
    owners: HashMap<u64, Arc<str>>,
    /// Each owner's shared name and how many publications use it.
    names: HashMap<Arc<str>, usize>,
}

impl SearchIndex {
    /// Indexes publication `seq` of `owner`.
    pub(crate) fn insert(&mut self, seq: u64, owner: &UserName, file: &str, description: &str) {
        let mut own: Vec<Cow<'_, str>> = search_words(file)
            .chain(search_words(description))
            .collect();
        own.sort_unstable();
        own.dedup();
        for word in own {
            let postings = match self.words.get_mut(&*word) {
                Some(postings) => postings,
                None => {
                    let word: Arc<str> = Arc::from(&*word);
                    self.sorted.insert(word.clone());
                    self.words.entry(word).or_default()
                }
            };
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
        let name = match self.names.get_key_value(owner.as_str()) {
            Some((name, _)) => name.clone(),
            None => Arc::from(owner.as_str()),
        };
        *self.names.entry(name.clone()).or_default() += 1;
        self.owners.insert(seq, name);
    }

    /// Gives back the room the postings grew into (after a bulk load).
    pub(crate) fn compact(&mut self) {
        for postings in self.words.values_mut() {
            postings.shrink_to_fit();
        }
        self.owners.shrink_to_fit();
    }

    /// Forgets the publications `(seq, file, description)`, in one pass over
    /// each word they have (UNREGISTER removes a user's files all at once).
    pub(crate) fn remove<'a>(
        &mut self,
        publications: impl IntoIterator<Item = (u64, &'a str, &'a str)>,
    ) {
        let mut by_word: HashMap<String, Vec<u64>> = HashMap::new();
        for (seq, file, description) in publications {
            if let Some(name) = self.owners.remove(&seq)
                && let Some(count) = self.names.get_mut(&name)
            {
                *count -= 1;
                if *count == 0 {
                    self.names.remove(&name);
                }
            }
            for word in search_words(file).chain(search_words(description)) {
                by_word.entry(word.into_owned()).or_default().push(seq);
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
                self.sorted.remove(word.as_str());
            }
        }
    }

    /// The owner of publication `seq`.
    pub(crate) fn owner(&self, seq: u64) -> Option<&str> {
        self.owners.get(&seq).map(|name| &**name)
    }

    /// Words that start with `term`, with their postings.
    fn range<'a>(&'a self, term: &'a SearchTerm) -> impl Iterator<Item = &'a Vec<u64>> + 'a {
        let term = term.as_str();
        self.sorted
            .range::<str, _>((Bound::Included(term), Bound::Unbounded))
            .take_while(move |word| word.starts_with(term))
            .filter_map(|word| self.words.get(word))
    }

    /// The publications that may match every term, most recent first, each
    /// once: those of the term with the fewest postings. Callers check the
    /// other terms (and the owner) on each candidate.
    pub(crate) fn candidates<'a>(&'a self, terms: &'a [SearchTerm]) -> Candidates<'a> {
        // The most selective term: counting stops at the best so far, so a
        // term as short as "a" costs no more than the winner.
        let mut best: Option<(usize, &SearchTerm)> = None;
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
    use p2p_proto::directory::matches;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn terms(t: &[&str]) -> Vec<SearchTerm> {
        t.iter().map(|s| SearchTerm::new(s).unwrap()).collect()
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
        assert!(index.words.is_empty() && index.sorted.is_empty());
        assert!(index.owners.is_empty() && index.names.is_empty());
    }

    proptest! {
        /// The index finds exactly the publications the plain definition
        /// (`p2p_proto::directory::matches`) matches, newest first.
        #[test]
        fn the_index_agrees_with_the_definition(
            pubs in proptest::collection::vec(("[a-cA-C _é0-2]{0,12}", "[a-c _-]{0,8}"), 0..40),
            removed in proptest::collection::vec(any::<proptest::sample::Index>(), 0..10),
            query in proptest::collection::vec("[a-cAé0-2]{1,3}", 1..4),
        ) {
            let owners: [UserName; 2] = ["u".parse().unwrap(), "v".parse().unwrap()];
            let mut index = SearchIndex::default();
            let mut live: BTreeMap<u64, (String, String)> = BTreeMap::new();
            for (i, (file, description)) in pubs.iter().enumerate() {
                let seq = i as u64 + 1;
                index.insert(seq, &owners[i % 2], file, description);
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
            let query: Vec<SearchTerm> = query.iter().map(|t| SearchTerm::new(t).unwrap()).collect();
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
            for seq in live.keys() {
                prop_assert!(index.owner(*seq).is_some());
            }
            prop_assert_eq!(index.owners.len(), live.len());
        }
    }
}
