//! Directory replies: one result byte, then data for a successful listing or lookup.
//!
//! ```text
//! reply         = result [ok-data]          ; ok-data only when result = %x00
//! ok-data       = users / files / addr / hits  ; LIST_USERS / LIST_CONTENT / GET_USER_INFO / SEARCH
//! users         = count NUL count(name NUL ip NUL port NUL)
//! files         = count NUL count(file NUL)
//! hits          = count NUL count(owner NUL file NUL description NUL)
//! addr          = ip NUL port NUL
//! count, port   = 1*DIGIT                   ; ASCII decimal
//! ip            = IPv4 or IPv6 address as text, e.g. "127.0.0.1"
//! ```
//!
//! The same byte means different things for different operations (1 is "user
//! name in use" for `REGISTER`, "user does not exist" elsewhere), so each
//! operation has its own result type, and decoding needs the [`OpCode`] of the
//! request being answered.

use std::net::{IpAddr, SocketAddr};

use bytes::BufMut;

use nom::Parser;
use nom::multi::fold_many_m_n;

use super::{MAX_LIST_ENTRIES, MAX_SEARCH_RESULTS, OpCode};
use crate::codec::{Decode, Encode, finish};
use crate::error::DecodeError;
use crate::field::{Description, FileName, UserName};
use crate::wire::{self, Inline, PResult};

/// How many listing entries are allocated up front at most: the announced
/// count is only a claim, so the vector grows with the entries that actually arrive.
const LIST_PREALLOC: usize = 64;

/// Defines a per-operation result enum whose variants are the wire codes.
macro_rules! result_enum {
    (
        $(#[$meta:meta])*
        $name:ident => $op:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
        #[repr(u8)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $code, )+
        }

        impl $name {
            /// Every result, in code order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The result byte on the wire.
            #[must_use]
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The result for a result byte, or `None` if the operation defines no such code.
            #[must_use]
            pub const fn from_code(code: u8) -> Option<Self> {
                match code {
                    $( $code => Some(Self::$variant), )+
                    _ => None,
                }
            }

            /// Whether this is the success result (code 0).
            #[must_use]
            pub const fn is_ok(self) -> bool {
                self.code() == 0
            }
        }

        impl From<$name> for Reply {
            fn from(result: $name) -> Self {
                Self::$op(result)
            }
        }
    };
}

result_enum! {
    /// The result of `REGISTER`.
    RegisterResult => Register {
        /// 0: the user was registered.
        Ok = 0,
        /// 1: the user name is already registered.
        UserNameInUse = 1,
        /// 2: any other error.
        Other = 2,
    }
}

result_enum! {
    /// The result of `UNREGISTER`.
    UnregisterResult => Unregister {
        /// 0: the user and its publications were removed.
        Ok = 0,
        /// 1: no such user.
        UserDoesNotExist = 1,
        /// 2: any other error.
        Other = 2,
    }
}

result_enum! {
    /// The result of `CONNECT`.
    ConnectResult => Connect {
        /// 0: the user is now connected.
        Ok = 0,
        /// 1: no such user.
        UserDoesNotExist = 1,
        /// 2: the user is already connected.
        AlreadyConnected = 2,
        /// 3: any other error (including a malformed PORT).
        Other = 3,
    }
}

result_enum! {
    /// The result of `DISCONNECT`.
    DisconnectResult => Disconnect {
        /// 0: the user is now disconnected.
        Ok = 0,
        /// 1: no such user.
        UserDoesNotExist = 1,
        /// 2: the user is not connected.
        NotConnected = 2,
        /// 3: any other error.
        Other = 3,
    }
}

result_enum! {
    /// The result of `PUBLISH`.
    PublishResult => Publish {
        /// 0: the file was published.
        Ok = 0,
        /// 1: no such user.
        UserDoesNotExist = 1,
        /// 2: the user is not connected.
        NotConnected = 2,
        /// 3: the user already published this file.
        AlreadyPublished = 3,
        /// 4: any other error.
        Other = 4,
    }
}

result_enum! {
    /// The result of `DELETE`.
    DeleteResult => Delete {
        /// 0: the publication was removed.
        Ok = 0,
        /// 1: no such user.
        UserDoesNotExist = 1,
        /// 2: the user is not connected.
        NotConnected = 2,
        /// 3: the user did not publish this file.
        NotPublished = 3,
        /// 4: any other error.
        Other = 4,
    }
}

result_enum! {
    /// The result of `PING` (extension, §6.3).
    PingResult => Ping {
        /// 0: the user's liveness was recorded.
        Ok = 0,
        /// 1: no such user.
        UserDoesNotExist = 1,
        /// 2: the user is not connected.
        NotConnected = 2,
        /// 3: any other error (including a PING from another IP than the user's CONNECT).
        Other = 3,
    }
}

