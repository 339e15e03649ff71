//! The extension operations on the wire (PROTOCOL.md §6.1–6.3): CAPABILITIES'
//! exact reply, SEARCH's bad queries (result 3, no state change) and PING
//! from another address than the CONNECT's (result 3).

mod support;

use std::time::Duration;

use p2p_proto::directory::RequestBody;
use support::{Directory, WAIT, desc, exchange, file, install_probe, request, snapshot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const NAMES: &[&str] = &["alice", "bob"];

async fn raw(dir: &Directory, bytes: &[u8]) -> Vec<u8> {
    exchange(dir.addr, bytes, true, WAIT).await.reply
}

#[tokio::test]
async fn capabilities_lists_the_extensions() {
    let dir = Directory::start(support::config_with_read_timeout(Duration::from_secs(5)));
    assert_eq!(
        raw(&dir, b"CAPABILITIES\0").await,
        b"\x003\0GET_USER_INFO\0SEARCH\0PING\0"
    );
    // Bytes after the request do not change the answer.
    assert_eq!(
        raw(&dir, b"CAPABILITIES\0junk").await,
        b"\x003\0GET_USER_INFO\0SEARCH\0PING\0"
    );
    dir.stop().await;
}

#[tokio::test]
async fn bad_queries_get_result_3_and_change_nothing() {
    let dir = Directory::start(support::config_with_read_timeout(Duration::from_secs(5)));
    install_probe(&*dir.store).await;
    for name in NAMES {
        dir.call(&request(name, RequestBody::Register, true)).await;
        dir.call(&request(
            name,
            RequestBody::Connect {
                port: 4000.try_into().unwrap(),
            },
            true,
        ))
        .await;
    }
    dir.call(&request(
        "alice",
        RequestBody::Publish {
            file: file("song.mp3"),
            description: desc("a song"),
        },
        true,
    ))
    .await;
    let before = snapshot(&*dir.store, NAMES).await;
    let long_term = "a".repeat(255);
    let nine = "a b c d e f g h i";
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty", b"SEARCH\0bob\0\0".to_vec()),
        ("9 terms", format!("SEARCH\0bob\0{nine}\0").into_bytes()),
        (
            "a 255-byte term",
            format!("SEARCH\0bob\0{long_term}\0").into_bytes(),
        ),
        ("not UTF-8", b"SEARCH\0bob\0caf\xe9\0".to_vec()),
        ("a non-word character", b"SEARCH\0bob\0AC/DC\0".to_vec()),
    ];
    for (what, bytes) in cases {
        assert_eq!(raw(&dir, &bytes).await, [3], "{what}");
    }
    // A good one, to show the requester and data were fine.
    assert_eq!(
        raw(&dir, b"SEARCH\0bob\0SONG\0").await,
        b"\x001\0alice\0song.mp3\0a song\0"
    );
    // A 256-byte query is a malformed request: "other error".
    let long = format!("SEARCH\0bob\0{}\0", "a".repeat(256));
    assert_eq!(raw(&dir, long.as_bytes()).await, [4]);
    assert_eq!(snapshot(&*dir.store, NAMES).await, before);
    dir.stop().await;
}

/// Sends `bytes` from the local address `source` and returns the reply.
async fn from(source: &str, dir: &Directory, bytes: &[u8]) -> Vec<u8> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(dir.addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut reply))
        .await
        .expect("a reply in time")
        .unwrap();
    reply
}

#[tokio::test]
async fn ping_from_another_address_is_refused() {
    let dir = Directory::start(support::config_with_read_timeout(Duration::from_secs(5)));
    assert_eq!(from("127.0.0.1", &dir, b"PING\0carol\0").await, [1]);
    assert_eq!(from("127.0.0.1", &dir, b"REGISTER\0carol\0").await, [0]);
    assert_eq!(from("127.0.0.1", &dir, b"PING\0carol\0").await, [2]);
    assert_eq!(
        from("127.0.0.1", &dir, b"CONNECT\0carol\x004000\0").await,
        [0]
    );
    // Another loopback address is another host as far as the server knows.
    assert_eq!(from("127.0.0.2", &dir, b"PING\0carol\0").await, [3]);
    assert_eq!(
        from("127.0.0.1", &dir, b"PING\x0024/11/2026 20:42:35\0carol\0").await,
        [0]
    );
    dir.stop().await;
}
