//! Directory protocol codecs: every request, and the big listings.
//!
//! `directory_{parse|encode}_{op}` for one request of each operation (`search` and `ping`
//! included), `directory_{parse|encode}_list_users_10000` / `..._list_content_10000` for the
//! replies a directory with 10 000 connected users (or a user with 10 000 files) sends,
//! `directory_{parse|encode}_search_reply_100` for a full SEARCH reply at the default
//! `--search-limit`, and `directory_{parse|encode}_capabilities` /
//! `..._capabilities_reply` for capability discovery (the request through
//! `ServerMessage::decode`, what a server runs).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use p2p_benches::sample;
use p2p_proto::directory::{CapabilitiesReply, CapabilitiesRequest, Reply, Request, ServerMessage};

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("directory");
    for (name, request) in sample::requests() {
        let mut wire = Vec::with_capacity(request.encoded_len());
        request.encode(&mut wire);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(format!("directory_encode_{name}"), |b| {
            let mut buf = Vec::with_capacity(wire.len());
            b.iter(|| {
                buf.clear();
                black_box(&request).encode(&mut buf);
                black_box(buf.len())
            });
        });
        group.bench_function(format!("directory_parse_{name}"), |b| {
            b.iter(|| Request::decode(black_box(&wire)).expect("valid request"));
        });
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
        let mut wire = Vec::with_capacity(reply.encoded_len());
        reply.encode(&mut wire);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(format!("directory_encode_{name}"), |b| {
            let mut buf = Vec::with_capacity(wire.len());
            b.iter(|| {
                buf.clear();
                black_box(&reply).encode(&mut buf);
                black_box(buf.len())
            });
        });
        group.bench_function(format!("directory_parse_{name}"), |b| {
            b.iter(|| Reply::decode(reply.op(), black_box(&wire)).expect("valid reply"));
        });
    }
    group.finish();
}

fn capabilities(c: &mut Criterion) {
    let mut group = c.benchmark_group("directory");
    let request = CapabilitiesRequest;
    let mut wire = Vec::with_capacity(request.encoded_len());
    request.encode(&mut wire);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("directory_encode_capabilities", |b| {
        let mut buf = Vec::with_capacity(wire.len());
        b.iter(|| {
            buf.clear();
            black_box(&request).encode(&mut buf);
            black_box(buf.len())
        });
    });
    group.bench_function("directory_parse_capabilities", |b| {
        b.iter(|| ServerMessage::decode(black_box(&wire)).expect("valid request"));
    });

    let reply = sample::capabilities_reply();
    let mut wire = Vec::with_capacity(reply.encoded_len());
    reply.encode(&mut wire);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("directory_encode_capabilities_reply", |b| {
        let mut buf = Vec::with_capacity(wire.len());
        b.iter(|| {
            buf.clear();
            black_box(&reply).encode(&mut buf);
            black_box(buf.len())
        });
    });
    group.bench_function("directory_parse_capabilities_reply", |b| {
        b.iter(|| CapabilitiesReply::decode(black_box(&wire)).expect("valid reply"));
    });
    group.finish();
}

criterion_group!(benches, requests, listings, capabilities);
criterion_main!(benches);
