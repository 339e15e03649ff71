//! End to end with the datetime service (PROTOCOL.md §3): the server prints
//! ` AT DD/MM/YYYY HH:MM:SS` for every operation; when the service stops, the
//! peer keeps working on its own clock and says so once on stderr.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Datetime, LINE_TIMEOUT, Peer, Server, is_datetime, parse_operation_line, temp_dir};

/// Asserts that every server line is `s> OPERATION OP FROM USER AT
/// DD/MM/YYYY HH:MM:SS` and that they are `want` in order.
#[track_caller]
fn assert_lines_with_datetime(lines: &[String], want: &[(&str, &str)]) {
    let mut ops = Vec::new();
    for line in lines {
        let parsed = parse_operation_line(line);
        match &parsed.datetime {
            Some(datetime) => assert!(is_datetime(datetime), "bad DATETIME in {line:?}"),
            None => panic!("no ` AT DD/MM/YYYY HH:MM:SS` in {line:?}"),
        }
        ops.push((parsed.op, parsed.user));
    }
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(op, user)| ((*op).to_owned(), (*user).to_owned()))
        .collect();
    assert_eq!(ops, want, "server lines");
}

fn mentions_datetime(line: &str) -> bool {
    line.to_ascii_lowercase().contains("datetime")
}

#[test]
fn server_prints_datetime_and_peer_survives_the_service_stopping() {
    let mut datetime = Datetime::start();
    let server = Server::start(&[]);
    let dir = temp_dir();
    std::fs::write(dir.path().join("song.mp3"), b"la la la").unwrap();
    let mut dave = Peer::start("dave", server.port, &datetime.url, dir.path());

    dave.expect("REGISTER dave", "c> REGISTER OK");
    dave.expect("CONNECT dave", "c> CONNECT OK");
    dave.expect("PUBLISH song.mp3 my favourite song", "c> PUBLISH OK");
    dave.expect_listing("LIST_USERS", "c> LIST_USERS OK", &[]);
    dave.expect_listing("LIST_CONTENT dave", "c> LIST_CONTENT OK", &["song.mp3"]);
    let mut want = vec![
        ("REGISTER", "dave"),
        ("CONNECT", "dave"),
        ("PUBLISH", "dave"),
        ("LIST_USERS", "dave"),
        ("LIST_CONTENT", "dave"),
    ];

    // The peer asked the service before each operation (the service logs
    // every request on stderr).
    for _ in 0..want.len() {
        datetime.stderr.wait_for(LINE_TIMEOUT, |l| {
            l.contains("/datetime") && !l.contains("listening")
        });
    }

    // Stop the service: the peer falls back to its own clock.
    datetime.proc.kill();
    dave.expect("DELETE song.mp3", "c> DELETE OK");
    dave.expect("DISCONNECT dave", "c> DISCONNECT OK");
    dave.expect("CONNECT dave", "c> CONNECT OK");
    dave.expect("PUBLISH song.mp3 again", "c> PUBLISH OK");
    dave.expect_listing("LIST_USERS", "c> LIST_USERS OK", &[]);
    dave.expect_listing("LIST_CONTENT dave", "c> LIST_CONTENT OK", &["song.mp3"]);
    dave.expect("DISCONNECT dave", "c> DISCONNECT OK");
    dave.expect("UNREGISTER dave", "c> UNREGISTER OK");
    want.extend([
        ("DELETE", "dave"),
        ("DISCONNECT", "dave"),
        ("CONNECT", "dave"),
        ("PUBLISH", "dave"),
        ("LIST_USERS", "dave"),
        ("LIST_CONTENT", "dave"),
        ("DISCONNECT", "dave"),
        ("UNREGISTER", "dave"),
    ]);
    let (status, _) = dave.quit();
    assert!(status.success(), "p2p-peer exited with {status}");

    // The warning: on stderr, once, however many operations followed.
    let warnings: Vec<&String> = dave
        .stderr
        .history()
        .iter()
        .filter(|l| mentions_datetime(l))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "the peer must say once on stderr that the datetime service is unreachable; stderr: {:#?}",
        dave.stderr.history()
    );

    let out = server.stop();
    assert!(
        out.status.success(),
        "p2p-server exited with {} on SIGTERM",
        out.status
    );
    assert_lines_with_datetime(&out.lines, &want);
}

/// Sends one HTTP/1.1 GET and returns (status line, headers, body).
fn http_get(port: u16, path: &str) -> (String, Vec<String>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to p2p-datetime");
    stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the HTTP response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {response:?}"));
    let mut head = head.split("\r\n").map(str::to_owned);
    let status = head.next().unwrap_or_default();
    (status, head.collect(), body.to_owned())
}

#[test]
fn datetime_service_answers_get_datetime_and_404_elsewhere() {
    let datetime = Datetime::start();
    assert_eq!(
        datetime.url,
        format!("http://127.0.0.1:{}/datetime", datetime.port)
    );

    let (status, headers, body) = http_get(datetime.port, "/datetime");
    assert!(status.starts_with("HTTP/1.1 200"), "status line {status:?}");
    let content_type = headers
        .iter()
        .find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no Content-Type in {headers:?}"));
    assert_eq!(
        content_type.to_ascii_lowercase(),
        "text/plain; charset=utf-8"
    );
    // The body is the bare timestamp, no trailing newline.
    assert!(
        is_datetime(&body),
        "body {body:?} is not DD/MM/YYYY HH:MM:SS"
    );

    let (status, _, _) = http_get(datetime.port, "/other");
    assert!(status.starts_with("HTTP/1.1 404"), "status line {status:?}");
}
