//! SEARCH, PING and expiry (PROTOCOL.md §6.2, §6.3) as every store answers
//! them: one table of cases, run against the memory store, SQLite and
//! PostgreSQL (skipped with a note when PostgreSQL is not installed).

#[path = "support/postgres.rs"]
mod postgres;
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use p2p_core::directory::{
    MemoryStore, PingAnswer, PostgresOptions, PostgresStore, SearchAnswer, SqliteOptions,
    SqliteStore, Store,
};
use p2p_proto::directory::{ConnectResult, DeleteResult, PeerAddr, PublishResult, SearchTerm};
use postgres::PgCluster;
use support::{desc, file, user};

fn at(port: u16) -> PeerAddr {
    PeerAddr {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
    }
}

async fn publish(store: &dyn Store, owner: &str, name: &str, description: &str) {
    assert_eq!(
        store
            .publish(&user(owner), &file(name), &desc(description))
            .await
            .unwrap(),
        PublishResult::Ok,
        "{owner} publishes {name}"
    );
}

/// `(owner, file)` of every hit of `query` asked by `who`.
async fn search(
    store: &dyn Store,
    who: &str,
    query: &[&str],
    limit: usize,
) -> Vec<(String, String)> {
    let terms: Vec<SearchTerm> = query.iter().map(|t| SearchTerm::new(t).unwrap()).collect();
    match store.search(&user(who), &terms, limit).await.unwrap() {
        SearchAnswer::Ok(hits) => hits
            .into_iter()
            .map(|h| (h.owner.to_string(), h.file.to_string()))
            .collect(),
        other => panic!("{who} searching {query:?}: {other:?}"),
    }
}

/// A query and the `(owner, file)` pairs it finds, most recent first.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(o, f)| ((*o).to_owned(), (*f).to_owned()))
        .collect()
}

async fn semantics(store: &dyn Store) {
    for (i, name) in ["ann", "bob", "cy", "dee"].into_iter().enumerate() {
        store.register(&user(name)).await.unwrap();
        assert_eq!(
            store
                .connect(&user(name), at(1000 + i as u16))
                .await
                .unwrap(),
            ConnectResult::Ok
        );
    }
    // In publication order.
    publish(store, "bob", "The_Beatles-Help.mp3", "1965 single").await;
    publish(store, "cy", "école.txt", "Notes de COURS").await;
    publish(store, "bob", "straße.pdf", "Karte").await;
    publish(store, "cy", "beats.wav", "drum loop 120bpm").await;
    publish(store, "ann", "beatles.flac", "my own copy").await;
    publish(store, "dee", "help.txt", "beatles lyrics").await;

    let cases: &[Case] = &[
        // A prefix of a word matches; an infix does not.
        (
            &["beat"],
            &[
                ("dee", "help.txt"),
                ("cy", "beats.wav"),
                ("bob", "The_Beatles-Help.mp3"),
            ],
        ),
        (&["tles"], &[]),
        // Case: terms and words compare lowercased.
        (
            &["BEATLES"],
            &[("dee", "help.txt"), ("bob", "The_Beatles-Help.mp3")],
        ),
        // Non-ASCII letters are letters; Unicode lowercase.
        (&["ÉCO"], &[("cy", "école.txt")]),
        (&["straß"], &[("bob", "straße.pdf")]),
        (&["cours"], &[("cy", "école.txt")]),
        // Digits are word characters: "120bpm" is one word.
        (&["120"], &[("cy", "beats.wav")]),
        (&["bpm"], &[]),
        (&["196"], &[("bob", "The_Beatles-Help.mp3")]),
        // Several terms: each must match, in the name or the description.
        (
            &["beatles", "help"],
            &[("dee", "help.txt"), ("bob", "The_Beatles-Help.mp3")],
        ),
        (&["beatles", "lyr"], &[("dee", "help.txt")]),
        (&["beatles", "nothing"], &[]),
        // The extension is a word of the name.
        (&["mp3"], &[("bob", "The_Beatles-Help.mp3")]),
    ];
    for (query, expected) in cases {
        assert_eq!(
            search(store, "ann", query, 100).await,
            pairs(expected),
            "ann searches {query:?} (her own beatles.flac never shows)"
        );
    }
    // The requester's own files are excluded; others see them.
    assert_eq!(
        search(store, "bob", &["copy"], 100).await,
        pairs(&[("ann", "beatles.flac")])
    );
    assert_eq!(search(store, "ann", &["copy"], 100).await, pairs(&[]));
    // The limit keeps the most recent.
    assert_eq!(
        search(store, "ann", &["beat"], 2).await,
        pairs(&[("dee", "help.txt"), ("cy", "beats.wav")])
    );
    // A disconnected owner's files disappear, and come back after CONNECT.
    store.disconnect(&user("cy")).await.unwrap();
    assert_eq!(
        search(store, "ann", &["beat"], 100).await,
        pairs(&[("dee", "help.txt"), ("bob", "The_Beatles-Help.mp3")])
    );
    store.connect(&user("cy"), at(2000)).await.unwrap();
    assert_eq!(
        search(store, "ann", &["beat"], 100).await,
        pairs(&[
            ("dee", "help.txt"),
            ("cy", "beats.wav"),
            ("bob", "The_Beatles-Help.mp3")
        ])
    );
    // DELETE and UNREGISTER remove results.
    assert_eq!(
        store.delete(&user("cy"), &file("beats.wav")).await.unwrap(),
        DeleteResult::Ok
    );
    store.unregister(&user("dee")).await.unwrap();
    assert_eq!(
        search(store, "ann", &["beat"], 100).await,
        pairs(&[("bob", "The_Beatles-Help.mp3")])
    );
    // A new publication comes first.
    publish(store, "cy", "beat-it.mp3", "").await;
    assert_eq!(
        search(store, "ann", &["beat"], 100).await,
        pairs(&[("cy", "beat-it.mp3"), ("bob", "The_Beatles-Help.mp3")])
    );
    // The requester must exist and be connected.
    let terms = vec![SearchTerm::new("beat").unwrap()];
    assert_eq!(
        store.search(&user("zed"), &terms, 10).await.unwrap(),
        SearchAnswer::UserDoesNotExist
    );
    store.disconnect(&user("ann")).await.unwrap();
    assert_eq!(
        store.search(&user("ann"), &terms, 10).await.unwrap(),
        SearchAnswer::NotConnected
    );
}

