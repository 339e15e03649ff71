//! Transfer protocol codecs: the `GET_FILE` request and the reply header.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use p2p_benches::sample;
use p2p_proto::transfer::{GetFile, TransferHeader};

fn get_file(c: &mut Criterion) {
    let mut group = c.benchmark_group("transfer");
    let request = GetFile {
        file: sample::file("/home/alice/music/track-0001.ogg"),
    };
    let mut wire = Vec::new();
    request.encode(&mut wire);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("transfer_encode_get_file", |b| {
        let mut buf = Vec::with_capacity(wire.len());
        b.iter(|| {
            buf.clear();
            black_box(&request).encode(&mut buf);
            black_box(buf.len())
        });
    });
    group.bench_function("transfer_parse_get_file", |b| {
        b.iter(|| GetFile::decode(black_box(&wire)).expect("valid request"));
    });
    group.finish();
}

fn header(c: &mut Criterion) {
    let mut group = c.benchmark_group("transfer");
    // A 1 GiB file's header, followed by the first body bytes as a socket read returns them.
    let header = TransferHeader::Ok { size: 1 << 30 };
    let mut wire = Vec::new();
    header.encode(&mut wire);
    let header_len = wire.len();
    wire.extend_from_slice(&[0x5a; 4096]);
    group.throughput(Throughput::Bytes(header_len as u64));
    group.bench_function("transfer_encode_header", |b| {
        let mut buf = Vec::with_capacity(header_len);
        b.iter(|| {
            buf.clear();
            black_box(&header).encode(&mut buf);
            black_box(buf.len())
        });
    });
    group.bench_function("transfer_parse_header", |b| {
        b.iter(|| TransferHeader::decode(black_box(&wire)).expect("valid header"));
    });
    group.finish();
}

criterion_group!(benches, get_file, header);
criterion_main!(benches);
