//! A state-changing operation whose reply is lost on the way back (the test
//! proxy drops only the reply direction of that one connection): the peer
//! asks the directory what happened and ends in the directory's state. A
//! CONNECT that took effect keeps its transfer listener (other peers can
//! download from the recorded address); a PUBLISH that took effect is served;
//! a DELETE that took effect is no longer served; a DISCONNECT that took
//! effect closes the listener.

mod support;

use std::time::Duration;

use p2p_core::console::Command;
use p2p_core::directory::Store;
use p2p_core::peer::shell::Output;
use p2p_core::peer::{DownloadOptions, PeerConfig, Session, download};
use p2p_proto::directory::{GetUserInfoReply, ListContentReply};
use support::proxy::Proxy;
use support::{Directory, WAIT, file, user};

/// The directory operation timeout of the session under test: a lost reply
/// costs this long before the peer asks what happened.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// The command's OK line.
fn ok(command: Command) -> Vec<Output> {
    vec![Output::Result(command.ok().to_owned())]
}

/// A command's lines apart from its diagnostics, and the diagnostics.
fn split(out: Vec<Output>) -> (Vec<Output>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut lines = Vec::new();
    for line in out {
        match line {
            Output::Warning(text) => warnings.push(text),
            other => lines.push(other),
        }
    }
    (lines, warnings)
}

/// The diagnostic a lost reply that took effect gives.
fn took_effect(op: &str) -> String {
    format!("{op}: the reply was lost, but the directory shows that {op} took effect")
}