/// Where a connected peer serves files: the IP the directory saw at its
/// `CONNECT` and the port it sent. On the wire: `IP\0PORT\0`, both as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct PeerAddr {
    /// The peer's IP address.
    pub ip: IpAddr,
    /// The peer's listening TCP port.
    pub port: u16,
}

impl PeerAddr {
    /// Builds an address from its parts.
    #[must_use]
    pub const fn new(ip: IpAddr, port: u16) -> Self {
        Self { ip, port }
    }

    fn encode(&self, buf: &mut impl BufMut) {
        wire::put_ip(buf, &self.ip);
        wire::put_decimal(buf, u64::from(self.port));
    }

    fn encoded_len(&self) -> usize {
        wire::ip_len(&self.ip) + wire::decimal_len(u64::from(self.port))
    }

    /// `addr = ip NUL port NUL`.
    #[inline]
    fn parse(input: &[u8]) -> PResult<'_, Self> {
        (Inline(wire::ip_addr), Inline(wire::port))
            .map(|(ip, port)| Self { ip, port })
            .parse(input)
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr.ip(), addr.port())
    }
}

impl From<PeerAddr> for SocketAddr {
    fn from(addr: PeerAddr) -> Self {
        Self::new(addr.ip, addr.port)
    }
}

/// One entry of a `LIST_USERS` listing: `NAME\0IP\0PORT\0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct UserEntry {
    /// The connected user's name.
    pub name: UserName,
    /// Where that user serves files.
    pub addr: PeerAddr,
}

impl UserEntry {
    /// `user = name NUL ip NUL port NUL`.
    #[inline]
    fn parse(input: &[u8]) -> PResult<'_, Self> {
        (
            Inline(|i| wire::user_name(i, "NAME")),
            Inline(PeerAddr::parse),
        )
            .map(|(name, addr)| Self { name, addr })
            .parse(input)
    }

    fn encode(&self, buf: &mut impl BufMut) {
        wire::put_field(buf, self.name.as_bytes());
        self.addr.encode(buf);
    }

    fn encoded_len(&self) -> usize {
        wire::field_len(self.name.len()) + self.addr.encoded_len()
    }
}

/// A [`UserEntry`] together with its wire form, encoded once.
///
/// For servers that answer many `LIST_USERS`: keep one per connected user and
/// write listings with [`ListUsersReply::encode_ok_from`], one copy of bytes
/// per entry instead of a clone and an encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedUserEntry {
    entry: UserEntry,
    wire: Box<[u8]>,
}

impl EncodedUserEntry {
    /// Encodes `entry`.
    #[must_use]
    pub fn new(entry: UserEntry) -> Self {
        let mut wire = Vec::with_capacity(entry.encoded_len());
        entry.encode(&mut wire);
        Self {
            entry,
            wire: wire.into_boxed_slice(),
        }
    }

    /// The entry.
    #[must_use]
    pub const fn entry(&self) -> &UserEntry {
        &self.entry
    }

    /// Its wire form: `NAME\0IP\0PORT\0`.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.wire
    }
}

/// The reply to `LIST_USERS`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum ListUsersReply {
    /// 0: the connected users (the requester excluded), then `N` and N × `NAME IP PORT`.
    Ok(Vec<UserEntry>),
    /// 1: the requester does not exist.
    UserDoesNotExist,
    /// 2: the requester is not connected.
    NotConnected,
    /// 3: any other error.
    Other,
}

impl ListUsersReply {
    /// Writes a successful reply listing `entries`, in order: the bytes that
    /// [`Reply::encode`] writes for `ListUsersReply::Ok` of the entries they
    /// hold.
    pub fn encode_ok_from(entries: &[&EncodedUserEntry], buf: &mut impl BufMut) {
        buf.put_u8(0);
        wire::put_decimal(buf, entries.len() as u64);
        for entry in entries {
            buf.put_slice(entry.as_bytes());
        }
    }

    /// The exact number of bytes [`Self::encode_ok_from`] writes.
    #[must_use]
    pub fn encoded_ok_len_from(entries: &[&EncodedUserEntry]) -> usize {
        1 + wire::decimal_len(entries.len() as u64)
            + entries.iter().map(|e| e.wire.len()).sum::<usize>()
    }

    /// The result byte on the wire.
    #[must_use]
    pub const fn code(&self) -> u8 {
        match self {
            Self::Ok(_) => 0,
            Self::UserDoesNotExist => 1,
            Self::NotConnected => 2,
            Self::Other => 3,
        }
    }

