//! Directory protocol codecs: every request, and the big listings.
//!
//! `directory_{parse|encode}_{op}` for one request of each operation, and
//! `directory_{parse|encode}_list_users_10000` / `..._list_content_10000` for the replies a
//! directory with 10 000 connected users (or a user with 10 000 files) sends.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use p2p_benches::sample;
use p2p_proto::directory::{Reply, Request};

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

criterion_group!(benches, requests, listings);
criterion_main!(benches);
