//! The status page of `p2p-server --http`, in a real browser: headless
//! Chromium loads `/`, the test submits the page's own search form (as the
//! browser encodes and sends it) and reads the result rows from the DOM.
//!
//! Without Chromium the test says so loudly on stderr and passes, unless
//! `P2P_REQUIRE_CHROMIUM=1` (CI sets it). `P2P_CHROMIUM` names the browser
//! binary (default: `chromium` on the PATH).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{LINE_TIMEOUT, Lines, Server, temp_dir};
use p2p_proto::directory::{Reply, Request, RequestBody};
use p2p_proto::{Decode, Encode};

/// How long one browser run may take (debug builds, two cores, tests in
/// parallel).
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

fn chromium() -> Option<String> {
    let binary = std::env::var("P2P_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let found = Command::new(&binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(binary);
    }
    assert!(
        std::env::var("P2P_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
        "P2P_REQUIRE_CHROMIUM=1 but {binary:?} cannot be run (apt-get install chromium)"
    );
    eprintln!(
        "\n*** SKIPPED: the status page browser test needs Chromium ({binary:?} not found; \
         apt-get install chromium, or set P2P_CHROMIUM). Set P2P_REQUIRE_CHROMIUM=1 to fail \
         instead. ***\n"
    );
    None
}

/// Loads `url` in headless Chromium and returns the DOM once the page (and
/// any navigation it starts) has loaded.
fn dump_dom(browser: &str, profile: &Path, url: &str) -> String {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            // Lets a form submitted at load navigate before the dump; below
            // the page's 10 s refresh.
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish loading {url} within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = out.join().expect("stdout reader");
    let err = err.join().expect("stderr reader");
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium {status} on {url}: {dom}\n{err}"
    );
    dom
}

/// The text of each `<td>` of every `<tr class="CLASS">` row, entities
/// decoded.
fn rows(dom: &str, class: &str) -> Vec<Vec<String>> {
    let start = format!("<tr class=\"{class}\">");
    dom.split(&start)
        .skip(1)
        .map(|rest| {
            let row = &rest[..rest.find("</tr>").expect("row ends")];
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = &cell[cell.find('>').expect("td tag ends") + 1..];
                    let text = &text[..text.find("</td>").expect("cell ends")];
                    assert!(!text.contains('<'), "markup inside a cell: {row}");
                    decode_entities(text)
                })
                .collect()
        })
        .collect()
}

fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The value of `attr` in the first tag that starts with `tag_start`.
fn attribute(dom: &str, tag_start: &str, attr: &str) -> String {
    let tag = &dom[dom
        .find(tag_start)
        .unwrap_or_else(|| panic!("no {tag_start} in {dom}"))..];
    let tag = &tag[..tag.find('>').expect("tag ends")];
    let key = format!(" {attr}=\"");
    let value = &tag[tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {attr} in {tag}"))
        + key.len()..];
    decode_entities(&value[..value.find('"').expect("value ends")])
}

/// One operation over the protocol; returns the reply's result byte.
fn call(port: u16, user: &str, body: RequestBody) -> u8 {
    let request = Request {
        timestamp: Some("24/11/2026 20:42:35".parse().unwrap()),
        user: user.parse().unwrap(),
        body,
    };
    let mut out = Vec::new();
    request.encode(&mut out);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    stream.write_all(&out).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("a reply");
    assert!(
        matches!(Reply::decode_with(request.op(), &reply), Ok(Some(_))),
        "{}: bad reply {reply:?}",
        request.op()
    );
    reply[0]
}

fn connect(port: u16, user: &str, listen: &str) {
    let body = RequestBody::Connect {
        port: listen.parse().unwrap(),
    };
    assert_eq!(call(port, user, body), 0, "CONNECT {user}");
}

fn publish(port: u16, user: &str, file: &str) {
    let body = RequestBody::Publish {
        file: file.parse().unwrap(),
        description: "a description the page never shows".parse().unwrap(),
    };
    assert_eq!(call(port, user, body), 0, "PUBLISH {user} {file}");
}

fn http_addr(stderr: &mut Lines) -> SocketAddr {
    let line = stderr.wait_for(LINE_TIMEOUT, |l| l.contains(": http: http://"));
    let url = line.split("http://").nth(1).expect("a URL");
    url.trim_end_matches('/').parse().expect("IP:PORT")
}

