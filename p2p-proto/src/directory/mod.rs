//! The directory protocol: peer ↔ directory server (PROTOCOL.md §1 and the extensions of §6.1–§6.3).
//!
//! One operation per TCP connection. The peer sends a [`Request`]:
//!
//! ```text
//! request  = op NUL [datetime NUL] user NUL *(field NUL)
//! op       = "REGISTER" / "UNREGISTER" / "CONNECT" / "DISCONNECT" / "PUBLISH"
//!          / "DELETE" / "LIST_USERS" / "LIST_CONTENT" / "GET_USER_INFO"
//!          / "SEARCH" / "PING"                         ; extensions (§6.2, §6.3)
//! datetime = 2DIGIT "/" 2DIGIT "/" 4DIGIT " " 2DIGIT ":" 2DIGIT ":" 2DIGIT
//! ```
//!
//! or the extension request `CAPABILITIES\0` ([`CapabilitiesRequest`], §6.1), which has
//! neither `DATETIME` nor `USER`; a server reads either as a [`ServerMessage`]. `SEARCH`'s
//! query and its meaning are in [`SearchQuery`], [`search_words`] and [`matches()`].
//!
//! The server answers a [`Reply`]: one binary result byte whose meaning depends
//! on the operation (hence one result enum per operation), followed, for a
//! successful listing or lookup only, by more NUL-terminated fields.
//!
//! Decoding is streaming and bounded: incomplete input is `Ok(None)`; a field is
//! refused as soon as it outgrows its limit; a listing count above
//! [`MAX_LIST_ENTRIES`] is refused before anything is allocated for it.
//! [`RequestDecoder`] is the form for a socket loop that appends to a buffer.
//!
//! ```
//! use p2p_proto::{Decode, Encode};
//! use p2p_proto::directory::{Reply, RegisterResult, Request, RequestBody};
//!
//! let request = Request {
//!     timestamp: Some("24/11/2026 20:42:35".parse()?),
//!     user: "alice".parse()?,
//!     body: RequestBody::Register,
//! };
//! let mut wire = Vec::new();
//! request.encode(&mut wire);
//! assert_eq!(wire, b"REGISTER\x0024/11/2026 20:42:35\x00alice\x00");
//! assert_eq!(Request::decode(&wire)?, Some((request, wire.len())));
//! assert_eq!(Request::decode(&wire[..10])?, None); // incomplete
//!
//! let reply = Reply::decode_with(request_op(), b"\x01")?;
//! assert_eq!(reply, Some((Reply::Register(RegisterResult::UserNameInUse), 1)));
//! # fn request_op() -> p2p_proto::directory::OpCode { p2p_proto::directory::OpCode::Register }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

pub use crate::error::DecodeError;
use crate::field::MAX_FIELD_LEN;
use crate::timestamp::Timestamp;

mod capabilities;
mod decoder;
mod reply;
mod request;
mod search;
#[cfg(test)]
pub(crate) mod strategy;

pub use capabilities::{CapabilitiesReply, CapabilitiesRequest, ServerMessage};
pub use decoder::{RequestDecoder, ServerMessageDecoder};
pub use reply::{
    ConnectResult, DeleteResult, DisconnectResult, EncodedUserEntry, GetUserInfoReply,
    ListContentReply, ListUsersReply, PeerAddr, PingResult, PublishResult, RegisterResult, Reply,
    SearchEntry, SearchReply, UnregisterResult, UserEntry,
};
pub use request::{Request, RequestBody};
pub use search::{
    BadQuery, MAX_SEARCH_TERM_LEN, MAX_SEARCH_TERMS, SearchQuery, SearchTerm, matches, search_words,
};

/// The most entries a listing reply (`LIST_USERS`, `LIST_CONTENT`) may announce.
/// A larger count is refused ([`DecodeError::CountTooLarge`]) before anything is allocated.
pub const MAX_LIST_ENTRIES: usize = 1_000_000;

/// The most results a `SEARCH` reply may announce (§6.2). A larger count is refused
/// ([`DecodeError::CountTooLarge`]) before anything is allocated for it; a server's result limit
/// (`--search-limit`) must not exceed it, or its clients would refuse its replies.
pub const MAX_SEARCH_RESULTS: usize = 100_000;

