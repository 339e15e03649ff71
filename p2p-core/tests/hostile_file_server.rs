//! Hostile requesters against a peer's file server, and a hostile serving
//! peer against `download` (PROTOCOL.md §2: "a peer serves only names that
//! its user currently publishes; a request for any other name gets 1", and "a
//! destination is never left half-written").

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use p2p_core::peer::{
    DownloadError, DownloadOptions, FileServer, FileServerConfig, Library, TransferProtocol,
    download,
};
use support::{exchange, file};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MIB: u64 = 1024 * 1024;

/// How long a requester waits for an answer or a close.
const PATIENCE: Duration = Duration::from_secs(15);

fn server_config() -> FileServerConfig {
    let mut config = FileServerConfig::default();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config
}

fn get_file(name: &[u8]) -> Vec<u8> {
    [b"GET_FILE\0".as_slice(), name, b"\0"].concat()
}

/// The published tree: `root/pub/a.txt` published as `a.txt`, a secret one
/// level up, a name published then withdrawn, a name whose file was removed
/// from disk, and a name whose path is a directory.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    library: Library,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let public = root.join("pub");
    std::fs::create_dir(&public).unwrap();
    std::fs::write(public.join("a.txt"), b"alpha").unwrap();
    std::fs::write(root.join("secret.txt"), b"secret").unwrap();
    std::fs::write(public.join("gone.txt"), b"gone").unwrap();
    std::fs::write(public.join("vanished.txt"), b"vanished").unwrap();
    std::fs::create_dir(public.join("adir")).unwrap();
    let library = Library::new();
    library.insert(file("a.txt"), public.join("a.txt"));
    library.insert(file("gone.txt"), public.join("gone.txt"));
    assert!(library.remove("gone.txt").is_some());
    library.insert(file("vanished.txt"), public.join("vanished.txt"));
    std::fs::remove_file(public.join("vanished.txt")).unwrap();
    library.insert(file("adir"), public.join("adir"));
    Tree {
        _dir: dir,
        root,
        library,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_published_names_are_served() {
    let tree = tree();
    let server = FileServer::start(server_config(), tree.library.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    let public = tree.root.join("pub");
    let not_served: Vec<Vec<u8>> = vec![
        b"nothere.txt".to_vec(),
        b"../secret.txt".to_vec(),
        b"pub/../secret.txt".to_vec(),
        b"../../../../../../../../etc/passwd".to_vec(),
        b"/etc/passwd".to_vec(),
        b"/etc/shadow".to_vec(),
        b"/proc/self/environ".to_vec(),
        public
            .join("a.txt")
            .to_string_lossy()
            .into_owned()
            .into_bytes(),
        tree.root
            .join("secret.txt")
            .to_string_lossy()
            .into_owned()
            .into_bytes(),
        b"./a.txt".to_vec(),
        b"a.txt/".to_vec(),
        b"a.txt/.".to_vec(),
        b"A.TXT".to_vec(),
        b" a.txt".to_vec(),
        b"%2e%2e/secret.txt".to_vec(),
        b"..\\secret.txt".to_vec(),
        b"gone.txt".to_vec(),
        b"vanished.txt".to_vec(),
        b"adir".to_vec(),
        b".".to_vec(),
        b"..".to_vec(),
        b"/".to_vec(),
        "ä.txt".as_bytes().to_vec(),
    ];
    for name in &not_served {
        let got = exchange(addr, &get_file(name), false, PATIENCE).await;
        assert_eq!(
            got.reply,
            b"\x01",
            "GET_FILE {:?}: exactly the byte 1, then the connection closes",
            String::from_utf8_lossy(name)
        );
    }
    // Malformed requests: no file byte ever, at most an error result.
    let malformed: Vec<Vec<u8>> = vec![
        b"GET_FILE\0\0".to_vec(),
        b"GET_FILE\0\xff\xfe\0".to_vec(),
        b"get_file\0a.txt\0".to_vec(),
        b"PUT_FILE\0a.txt\0".to_vec(),
        b"\0a.txt\0".to_vec(),
        [b"GET_FILE\0".as_slice(), &vec![b'a'; 10 * MIB as usize]].concat(),
        vec![b'G'; MIB as usize],
    ];
    for bytes in &malformed {
        let got = exchange(addr, bytes, false, PATIENCE).await;
        assert!(
            got.reply.is_empty() || got.reply == b"\x01" || got.reply == b"\x02",
            "malformed request {:?} got {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(40)]),
            got.reply
        );
    }
    // The published name is still served, and only its content.
    let got = exchange(addr, &get_file(b"a.txt"), false, PATIENCE).await;
    assert_eq!(got.reply, b"\x005\x00alpha");
    // GET_FILE_FROM follows the same name rules.
    for name in &not_served {
        let request = [b"GET_FILE_FROM\0".as_slice(), name, b"\x000\0"].concat();
        let got = exchange(addr, &request, false, PATIENCE).await;
        assert_eq!(
            got.reply,
            b"\x01",
            "GET_FILE_FROM {:?}",
            String::from_utf8_lossy(name)
        );
    }
    server.stop().await;
}

fn get_file_from(name: &str, offset: u64) -> Vec<u8> {
    format!("GET_FILE_FROM\0{name}\0{offset}\0").into_bytes()
}

/// GET_FILE_FROM: SIZE and DIGEST of the whole file, the bytes from OFFSET;
/// 3 past the end; a file changed since it was hashed is hashed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_file_from_serves_digest_and_the_rest() {
    let tree = tree();
    let server = FileServer::start(server_config(), tree.library.clone())
        .await
        .unwrap();
    let addr = server.local_addr();
    let alpha = format!("blake3:{}", blake3::hash(b"alpha").to_hex());
    for (offset, body) in [(0, "alpha"), (2, "pha"), (5, "")] {
        let got = exchange(addr, &get_file_from("a.txt", offset), false, PATIENCE).await;
        assert_eq!(
            String::from_utf8_lossy(&got.reply),
            format!("\0{}\0{alpha}\0{body}", 5),
            "offset {offset}"
        );
    }
    let got = exchange(addr, &get_file_from("a.txt", 6), false, PATIENCE).await;
    assert_eq!(got.reply, b"\x03");
    // Same size, another content and mtime: hashed again before serving.
    let path = tree.root.join("pub/a.txt");
    std::fs::write(&path, b"ALPHA").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(86_400))
        .unwrap();
    let got = exchange(addr, &get_file_from("a.txt", 1), false, PATIENCE).await;
    let upper = format!("blake3:{}", blake3::hash(b"ALPHA").to_hex());
    assert_eq!(
        String::from_utf8_lossy(&got.reply),
        format!("\x005\0{upper}\0LPHA")
    );
    // Malformed offsets get no answer at all.
    for bad in [
        &b"GET_FILE_FROM\0a.txt\0-1\0"[..],
        b"GET_FILE_FROM\0a.txt\0\0",
    ] {
        let got = exchange(addr, bad, false, PATIENCE).await;
        assert!(got.reply.is_empty(), "{got:?}");
    }
    server.stop().await;
}

