//! The portable I/O paths, run on Linux too so that they cannot rot: the
//! paths other platforms take (plain reads and writes) give the same bytes as
//! Linux's fast ones (`sendfile`/`splice` for file bodies, `MSG_MORE` sends
//! for directory replies), and a reply or transfer cut short still ends with
//! a reset (docs/OPERATING.md, "Platforms").
//!
//! The switches: `ServerConfig::portable_io`, `FileServerConfig::zero_copy`,
//! `DownloadOptions::zero_copy`.

mod support;

use std::path::Path;
use std::time::Duration;

use p2p_core::directory::ServerConfig;
use p2p_core::peer::{
    BodyHashing, DownloadOptions, FileServer, FileServerConfig, Library, TransferProtocol, download,
};
use p2p_proto::directory::{ConnectResult, ListContentReply, PublishResult, RegisterResult};
use p2p_proto::directory::{Request, RequestBody};
use support::{Directory, Exchange, Rng, desc, encode, exchange, file, local, request, user};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;

/// The directory server's config, fast or portable.
fn directory_config(portable: bool) -> ServerConfig {
    let mut config = ServerConfig::default();
    config.portable_io = portable;
    config
}

/// A directory where `dave` publishes `files` names of about 200 bytes each,
/// and `bob` is connected to ask for them.
async fn directory_with_listing(config: ServerConfig, files: usize) -> (Directory, Vec<Vec<u8>>) {
    let dir = Directory::start(config);
    let bob = user("bob");
    assert_eq!(dir.store.register(&bob), RegisterResult::Ok);
    assert_eq!(dir.store.connect(&bob, local(4001)), ConnectResult::Ok);
    let dave = user("dave");
    assert_eq!(dir.store.register(&dave), RegisterResult::Ok);
    assert_eq!(dir.store.connect(&dave, local(4002)), ConnectResult::Ok);
    let names: Vec<_> = (0..files)
        .map(|i| file(&format!("{i:06}-{}", "x".repeat(190))))
        .collect();
    for name in &names {
        assert_eq!(dir.store.publish(&dave, name, &desc("")), PublishResult::Ok);
    }
    let listing = support::encode_reply(&ListContentReply::Ok(names).into());
    (dir, vec![listing])
}

fn list_dave() -> Vec<u8> {
    encode(&request(
        "bob",
        RequestBody::ListContent {
            target: user("dave"),
        },
        true,
    ))
}

/// The raw requests of [`same_reply_bytes_through_the_portable_path`], in order.
fn requests() -> Vec<(Vec<u8>, bool)> {
    let register: Request = request("erin", RequestBody::Register, true);
    let connect = request(
        "erin",
        RequestBody::Connect {
            port: 4100.try_into().unwrap(),
        },
        false,
    );
    let mut trailing = list_dave();
    trailing.extend_from_slice(b"\nLIST_USERS\0");
    vec![
        (encode(&register), false),
        // Registered twice: the "already registered" byte.
        (encode(&register), true),
        (encode(&connect), false),
        // A large reply (above `REPLY_LOW_WATER`), with and without the
        // client's end of stream.
        (list_dave(), false),
        (list_dave(), true),
        // Bytes after the request, unread at close: reply and end of stream
        // still arrive whole.
        (trailing, false),
        // A refused OP gets its "other error" byte; an unknown one a close.
        (b"REGISTER\0\xff\xfe\0".to_vec(), true),
        (b"FOO\0alice\0".to_vec(), false),
    ]
}