/// The most operation names a `CAPABILITIES` reply may announce (§6.1).
pub const MAX_CAPABILITIES: usize = 256;

/// The longest operation name (`GET_USER_INFO`), in bytes without the NUL.
/// A longer `OP` field is refused as soon as byte 14 arrives.
pub const MAX_OP_LEN: usize = 13;

/// The most digits a `PORT` field may have (leading zeros count).
pub const MAX_PORT_DIGITS: usize = 5;

/// The longest `IP` field: the longest textual IPv6 address
/// (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`).
pub const MAX_IP_LEN: usize = 45;

/// The longest valid request, NULs included: `PUBLISH` with `DATETIME` and
/// three 255-byte fields (796 bytes). A server may cap its read buffer here.
pub const MAX_REQUEST_LEN: usize =
    (OpCode::Publish.as_str().len() + 1) + (Timestamp::LEN + 1) + 3 * (MAX_FIELD_LEN + 1);

/// A directory operation, as named by the request's `OP` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum OpCode {
    /// `REGISTER`: create a user.
    Register,
    /// `UNREGISTER`: remove a user and its publications.
    Unregister,
    /// `CONNECT`: mark a user connected at the sender's IP and the given port.
    Connect,
    /// `DISCONNECT`: mark a user disconnected (publications are kept).
    Disconnect,
    /// `PUBLISH`: add a file to the user's publications.
    Publish,
    /// `DELETE`: remove a file from the user's publications.
    Delete,
    /// `LIST_USERS`: the connected users other than the requester.
    ListUsers,
    /// `LIST_CONTENT`: the files a target user published.
    ListContent,
    /// `GET_USER_INFO`: the address of one connected user (this system's addition).
    GetUserInfo,
    /// `SEARCH`: publications of connected users matching a query (extension, §6.2).
    Search,
    /// `PING`: a connected user's liveness signal (extension, §6.3).
    Ping,
}

impl OpCode {
    /// Every operation a [`Request`] can carry, in PROTOCOL.md's order: the nine of §1, then
    /// the extensions `SEARCH` (§6.2) and `PING` (§6.3). [`Self::from_bytes`] recognises
    /// exactly these; code that must stay within the classic protocol uses [`Self::CLASSIC`].
    /// New operations are appended, so an index into this array keeps its meaning.
    ///
    /// `CAPABILITIES` (§6.1) is not an `OpCode`: it has no `DATETIME` and no `USER`, so it is
    /// not a [`Request`] (see [`CapabilitiesRequest`] and [`ServerMessage`]).
    pub const ALL: [Self; 11] = [
        Self::Register,
        Self::Unregister,
        Self::Connect,
        Self::Disconnect,
        Self::Publish,
        Self::Delete,
        Self::ListUsers,
        Self::ListContent,
        Self::GetUserInfo,
        Self::Search,
        Self::Ping,
    ];

    /// The nine operations of PROTOCOL.md §1, in its order: the ones every server of the
    /// design understands, plus `GET_USER_INFO`, which §1 defines as this system's addition (a
    /// classic server closes the connection on it; a `--classic` peer never sends it, see §6.1).
    pub const CLASSIC: [Self; 9] = [
        Self::Register,
        Self::Unregister,
        Self::Connect,
        Self::Disconnect,
        Self::Publish,
        Self::Delete,
        Self::ListUsers,
        Self::ListContent,
        Self::GetUserInfo,
    ];

    /// The operations a p2p-server lists in its `CAPABILITIES` reply (§6.1): those beyond
    /// the classic eight that a classic server lacks.
    pub const EXTENSIONS: [Self; 3] = [Self::GetUserInfo, Self::Search, Self::Ping];