async fn liveness(store: &dyn Store) {
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    for name in ["pinger", "classic"] {
        store.register(&user(name)).await.unwrap();
        store.connect(&user(name), at(3000)).await.unwrap();
    }
    assert_eq!(
        store.ping(&user("nobody"), local).await.unwrap(),
        PingAnswer::UserDoesNotExist
    );
    assert_eq!(
        store.ping(&user("pinger"), other).await.unwrap(),
        PingAnswer::WrongAddress
    );
    assert_eq!(
        store.ping(&user("pinger"), local).await.unwrap(),
        PingAnswer::Ok
    );
    publish(store, "pinger", "kept.txt", "").await;
    // Not silent long enough: nobody expires.
    assert!(
        store
            .expire(Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Silent for a second: the pinger expires once; the classic peer, which
    // never pinged, never does.
    let expired = store.expire(Duration::from_secs(1)).await.unwrap();
    assert_eq!(expired, vec![user("pinger")]);
    assert!(
        store
            .expire(Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.ping(&user("pinger"), local).await.unwrap(),
        PingAnswer::NotConnected
    );
    // Expiry is a DISCONNECT: publications stay, and the user connects again.
    assert_eq!(
        store.connect(&user("pinger"), at(3001)).await.unwrap(),
        ConnectResult::Ok
    );
    assert_eq!(
        search(store, "classic", &["kept"], 10).await,
        pairs(&[("pinger", "kept.txt")])
    );
    // A fresh connection has not pinged: it does not expire.
    assert!(store.expire(Duration::ZERO).await.unwrap().is_empty());
}

#[tokio::test]
async fn memory_store_search_and_liveness() {
    semantics(&MemoryStore::new()).await;
    liveness(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_search_and_liveness() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("a.db"), SqliteOptions::default()).unwrap();
    semantics(&store).await;
    drop(store);
    // The index is rebuilt from the file at start.
    let store = SqliteStore::open(&dir.path().join("a.db"), SqliteOptions::default()).unwrap();
    assert_eq!(
        search(&store, "bob", &["beat"], 10).await,
        pairs(&[("cy", "beat-it.mp3")])
    );
    let store = SqliteStore::open(&dir.path().join("b.db"), SqliteOptions::default()).unwrap();
    liveness(&store).await;
}

#[tokio::test]
async fn postgres_store_search_and_liveness() {
    let Some(cluster) = PgCluster::start("postgres_store_search_and_liveness") else {
        return;
    };
    let store = PostgresStore::connect(&cluster.url(), PostgresOptions::default())
        .await
        .unwrap();
    semantics(&store).await;
    liveness(&store).await;
}
