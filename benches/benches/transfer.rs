//! Transfer protocol codecs: the `GET_FILE` and `GET_FILE_FROM` requests and their reply headers.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use p2p_benches::sample;
use p2p_proto::transfer::{
    Digest, GetFile, GetFileFrom, GetFileFromHeader, TransferHeader, TransferRequest,
};

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

fn get_file_from(c: &mut Criterion) {
    let mut group = c.benchmark_group("transfer");
    // A resume at 90 % of a 1 GiB file.
    let request = GetFileFrom {
        file: sample::file("/home/alice/music/track-0001.ogg"),
        offset: 966_367_641,
    };
    let mut wire = Vec::new();
    request.encode(&mut wire);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("transfer_encode_get_file_from", |b| {
        let mut buf = Vec::with_capacity(wire.len());
        b.iter(|| {
            buf.clear();
            black_box(&request).encode(&mut buf);
            black_box(buf.len())
        });
    });
    group.bench_function("transfer_parse_get_file_from", |b| {
        b.iter(|| TransferRequest::decode(black_box(&wire)).expect("valid request"));
    });
    group.finish();
}

fn from_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("transfer");
    let header = GetFileFromHeader::Ok {
        size: 1 << 30,
        digest: Digest::from_bytes(*b"\x5a\xa5\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10\x0f\xf0\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc"),
    };
    let mut wire = Vec::new();
    header.encode(&mut wire);
    let header_len = wire.len();
    wire.extend_from_slice(&[0x5a; 4096]);
    group.throughput(Throughput::Bytes(header_len as u64));
    group.bench_function("transfer_encode_from_header", |b| {
        let mut buf = Vec::with_capacity(header_len);
        b.iter(|| {
            buf.clear();
            black_box(&header).encode(&mut buf);
            black_box(buf.len())
        });
    });
    group.bench_function("transfer_parse_from_header", |b| {
        b.iter(|| GetFileFromHeader::decode(black_box(&wire)).expect("valid header"));
    });
    group.finish();
}

criterion_group!(benches, get_file, header, get_file_from, from_header);
criterion_main!(benches);