    /// The operation's name on the wire, e.g. `"LIST_USERS"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Register => "REGISTER",
            Self::Unregister => "UNREGISTER",
            Self::Connect => "CONNECT",
            Self::Disconnect => "DISCONNECT",
            Self::Publish => "PUBLISH",
            Self::Delete => "DELETE",
            Self::ListUsers => "LIST_USERS",
            Self::ListContent => "LIST_CONTENT",
            Self::GetUserInfo => "GET_USER_INFO",
            Self::Search => "SEARCH",
            Self::Ping => "PING",
        }
    }

    /// Whether this operation is one of PROTOCOL.md §1's ([`Self::CLASSIC`]).
    #[must_use]
    pub const fn is_classic(self) -> bool {
        !matches!(self, Self::Search | Self::Ping)
    }

    /// The operation of a request whose first bytes are `buf`, as soon as its `OP` field is
    /// whole: what a server answers "other error" for when it refuses the rest of the request
    /// (too long, too slow). `None` while the field is incomplete or when it names no operation.
    ///
    /// ```
    /// use p2p_proto::directory::OpCode;
    ///
    /// assert_eq!(OpCode::of_request(b"PUBLISH\0alice\0/x"), Some(OpCode::Publish));
    /// assert_eq!(OpCode::of_request(b"PUBLI"), None);
    /// assert_eq!(OpCode::of_request(b"GET_FILE\0"), None);
    /// ```
    #[must_use]
    pub fn of_request(buf: &[u8]) -> Option<Self> {
        crate::wire::op_code(buf).ok().map(|(_, op)| op)
    }

    /// The operation named exactly (case-sensitively) by `bytes`, if any.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str().as_bytes() == bytes)
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A malformed request, with the operation when its `OP` field was recognised.
///
/// A server answers `op`'s "other error" reply ([`Reply::other_error`]) when `op`
/// is `Some`, and closes the connection without a reply otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {} request: {error}", .op.map_or("directory", OpCode::as_str))]
pub struct RequestError {
    /// The operation, when the `OP` field named one.
    pub op: Option<OpCode>,
    /// What is wrong.
    #[source]
    pub error: DecodeError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names() {
        for op in OpCode::ALL {
            assert_eq!(OpCode::from_bytes(op.as_str().as_bytes()), Some(op));
            assert_eq!(op.to_string(), op.as_str());
            assert!(op.as_str().len() <= MAX_OP_LEN);
        }
        assert_eq!(OpCode::from_bytes(b"register"), None);
        assert_eq!(OpCode::from_bytes(b"GET_FILE"), None);
        assert_eq!(OpCode::from_bytes(b""), None);
        assert_eq!(MAX_REQUEST_LEN, 796);
    }

    #[test]
    fn error_texts() {
        let e = RequestError {
            op: Some(OpCode::Connect),
            error: DecodeError::InvalidPort { value: 0 },
        };
        assert_eq!(
            e.to_string(),
            "malformed CONNECT request: port 0 is out of range"
        );
        let e = RequestError {
            op: None,
            error: DecodeError::UnknownOp,
        };
        assert_eq!(
            e.to_string(),
            "malformed directory request: unknown operation"
        );
    }

    /// The hand-written `Arbitrary` impls only produce values that survive the wire.
    #[cfg(feature = "fuzzing")]
    mod fuzzing {
        use super::super::{Reply, Request};
        use crate::transfer::{GetFile, TransferHeader};
        use crate::{Decode as _, Encode as _};
        use arbitrary::{Arbitrary, Unstructured};
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_values_round_trip(data in proptest::collection::vec(any::<u8>(), 0..512)) {
                let mut u = Unstructured::new(&data);
                if let Ok(request) = Request::arbitrary(&mut u) {
                    let mut bytes = Vec::new();
                    request.encode(&mut bytes);
                    prop_assert_eq!(Request::decode(&bytes), Ok(Some((request, bytes.len()))));
                }
                if let Ok(reply) = Reply::arbitrary(&mut u) {
                    let mut bytes = Vec::new();
                    reply.encode(&mut bytes);
                    prop_assert_eq!(Reply::decode_with(reply.op(), &bytes), Ok(Some((reply, bytes.len()))));
                }
                if let Ok(request) = GetFile::arbitrary(&mut u) {
                    let mut bytes = Vec::new();
                    request.encode(&mut bytes);
                    prop_assert_eq!(GetFile::decode(&bytes), Ok(Some((request, bytes.len()))));
                }
                if let Ok(header) = TransferHeader::arbitrary(&mut u) {
                    let mut bytes = Vec::new();
                    header.encode(&mut bytes);
                    prop_assert_eq!(TransferHeader::decode(&bytes), Ok(Some((header, bytes.len()))));
                }
            }
        }
    }
}
