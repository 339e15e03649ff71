//! Validated protocol strings: user names, file names and descriptions.
//!
//! Every string field of the directory and transfer protocols travels as bytes
//! followed by one NUL, holding at most [`MAX_FIELD_LEN`] bytes before the NUL.
//! The types here refuse, at construction, any value that could not be sent
//! as such a field, so encoders never have to check:
//!
//! | type | length | content |
//! |---|---|---|
//! | [`UserName`] | 1..=255 bytes | UTF-8, no NUL, no whitespace, no control characters |
//! | [`FileName`] | 1..=255 bytes | UTF-8, no NUL |
//! | [`Description`] | 0..=255 bytes | UTF-8, no NUL |
//! | [`OperationName`] | 1..=255 bytes | UTF-8, no NUL, no whitespace, no control characters |
//!
//! A user name can never contain a space, which is what lets a directory
//! server tell the optional `DATETIME` field (`DD/MM/YYYY HH:MM:SS`) from the
//! user name that follows the operation code.
//!
//! ```
//! use p2p_proto::field::{FieldError, UserName};
//!
//! let alice = UserName::try_from("alice")?;
//! assert_eq!(alice.as_str(), "alice");
//! assert_eq!(UserName::try_from("al ice"), Err(FieldError::Whitespace));
//! # Ok::<(), FieldError>(())
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

/// The largest number of bytes a string field holds before its NUL terminator.
pub const MAX_FIELD_LEN: usize = 255;

/// Why a string cannot be used as a protocol field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// The field is empty but this field requires at least one byte.
    #[error("field is empty")]
    Empty,
    /// The field holds more bytes than the protocol allows.
    #[error("field is longer than {max} bytes")]
    TooLong {
        /// The largest allowed length in bytes.
        max: usize,
    },
    /// The field contains a NUL byte, which would end it early on the wire.
    #[error("field contains a NUL byte")]
    Nul,
    /// The field contains whitespace, which this field does not allow.
    #[error("field contains whitespace")]
    Whitespace,
    /// The field contains a control character, which this field does not allow.
    #[error("field contains a control character")]
    Control,
    /// The field's bytes are not valid UTF-8.
    #[error("field is not valid UTF-8")]
    NotUtf8,
}

/// Checks the rules shared by all fields: length bounds and no NUL.
fn check_common(s: &str, allow_empty: bool) -> Result<(), FieldError> {
    if s.is_empty() && !allow_empty {
        return Err(FieldError::Empty);
    }
    if s.len() > MAX_FIELD_LEN {
        return Err(FieldError::TooLong { max: MAX_FIELD_LEN });
    }
    if s.as_bytes().contains(&0) {
        return Err(FieldError::Nul);
    }
    Ok(())
}

fn check_user_name(s: &str) -> Result<(), FieldError> {
    check_common(s, false)?;
    // Fast path: printable ASCII other than the space is always valid.
    if s.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    if s.chars().any(char::is_whitespace) {
        return Err(FieldError::Whitespace);
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::Control);
    }
    Ok(())
}

fn check_file_name(s: &str) -> Result<(), FieldError> {
    check_common(s, false)
}

fn check_description(s: &str) -> Result<(), FieldError> {
    check_common(s, true)
}

fn check_operation_name(s: &str) -> Result<(), FieldError> {
    // The rules of a user name: one token, printable, never empty.
    check_user_name(s)
}

