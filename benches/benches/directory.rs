//! Directory protocol codecs: every request, and the big listings.
//!
//! `directory_{parse|encode}_{op}` for one request of each operation (`search` and `ping`
//! included), `directory_{parse|encode}_list_users_10000` / `..._list_content_10000` for the
//! replies a directory with 10 000 connected users (or a user with 10 000 files) sends,
//! `directory_{parse|encode}_search_reply_100` for a full SEARCH reply at the default
//! `--search-limit`, and `directory_{parse|encode}_capabilities` /
//! `..._capabilities_reply` for capability discovery (the request as a `ServerMessage`, what a
//! server decodes).

mod common;

use common::encode_and_parse;
use criterion::{Criterion, criterion_group, criterion_main};
use p2p_benches::sample;
use p2p_proto::directory::ServerMessage;

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("directory");
    for (name, request) in sample::requests() {
        encode_and_parse(&mut group, "directory", name, (), &request, &[]);
    }
    group.finish();
}

fn listings(c: &mut Criterion) {
    let mut group = c.benchmark_group("directory");
    for (name, reply) in [
        ("list_users_10000", sample::list_users_reply(10_000)),
        ("list_content_10000", sample::list_content_reply(10_000)),
        ("search_reply_100", sample::search_reply(100)),
    ] {
        encode_and_parse(&mut group, "directory", name, reply.op(), &reply, &[]);
    }
    group.finish();
}

fn capabilities(c: &mut Criterion) {
    let mut group = c.benchmark_group("directory");
    let request = ServerMessage::Capabilities;
    encode_and_parse(&mut group, "directory", "capabilities", (), &request, &[]);
    let reply = sample::capabilities_reply();
    encode_and_parse(
        &mut group,
        "directory",
        "capabilities_reply",
        (),
        &reply,
        &[],
    );
    group.finish();
}

criterion_group!(benches, requests, listings, capabilities);
criterion_main!(benches);