    /// The failure reply for a non-zero result byte. `None` for 0 (whose reply
    /// carries a listing) and for codes the operation does not define.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::UserDoesNotExist),
            2 => Some(Self::NotConnected),
            3 => Some(Self::Other),
            _ => None,
        }
    }

    /// Whether this is the success reply.
    #[must_use]
    pub const fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }
}

/// The reply to `LIST_CONTENT`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum ListContentReply {
    /// 0: the target's publications in publication order, then `N` and N × `FILE`.
    Ok(Vec<FileName>),
    /// 1: the requester does not exist.
    UserDoesNotExist,
    /// 2: the requester is not connected.
    NotConnected,
    /// 3: the target user does not exist.
    TargetDoesNotExist,
    /// 4: any other error.
    Other,
}

impl ListContentReply {
    /// The result byte on the wire.
    #[must_use]
    pub const fn code(&self) -> u8 {
        match self {
            Self::Ok(_) => 0,
            Self::UserDoesNotExist => 1,
            Self::NotConnected => 2,
            Self::TargetDoesNotExist => 3,
            Self::Other => 4,
        }
    }

    /// The failure reply for a non-zero result byte. `None` for 0 (whose reply
    /// carries a listing) and for codes the operation does not define.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::UserDoesNotExist),
            2 => Some(Self::NotConnected),
            3 => Some(Self::TargetDoesNotExist),
            4 => Some(Self::Other),
            _ => None,
        }
    }

    /// Whether this is the success reply.
    #[must_use]
    pub const fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }
}

/// The reply to `GET_USER_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum GetUserInfoReply {
    /// 0: the target's address, then `IP PORT`.
    Ok(PeerAddr),
    /// 1: the requester does not exist.
    UserDoesNotExist,
    /// 2: the requester is not connected.
    NotConnected,
    /// 3: the target does not exist or is not connected.
    TargetNotFound,
    /// 4: any other error.
    Other,
}

impl GetUserInfoReply {
    /// The result byte on the wire.
    #[must_use]
    pub const fn code(&self) -> u8 {
        match self {
            Self::Ok(_) => 0,
            Self::UserDoesNotExist => 1,
            Self::NotConnected => 2,
            Self::TargetNotFound => 3,
            Self::Other => 4,
        }
    }

    /// The failure reply for a non-zero result byte. `None` for 0 (whose reply
    /// carries an address) and for codes the operation does not define.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::UserDoesNotExist),
            2 => Some(Self::NotConnected),
            3 => Some(Self::TargetNotFound),
            4 => Some(Self::Other),
            _ => None,
        }
    }

    /// Whether this is the success reply.
    #[must_use]
    pub const fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }
}

/// One result of a `SEARCH`: `OWNER\0FILE\0DESCRIPTION\0`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct SearchEntry {
    /// The user who published the file (its owner, to `GET_FILE` from).
    pub owner: UserName,
    /// The published file's name.
    pub file: FileName,
    /// The description published with it (may be empty).
    pub description: Description,
}

impl SearchEntry {
    fn encode(&self, buf: &mut impl BufMut) {
        wire::put_field(buf, self.owner.as_bytes());
        wire::put_field(buf, self.file.as_bytes());
        wire::put_field(buf, self.description.as_bytes());
    }

    fn encoded_len(&self) -> usize {
        wire::field_len(self.owner.len())
            + wire::field_len(self.file.len())
            + wire::field_len(self.description.len())
    }

    /// `hit = owner NUL file NUL description NUL`.
    fn parse(input: &[u8]) -> PResult<'_, Self> {
        (
            Inline(|i| wire::user_name(i, "OWNER")),
            Inline(wire::file_name),
            Inline(wire::description),
        )
            .map(|(owner, file, description)| Self {
                owner,
                file,
                description,
            })
            .parse(input)
    }
}

/// The reply to `SEARCH` (extension, §6.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum SearchReply {
    /// 0: the matching publications, most recently published first, then `N` and
    /// N × `OWNER FILE DESCRIPTION` (at most [`MAX_SEARCH_RESULTS`] decode).
    Ok(Vec<SearchEntry>),
    /// 1: the requester does not exist.
    UserDoesNotExist,
    /// 2: the requester is not connected.
    NotConnected,
    /// 3: the query is bad ([`SearchQuery::terms`](super::SearchQuery::terms) refused it).
    BadQuery,
    /// 4: any other error.
    Other,
}

impl SearchReply {
    /// The result byte on the wire.
    #[must_use]
    pub const fn code(&self) -> u8 {
        match self {
            Self::Ok(_) => 0,
            Self::UserDoesNotExist => 1,
            Self::NotConnected => 2,
            Self::BadQuery => 3,
            Self::Other => 4,
        }
    }

