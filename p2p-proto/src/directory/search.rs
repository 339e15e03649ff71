//! `SEARCH`'s query and what it means (PROTOCOL.md §6.2).
//!
//! The wire carries the `QUERY` field as the user typed it ([`SearchQuery`]). Its meaning is
//! decided by the server, not by the decoder: a query that is empty, has 9 terms, a too-long term
//! or bytes that are not UTF-8 still makes a valid `SEARCH` request, whose reply is result 3
//! ("bad query", [`SearchReply::BadQuery`](super::SearchReply::BadQuery)).
//!
//! ```text
//! terms  = 1*8 term, separated and surrounded by any Unicode whitespace
//! term   = 1*64 bytes of letters and digits     ; char::is_alphanumeric
//! word   = a maximal run of letters and digits of FILE or DESCRIPTION
//! match  = every term (lowercased) is a prefix of some word (lowercased) of FILE or DESCRIPTION
//! ```
//!
//! Where §6.2 leaves things open, this module decides (and docs/PROTOCOL.md repeats):
//! - *Letters and digits* are the characters for which [`char::is_alphanumeric`] holds (Unicode
//!   `Alphabetic` or `Numeric`): `é`, `ß`, `ж`, `中`, `٣`, `²` are word characters; `_`, `-`, `.`,
//!   `'`, `/` and combining marks (U+0300..) are not.
//! - *Lowercase* is [`char::to_lowercase`], character by character, applied the same way to terms
//!   and words: no context (`Σ` is always `σ`), no case folding (`STRASSE` does not match
//!   `straße`, `STRAẞE` does) and no normalisation (a decomposed `e` + U+0301 is the word `e`
//!   followed by a separator).
//! - A term must consist of letters and digits only, at most [`MAX_SEARCH_TERM_LEN`] bytes as
//!   sent. A term with any other character could never be a prefix of a word, so it is a bad
//!   query rather than a silent empty result (`AC/DC` is a bad query; `AC DC` finds it). A longer
//!   term loses nothing: any word can be found by its first 64 bytes.
//!
//! ```
//! use p2p_proto::directory::{SearchQuery, matches, search_words};
//!
//! let query: SearchQuery = "beat HELP".parse()?;
//! let terms = query.terms()?;
//! assert!(matches(&terms, "The_Beatles-Help.mp3", ""));
//! let tles = "tles".parse::<SearchQuery>()?.terms()?;
//! assert!(!matches(&tles, "The_Beatles-Help.mp3", ""));
//! assert_eq!(
//!     search_words("The_Beatles-Help.mp3").collect::<Vec<_>>(),
//!     ["the", "beatles", "help", "mp3"]
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::str::FromStr;

use crate::field::{FieldError, MAX_FIELD_LEN};

/// The most terms a query may have (§6.2); more is a bad query.
pub const MAX_SEARCH_TERMS: usize = 8;

/// The longest term, in bytes as sent (before lowercasing); longer is a bad query.
pub const MAX_SEARCH_TERM_LEN: usize = 64;

/// The `QUERY` field of a `SEARCH` request, as sent: at most [`MAX_FIELD_LEN`] bytes without
/// NUL, like every field, and nothing more is checked. Its terms are [`Self::terms`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SearchQuery(Box<[u8]>);