/// Defines a validated string newtype and its conversions.
macro_rules! field_type {
    ($(#[$meta:meta])* $name:ident, $check:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` and wraps it.
            ///
            /// # Errors
            /// The [`FieldError`] that says which rule `s` breaks.
            pub fn new(s: impl Into<String>) -> Result<Self, FieldError> {
                let s = s.into();
                $check(&s)?;
                Ok(Self(s))
            }

            /// Validates raw field bytes (as received, without the NUL) and wraps them.
            ///
            /// # Errors
            /// [`FieldError::NotUtf8`] for bytes that are not UTF-8, otherwise as [`Self::new`].
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, FieldError> {
                // Check the length first so that a huge buffer is refused cheaply.
                if bytes.len() > MAX_FIELD_LEN {
                    return Err(FieldError::TooLong { max: MAX_FIELD_LEN });
                }
                let s = std::str::from_utf8(bytes).map_err(|_| FieldError::NotUtf8)?;
                Self::new(s)
            }

            /// The value as a string slice (without the NUL terminator).
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The value's bytes (without the NUL terminator).
            #[must_use]
            pub fn as_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }

            /// The length in bytes (without the NUL terminator).
            #[must_use]
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// Whether the value is the empty string.
            #[must_use]
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }

            /// Unwraps the inner `String`.
            #[must_use]
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = FieldError;

            fn try_from(s: &str) -> Result<Self, FieldError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;

            fn try_from(s: String) -> Result<Self, FieldError> {
                Self::new(s)
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = FieldError;

            fn try_from(bytes: &[u8]) -> Result<Self, FieldError> {
                Self::from_bytes(bytes)
            }
        }

        impl FromStr for $name {
            type Err = FieldError;

            fn from_str(s: &str) -> Result<Self, FieldError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                self.0.as_bytes()
            }
        }

        // Sound because `Eq`, `Ord` and `Hash` are derived from the inner `String`,
        // which agree with those of `str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

field_type!(
    /// A user name: 1..=255 bytes of UTF-8 without NUL, whitespace or control characters.
    UserName,
    check_user_name
);

field_type!(
    /// A file name as published and requested (usually an absolute path):
    /// 1..=255 bytes of UTF-8 without NUL.
    FileName,
    check_file_name
);

field_type!(
    /// A free-text description of a published file: 0..=255 bytes of UTF-8 without NUL.
    /// The default is the empty description.
    #[derive(Default)]
    Description,
    check_description
);

field_type!(
    /// The name of an operation as a `CAPABILITIES` reply lists it (PROTOCOL.md §6.1), e.g.
    /// `SEARCH`: 1..=255 bytes of UTF-8 without NUL, whitespace or control characters. Names
    /// this crate does not know are valid too (a newer server may list them); an
    /// [`OpCode`](crate::directory::OpCode) converts into its name.
    OperationName,
    check_operation_name
);

impl From<crate::directory::OpCode> for OperationName {
    fn from(op: crate::directory::OpCode) -> Self {
        // Every operation name is a short upper-case ASCII token.
        Self(op.as_str().to_owned())
    }
}

/// Builds a valid field from fuzzer input: drops the characters `keep` refuses,
/// truncates to [`MAX_FIELD_LEN`] bytes on a character boundary and falls back
/// to `fallback` when nothing is left.
#[cfg(feature = "fuzzing")]
fn arbitrary_field(
    u: &mut arbitrary::Unstructured<'_>,
    keep: fn(char) -> bool,
    fallback: &str,
) -> arbitrary::Result<String> {
    let raw: String = arbitrary::Arbitrary::arbitrary(u)?;
    let mut s = String::new();
    for c in raw.chars().filter(|&c| keep(c)) {
        if s.len() + c.len_utf8() > MAX_FIELD_LEN {
            break;
        }
        s.push(c);
    }
    if s.is_empty() {
        s.push_str(fallback);
    }
    Ok(s)
}

#[cfg(feature = "fuzzing")]
impl<'a> arbitrary::Arbitrary<'a> for UserName {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let s = arbitrary_field(u, |c| !c.is_whitespace() && !c.is_control(), "u")?;
        Self::new(s).map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

#[cfg(feature = "fuzzing")]
impl<'a> arbitrary::Arbitrary<'a> for FileName {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let s = arbitrary_field(u, |c| c != '\0', "f")?;
        Self::new(s).map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

#[cfg(feature = "fuzzing")]
impl<'a> arbitrary::Arbitrary<'a> for OperationName {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let s = arbitrary_field(u, |c| !c.is_whitespace() && !c.is_control(), "OP")?;
        Self::new(s).map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

#[cfg(feature = "fuzzing")]
impl<'a> arbitrary::Arbitrary<'a> for Description {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let s = arbitrary_field(u, |c| c != '\0', "")?;
        Self::new(s).map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

/// Proptest strategies producing valid fields, shared by the crate's tests.
#[cfg(test)]
pub(crate) mod strategy {
    use super::{Description, FileName, OperationName, UserName};
    use proptest::prelude::*;

