//! Hostile requesters against a peer's file server, and a hostile serving
//! peer against `download` (PROTOCOL.md §2: "a peer serves only names that
//! its user currently publishes; a request for any other name gets 1", and "a
//! destination is never left half-written").

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use p2p_core::peer::{
    DownloadError, DownloadOptions, FileServer, FileServerConfig, Library, download,
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
    options.progress = false;
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
    ];
    for (what, answer, stall) in cases {
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("keep.txt"), b"keep").unwrap();
        let dest = out.path().join("dest.bin");
        let (addr, peer) = fake_peer(answer, stall).await;
        let mut options = download_options();
        options.stall_timeout = Duration::from_secs(1);
        let result =
            tokio::time::timeout(PATIENCE, download(addr, &file("x.bin"), &dest, &options))
                .await
                .unwrap_or_else(|_| panic!("{what}: the download ends"));
        assert!(result.is_err(), "{what}: {result:?}");
        if stall {
            assert!(
                matches!(result, Err(DownloadError::Timeout(_))),
                "{what}: {result:?}"
            );
        }
        assert_eq!(
            names(out.path()),
            ["keep.txt"],
            "{what}: no destination and no temporary file"
        );
        peer.abort();
    }
}