/// A sparse file of `size` bytes (zeros) in `dir`.
fn big_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
    path
}

fn download_options() -> DownloadOptions {
    let mut options = DownloadOptions::default();
    options.progress = None;
    options.stall_timeout = Duration::from_secs(20);
    options
}

/// Asserts that `path` holds `size` zero bytes.
fn assert_zeros(path: &Path, size: u64) {
    let data = std::fs::read(path).unwrap();
    assert_eq!(data.len() as u64, size);
    assert!(
        data.iter().all(|&b| b == 0),
        "content of {}",
        path.display()
    );
}

/// Connects, asks for `name`, and reads nothing.
async fn stalled_requester(addr: SocketAddr, name: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&get_file(name.as_bytes())).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_requester_does_not_block_another_download() {
    const SIZE: u64 = 64 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let library = Library::new();
    library.insert(file("big.bin"), big_file(dir.path(), "big.bin", SIZE));
    let mut config = server_config();
    // Far longer than the download: the stalled requester is still held.
    config.write_timeout = Duration::from_secs(120);
    let server = FileServer::start(config, library).await.unwrap();
    let mut stalled = stalled_requester(server.local_addr(), "big.bin").await;

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("copy.bin");
    let size = tokio::time::timeout(
        Duration::from_secs(60),
        download(
            server.local_addr(),
            &file("big.bin"),
            &dest,
            &download_options(),
        ),
    )
    .await
    .expect("the download runs while another requester stalls")
    .unwrap();
    assert_eq!(size, SIZE);
    assert_zeros(&dest, SIZE);

    // The stalled requester is still being served: its header is there.
    let mut head = [0u8; 10];
    stalled.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"\x0067108864\x00");
    drop(stalled);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_requester_is_dropped_at_the_write_timeout() {
    const SIZE: u64 = 64 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let library = Library::new();
    library.insert(file("big.bin"), big_file(dir.path(), "big.bin", SIZE));
    let mut config = server_config();
    // One transfer at a time: the next download can only start once the
    // stalled requester has been dropped.
    config.max_connections = 1;
    config.write_timeout = Duration::from_secs(2);
    let server = FileServer::start(config, library).await.unwrap();
    let mut stalled = stalled_requester(server.local_addr(), "big.bin").await;

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("copy.bin");
    let size = tokio::time::timeout(
        Duration::from_secs(60),
        download(
            server.local_addr(),
            &file("big.bin"),
            &dest,
            &download_options(),
        ),
    )
    .await
    .expect("the stalled requester is dropped and the next download runs")
    .unwrap();
    assert_eq!(size, SIZE);
    assert_zeros(&dest, SIZE);

    let mut received = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stalled.read_to_end(&mut received)).await;
    assert!(
        (received.len() as u64) < SIZE,
        "the stalled requester was cut off, not served to the end"
    );
    server.stop().await;
}

