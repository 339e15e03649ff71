//! Transfer protocol codecs: the `GET_FILE` and `GET_FILE_FROM` requests and their reply headers
//! (each header parsed with the first body bytes after it, as a socket read returns them).

mod common;

use common::encode_and_parse;
use criterion::{Criterion, criterion_group, criterion_main};
use p2p_benches::sample;
use p2p_proto::transfer::{
    Digest, GetFile, GetFileFrom, GetFileFromHeader, TransferHeader, TransferRequest,
};

/// What follows a header in the same read: the first body bytes.
const BODY: [u8; 4096] = [0x5a; 4096];

fn codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("transfer");
    let get_file = GetFile {
        file: sample::file("/home/alice/music/track-0001.ogg"),
    };
    encode_and_parse(&mut group, "transfer", "get_file", (), &get_file, &[]);

    // A 1 GiB file's header.
    let header = TransferHeader::Ok { size: 1 << 30 };
    encode_and_parse(&mut group, "transfer", "header", (), &header, &BODY);

    // A resume at 90 % of a 1 GiB file, as the file server reads it (either request).
    let request = TransferRequest::GetFileFrom(GetFileFrom {
        file: sample::file("/home/alice/music/track-0001.ogg"),
        offset: 966_367_641,
    });
    encode_and_parse(&mut group, "transfer", "get_file_from", (), &request, &[]);

    let from_header = GetFileFromHeader::Ok {
        size: 1 << 30,
        digest: Digest::from_bytes(*b"\x5a\xa5\x01\x23\x45\x67\x89\xab\xcd\xef\xfe\xdc\xba\x98\x76\x54\x32\x10\x0f\xf0\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc"),
    };
    encode_and_parse(
        &mut group,
        "transfer",
        "from_header",
        (),
        &from_header,
        &BODY,
    );
    group.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