impl SearchQuery {
    /// Wraps raw `QUERY` bytes (without the NUL terminator).
    ///
    /// # Errors
    /// [`FieldError::TooLong`] above [`MAX_FIELD_LEN`] bytes, [`FieldError::Nul`] for a NUL.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FieldError> {
        if bytes.len() > MAX_FIELD_LEN {
            return Err(FieldError::TooLong { max: MAX_FIELD_LEN });
        }
        if bytes.contains(&0) {
            return Err(FieldError::Nul);
        }
        Ok(Self(bytes.into()))
    }

    /// Wraps query text, e.g. the words a user typed joined by spaces.
    ///
    /// # Errors
    /// As [`Self::from_bytes`].
    pub fn new(text: &str) -> Result<Self, FieldError> {
        Self::from_bytes(text.as_bytes())
    }

    /// The field's bytes as received (without the NUL terminator).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The field as text, or `None` when it is not UTF-8.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The field as text, invalid UTF-8 replaced by U+FFFD (for console lines and log records).
    #[must_use]
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// The length in bytes (without the NUL terminator).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the field is empty (a bad query, but a valid request).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The query's terms, lowercased, in the order sent (duplicates kept), as §6.2 and the
    /// [`search_words`] documentation define them.
    ///
    /// # Errors
    /// [`BadQuery`]: not UTF-8, no term, more than [`MAX_SEARCH_TERMS`] terms, a term longer
    /// than [`MAX_SEARCH_TERM_LEN`] bytes or with a character that is not a letter or digit.
    /// The server answers result 3 (bad query) for each of them.
    pub fn terms(&self) -> Result<Vec<SearchTerm>, BadQuery> {
        let text = self.as_str().ok_or(BadQuery::NotUtf8)?;
        let count = text.split_whitespace().count();
        if count == 0 {
            return Err(BadQuery::NoTerms);
        }
        if count > MAX_SEARCH_TERMS {
            return Err(BadQuery::TooManyTerms {
                count,
                max: MAX_SEARCH_TERMS,
            });
        }
        text.split_whitespace().map(SearchTerm::new).collect()
    }
}

impl FromStr for SearchQuery {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, FieldError> {
        Self::new(s)
    }
}

impl TryFrom<&str> for SearchQuery {
    type Error = FieldError;

    fn try_from(s: &str) -> Result<Self, FieldError> {
        Self::new(s)
    }
}

impl TryFrom<&[u8]> for SearchQuery {
    type Error = FieldError;

    fn try_from(bytes: &[u8]) -> Result<Self, FieldError> {
        Self::from_bytes(bytes)
    }
}

impl AsRef<[u8]> for SearchQuery {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Fuzzer input: any bytes without NUL, truncated to [`MAX_FIELD_LEN`].
#[cfg(feature = "fuzzing")]
impl<'a> arbitrary::Arbitrary<'a> for SearchQuery {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let raw: Vec<u8> = arbitrary::Arbitrary::arbitrary(u)?;
        let bytes: Vec<u8> = raw
            .into_iter()
            .filter(|&b| b != 0)
            .take(MAX_FIELD_LEN)
            .collect();
        Self::from_bytes(&bytes).map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

/// One term of a query: 1..=[`MAX_SEARCH_TERM_LEN`] bytes (as sent) of letters and digits,
/// held lowercased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SearchTerm(String);

impl SearchTerm {
    /// Checks one term as sent (no whitespace inside) and lowercases it.
    ///
    /// # Errors
    /// [`BadQuery::NoTerms`] for an empty term, [`BadQuery::TermTooLong`],
    /// [`BadQuery::NotLetterOrDigit`].
    pub fn new(term: &str) -> Result<Self, BadQuery> {
        if term.is_empty() {
            return Err(BadQuery::NoTerms);
        }
        if term.len() > MAX_SEARCH_TERM_LEN {
            return Err(BadQuery::TermTooLong {
                len: term.len(),
                max: MAX_SEARCH_TERM_LEN,
            });
        }
        if let Some(c) = term.chars().find(|c| !c.is_alphanumeric()) {
            return Err(BadQuery::NotLetterOrDigit(c));
        }
        Ok(Self(lowercase(term)))
    }