/// A fake serving peer that answers one request with `answer` and then
/// either closes or, with `stall`, keeps the connection open without sending.
async fn fake_peer(answer: Vec<u8>, stall: bool) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 64];
        let _ = stream.read(&mut request).await;
        let _ = stream.write_all(&answer).await;
        if stall {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
    (addr, task)
}

/// The names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_serving_peer_leaves_no_file() {
    let body = vec![7u8; 1000];
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "closes mid-transfer",
            [b"\x001048576\x00".as_slice(), &body].concat(),
            false,
        ),
        ("closes after the header", b"\x0010\x00".to_vec(), false),
        ("closes before the header ends", b"\x0010".to_vec(), false),
        ("closes at once", vec![], false),
        ("bad result byte", b"\x07".to_vec(), false),
        ("size not a number", b"\x001x\x00abc".to_vec(), false),
        (
            "size too long",
            [b"\x00".as_slice(), &[b'9'; 64]].concat(),
            false,
        ),
        ("refuses", b"\x02".to_vec(), false),
        (
            "stalls mid-transfer",
            [b"\x001048576\x00".as_slice(), &body].concat(),
            true,
        ),
        // A classic peer that streams its file without a header: the file
        // starts with what looks like a header, and the rest follows SIZE.
        ("streams a file", b"\x005\x00hello world".to_vec(), false),
        ("bytes after SIZE", b"\x005\x00hello!".to_vec(), false),
    ];
    for (what, answer, stall) in cases {
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("keep.txt"), b"keep").unwrap();
        let dest = out.path().join("dest.bin");
        let (addr, peer) = fake_peer(answer, stall).await;
        let mut options = download_options();
        options.stall_timeout = Duration::from_secs(1);
        // These are GET_FILE answers; one connection per fake peer.
        options.protocol = TransferProtocol::Classic;
        options.max_attempts = 1;
        let result =
            tokio::time::timeout(PATIENCE, download(addr, &file("x.bin"), &dest, &options))
                .await
                .unwrap_or_else(|_| panic!("{what}: the download ends"));
        assert!(result.is_err(), "{what}: {result:?}");
        let expected = match what {
            "stalls mid-transfer" => matches!(result, Err(DownloadError::Timeout(_))),
            "closes mid-transfer" => matches!(
                result,
                Err(DownloadError::Short {
                    expected: 1_048_576,
                    received: 1000
                })
            ),
            "closes after the header" => matches!(
                result,
                Err(DownloadError::Short {
                    expected: 10,
                    received: 0
                })
            ),
            "closes before the header ends" => {
                matches!(result, Err(DownloadError::HeaderIncomplete { received: 3 }))
            }
            "closes at once" => {
                matches!(result, Err(DownloadError::HeaderIncomplete { received: 0 }))
            }
            "streams a file" | "bytes after SIZE" => {
                matches!(result, Err(DownloadError::TrailingBytes { size: 5 }))
            }
            _ => true,
        };
        assert!(expected, "{what}: {result:?}");
        assert_eq!(
            names(out.path()),
            ["keep.txt"],
            "{what}: no destination and no temporary file"
        );
        peer.abort();
    }
}

