//! Directory requests: `OP\0 [DATETIME\0] USER\0` and the operation's own fields.

use std::num::NonZeroU16;

use bytes::BufMut;

use nom::Parser;
use nom::branch::alt;
use nom::combinator::map_res;

use super::{OpCode, RequestError, SearchQuery};
use crate::codec::{Decode, Encode, finish};
use crate::error::DecodeError;
use crate::field::{Description, FileName, MAX_FIELD_LEN, UserName};
use crate::timestamp::Timestamp;
use crate::wire::{self, Inline, PResult};

/// A request from a peer to the directory server.
///
/// ```text
/// request  = op NUL [datetime NUL] user NUL body
/// body     = ""                                  ; REGISTER UNREGISTER DISCONNECT LIST_USERS
///          / port NUL                            ; CONNECT (decimal 1..=65535)
///          / file NUL description NUL            ; PUBLISH
///          / file NUL                            ; DELETE
///          / target NUL                          ; LIST_CONTENT GET_USER_INFO
///          / query NUL                           ; SEARCH (any bytes but NUL, see SearchQuery)
///          / ""                                  ; PING
/// ```
///
/// compat: the `DATETIME` field is optional (older clients omit it). The field
/// after `OP` is taken as `DATETIME` exactly when it matches
/// `DD/MM/YYYY HH:MM:SS` (digits only, real date or not); a user name can never
/// match because it has no space.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct Request {
    /// The `DATETIME` field; `None` for the older form without it.
    pub timestamp: Option<Timestamp>,
    /// The `USER` field: the user the operation acts as (or registers).
    pub user: UserName,
    /// The operation and its own fields.
    pub body: RequestBody,
}

/// The operation of a [`Request`] and the fields that follow `USER`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum RequestBody {
    /// `REGISTER`.
    Register,
    /// `UNREGISTER`.
    Unregister,
    /// `CONNECT PORT`.
    Connect {
        /// The peer's listening TCP port for transfers.
        port: NonZeroU16,
    },
    /// `DISCONNECT`.
    Disconnect,
    /// `PUBLISH FILE DESCRIPTION`.
    Publish {
        /// The published file's name (the path the owner serves it from).
        file: FileName,
        /// Free text; may be empty.
        description: Description,
    },
    /// `DELETE FILE`.
    Delete {
        /// The file to withdraw.
        file: FileName,
    },
    /// `LIST_USERS`.
    ListUsers,
    /// `LIST_CONTENT TARGET`.
    ListContent {
        /// The user whose publications are listed.
        target: UserName,
    },
    /// `GET_USER_INFO TARGET`.
    GetUserInfo {
        /// The user to locate.
        target: UserName,
    },
    /// `SEARCH QUERY` (extension, §6.2).
    Search {
        /// The query as sent; the decoder does not judge it ([`SearchQuery::terms`] does).
        query: SearchQuery,
    },
    /// `PING` (extension, §6.3).
    Ping,
}

impl RequestBody {
    /// The operation this body belongs to.
    #[must_use]
    pub const fn op(&self) -> OpCode {
        match self {
            Self::Register => OpCode::Register,
            Self::Unregister => OpCode::Unregister,
            Self::Connect { .. } => OpCode::Connect,
            Self::Disconnect => OpCode::Disconnect,
            Self::Publish { .. } => OpCode::Publish,
            Self::Delete { .. } => OpCode::Delete,
            Self::ListUsers => OpCode::ListUsers,
            Self::ListContent { .. } => OpCode::ListContent,
            Self::GetUserInfo { .. } => OpCode::GetUserInfo,
            Self::Search { .. } => OpCode::Search,
            Self::Ping => OpCode::Ping,
        }
    }

    /// The file this body names (`PUBLISH`, `DELETE`), if any.
    #[must_use]
    pub const fn file(&self) -> Option<&FileName> {
        match self {
            Self::Publish { file, .. } | Self::Delete { file } => Some(file),
            _ => None,
        }
    }