    /// The failure reply for a non-zero result byte. `None` for 0 (whose reply
    /// carries a listing) and for codes the operation does not define.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::UserDoesNotExist),
            2 => Some(Self::NotConnected),
            3 => Some(Self::BadQuery),
            4 => Some(Self::Other),
            _ => None,
        }
    }

    /// Whether this is the success reply.
    #[must_use]
    pub const fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }
}

impl From<SearchReply> for Reply {
    fn from(reply: SearchReply) -> Self {
        Self::Search(reply)
    }
}

impl From<ListUsersReply> for Reply {
    fn from(reply: ListUsersReply) -> Self {
        Self::ListUsers(reply)
    }
}

impl From<ListContentReply> for Reply {
    fn from(reply: ListContentReply) -> Self {
        Self::ListContent(reply)
    }
}

impl From<GetUserInfoReply> for Reply {
    fn from(reply: GetUserInfoReply) -> Self {
        Self::GetUserInfo(reply)
    }
}

/// A reply from the directory server to one [`Request`](super::Request).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum Reply {
    /// Answers `REGISTER`.
    Register(RegisterResult),
    /// Answers `UNREGISTER`.
    Unregister(UnregisterResult),
    /// Answers `CONNECT`.
    Connect(ConnectResult),
    /// Answers `DISCONNECT`.
    Disconnect(DisconnectResult),
    /// Answers `PUBLISH`.
    Publish(PublishResult),
    /// Answers `DELETE`.
    Delete(DeleteResult),
    /// Answers `LIST_USERS`.
    ListUsers(ListUsersReply),
    /// Answers `LIST_CONTENT`.
    ListContent(ListContentReply),
    /// Answers `GET_USER_INFO`.
    GetUserInfo(GetUserInfoReply),
    /// Answers `SEARCH`.
    Search(SearchReply),
    /// Answers `PING`.
    Ping(PingResult),
}

impl Reply {
    /// The operation this reply answers.
    #[must_use]
    pub const fn op(&self) -> OpCode {
        match self {
            Self::Register(_) => OpCode::Register,
            Self::Unregister(_) => OpCode::Unregister,
            Self::Connect(_) => OpCode::Connect,
            Self::Disconnect(_) => OpCode::Disconnect,
            Self::Publish(_) => OpCode::Publish,
            Self::Delete(_) => OpCode::Delete,
            Self::ListUsers(_) => OpCode::ListUsers,
            Self::ListContent(_) => OpCode::ListContent,
            Self::GetUserInfo(_) => OpCode::GetUserInfo,
            Self::Search(_) => OpCode::Search,
            Self::Ping(_) => OpCode::Ping,
        }
    }

    /// The result byte on the wire.
    #[must_use]
    pub const fn code(&self) -> u8 {
        match self {
            Self::Register(r) => r.code(),
            Self::Unregister(r) => r.code(),
            Self::Connect(r) => r.code(),
            Self::Disconnect(r) => r.code(),
            Self::Publish(r) => r.code(),
            Self::Delete(r) => r.code(),
            Self::ListUsers(r) => r.code(),
            Self::ListContent(r) => r.code(),
            Self::GetUserInfo(r) => r.code(),
            Self::Search(r) => r.code(),
            Self::Ping(r) => r.code(),
        }
    }

    /// Whether this is the operation's success reply (code 0).
    #[must_use]
    pub const fn is_ok(&self) -> bool {
        self.code() == 0
    }

    /// `op`'s "other error" reply: what a server answers to a request it refused.
    #[must_use]
    pub const fn other_error(op: OpCode) -> Self {
        match op {
            OpCode::Register => Self::Register(RegisterResult::Other),
            OpCode::Unregister => Self::Unregister(UnregisterResult::Other),
            OpCode::Connect => Self::Connect(ConnectResult::Other),
            OpCode::Disconnect => Self::Disconnect(DisconnectResult::Other),
            OpCode::Publish => Self::Publish(PublishResult::Other),
            OpCode::Delete => Self::Delete(DeleteResult::Other),
            OpCode::ListUsers => Self::ListUsers(ListUsersReply::Other),
            OpCode::ListContent => Self::ListContent(ListContentReply::Other),
            OpCode::GetUserInfo => Self::GetUserInfo(GetUserInfoReply::Other),
            OpCode::Search => Self::Search(SearchReply::Other),
            OpCode::Ping => Self::Ping(PingResult::Other),
        }
    }