    /// The lowercased term.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the term is a prefix of `word` (a word as [`search_words`] yields it: lowercased).
    #[must_use]
    pub fn is_prefix_of(&self, word: &str) -> bool {
        word.starts_with(&self.0)
    }
}

impl AsRef<str> for SearchTerm {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a `QUERY` is a bad query (result 3 of `SEARCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadQuery {
    /// The query's bytes are not UTF-8.
    #[error("query is not valid UTF-8")]
    NotUtf8,
    /// The query is empty or only whitespace.
    #[error("query has no terms")]
    NoTerms,
    /// The query has more terms than allowed.
    #[error("query has {count} terms, at most {max} are allowed")]
    TooManyTerms {
        /// How many terms the query has.
        count: usize,
        /// [`MAX_SEARCH_TERMS`].
        max: usize,
    },
    /// A term is longer than allowed.
    #[error("a term of {len} bytes is longer than {max} bytes")]
    TermTooLong {
        /// The term's length in bytes, as sent.
        len: usize,
        /// [`MAX_SEARCH_TERM_LEN`].
        max: usize,
    },
    /// A term has a character that is not a letter or digit, so it could never match a word.
    #[error("term has {0:?}, which is not a letter or digit")]
    NotLetterOrDigit(char),
}

/// Lowercases character by character: the same mapping for terms and words, whatever surrounds
/// a character (`str::to_lowercase` would turn a final `Σ` into `ς` in a term but `σ` inside a
/// longer word, and the prefix would no longer match).
fn lowercase(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// The words of a `FILE` or `DESCRIPTION` that terms are matched against: the maximal runs of
/// letters and digits ([`char::is_alphanumeric`]), lowercased, in order (duplicates kept).
/// A word that is already lowercase is borrowed from `text`, so an index built from millions of
/// names allocates only for the words it keeps.
///
/// A search index built from these words, with terms from [`SearchQuery::terms`], agrees with
/// [`matches()`].
pub fn search_words(text: &str) -> impl Iterator<Item = Cow<'_, str>> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let unchanged = if word.is_ascii() {
                !word.bytes().any(|b| b.is_ascii_uppercase())
            } else {
                word.chars().all(|c| {
                    let mut lower = c.to_lowercase();
                    lower.next() == Some(c) && lower.next().is_none()
                })
            };
            if unchanged {
                Cow::Borrowed(word)
            } else {
                Cow::Owned(lowercase(word))
            }
        })
}

/// The reference meaning of a `SEARCH` (§6.2): whether every term is a prefix of some word of
/// `file` or `description`. True for no terms (which [`SearchQuery::terms`] never returns).
///
/// Straightforward rather than fast: a server's index must agree with it.
#[must_use]
pub fn matches(terms: &[SearchTerm], file: &str, description: &str) -> bool {
    let words: Vec<Cow<'_, str>> = search_words(file)
        .chain(search_words(description))
        .collect();
    terms
        .iter()
        .all(|term| words.iter().any(|word| term.is_prefix_of(word)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn terms(query: &str) -> Result<Vec<String>, BadQuery> {
        let query = SearchQuery::new(query).expect("valid field");
        Ok(query
            .terms()?
            .into_iter()
            .map(|t| t.as_str().to_owned())
            .collect())
    }

    fn search(query: &str, file: &str, description: &str) -> bool {
        let query = SearchQuery::new(query).expect("valid field");
        matches(&query.terms().expect("good query"), file, description)
    }

    fn words(text: &str) -> Vec<String> {
        search_words(text).map(Cow::into_owned).collect()
    }

    #[test]
    fn protocol_example() {
        assert!(search("beat", "The_Beatles-Help.mp3", ""));
        assert!(!search("tles", "The_Beatles-Help.mp3", ""));
        assert_eq!(
            words("The_Beatles-Help.mp3"),
            ["the", "beatles", "help", "mp3"]
        );
    }

    /// (query, file, description, expected): the meaning of §6.2, case by case.
    #[test]
    fn meaning_table() {
        let cases: &[(&str, &str, &str, bool)] = &[
            // Prefix, not infix or suffix.
            ("beatles", "The_Beatles-Help.mp3", "", true),
            ("help", "The_Beatles-Help.mp3", "", true),
            ("elp", "The_Beatles-Help.mp3", "", false),
            ("beatlesx", "The_Beatles-Help.mp3", "", false),
            ("thebeatles", "The_Beatles-Help.mp3", "", false),
            // Case, both ways.
            ("BEAT", "the_beatles.mp3", "", true),
            ("BeAt", "THE_BEATLES.MP3", "", true),
            // Non-ASCII letters, lowercased.
            ("ÉCOLE", "/srv/école-primaire.ogg", "", true),
            ("école", "/srv/ÉCOLE-PRIMAIRE.ogg", "", true),
            ("ecole", "/srv/école.ogg", "", false),
            ("straße", "/srv/STRASSE.ogg", "", false),
            ("STRASSE", "/srv/straße.ogg", "", false),
            ("STRAẞE", "/srv/straße.ogg", "", true),
            ("stra", "/srv/Straße.ogg", "", true),
            ("москва", "/music/МОСКВА_1980.mp3", "", true),
            ("ΟΔΟΣ", "οδοσ", "", true),
            ("中文", "/歌/中文歌曲.mp3", "", true),
            // Digits are word characters; a word may mix them with letters.
            ("mp3", "/a/song.MP3", "", true),
            ("1980", "moscow-1980s.ogg", "", true),
            ("980", "moscow-1980s.ogg", "", false),
            ("track0", "Track01.flac", "", true),
            ("٣", "track-٣.ogg", "", true),
            // Several terms: every one must match, each anywhere, in any order.
            ("help beat", "The_Beatles-Help.mp3", "", true),
            ("beat stones", "The_Beatles-Help.mp3", "", false),
            ("beat live", "The_Beatles-Help.mp3", "live at the BBC", true),
            ("beat beat", "The_Beatles-Help.mp3", "", true),
            // Terms may match the description only.
            (
                "concert",
                "/a/track-0001.ogg",
                "a recording of the Thursday concert",
                true,
            ),
            (
                "thurs 128",
                "/a/x.ogg",
                "the Thursday concert, 128 kbit/s",
                true,
            ),
            ("kbit/s", "/a/x.ogg", "128 kbit/s", false),
            // A word never spans the file and the description.
            ("oggthe", "/a/x.ogg", "the", false),
            // Whitespace of any kind separates terms.
            ("  beat\thelp\u{3000}mp3 ", "The_Beatles-Help.mp3", "", true),
        ];
        for &(query, file, description, expected) in cases {
            let terms = SearchQuery::new(query).unwrap().terms();
            match terms {
                Ok(terms) => assert_eq!(
                    matches(&terms, file, description),
                    expected,
                    "{query:?} against {file:?} / {description:?}"
                ),
                // `kbit/s` is a bad query: it can never match.
                Err(e) => assert!(!expected, "{query:?}: {e}"),
            }
        }
    }

    #[test]
    fn bad_queries() {
        assert_eq!(terms(""), Err(BadQuery::NoTerms));
        assert_eq!(terms(" \t "), Err(BadQuery::NoTerms));
        assert_eq!(
            terms("a b c d e f g h i"),
            Err(BadQuery::TooManyTerms { count: 9, max: 8 })
        );
        assert_eq!(
            terms("a b c d e f g h").map(|t| t.len()),
            Ok(MAX_SEARCH_TERMS)
        );
        assert_eq!(
            terms(&"x".repeat(255)),
            Err(BadQuery::TermTooLong { len: 255, max: 64 })
        );
        assert_eq!(
            terms(&"x".repeat(65)),
            Err(BadQuery::TermTooLong { len: 65, max: 64 })
        );
        assert_eq!(terms(&"x".repeat(64)).map(|t| t.len()), Ok(1));
        // 32 two-byte letters are 64 bytes; 33 are too long.
        assert!(terms(&"é".repeat(32)).is_ok());
        assert_eq!(
            terms(&"é".repeat(33)),
            Err(BadQuery::TermTooLong { len: 66, max: 64 })
        );
        assert_eq!(terms("AC/DC"), Err(BadQuery::NotLetterOrDigit('/')));
        assert_eq!(terms("the_beatles"), Err(BadQuery::NotLetterOrDigit('_')));
        assert_eq!(terms("beat -"), Err(BadQuery::NotLetterOrDigit('-')));
        assert_eq!(
            terms("e\u{301}cole"),
            Err(BadQuery::NotLetterOrDigit('\u{301}'))
        );
        let not_utf8 = SearchQuery::from_bytes(b"beat \xff").unwrap();
        assert_eq!(not_utf8.terms(), Err(BadQuery::NotUtf8));
        assert_eq!(not_utf8.as_str(), None);
        assert_eq!(not_utf8.to_string_lossy(), "beat \u{fffd}");
    }

    #[test]
    fn terms_are_lowercased_in_order() {
        assert_eq!(
            terms(" Beat  HELP beat ÉCOLE ΣΟΦΟΣ STRAẞE"),
            Ok(["beat", "help", "beat", "école", "σοφοσ", "straße"]
                .map(String::from)
                .to_vec())
        );
    }

    #[test]
    fn words_are_runs_of_letters_and_digits() {
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("--__.."), Vec::<String>::new());
        assert_eq!(
            words("/home/alice/Música/Ça_va-2ème.mp3"),
            ["home", "alice", "música", "ça", "va", "2ème", "mp3"]
        );
        assert_eq!(words("don't stop"), ["don", "t", "stop"]);
        assert_eq!(words("ΟΔΟΣ Σ"), ["οδοσ", "σ"]);
        assert_eq!(words("x²"), ["x²"]);
        assert_eq!(words("e\u{301}cole"), ["e", "cole"]);
    }

    #[test]
    fn query_field_rules() {
        assert!(SearchQuery::new("").is_ok());
        assert_eq!(SearchQuery::new(&"q".repeat(255)).map(|q| q.len()), Ok(255));
        assert_eq!(
            SearchQuery::new(&"q".repeat(256)),
            Err(FieldError::TooLong { max: 255 })
        );
        assert_eq!(SearchQuery::new("a\0b"), Err(FieldError::Nul));
        let q: SearchQuery = "beat".parse().unwrap();
        assert_eq!(q.as_bytes(), b"beat");
        assert_eq!(q.as_str(), Some("beat"));
        assert!(!q.is_empty());
        assert_eq!(SearchQuery::try_from(&b"\xc3"[..]).map(|q| q.len()), Ok(1));
    }

    proptest! {
        /// A good query found in a file name always matches it: each term is one of its words.
        #[test]
        fn a_query_matches_its_own_text(text in "[a-zA-Zé€ß中Σ0-9 _./-]{0,60}") {
            let query = SearchQuery::new(&text).unwrap();
            if let Ok(terms) = query.terms() {
                prop_assert!(matches(&terms, &text, ""));
                prop_assert!(matches(&terms, "", &text));
            }
        }

        /// Each word of a text, and each of its prefixes, is a good one-term query that matches.
        #[test]
        fn every_word_prefix_matches(text in "[a-zA-Zé€ßΣİ0-9 _./-]{0,60}", cut in 1usize..10) {
            for word in search_words(&text) {
                prop_assert!(!word.is_empty());
                let prefix: String = word.chars().take(cut).collect();
                if let Ok(terms) = SearchQuery::new(&prefix).unwrap().terms() {
                    prop_assert!(matches(&terms, &text, ""), "{prefix:?} in {text:?}");
                }
            }
        }

        /// Terms never fail on any bytes, and what they return obeys their rules.
        #[test]
        fn terms_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let bytes: Vec<u8> = bytes.into_iter().filter(|&b| b != 0).collect();
            if let Ok(terms) = SearchQuery::from_bytes(&bytes).unwrap().terms() {
                prop_assert!((1..=MAX_SEARCH_TERMS).contains(&terms.len()));
                for t in terms {
                    prop_assert!(!t.as_str().is_empty());
                    prop_assert_eq!(lowercase(t.as_str()), t.as_str());
                }
            }
        }
    }
}