    fn encode(&self, buf: &mut impl BufMut) {
        match self {
            Self::Register | Self::Unregister | Self::Disconnect | Self::ListUsers | Self::Ping => {
            }
            Self::Connect { port } => wire::put_decimal(buf, u64::from(port.get())),
            Self::Publish { file, description } => {
                wire::put_field(buf, file.as_bytes());
                wire::put_field(buf, description.as_bytes());
            }
            Self::Delete { file } => wire::put_field(buf, file.as_bytes()),
            Self::ListContent { target } | Self::GetUserInfo { target } => {
                wire::put_field(buf, target.as_bytes());
            }
            Self::Search { query } => wire::put_field(buf, query.as_bytes()),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Register | Self::Unregister | Self::Disconnect | Self::ListUsers | Self::Ping => {
                0
            }
            Self::Connect { port } => wire::decimal_len(u64::from(port.get())),
            Self::Publish { file, description } => {
                wire::field_len(file.len()) + wire::field_len(description.len())
            }
            Self::Delete { file } => wire::field_len(file.len()),
            Self::ListContent { target } | Self::GetUserInfo { target } => {
                wire::field_len(target.len())
            }
            Self::Search { query } => wire::field_len(query.len()),
        }
    }

    /// Parses the fields after `USER` for `op` (the `body` rule of [`Request`]'s grammar).
    #[inline]
    fn parse(op: OpCode, input: &[u8]) -> PResult<'_, Self> {
        match op {
            OpCode::Register => Ok((input, Self::Register)),
            OpCode::Unregister => Ok((input, Self::Unregister)),
            OpCode::Disconnect => Ok((input, Self::Disconnect)),
            OpCode::ListUsers => Ok((input, Self::ListUsers)),
            OpCode::Ping => Ok((input, Self::Ping)),
            OpCode::Connect => wire::listening_port
                .map(|port| Self::Connect { port })
                .parse(input),
            OpCode::Publish => (Inline(wire::file_name), Inline(wire::description))
                .map(|(file, description)| Self::Publish { file, description })
                .parse(input),
            OpCode::Delete => wire::file_name
                .map(|file| Self::Delete { file })
                .parse(input),
            OpCode::ListContent => (|i| wire::user_name(i, "TARGET"))
                .map(|target| Self::ListContent { target })
                .parse(input),
            OpCode::GetUserInfo => (|i| wire::user_name(i, "TARGET"))
                .map(|target| Self::GetUserInfo { target })
                .parse(input),
            OpCode::Search => wire::search_query
                .map(|query| Self::Search { query })
                .parse(input),
        }
    }
}

impl Request {
    /// The request's operation.
    #[must_use]
    pub const fn op(&self) -> OpCode {
        self.body.op()
    }

    /// The streaming nom parser behind [`Request`]'s [`Decode`] (the grammar above [`Request`]).
    #[inline]
    ///
    /// The one step outside nom's combinators is the change of error type: what goes wrong is
    /// named with the operation once the `OP` field gave one ([`RequestError`]).
    pub(crate) fn parse(input: &[u8]) -> nom::IResult<&[u8], Self, RequestError> {
        let (rest, op) = wire::op_code(input).map_err(naming(None))?;
        Self::parse_after_op(op, rest).map_err(naming(Some(op)))
    }

    /// `[datetime NUL] user NUL body`: the second field is `DATETIME` exactly when it has that
    /// shape; otherwise it is `USER` (nom's `alt` backtracks to read it again as one).
    #[inline]
    pub(super) fn parse_after_op(op: OpCode, input: &[u8]) -> PResult<'_, Self> {
        let datetime = map_res(
            |i| wire::nul_field(i, "USER", MAX_FIELD_LEN),
            |raw| Timestamp::parse(raw).map_err(|_| DecodeError::Malformed),
        );
        let user = |i| wire::user_name(i, "USER");
        (
            alt(((datetime.map(Some), user), user.map(|user| (None, user)))),
            Inline(|i| RequestBody::parse(op, i)),
        )
            .map(|((timestamp, user), body)| Self {
                timestamp,
                user,
                body,
            })
            .parse(input)
    }
}

/// Turns a parser's [`DecodeError`] into the [`RequestError`] naming `op` (nom's three outcomes
/// kept as they are).
pub(super) fn naming(
    op: Option<OpCode>,
) -> impl Fn(nom::Err<DecodeError>) -> nom::Err<RequestError> {
    move |e| e.map(|error| RequestError { op, error })
}