    /// The streaming nom parser behind [`Reply`]'s [`Decode`]:
    /// `reply = result [ok-data]`, the result byte choosing what follows (nom's `flat_map`).
    pub(crate) fn parse(op: OpCode, input: &[u8]) -> PResult<'_, Self> {
        wire::byte
            .flat_map(|code| Inline(move |rest| Self::parse_after_result(op, code, rest)))
            .parse(input)
    }

    /// `[ok-data]`: the listing, address or nothing that result `code` to `op` carries
    /// (grammar in the module doc).
    #[inline]
    fn parse_after_result(op: OpCode, code: u8, rest: &[u8]) -> PResult<'_, Self> {
        match (op, code) {
            (OpCode::ListUsers, 0) => list(MAX_LIST_ENTRIES, UserEntry::parse)
                .map(|users| Self::ListUsers(ListUsersReply::Ok(users)))
                .parse(rest),
            (OpCode::ListContent, 0) => list(MAX_LIST_ENTRIES, wire::file_name)
                .map(|files| Self::ListContent(ListContentReply::Ok(files)))
                .parse(rest),
            (OpCode::GetUserInfo, 0) => PeerAddr::parse
                .map(|addr| Self::GetUserInfo(GetUserInfoReply::Ok(addr)))
                .parse(rest),
            (OpCode::Search, 0) => list(MAX_SEARCH_RESULTS, SearchEntry::parse)
                .map(|entries| Self::Search(SearchReply::Ok(entries)))
                .parse(rest),
            _ => match Self::failure(op, code) {
                Some(reply) => Ok((rest, reply)),
                None => wire::fail(DecodeError::InvalidResult { op, code }),
            },
        }
    }

    /// The reply to `op` whose result byte `code` carries no data, if `op` defines it.
    fn failure(op: OpCode, code: u8) -> Option<Self> {
        macro_rules! map {
            ($result:ident, $variant:ident) => {
                $result::from_code(code).map(Self::$variant)
            };
        }
        match op {
            OpCode::Register => map!(RegisterResult, Register),
            OpCode::Unregister => map!(UnregisterResult, Unregister),
            OpCode::Connect => map!(ConnectResult, Connect),
            OpCode::Disconnect => map!(DisconnectResult, Disconnect),
            OpCode::Publish => map!(PublishResult, Publish),
            OpCode::Delete => map!(DeleteResult, Delete),
            OpCode::ListUsers => map!(ListUsersReply, ListUsers),
            OpCode::ListContent => map!(ListContentReply, ListContent),
            OpCode::GetUserInfo => map!(GetUserInfoReply, GetUserInfo),
            OpCode::Search => map!(SearchReply, Search),
            OpCode::Ping => map!(PingResult, Ping),
        }
    }
}

impl Encode for Reply {
    /// Writes the reply.
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.code());
        match self {
            Self::ListUsers(ListUsersReply::Ok(users)) => {
                wire::put_decimal(buf, users.len() as u64);
                for user in users {
                    user.encode(buf);
                }
            }
            Self::ListContent(ListContentReply::Ok(files)) => {
                wire::put_decimal(buf, files.len() as u64);
                for file in files {
                    wire::put_field(buf, file.as_bytes());
                }
            }
            Self::GetUserInfo(GetUserInfoReply::Ok(addr)) => addr.encode(buf),
            Self::Search(SearchReply::Ok(entries)) => {
                wire::put_decimal(buf, entries.len() as u64);
                for entry in entries {
                    entry.encode(buf);
                }
            }
            _ => {}
        }
    }

    fn encoded_len(&self) -> usize {
        1 + match self {
            Self::ListUsers(ListUsersReply::Ok(users)) => {
                wire::decimal_len(users.len() as u64)
                    + users.iter().map(UserEntry::encoded_len).sum::<usize>()
            }
            Self::ListContent(ListContentReply::Ok(files)) => {
                wire::decimal_len(files.len() as u64)
                    + files
                        .iter()
                        .map(|f| wire::field_len(f.len()))
                        .sum::<usize>()
            }
            Self::GetUserInfo(GetUserInfoReply::Ok(addr)) => addr.encoded_len(),
            Self::Search(SearchReply::Ok(entries)) => {
                wire::decimal_len(entries.len() as u64)
                    + entries.iter().map(SearchEntry::encoded_len).sum::<usize>()
            }
            _ => 0,
        }
    }
}

/// Decodes the reply to a request of the operation given as context: a listing count above
/// [`MAX_LIST_ENTRIES`] ([`MAX_SEARCH_RESULTS`] for `SEARCH`) is refused before anything is
/// allocated for it. Errors: an undefined result byte, a malformed count, name, address or
/// port, a field over its limit.
impl Decode<OpCode> for Reply {
    type Error = DecodeError;

    fn decode_with(op: OpCode, input: &[u8]) -> Result<Option<(Self, usize)>, DecodeError> {
        finish(input, Self::parse(op, input))
    }
}

