//! Proptest strategies covering every request operation and every reply variant.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU16;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::{
    ConnectResult, DeleteResult, DisconnectResult, GetUserInfoReply, ListContentReply,
    ListUsersReply, PeerAddr, PublishResult, RegisterResult, Reply, Request, RequestBody,
    UnregisterResult, UserEntry,
};
use crate::field::strategy::{description, file_name, user_name};
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
    ]
}