    /// Any valid operation name: known ones, unknown tokens, the 255-byte maximum.
    pub(crate) fn operation_name() -> impl Strategy<Value = OperationName> {
        prop_oneof![
            proptest::sample::select(crate::directory::OpCode::ALL.to_vec())
                .prop_map(|op| op.as_str().to_owned()),
            "[A-Z_]{1,20}",
            "[a-zé€😀/:]{1,40}",
            "[A-Z]{255}",
        ]
        .prop_filter_map("valid operation name", |s| OperationName::new(s).ok())
    }

    /// Any valid user name, including multi-byte characters and the 255-byte maximum.
    pub(crate) fn user_name() -> impl Strategy<Value = UserName> {
        prop_oneof!["[a-zA-Z0-9_.-]{1,16}", "[a-zé€😀/:]{1,63}", "[a-z]{255}",]
            .prop_filter_map("valid user name", |s| UserName::new(s).ok())
    }

    /// Any valid file name, including spaces and the 255-byte maximum.
    pub(crate) fn file_name() -> impl Strategy<Value = FileName> {
        prop_oneof!["/[a-zA-Z0-9_. /-]{0,40}", "[^\u{0}]{1,20}", "[a-z]{255}",]
            .prop_filter_map("valid file name", |s| FileName::new(s).ok())
    }

    /// Any valid description, including the empty one and the 255-byte maximum.
    pub(crate) fn description() -> impl Strategy<Value = Description> {
        prop_oneof![Just(String::new()), "[^\u{0}]{1,20}", "[ a-z]{255}",]
            .prop_filter_map("valid description", |s| Description::new(s).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn user_name_rules() {
        assert_eq!(UserName::try_from("alice").map(|u| u.len()), Ok(5));
        assert_eq!(UserName::try_from(""), Err(FieldError::Empty));
        assert_eq!(UserName::try_from("a b"), Err(FieldError::Whitespace));
        assert_eq!(UserName::try_from("a\tb"), Err(FieldError::Whitespace));
        assert_eq!(UserName::try_from("a\u{a0}b"), Err(FieldError::Whitespace));
        assert_eq!(UserName::try_from("a\u{7f}b"), Err(FieldError::Control));
        assert_eq!(UserName::try_from("a\u{1b}b"), Err(FieldError::Control));
        assert_eq!(UserName::try_from("a\0b"), Err(FieldError::Nul));
        assert_eq!(
            UserName::try_from("a".repeat(256)),
            Err(FieldError::TooLong { max: 255 })
        );
        assert!(UserName::try_from("a".repeat(255)).is_ok());
        assert!(UserName::try_from("zoë/π").is_ok());
        assert_eq!(UserName::from_bytes(b"\xff\xfe"), Err(FieldError::NotUtf8));
        assert_eq!(
            UserName::from_bytes(&[b'a'; 300]),
            Err(FieldError::TooLong { max: 255 })
        );
    }

    #[test]
    fn file_name_and_description_rules() {
        assert!(FileName::try_from("/srv/music/my song.mp3").is_ok());
        assert_eq!(FileName::try_from(""), Err(FieldError::Empty));
        assert_eq!(FileName::try_from("a\0"), Err(FieldError::Nul));
        assert_eq!(
            FileName::try_from("é".repeat(128)),
            Err(FieldError::TooLong { max: 255 })
        );
        assert_eq!(Description::try_from("").map(|d| d.is_empty()), Ok(true));
        assert_eq!(Description::default().as_str(), "");
        assert!(Description::try_from("my favourite\tsong").is_ok());
        assert_eq!(Description::from_bytes(b"\x80"), Err(FieldError::NotUtf8));
        assert_eq!(
            Description::try_from(" ".repeat(256)),
            Err(FieldError::TooLong { max: 255 })
        );
    }

    #[test]
    fn conversions_and_borrow() {
        let alice: UserName = "alice".parse().unwrap();
        assert_eq!(alice.to_string(), "alice");
        assert_eq!(alice.as_bytes(), b"alice");
        assert_eq!(AsRef::<str>::as_ref(&alice), "alice");
        assert_eq!(alice, "alice");
        let mut users = HashMap::new();
        users.insert(alice.clone(), 1);
        assert_eq!(users.get("alice"), Some(&1));
        assert_eq!(alice.into_string(), "alice");
    }
}