/// `list = count NUL count(entry)`, with the count checked against `max` before anything is
/// allocated for it.
pub(crate) fn list<'a, T>(
    max: usize,
    mut entry: impl FnMut(&'a [u8]) -> PResult<'a, T>,
) -> impl Parser<&'a [u8], Output = Vec<T>, Error = DecodeError> {
    let mut count = wire::checked_field("COUNT", wire::MAX_NUMBER_DIGITS, move |raw| {
        let count = wire::decimal(raw).ok_or(DecodeError::InvalidNumber { field: "COUNT" })?;
        match usize::try_from(count) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(DecodeError::CountTooLarge { count, max }),
        }
    });
    // nom's `length_count` would preallocate by its own rule (up to 8 192 entries); the
    // announced count is only a claim, so the vector grows with the entries that actually
    // arrive: exactly `count` entries folded into a vector preallocated to `LIST_PREALLOC`.
    move |input| {
        let (rest, count) = count.parse(input)?;
        fold_many_m_n(
            count,
            count,
            &mut entry,
            || Vec::with_capacity(count.min(LIST_PREALLOC)),
            |mut entries, value| {
                entries.push(value);
                entries
            },
        )
        .parse(rest)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::{OpCode, strategy};
    use super::*;
    use crate::field::FieldError;
    use crate::testutil::{hex, known_answer};
    use proptest::prelude::*;

    fn encode(reply: &Reply) -> Vec<u8> {
        let mut out = Vec::new();
        reply.encode(&mut out);
        assert_eq!(reply.encoded_len(), out.len(), "encoded_len of {reply:?}");
        out
    }

    fn kat(bytes: &[u8], expected: impl Into<Reply>) {
        let expected = expected.into();
        let op = expected.op();
        known_answer(op, bytes, &expected);
    }

    fn localhost(port: u16) -> PeerAddr {
        PeerAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    #[test]
    fn issue_known_answers() {
        kat(
            &hex("00 31 00 63 61 72 6f 6c 00 31 32 37 2e 30 2e 30 2e 31 00 34 35 36 37 38 00"),
            ListUsersReply::Ok(vec![UserEntry {
                name: "carol".parse().unwrap(),
                addr: localhost(45678),
            }]),
        );
        kat(&hex("00 30 00"), ListContentReply::Ok(vec![]));
    }

    /// Every reply of `classic-directory-session.trace`, bytes as captured.
    #[test]
    fn classic_trace_replies() {
        kat(&hex("00"), RegisterResult::Ok);
        kat(&hex("01"), RegisterResult::UserNameInUse);
        kat(&hex("00"), ConnectResult::Ok);
        kat(&hex("00"), PublishResult::Ok);
        kat(&hex("03"), PublishResult::AlreadyPublished);
        kat(
            &hex("003100616c696365003132372e302e302e3100343036343700"),
            ListUsersReply::Ok(vec![UserEntry {
                name: "alice".parse().unwrap(),
                addr: localhost(40647),
            }]),
        );
        kat(
            &hex("0031002f7372762f6d757369632f736f6e672e6d703300"),
            ListContentReply::Ok(vec!["/srv/music/song.mp3".parse().unwrap()]),
        );
        kat(&hex("03"), ListContentReply::TargetDoesNotExist);
        kat(&hex("00"), DeleteResult::Ok);
        kat(&hex("03"), DeleteResult::NotPublished);
        kat(&hex("00"), DisconnectResult::Ok);
        kat(&hex("00"), UnregisterResult::Ok);
        kat(&hex("02"), UnregisterResult::Other);
    }

    /// Every result variant of every operation, with its exact byte.
    #[test]
    fn every_result_variant() {
        macro_rules! all {
            ($($ty:ident),+) => {$(
                for (code, result) in (0..).zip($ty::ALL) {
                    assert_eq!(result.code(), code);
                    assert_eq!($ty::from_code(code), Some(*result));
                    kat(&[code], *result);
                }
                assert_eq!($ty::from_code($ty::ALL.len() as u8), None);
            )+};
        }
        all!(
            RegisterResult,
            UnregisterResult,
            ConnectResult,
            DisconnectResult,
            PublishResult,
            DeleteResult
        );
        kat(b"\x01", ListUsersReply::UserDoesNotExist);
        kat(b"\x02", ListUsersReply::NotConnected);
        kat(b"\x03", ListUsersReply::Other);
        kat(b"\x01", ListContentReply::UserDoesNotExist);
        kat(b"\x02", ListContentReply::NotConnected);
        kat(b"\x03", ListContentReply::TargetDoesNotExist);
        kat(b"\x04", ListContentReply::Other);
        kat(b"\x01", GetUserInfoReply::UserDoesNotExist);
        kat(b"\x02", GetUserInfoReply::NotConnected);
        kat(b"\x03", GetUserInfoReply::TargetNotFound);
        kat(b"\x04", GetUserInfoReply::Other);
        kat(
            b"\x00127.0.0.1\x0040647\x00",
            GetUserInfoReply::Ok(localhost(40647)),
        );
        kat(
            b"\x00::1\x000\x00",
            GetUserInfoReply::Ok(PeerAddr::new("::1".parse().unwrap(), 0)),
        );
        kat(b"\x000\x00", ListUsersReply::Ok(vec![]));
        kat(
            b"\x002\x00bob\x0010.0.0.2\x001\x00carol\x00127.0.0.1\x0045678\x00",
            ListUsersReply::Ok(vec![
                UserEntry {
                    name: "bob".parse().unwrap(),
                    addr: PeerAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 1),
                },
                UserEntry {
                    name: "carol".parse().unwrap(),
                    addr: localhost(45678),
                },
            ]),
        );
        kat(
            b"\x002\x00/a b\x00/c\x00",
            ListContentReply::Ok(vec!["/a b".parse().unwrap(), "/c".parse().unwrap()]),
        );
    }

    #[test]
    fn other_error_is_the_last_code() {
        let expected = [2, 2, 3, 3, 4, 4, 3, 4, 4, 4, 3];
        for (op, code) in OpCode::ALL.into_iter().zip(expected) {
            let reply = Reply::other_error(op);
            assert_eq!(reply.op(), op);
            assert_eq!(reply.code(), code);
            assert!(!reply.is_ok());
            assert_eq!(
                Reply::decode_with(op, &[code + 1]),
                Err(DecodeError::InvalidResult { op, code: code + 1 })
            );
        }
    }

    fn hit(owner: &str, file: &str, description: &str) -> SearchEntry {
        SearchEntry {
            owner: owner.parse().unwrap(),
            file: file.parse().unwrap(),
            description: description.parse().unwrap(),
        }
    }

    #[test]
    fn search_and_ping_known_answers() {
        kat(
            &hex("00 \
                 32 00 \
                 62 6f 62 00 \
                 2f 6d 2f 54 68 65 5f 42 65 61 74 6c 65 73 2d 48 65 6c 70 2e 6d 70 33 00 \
                 6c 69 76 65 00 \
                 63 61 72 6f 6c 00 \
                 2f 62 65 61 74 2e 6f 67 67 00 \
                 00"),
            // 0, "2", bob /m/The_Beatles-Help.mp3 live, carol /beat.ogg "" (empty description)
            SearchReply::Ok(vec![
                hit("bob", "/m/The_Beatles-Help.mp3", "live"),
                hit("carol", "/beat.ogg", ""),
            ]),
        );
        kat(&hex("00 30 00"), SearchReply::Ok(vec![]));
        kat(&hex("01"), SearchReply::UserDoesNotExist);
        kat(&hex("02"), SearchReply::NotConnected);
        kat(&hex("03"), SearchReply::BadQuery);
        kat(&hex("04"), SearchReply::Other);
        for (code, result) in (0..).zip(PingResult::ALL) {
            assert_eq!(result.code(), code);
            kat(&[code], *result);
        }
        assert_eq!(PingResult::from_code(4), None);
        assert_eq!(SearchReply::from_code(0), None);
        assert_eq!(SearchReply::from_code(5), None);
        assert!(SearchReply::Ok(vec![]).is_ok());
    }

    #[test]
    fn malformed_search_replies() {
        let decode = |b: &[u8]| Reply::decode_with(OpCode::Search, b);
        assert_eq!(
            decode(b"\x00100001\x00"),
            Err(DecodeError::CountTooLarge {
                count: 100_001,
                max: MAX_SEARCH_RESULTS
            })
        );
        assert_eq!(decode(b"\x00100000\x00"), Ok(None));
        assert_eq!(
            decode(b"\x001\x00b ob\x00"),
            Err(DecodeError::InvalidField {
                field: "OWNER",
                error: FieldError::Whitespace
            })
        );
        assert_eq!(
            decode(b"\x001\x00bob\x00\x00"),
            Err(DecodeError::InvalidField {
                field: "FILE",
                error: FieldError::Empty
            })
        );
        assert_eq!(
            decode(b"\x001\x00bob\x00/f\x00\xc3\x00"),
            Err(DecodeError::InvalidField {
                field: "DESCRIPTION",
                error: FieldError::NotUtf8
            })
        );
        assert_eq!(
            decode(b"\x05"),
            Err(DecodeError::InvalidResult {
                op: OpCode::Search,
                code: 5
            })
        );
    }

    #[test]
    fn malformed_listings() {
        let decode = |b: &[u8]| Reply::decode_with(OpCode::ListUsers, b);
        assert_eq!(
            decode(b"\x00x\x00"),
            Err(DecodeError::InvalidNumber { field: "COUNT" })
        );
        assert_eq!(
            decode(b"\x00-1\x00"),
            Err(DecodeError::InvalidNumber { field: "COUNT" })
        );
        assert_eq!(
            decode(b"\x00 1\x00"),
            Err(DecodeError::InvalidNumber { field: "COUNT" })
        );
        assert_eq!(
            decode(b"\x00\x00"),
            Err(DecodeError::InvalidNumber { field: "COUNT" })
        );
        assert_eq!(
            decode(b"\x00123456789012345678901"),
            Err(DecodeError::FieldTooLong {
                field: "COUNT",
                max: 20
            })
        );
        // Refused as soon as the count arrives: nothing is allocated for it.
        assert_eq!(
            decode(b"\x001000001\x00"),
            Err(DecodeError::CountTooLarge {
                count: 1_000_001,
                max: MAX_LIST_ENTRIES
            })
        );
        assert_eq!(
            Reply::decode_with(OpCode::ListContent, b"\x0018446744073709551615\x00"),
            Err(DecodeError::CountTooLarge {
                count: u64::MAX,
                max: MAX_LIST_ENTRIES
            })
        );
        // The maximum itself is accepted (and incomplete until the entries arrive).
        assert_eq!(decode(b"\x001000000\x00"), Ok(None));
        assert_eq!(
            decode(b"\x001\x00carol\x00localhost\x001\x00"),
            Err(DecodeError::InvalidAddress)
        );
        assert_eq!(
            decode(b"\x001\x00carol\x00127.0.0.1\x0070000\x00"),
            Err(DecodeError::InvalidPort { value: 70000 })
        );
        assert_eq!(
            decode(b"\x001\x00ca rol\x00"),
            Err(DecodeError::InvalidField {
                field: "NAME",
                error: FieldError::Whitespace
            })
        );
        assert_eq!(
            Reply::decode_with(OpCode::ListContent, b"\x001\x00\xff\x00"),
            Err(DecodeError::InvalidField {
                field: "FILE",
                error: FieldError::NotUtf8
            })
        );
        let mut long = b"\x001\x00".to_vec();
        long.extend([b'a'; 256]);
        assert_eq!(
            Reply::decode_with(OpCode::ListContent, &long),
            Err(DecodeError::FieldTooLong {
                field: "FILE",
                max: 255
            })
        );
        assert_eq!(
            Reply::decode_with(
                OpCode::GetUserInfo,
                b"\x001111111111111111111111111111111111111111111111"
            ),
            Err(DecodeError::FieldTooLong {
                field: "IP",
                max: 45
            })
        );
    }

    #[test]
    fn socket_addr_conversions() {
        let addr: SocketAddr = "127.0.0.1:45678".parse().unwrap();
        assert_eq!(PeerAddr::from(addr), localhost(45678));
        assert_eq!(SocketAddr::from(localhost(45678)), addr);
    }

    proptest! {
        #[test]
        fn round_trip(reply in strategy::reply()) {
            let bytes = encode(&reply);
            prop_assert_eq!(Reply::decode_with(reply.op(), &bytes), Ok(Some((reply.clone(), bytes.len()))));
            for cut in 0..bytes.len() {
                prop_assert_eq!(Reply::decode_with(reply.op(), &bytes[..cut]), Ok(None));
            }
        }

        /// Listings written from pre-encoded entries are the typed reply's bytes.
        #[test]
        fn encoded_entries_write_the_typed_listing(users in proptest::collection::vec(strategy::user_entry(), 0..12)) {
            let encoded: Vec<EncodedUserEntry> = users.iter().cloned().map(EncodedUserEntry::new).collect();
            let refs: Vec<&EncodedUserEntry> = encoded.iter().collect();
            let mut from_encoded = Vec::new();
            ListUsersReply::encode_ok_from(&refs, &mut from_encoded);
            prop_assert_eq!(&from_encoded, &encode(&Reply::ListUsers(ListUsersReply::Ok(users.clone()))));
            prop_assert_eq!(ListUsersReply::encoded_ok_len_from(&refs), from_encoded.len());
            for (e, user) in encoded.iter().zip(&users) {
                prop_assert_eq!(e.entry(), user);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            op in proptest::sample::select(OpCode::ALL.to_vec()),
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Ok(Some((reply, consumed))) = Reply::decode_with(op, &bytes) {
                prop_assert!(consumed <= bytes.len());
                prop_assert_eq!(reply.op(), op);
            }
        }
    }
}