/// A serving peer that answers GET_FILE_FROM with `answer` and closes, for as
/// many connections as `answers` holds; returns the requests it read.
async fn fake_from_peer(
    answers: Vec<Vec<u8>>,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut requests = Vec::new();
        for answer in answers {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 512];
            let n = stream.read(&mut request).await.unwrap_or(0);
            requests.push(request[..n].to_vec());
            let _ = stream.write_all(&answer).await;
        }
        requests
    });
    (addr, task)
}

fn from_header(size: u64, content: &[u8]) -> Vec<u8> {
    format!(
        "\x00{size}\x00blake3:{}\x00",
        blake3::hash(content).to_hex()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_get_file_from_peer() {
    let content = b"0123456789";
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "other bytes than the digest says",
            [from_header(10, content), b"0123456780".to_vec()].concat(),
            &["keep.txt"],
        ),
        (
            "bytes after SIZE",
            [from_header(10, content), b"0123456789!".to_vec()].concat(),
            &["keep.txt"],
        ),
        (
            "digest in capitals",
            format!("\x0010\x00blake3:{}\x000123456789", "AB".repeat(32)).into_bytes(),
            &["keep.txt"],
        ),
        (
            "closes mid-body",
            [from_header(10, content), b"01234".to_vec()].concat(),
            &[".dest.bin.part", ".dest.bin.part.meta", "keep.txt"],
        ),
        (
            "offset beyond the file at 0",
            b"\x03".to_vec(),
            &["keep.txt"],
        ),
    ];
    for (what, answer, kept) in cases {
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("keep.txt"), b"keep").unwrap();
        let dest = out.path().join("dest.bin");
        let (addr, peer) = fake_from_peer(vec![answer]).await;
        let mut options = download_options();
        options.stall_timeout = Duration::from_secs(1);
        options.max_attempts = 1;
        let result =
            tokio::time::timeout(PATIENCE, download(addr, &file("x.bin"), &dest, &options))
                .await
                .unwrap_or_else(|_| panic!("{what}: the download ends"));
        let expected = match what {
            "other bytes than the digest says" => {
                matches!(result, Err(DownloadError::Integrity { .. }))
            }
            "bytes after SIZE" => matches!(result, Err(DownloadError::TrailingBytes { size: 10 })),
            "digest in capitals" => matches!(result, Err(DownloadError::Header(_))),
            "closes mid-body" => matches!(
                result,
                Err(DownloadError::Short {
                    expected: 10,
                    received: 5
                })
            ),
            _ => matches!(result, Err(DownloadError::Refused)),
        };
        assert!(expected, "{what}: {result:?}");
        let mut got = names(out.path());
        got.sort();
        assert_eq!(got, kept, "{what}");
        let requests = peer.await.unwrap();
        assert_eq!(
            requests,
            [b"GET_FILE_FROM\0x.bin\0\x30\0".to_vec()],
            "{what}"
        );
    }
}

/// A part file resumes at its length; a retry within one download resumes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_file_from_resumes_and_retries() {
    let content = b"0123456789";
    // First connection: five bytes then a close; the retry asks for the rest.
    let (addr, peer) = fake_from_peer(vec![
        [from_header(10, content), b"01234".to_vec()].concat(),
        [from_header(10, content), b"56789".to_vec()].concat(),
    ])
    .await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("dest.bin");
    let mut options = download_options();
    options.retry_backoff = Duration::from_millis(1);
    let size = download(addr, &file("x.bin"), &dest, &options)
        .await
        .unwrap();
    assert_eq!(size, 10);
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(names(out.path()), ["dest.bin"]);
    let requests = peer.await.unwrap();
    assert_eq!(
        requests,
        [
            b"GET_FILE_FROM\0x.bin\0\x30\0".to_vec(),
            b"GET_FILE_FROM\0x.bin\x005\0".to_vec()
        ]
    );
}