impl Encode for Request {
    /// Writes the request; the `DATETIME` field only when `timestamp` is `Some`.
    fn encode(&self, buf: &mut impl BufMut) {
        wire::put_field(buf, self.op().as_str().as_bytes());
        if let Some(timestamp) = &self.timestamp {
            wire::put_field(buf, timestamp.as_bytes());
        }
        wire::put_field(buf, self.user.as_bytes());
        self.body.encode(buf);
    }

    /// The exact number of bytes [`Encode::encode`] writes (at most [`super::MAX_REQUEST_LEN`]).
    fn encoded_len(&self) -> usize {
        wire::field_len(self.op().as_str().len())
            + self
                .timestamp
                .map_or(0, |_| wire::field_len(Timestamp::LEN))
            + wire::field_len(self.user.len())
            + self.body.encoded_len()
    }
}

/// Decodes one request, in either form (with or without `DATETIME`).
///
/// A [`RequestError`] whose `op` is `Some` as soon as the `OP` field was recognised.
impl Decode for Request {
    type Error = RequestError;

    fn decode_with((): (), input: &[u8]) -> Result<Option<(Self, usize)>, RequestError> {
        finish(input, Self::parse(input))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DecodeError, MAX_REQUEST_LEN, strategy};
    use super::*;
    use crate::field::FieldError;
    use crate::testutil::{check_kat, hex};
    use proptest::prelude::*;

    const TS: &str = "24/11/2026 20:42:35";

    fn req(timestamp: Option<&str>, user: &str, body: RequestBody) -> Request {
        Request {
            timestamp: timestamp.map(|t| t.parse().unwrap()),
            user: user.parse().unwrap(),
            body,
        }
    }

    fn song() -> FileName {
        "/srv/music/song.mp3".parse().unwrap()
    }

    fn encode(request: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        request.encode(&mut out);
        out
    }

    /// Known answer with and without DATETIME: `tail` is what follows USER.
    fn check_both_forms(op: &str, body: &RequestBody, tail: &[u8]) {
        let new_form = [op.as_bytes(), b"\0", TS.as_bytes(), b"\0alice\0", tail].concat();
        check_kat(&new_form, &req(Some(TS), "alice", body.clone()));
        let old_form = [op.as_bytes(), b"\0alice\0", tail].concat();
        check_kat(&old_form, &req(None, "alice", body.clone()));
    }

    /// Every request of `classic-directory-session.trace`, bytes as captured.
    #[test]
    fn classic_trace_requests() {
        let cases: [(&str, RequestBody); 13] = [
            (
                "52454749535445520032342f31312f323032362032303a34323a333500616c69636500",
                RequestBody::Register,
            ),
            (
                "524547495354455200\
                 32342f31312f323032362032303a34323a333500616c69636500",
                RequestBody::Register,
            ),
            (
                "434f4e4e45435400\
                 32342f31312f323032362032303a34323a333500616c69636500343036343700",
                RequestBody::Connect {
                    port: NonZeroU16::new(40647).unwrap(),
                },
            ),
            (
                "5055424c49534800\
                 32342f31312f323032362032303a34323a333500616c69636500\
                 2f7372762f6d757369632f736f6e672e6d7033006d79206661766f757269746520736f6e6700",
                RequestBody::Publish {
                    file: song(),
                    description: "my favourite song".parse().unwrap(),
                },
            ),
            (
                "5055424c49534800\
                 32342f31312f323032362032303a34323a333500616c696365002f7372762f6d757369632f736f6e672e6d703300616761696e00",
                RequestBody::Publish {
                    file: song(),
                    description: "again".parse().unwrap(),
                },
            ),
            (
                "4c4953545f555345525300\
                 32342f31312f323032362032303a34323a333500616c69636500",
                RequestBody::ListUsers,
            ),
            (
                "4c4953545f434f4e54454e5400\
                 32342f31312f323032362032303a34323a333500616c69636500616c69636500",
                RequestBody::ListContent {
                    target: "alice".parse().unwrap(),
                },
            ),
            (
                "4c4953545f434f4e54454e5400\
                 32342f31312f323032362032303a34323a333500616c69636500\
                 6e6f626f647900",
                RequestBody::ListContent {
                    target: "nobody".parse().unwrap(),
                },
            ),
            (
                "44454c45544500\
                 32342f31312f323032362032303a34323a333500616c69636500\
                 2f7372762f6d757369632f736f6e672e6d703300",
                RequestBody::Delete { file: song() },
            ),
            (
                "44454c45544500\
                 32342f31312f323032362032303a34323a333500616c696365002f7372762f6d757369632f736f6e672e6d703300",
                RequestBody::Delete { file: song() },
            ),
            (
                "444953434f4e4e45435400\
                 32342f31312f323032362032303a34323a333500616c69636500",
                RequestBody::Disconnect,
            ),
            (
                "554e524547495354455200\
                 32342f31312f323032362032303a34323a333500616c69636500",
                RequestBody::Unregister,
            ),
            (
                "554e524547495354455200\
                 32342f31312f323032362032303a34323a333500\
                 616c69636500",
                RequestBody::Unregister,
            ),
        ];
        for (bytes, body) in cases {
            let bytes = hex(bytes);
            let expected = req(Some(TS), "alice", body);
            check_kat(&bytes, &expected);
            // The same request in the older form, without DATETIME.
            let old = [
                &bytes[..=expected.op().as_str().len()],
                &bytes[expected.op().as_str().len() + 1 + Timestamp::LEN + 1..],
            ]
            .concat();
            check_kat(
                &old,
                &Request {
                    timestamp: None,
                    ..expected
                },
            );
        }
    }