async fn replies(portable: bool) -> Vec<Exchange> {
    let (dir, listing) = directory_with_listing(directory_config(portable), 2_000).await;
    let mut got = Vec::new();
    for (bytes, close_write) in requests() {
        got.push(exchange(dir.addr, &bytes, close_write, support::WAIT).await);
    }
    assert!(listing[0].len() > 256 * 1024);
    assert!(
        got[3].reply == listing[0],
        "the listing (portable {portable}): {} bytes of {}",
        got[3].reply.len(),
        listing[0].len()
    );
    dir.stop().await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_reply_bytes_through_the_portable_path() {
    let fast = replies(false).await;
    let portable = replies(true).await;
    assert_eq!(fast.len(), portable.len());
    for (i, (f, p)) in fast.iter().zip(&portable).enumerate() {
        assert!(f.reply == p.reply, "reply {i}: fast and portable differ");
        assert_eq!(f.reset, p.reset, "reply {i}: how the connection ended");
        assert!(!p.reset, "reply {i} ends with an orderly end of stream");
    }
    // The requests were answered, not all refused alike.
    assert_eq!(portable[0].reply, b"\x00");
    assert_ne!(portable[1].reply, portable[0].reply);
    assert!(!portable[6].reply.is_empty());
    assert!(portable[7].reply.is_empty());
}

/// A client that asks for a listing of about 8 MB and never reads: the
/// server gives up at its write timeout and the client, once it reads, gets
/// a prefix of the listing and then a reset, never an end of stream.
async fn cut_reply_ends_with_a_reset(portable: bool) {
    let mut config = directory_config(portable);
    config.write_timeout = Duration::from_secs(2);
    let (dir, listing) = directory_with_listing(config, 40_000).await;
    let full = &listing[0];
    assert!(full.len() > 7 * MIB);
    let mut stuck = TcpStream::connect(dir.addr).await.unwrap();
    stuck.write_all(&list_dave()).await.unwrap();
    // Stopping waits for every connection: it returns once the server gave up
    // on this one.
    tokio::time::timeout(Duration::from_secs(60), dir.stop())
        .await
        .expect("the server gives up on the stuck client");
    let mut received = Vec::new();
    let ended = tokio::time::timeout(support::WAIT, stuck.read_to_end(&mut received))
        .await
        .expect("the connection is gone");
    assert!(
        received.len() < full.len(),
        "cut short (portable {portable})"
    );
    assert!(full.starts_with(&received), "a prefix of the listing");
    match ended {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        Ok(n) => panic!("an end of stream after {n} bytes (portable {portable}): must be a reset"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portable_reply_cut_short_ends_with_a_reset() {
    cut_reply_ends_with_a_reset(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_reply_cut_short_ends_with_a_reset() {
    cut_reply_ends_with_a_reset(false).await;
}

fn server_config(zero_copy: bool) -> FileServerConfig {
    let mut config = FileServerConfig::default();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.zero_copy = zero_copy;
    // Small chunks: the portable loops go round many times.
    config.chunk_size = 64 * 1024;
    config
}

fn download_options(
    zero_copy: bool,
    protocol: TransferProtocol,
    hashing: BodyHashing,
) -> DownloadOptions {
    let mut options = DownloadOptions::default();
    options.progress = None;
    options.stall_timeout = Duration::from_secs(20);
    options.zero_copy = zero_copy;
    options.protocol = protocol;
    options.hashing = hashing;
    options.chunk_size = 64 * 1024;
    options
}

/// Random content of an odd size, in `dir`.
fn random_file(dir: &Path) -> Vec<u8> {
    let mut rng = Rng::new(0x13b);
    let data = rng.bytes(5 * MIB + 777);
    std::fs::write(dir.join("body.bin"), &data).unwrap();
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transfer_path_gives_a_byte_identical_file() {
    let shared = tempfile::tempdir().unwrap();
    let data = random_file(shared.path());
    let out = tempfile::tempdir().unwrap();
    let modes = [
        (TransferProtocol::Auto, BodyHashing::FollowSplice),
        (TransferProtocol::Auto, BodyHashing::AsItArrives),
        (TransferProtocol::Auto, BodyHashing::AfterReceiving),
        (TransferProtocol::Classic, BodyHashing::FollowSplice),
    ];
    let mut n = 0;
    for serve_zero_copy in [true, false] {
        let library = Library::new();
        library.insert(file("body.bin"), shared.path().join("body.bin"));
        let server = FileServer::start(server_config(serve_zero_copy), library)
            .await
            .unwrap();
        for receive_zero_copy in [true, false] {
            for (protocol, hashing) in modes {
                n += 1;
                let dest = out.path().join(format!("copy-{n}.bin"));
                let what = format!(
                    "serving zero-copy {serve_zero_copy}, receiving zero-copy \
                     {receive_zero_copy}, {protocol:?}, {hashing:?}"
                );
                let size = tokio::time::timeout(
                    Duration::from_secs(120),
                    download(
                        server.local_addr(),
                        &file("body.bin"),
                        &dest,
                        &download_options(receive_zero_copy, protocol, hashing),
                    ),
                )
                .await
                .unwrap_or_else(|_| panic!("{what}: no end"))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(size, data.len() as u64, "{what}");
                let copy = std::fs::read(&dest).unwrap();
                assert!(copy == data, "{what}: the copy differs");
            }
        }
        server.stop().await;
    }
    assert_eq!(n, 16);
}

/// A requester that never reads: the server drops it at its write timeout
/// with a reset, on the portable path as on `sendfile`'s.
async fn cut_transfer_ends_with_a_reset(zero_copy: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 * MIB as u64)
        .unwrap();
    std::fs::write(dir.path().join("a.txt"), b"alpha").unwrap();
    let library = Library::new();
    library.insert(file("big.bin"), path);
    library.insert(file("a.txt"), dir.path().join("a.txt"));
    let mut config = server_config(zero_copy);
    config.write_timeout = Duration::from_secs(2);
    // One transfer at a time: the next download can only start once the
    // stalled requester has been dropped.
    config.max_connections = 1;
    let server = FileServer::start(config, library).await.unwrap();
    let mut stalled = TcpStream::connect(server.local_addr()).await.unwrap();
    stalled.write_all(b"GET_FILE\0big.bin\0").await.unwrap();
    let dest = dir.path().join("copy.txt");
    let options = download_options(
        zero_copy,
        TransferProtocol::Classic,
        BodyHashing::FollowSplice,
    );
    tokio::time::timeout(
        Duration::from_secs(60),
        download(server.local_addr(), &file("a.txt"), &dest, &options),
    )
    .await
    .expect("the stalled requester is dropped and the next download runs")
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"alpha");
    // What the kernel buffered, then the reset.
    let mut received = Vec::new();
    let ended = tokio::time::timeout(support::WAIT, stalled.read_to_end(&mut received))
        .await
        .expect("the connection is gone");
    assert!(
        received.len() < 64 * MIB,
        "cut short (zero-copy {zero_copy})"
    );
    assert!(received.starts_with(b"\x0067108864\x00"));
    assert!(received[10..].iter().all(|&b| b == 0), "the file's bytes");
    match ended {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        Ok(n) => {
            panic!("an end of stream after {n} bytes (zero-copy {zero_copy}): must be a reset")
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portable_transfer_cut_short_ends_with_a_reset() {
    cut_transfer_ends_with_a_reset(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_transfer_cut_short_ends_with_a_reset() {
    cut_transfer_ends_with_a_reset(true).await;
}
