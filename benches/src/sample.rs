//! Representative protocol messages: what a busy directory and log service see.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU16;

use p2p_proto::directory::{
    CapabilitiesReply, ListContentReply, ListUsersReply, OpCode, PeerAddr, Reply, Request,
    RequestBody, SearchEntry, SearchQuery, SearchReply, UserEntry,
};
use p2p_proto::field::{Description, FileName, UserName};
use p2p_proto::rpc::log::LogEntry;
use p2p_proto::timestamp::Timestamp;

/// The `DATETIME` every sample request carries.
pub const TIMESTAMP: &str = "24/11/2026 20:42:35";

/// A valid user name; panics on a name the protocol refuses (samples are constants).
#[must_use]
pub fn user(name: &str) -> UserName {
    UserName::new(name).expect("valid sample user name")
}

/// A valid file name; panics on a name the protocol refuses.
#[must_use]
pub fn file(name: &str) -> FileName {
    FileName::new(name).expect("valid sample file name")
}

/// A SEARCH query of the sample data (panics on an invalid one).
#[must_use]
pub fn query(text: &str) -> p2p_proto::directory::SearchQuery {
    text.parse().expect("a query of the sample data")
}

/// A request with the sample `DATETIME`.
#[must_use]
pub fn request(user_name: &str, body: RequestBody) -> Request {
    Request {
        timestamp: Some(
            TIMESTAMP
                .parse::<Timestamp>()
                .expect("valid sample timestamp"),
        ),
        user: user(user_name),
        body,
    }
}

/// One request per operation, named by its lower-case op (`"register"`, `"list_users"`...).
#[must_use]
pub fn requests() -> Vec<(&'static str, Request)> {
    let f = file("/home/alice/music/track-0001.ogg");
    let d = Description::new("a recording of the Thursday concert, 128 kbit/s")
        .expect("valid sample description");
    let port = NonZeroU16::new(40_123).expect("non-zero");
    vec![
        ("register", request("alice_0001", RequestBody::Register)),
        ("unregister", request("alice_0001", RequestBody::Unregister)),
        (
            "connect",
            request("alice_0001", RequestBody::Connect { port }),
        ),
        ("disconnect", request("alice_0001", RequestBody::Disconnect)),
        (
            "publish",
            request(
                "alice_0001",
                RequestBody::Publish {
                    file: f.clone(),
                    description: d,
                },
            ),
        ),
        (
            "delete",
            request("alice_0001", RequestBody::Delete { file: f }),
        ),
        ("list_users", request("alice_0001", RequestBody::ListUsers)),
        (
            "list_content",
            request(
                "alice_0001",
                RequestBody::ListContent {
                    target: user("bob_0002"),
                },
            ),
        ),
        (
            "get_user_info",
            request(
                "alice_0001",
                RequestBody::GetUserInfo {
                    target: user("bob_0002"),
                },
            ),
        ),
        (
            "search",
            request(
                "alice_0001",
                RequestBody::Search {
                    query: SearchQuery::new("thursday concert track").expect("valid sample query"),
                },
            ),
        ),
        ("ping", request("alice_0001", RequestBody::Ping)),
    ]
}

/// A successful `SEARCH` reply with `n` results from distinct owners, with descriptions.
#[must_use]
pub fn search_reply(n: usize) -> Reply {
    let hits = (0..n)
        .map(|i| SearchEntry {
            owner: user(&format!("user_{i:06}")),
            file: file(&format!(
                "/home/user_{i:06}/music/thursday-concert-{i:04}.ogg"
            )),
            description: Description::new(format!(
                "a recording of the Thursday concert, track {i}, 128 kbit/s"
            ))
            .expect("valid sample description"),
        })
        .collect();
    Reply::Search(SearchReply::Ok(hits))
}

/// The `CAPABILITIES` reply of p2p-server (`GET_USER_INFO`, `SEARCH`, `PING`).
#[must_use]
pub fn capabilities_reply() -> CapabilitiesReply {
    CapabilitiesReply::from_ops(OpCode::EXTENSIONS)
}

/// A successful `LIST_USERS` reply with `n` users on distinct addresses.
#[must_use]
pub fn list_users_reply(n: usize) -> Reply {
    let users = (0..n)
        .map(|i| UserEntry {
            name: user(&format!("user_{i:06}")),
            addr: PeerAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
                40_000 + (i % 20_000) as u16,
            ),
        })
        .collect();
    Reply::ListUsers(ListUsersReply::Ok(users))
}

/// A successful `LIST_CONTENT` reply with `n` files.
#[must_use]
pub fn list_content_reply(n: usize) -> Reply {
    let files = (0..n)
        .map(|i| file(&format!("/home/alice/music/track-{i:06}.ogg")))
        .collect();
    Reply::ListContent(ListContentReply::Ok(files))
}

/// The log record of a `PUBLISH`, the largest record a directory usually ships.
#[must_use]
pub fn log_entry() -> LogEntry {
    LogEntry::new(
        "alice_0001",
        "PUBLISH",
        TIMESTAMP,
        "/home/alice/music/track-0001.ogg",
    )
    .expect("valid sample log entry")
}