    #[test]
    fn every_op_in_both_forms() {
        check_both_forms("REGISTER", &RequestBody::Register, b"");
        check_both_forms("UNREGISTER", &RequestBody::Unregister, b"");
        check_both_forms(
            "CONNECT",
            &RequestBody::Connect {
                port: NonZeroU16::new(65535).unwrap(),
            },
            b"65535\0",
        );
        check_both_forms("DISCONNECT", &RequestBody::Disconnect, b"");
        check_both_forms(
            "PUBLISH",
            &RequestBody::Publish {
                file: "/a b".parse().unwrap(),
                description: Description::default(),
            },
            b"/a b\0\0",
        );
        check_both_forms(
            "DELETE",
            &RequestBody::Delete { file: song() },
            b"/srv/music/song.mp3\0",
        );
        check_both_forms("LIST_USERS", &RequestBody::ListUsers, b"");
        check_both_forms(
            "LIST_CONTENT",
            &RequestBody::ListContent {
                target: "bob".parse().unwrap(),
            },
            b"bob\0",
        );
        check_both_forms(
            "GET_USER_INFO",
            &RequestBody::GetUserInfo {
                target: "carol".parse().unwrap(),
            },
            b"carol\0",
        );
        check_both_forms("SEARCH", &query(b"Beat HELP"), b"Beat HELP\0");
        check_both_forms("SEARCH", &query(b""), b"\0");
        check_both_forms("PING", &RequestBody::Ping, b"");
    }

    fn query(bytes: &[u8]) -> RequestBody {
        RequestBody::Search {
            query: SearchQuery::from_bytes(bytes).unwrap(),
        }
    }

    #[test]
    fn extension_requests_known_answers() {
        // S  E  A  R  C  H  NUL
        // 2  4  /  1  1  /  2  0  2  6  ␠  2  0  :  4  2  :  3  5  NUL
        // a  l  i  c  e  NUL
        // b  e  a  t  ␠  h  e  l  p  NUL
        let search = hex("53 45 41 52 43 48 00 \
             32 34 2f 31 31 2f 32 30 32 36 20 32 30 3a 34 32 3a 33 35 00 \
             61 6c 69 63 65 00 \
             62 65 61 74 20 68 65 6c 70 00");
        check_kat(&search, &req(Some(TS), "alice", query(b"beat help")));
        // P  I  N  G  NUL  DATETIME NUL  a  l  i  c  e  NUL
        let ping = hex("50 49 4e 47 00 \
             32 34 2f 31 31 2f 32 30 32 36 20 32 30 3a 34 32 3a 33 35 00 \
             61 6c 69 63 65 00");
        check_kat(&ping, &req(Some(TS), "alice", RequestBody::Ping));
    }

