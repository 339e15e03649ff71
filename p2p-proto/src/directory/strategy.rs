//! Proptest strategies covering every request operation and every reply variant.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU16;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::{
    CapabilitiesReply, ConnectResult, DeleteResult, DisconnectResult, GetUserInfoReply,
    ListContentReply, ListUsersReply, PeerAddr, PingResult, PublishResult, RegisterResult, Reply,
    Request, RequestBody, SearchEntry, SearchQuery, SearchReply, ServerMessage, UnregisterResult,
    UserEntry,
};
use crate::field::strategy::{description, file_name, operation_name, user_name};
use crate::timestamp::strategy::timestamp;

/// Any request body, every operation.
pub(crate) fn request_body() -> impl Strategy<Value = RequestBody> {
    prop_oneof![
        Just(RequestBody::Register),
        Just(RequestBody::Unregister),
        any::<NonZeroU16>().prop_map(|port| RequestBody::Connect { port }),
        Just(RequestBody::Disconnect),
        (file_name(), description())
            .prop_map(|(file, description)| RequestBody::Publish { file, description }),
        file_name().prop_map(|file| RequestBody::Delete { file }),
        Just(RequestBody::ListUsers),
        user_name().prop_map(|target| RequestBody::ListContent { target }),
        user_name().prop_map(|target| RequestBody::GetUserInfo { target }),
        search_query().prop_map(|query| RequestBody::Search { query }),
        Just(RequestBody::Ping),
    ]
}

/// Any `QUERY` field: good queries, bad ones (empty, too many terms, long terms) and bytes
/// that are not UTF-8, up to the 255-byte maximum.
pub(crate) fn search_query() -> impl Strategy<Value = SearchQuery> {
    prop_oneof![
        "[a-zA-Z0-9éß ]{0,40}".prop_map(|s| SearchQuery::new(&s)),
        "[^\u{0}]{0,20}".prop_map(|s| SearchQuery::new(&s)),
        vec(1_u8..=255, 0..=255).prop_map(|b| SearchQuery::from_bytes(&b)),
        "[a-z]{255}".prop_map(|s| SearchQuery::new(&s)),
    ]
    .prop_filter_map("valid QUERY field", Result::ok)
}

/// Any `SEARCH` result.
pub(crate) fn search_entry() -> impl Strategy<Value = SearchEntry> {
    (user_name(), file_name(), description()).prop_map(|(owner, file, description)| SearchEntry {
        owner,
        file,
        description,
    })
}

/// Any `CAPABILITIES` reply, unknown names included.
pub(crate) fn capabilities_reply() -> impl Strategy<Value = CapabilitiesReply> {
    vec(operation_name(), 0..8).prop_map(CapabilitiesReply::new)
}

/// Any message a server reads: a request or `CAPABILITIES`.
pub(crate) fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        4 => request().prop_map(ServerMessage::Request),
        1 => Just(ServerMessage::Capabilities),
    ]
}

/// Any request, with and without `DATETIME`.
pub(crate) fn request() -> impl Strategy<Value = Request> {
    (option::of(timestamp()), user_name(), request_body()).prop_map(|(timestamp, user, body)| {
        Request {
            timestamp,
            user,
            body,
        }
    })
}

/// Any IPv4 or IPv6 address.
pub(crate) fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|ip| IpAddr::V4(Ipv4Addr::from(ip))),
        any::<u128>().prop_map(|ip| IpAddr::V6(Ipv6Addr::from(ip))),
        Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    ]
}

/// Any peer address (port 0 included: replies carry any `u16`).
pub(crate) fn peer_addr() -> impl Strategy<Value = PeerAddr> {
    (ip_addr(), any::<u16>()).prop_map(|(ip, port)| PeerAddr { ip, port })
}

/// Any `LIST_USERS` entry.
pub(crate) fn user_entry() -> impl Strategy<Value = UserEntry> {
    (user_name(), peer_addr()).prop_map(|(name, addr)| UserEntry { name, addr })
}

/// Any reply, every operation and every result variant.
pub(crate) fn reply() -> impl Strategy<Value = Reply> {
    fn code<T: std::fmt::Debug>(max: u8, from: fn(u8) -> Option<T>) -> impl Strategy<Value = T> {
        (0..=max).prop_filter_map("defined code", from)
    }
    prop_oneof![
        code(2, RegisterResult::from_code).prop_map(Reply::Register),
        code(2, UnregisterResult::from_code).prop_map(Reply::Unregister),
        code(3, ConnectResult::from_code).prop_map(Reply::Connect),
        code(3, DisconnectResult::from_code).prop_map(Reply::Disconnect),
        code(4, PublishResult::from_code).prop_map(Reply::Publish),
        code(4, DeleteResult::from_code).prop_map(Reply::Delete),
        vec(user_entry(), 0..8).prop_map(|users| Reply::ListUsers(ListUsersReply::Ok(users))),
        code(3, ListUsersReply::from_code).prop_map(Reply::ListUsers),
        vec(file_name(), 0..8).prop_map(|files| Reply::ListContent(ListContentReply::Ok(files))),
        code(4, ListContentReply::from_code).prop_map(Reply::ListContent),
        peer_addr().prop_map(|addr| Reply::GetUserInfo(GetUserInfoReply::Ok(addr))),
        code(4, GetUserInfoReply::from_code).prop_map(Reply::GetUserInfo),
        vec(search_entry(), 0..8).prop_map(|hits| Reply::Search(SearchReply::Ok(hits))),
        code(4, SearchReply::from_code).prop_map(Reply::Search),
        code(3, PingResult::from_code).prop_map(Reply::Ping),
    ]
}