/// A directory, a proxy in front of it, and a shell session that reaches the
/// directory through the proxy. No datetime service: the session falls back to
/// the local time at once.
async fn through_a_proxy() -> (Directory<p2p_core::directory::MemoryStore>, Proxy, Session) {
    let dir = Directory::start(support::config_with_read_timeout(WAIT));
    let store: &dyn Store = dir.store.as_ref();
    support::install_probe(store).await;
    let proxy = Proxy::start(dir.addr).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = PeerConfig::new("127.0.0.1", proxy.addr.port());
    config.datetime_url = format!("http://{closed}/");
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.state_dir = None;
    config.operation_timeout = OPERATION_TIMEOUT;
    let session = Session::new(&config);
    (dir, proxy, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connect_and_publish_replies_settle_to_the_directorys_state() {
    let (dir, proxy, mut session) = through_a_proxy().await;
    let store: &dyn Store = dir.store.as_ref();

    let (out, _) = session.execute("REGISTER alice").await;
    let (out, warnings) = split(out);
    assert_eq!(out, ok(Command::Register));
    // The first request falls back to the local clock, and says so.
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("warning: datetime service at ")
            && warnings[0].ends_with("; using the local clock"),
        "{warnings:?}"
    );

    // CONNECT's reply is lost: the directory has alice connected.
    proxy.drop_replies_of_next(1);
    let (out, _) = session.execute("CONNECT alice").await;
    let (out, warnings) = split(out);
    assert_eq!(out, ok(Command::Connect), "the peer follows the directory");
    assert_eq!(
        warnings.last(),
        Some(&took_effect("CONNECT")),
        "{warnings:?}"
    );
    assert_eq!(session.connected_user(), Some(&user("alice")));
    let GetUserInfoReply::Ok(recorded) = store
        .get_user_info(&user(support::PROBE), &user("alice"))
        .await
        .unwrap()
    else {
        panic!("the directory does not have alice connected");
    };

    // REGISTER, CONNECT, LIST_USERS (the settling question), CAPABILITIES,
    // and the first PING that follows a CONNECT at once: all made before the
    // next reply is dropped.
    let deadline = std::time::Instant::now() + WAIT;
    while proxy.accepted() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "no PING after CONNECT"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // PUBLISH's reply is lost too: the directory lists the file, and the
    // peer serves it from the recorded address.
    let files = tempfile::tempdir().unwrap();
    let path = files.path().canonicalize().unwrap().join("song.txt");
    std::fs::write(&path, b"la la la").unwrap();
    let name = path.to_str().unwrap().to_owned();
    let before = proxy.accepted();
    proxy.drop_replies_of_next(1);
    let (out, _) = session.execute(&format!("PUBLISH {name} a song")).await;
    assert_eq!(
        proxy.accepted(),
        before + 2,
        "PUBLISH and the question that settled it"
    );
    let (out, warnings) = split(out);
    assert_eq!(out, ok(Command::Publish));
    assert_eq!(
        warnings.last(),
        Some(&took_effect("PUBLISH")),
        "{warnings:?}"
    );
    match store
        .list_content(&user(support::PROBE), &user("alice"))
        .await
        .unwrap()
    {
        ListContentReply::Ok(listed) => assert_eq!(listed, vec![file(&name)]),
        other => panic!("unexpected {other:?}"),
    }
    let dest = files.path().join("copy.txt");
    let mut options = DownloadOptions::default();
    options.progress = None;
    let addr = std::net::SocketAddr::new(recorded.ip, recorded.port);
    tokio::time::timeout(WAIT, download(addr, &file(&name), &dest, &options))
        .await
        .unwrap()
        .expect("the listener kept after the lost CONNECT reply serves the published file");
    assert_eq!(std::fs::read(&dest).unwrap(), b"la la la");

    // DELETE's reply lost: the directory no longer lists the file, and the
    // peer no longer serves it.
    let before = proxy.accepted();
    proxy.drop_replies_of_next(1);
    let (out, _) = session.execute(&format!("DELETE {name}")).await;
    assert_eq!(
        proxy.accepted(),
        before + 2,
        "DELETE and the question that settled it"
    );
    let (out, warnings) = split(out);
    assert_eq!(out, ok(Command::Delete));
    assert_eq!(
        warnings.last(),
        Some(&took_effect("DELETE")),
        "{warnings:?}"
    );
    assert_eq!(
        store
            .list_content(&user(support::PROBE), &user("alice"))
            .await
            .unwrap(),
        ListContentReply::Ok(vec![])
    );
    let again = files.path().join("again.txt");
    assert!(
        download(addr, &file(&name), &again, &options)
            .await
            .is_err(),
        "a deleted file is still served"
    );

    // DISCONNECT's reply lost: the directory has alice disconnected, and the
    // peer stops acting as her (its listener closes).
    let before = proxy.accepted();
    proxy.drop_replies_of_next(1);
    let (out, _) = session.execute("DISCONNECT alice").await;
    let (out, warnings) = split(out);
    assert_eq!(out, ok(Command::Disconnect));
    assert_eq!(
        warnings.last(),
        Some(&took_effect("DISCONNECT")),
        "{warnings:?}"
    );
    assert_eq!(session.connected_user(), None);
    assert_eq!(
        proxy.accepted(),
        before + 2,
        "DISCONNECT and the question that settled it"
    );
    assert!(!matches!(
        store
            .get_user_info(&user(support::PROBE), &user("alice"))
            .await
            .unwrap(),
        GetUserInfoReply::Ok(_)
    ));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener outlived the DISCONNECT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_to_a_connect_that_did_not_take_effect_stays_a_failure() {
    let (dir, proxy, mut session) = through_a_proxy().await;
    let store: &dyn Store = dir.store.as_ref();
    // bob is not registered: the CONNECT fails on the server, and its reply
    // is lost; the directory shows bob not connected.
    proxy.drop_replies_of_next(1);
    let (out, _) = session.execute("CONNECT bob").await;
    let (out, warnings) = split(out);
    assert_eq!(
        out,
        vec![Output::Result(Command::Connect.fail().to_owned())]
    );
    assert_eq!(
        warnings.last().map(String::as_str),
        Some("CONNECT: the reply was lost; the directory shows that CONNECT did not take effect"),
        "{warnings:?}"
    );
    assert_eq!(session.connected_user(), None);
    let bob = store
        .get_user_info(&user(support::PROBE), &user("bob"))
        .await
        .unwrap();
    assert!(!matches!(bob, GetUserInfoReply::Ok(_)), "{bob:?}");
}