    /// The decoder keeps any QUERY a field may hold: judging it is the server's (result 3).
    #[test]
    fn bad_queries_are_valid_requests() {
        let nine = b"a b c d e f g h i";
        let long_term = [b'x'; 255];
        for raw in [
            &b""[..],
            b" \t ",
            nine,
            &long_term,
            b"beat \xff\xfe",
            b"AC/DC",
            b"\x01\x7f",
        ] {
            let tail = [raw, b"\0"].concat();
            check_both_forms("SEARCH", &query(raw), &tail);
            let body = query(raw);
            let RequestBody::Search { query } = &body else {
                unreachable!()
            };
            assert!(query.terms().is_err(), "{raw:?} is a bad query");
        }
    }

    #[test]
    fn unknown_date_is_kept_verbatim() {
        let bytes = b"REGISTER\x0000/00/0000 00:00:00\x00bob\x00";
        check_kat(
            bytes,
            &Request {
                timestamp: Some(Timestamp::UNKNOWN),
                user: "bob".parse().unwrap(),
                body: RequestBody::Register,
            },
        );
    }

    fn err(
        op: Option<OpCode>,
        error: DecodeError,
    ) -> Result<Option<(Request, usize)>, RequestError> {
        Err(RequestError { op, error })
    }

    #[test]
    fn unknown_op() {
        assert_eq!(
            Request::decode(b"FOO\0alice\0"),
            err(None, DecodeError::UnknownOp)
        );
        assert_eq!(
            Request::decode(b"register\0alice\0"),
            err(None, DecodeError::UnknownOp)
        );
        assert_eq!(
            Request::decode(b"GET_FILE\0/a\0"),
            err(None, DecodeError::UnknownOp)
        );
        assert_eq!(Request::decode(b"\0"), err(None, DecodeError::UnknownOp));
        assert_eq!(
            Request::decode(b"REGISTER\xff\0"),
            err(None, DecodeError::UnknownOp)
        );
        // An over-long OP is refused at byte 14, without waiting for a NUL.
        assert_eq!(
            Request::decode(b"GET_USER_INFOX"),
            err(
                None,
                DecodeError::FieldTooLong {
                    field: "OP",
                    max: 13
                }
            )
        );
        assert_eq!(Request::decode(b"GET_USER_INFO"), Ok(None));
    }

    #[test]
    fn field_of_256_bytes_is_refused_at_byte_256() {
        for (prefix, field) in [
            (&b"REGISTER\0"[..], "USER"),
            (b"REGISTER\x0024/11/2026 20:42:35\0", "USER"),
            (b"DELETE\0alice\0", "FILE"),
            (b"PUBLISH\0alice\0/f\0", "DESCRIPTION"),
            (b"LIST_CONTENT\0alice\0", "TARGET"),
            (b"SEARCH\0alice\0", "QUERY"),
            (b"SEARCH\x0024/11/2026 20:42:35\0alice\0", "QUERY"),
        ] {
            let op = prefix
                .split(|&b| b == 0)
                .next()
                .and_then(OpCode::from_bytes);
            let mut bytes = prefix.to_vec();
            bytes.extend([b'x'; 255]);
            assert_eq!(
                Request::decode(&bytes),
                Ok(None),
                "255 bytes is still a prefix"
            );
            bytes.push(b'x');
            assert_eq!(
                Request::decode(&bytes),
                err(op, DecodeError::FieldTooLong { field, max: 255 }),
                "{field}"
            );
        }
    }

    #[test]
    fn timestamp_shaped_field_with_bad_digits_is_a_bad_user_name() {
        assert_eq!(
            Request::decode(b"REGISTER\x002a/11/2026 20:42:35\x00alice\x00"),
            err(
                Some(OpCode::Register),
                DecodeError::InvalidField {
                    field: "USER",
                    error: FieldError::Whitespace
                }
            )
        );
        // Decided as soon as the field's NUL arrives.
        assert!(Request::decode(b"REGISTER\x002a/11/2026 20:42:35\x00").is_err());
    }