/// A page that submits a copy of the status page's form, as read from its
/// DOM, with `value` in its field: the browser encodes and sends it.
fn submitting_page(dir: &Path, base: &str, front_dom: &str, value: &str) -> String {
    let action = attribute(front_dom, "<form id=\"search\"", "action");
    let method = attribute(front_dom, "<form id=\"search\"", "method");
    let field = attribute(front_dom, "<input type=\"search\"", "name");
    assert_eq!(method, "get");
    let action = format!("{base}{}", action.trim_start_matches('/'));
    let page = dir.join("submit.html");
    std::fs::write(
        &page,
        format!(
            "<!DOCTYPE html><html><body><form action=\"{action}\" method=\"{method}\">\
             <input name=\"{field}\" value=\"{value}\"></form>\
             <script>document.forms[0].submit()</script></body></html>"
        ),
    )
    .unwrap();
    format!("file://{}", page.display())
}

#[test]
fn status_page_lists_connected_users_and_searches_in_a_browser() {
    let Some(browser) = chromium() else { return };
    let mut server = Server::start(&["--store", "memory:", "--http", "127.0.0.1:0"]);
    let http = http_addr(&mut server.stderr);
    let port = server.port;
    for user in ["ann", "bob", "cy", "<i>eve</i>", "dan"] {
        assert_eq!(
            call(port, user, RequestBody::Register),
            0,
            "REGISTER {user}"
        );
    }
    connect(port, "ann", "4001");
    connect(port, "bob", "4002");
    connect(port, "<i>eve</i>", "4003");
    connect(port, "cy", "4004");
    publish(port, "ann", "Song.MP3");
    publish(port, "ann", "notes.txt");
    publish(port, "bob", "song-live.mp3");
    publish(port, "<i>eve</i>", "a<b>&.mp3");
    publish(port, "cy", "secret.mp3");
    // Gone: neither cy's address nor its files are shown any more.
    assert_eq!(call(port, "cy", RequestBody::Disconnect), 0);

    let dir = temp_dir();
    let profile = dir.path().join("profile");
    let base = format!("http://{http}/");
    let front = dump_dom(&browser, &profile, &base);
    assert!(front.contains("<td id=\"total-users\">5</td>"), "{front}");
    assert!(
        front.contains("<td id=\"total-connected\">3</td>"),
        "{front}"
    );
    assert!(
        front.contains("<td id=\"total-publications\">5</td>"),
        "{front}"
    );
    assert_eq!(
        rows(&front, "user"),
        [
            ["ann", "127.0.0.1:4001", "2"],
            ["bob", "127.0.0.1:4002", "1"],
            ["<i>eve</i>", "127.0.0.1:4003", "1"],
        ],
        "{front}"
    );
    assert!(rows(&front, "result").is_empty());
    assert!(
        !front.contains("description"),
        "descriptions are never shown"
    );
    assert!(
        !front.contains("<i>"),
        "names are text, not markup: {front}"
    );

    // The page's own form, submitted by the browser.
    let results = dump_dom(
        &browser,
        &profile,
        &submitting_page(dir.path(), &base, &front, "MP3"),
    );
    assert_eq!(
        rows(&results, "result"),
        [
            ["ann", "127.0.0.1:4001", "Song.MP3"],
            ["bob", "127.0.0.1:4002", "song-live.mp3"],
            ["<i>eve</i>", "127.0.0.1:4003", "a<b>&.mp3"],
        ],
        "{results}"
    );
    assert_eq!(
        attribute(&results, "<input type=\"search\"", "value"),
        "MP3"
    );

    // SEARCH's meaning: "b" starts a word of "a<b>&.mp3" only.
    let results = dump_dom(
        &browser,
        &profile,
        &submitting_page(dir.path(), &base, &front, "B"),
    );
    assert_eq!(
        rows(&results, "result"),
        [["<i>eve</i>", "127.0.0.1:4003", "a<b>&.mp3"]],
        "{results}"
    );
    // Markup in the search is text too, and is no search: it says so.
    let results = dump_dom(
        &browser,
        &profile,
        &submitting_page(dir.path(), &base, &front, "&lt;B&gt;&amp;"),
    );
    assert!(rows(&results, "result").is_empty(), "{results}");
    assert!(results.contains("id=\"bad-query\""), "{results}");
    assert!(!results.contains("<B>"), "{results}");
    let results = dump_dom(
        &browser,
        &profile,
        &submitting_page(dir.path(), &base, &front, "secret"),
    );
    assert!(rows(&results, "result").is_empty(), "{results}");
    assert!(results.contains("id=\"no-results\""), "{results}");

    let out = server.stop();
    assert!(out.status.success(), "{out:?}");
}