    #[test]
    fn connect_port_must_be_decimal_1_to_65535() {
        let cases: [(&[u8], DecodeError); 8] = [
            (b"0", DecodeError::InvalidPort { value: 0 }),
            (b"00000", DecodeError::InvalidPort { value: 0 }),
            (b"70000", DecodeError::InvalidPort { value: 70000 }),
            (b"65536", DecodeError::InvalidPort { value: 65536 }),
            (b"", DecodeError::InvalidNumber { field: "PORT" }),
            (b"+5", DecodeError::InvalidNumber { field: "PORT" }),
            (b" 5", DecodeError::InvalidNumber { field: "PORT" }),
            (b"5a", DecodeError::InvalidNumber { field: "PORT" }),
        ];
        for (port, error) in cases {
            let bytes = [b"CONNECT\0alice\0", port, b"\0"].concat();
            assert_eq!(
                Request::decode(&bytes),
                err(Some(OpCode::Connect), error),
                "{port:?}"
            );
        }
        assert_eq!(
            Request::decode(b"CONNECT\0alice\x00123456"),
            err(
                Some(OpCode::Connect),
                DecodeError::FieldTooLong {
                    field: "PORT",
                    max: 5
                }
            )
        );
        let ok = Request::decode(b"CONNECT\0alice\x0000080\0")
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(
            ok.body,
            RequestBody::Connect {
                port: NonZeroU16::new(80).unwrap()
            }
        );
    }

    #[test]
    fn invalid_fields() {
        assert_eq!(
            Request::decode(b"REGISTER\0al\xffice\0"),
            err(
                Some(OpCode::Register),
                DecodeError::InvalidField {
                    field: "USER",
                    error: FieldError::NotUtf8
                }
            )
        );
        assert_eq!(
            Request::decode(b"REGISTER\0\0"),
            err(
                Some(OpCode::Register),
                DecodeError::InvalidField {
                    field: "USER",
                    error: FieldError::Empty
                }
            )
        );
        assert_eq!(
            Request::decode(b"DELETE\0alice\0\0"),
            err(
                Some(OpCode::Delete),
                DecodeError::InvalidField {
                    field: "FILE",
                    error: FieldError::Empty
                }
            )
        );
        assert_eq!(
            Request::decode(b"PUBLISH\0alice\0/f\0\xc3\0"),
            err(
                Some(OpCode::Publish),
                DecodeError::InvalidField {
                    field: "DESCRIPTION",
                    error: FieldError::NotUtf8
                }
            )
        );
        assert_eq!(
            Request::decode(b"LIST_CONTENT\0alice\0b\x01b\0"),
            err(
                Some(OpCode::ListContent),
                DecodeError::InvalidField {
                    field: "TARGET",
                    error: FieldError::Control
                }
            )
        );
        // A DATETIME followed by another DATETIME: the second one is the user name.
        assert_eq!(
            Request::decode(b"LIST_USERS\x0024/11/2026 20:42:35\x0024/11/2026 20:42:35\0"),
            err(
                Some(OpCode::ListUsers),
                DecodeError::InvalidField {
                    field: "USER",
                    error: FieldError::Whitespace
                }
            )
        );
    }

    #[test]
    fn max_request_len_is_the_longest_request() {
        let long = |c: char| c.to_string().repeat(255);
        let max = Request {
            timestamp: Some(Timestamp::UNKNOWN),
            user: long('u').parse().unwrap(),
            body: RequestBody::Publish {
                file: long('f').parse().unwrap(),
                description: long('d').parse().unwrap(),
            },
        };
        assert_eq!(max.encoded_len(), MAX_REQUEST_LEN);
        assert_eq!(encode(&max).len(), MAX_REQUEST_LEN);
    }

    proptest! {
        #[test]
        fn round_trip(request in strategy::request()) {
            let bytes = encode(&request);
            prop_assert_eq!(request.encoded_len(), bytes.len());
            prop_assert!(bytes.len() <= MAX_REQUEST_LEN);
            prop_assert_eq!(Request::decode(&bytes), Ok(Some((request.clone(), bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(Request::decode(&bytes[..cut]), Ok(None));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some((request, consumed))) = Request::decode(&bytes) {
                prop_assert!(consumed <= bytes.len());
                // Whatever decodes re-encodes to a request that decodes the same.
                let again = encode(&request);
                prop_assert_eq!(Request::decode(&again), Ok(Some((request, again.len()))));
            }
        }
    }
}
