//! Log RPC codecs: a SENDLOG call as the directory sends it (framed for TCP), as the log service
//! parses and dispatches it, and TCP record reassembly.

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use p2p_benches::sample;
use p2p_proto::rpc::log::{Dispatch, LogEntry, dispatch, sendlog_call};
use p2p_proto::rpc::message::Call;
use p2p_proto::rpc::record::{DEFAULT_MAX_RECORD, Record, RecordDecoder, RecordMark};
use p2p_proto::{Decode, Encode, StreamDecoder, testing};

/// A call's bytes.
fn encoded(message: &impl Encode) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.encoded_len());
    message.encode(&mut out);
    out
}

fn sendlog(c: &mut Criterion) {
    let mut group = c.benchmark_group("rpc");
    let entry = sample::log_entry();
    let framed = encoded(&Record(sendlog_call(7, &entry)));

    group.throughput(Throughput::Bytes(framed.len() as u64));
    group.bench_function("rpc_encode_sendlog_call", |b| {
        let mut buf = Vec::with_capacity(framed.len());
        b.iter(|| {
            buf.clear();
            Record(sendlog_call(black_box(7), black_box(&entry))).encode(&mut buf);
            black_box(buf.len())
        });
    });
    group.finish();

    // Parsed as the owned call (header and entry) a server keeps.
    let mut group = c.benchmark_group("rpc");
    let call = Call {
        header: sendlog_call(7, &entry).header,
        args: entry.clone(),
    };
    let wire = testing::round_trip((), &call);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("rpc_parse_sendlog_call", |b| {
        b.iter(|| {
            Call::<LogEntry>::decode(black_box(&wire))
                .expect("valid call")
                .expect("complete call")
        });
    });

    group.bench_function("rpc_parse_dispatch_sendlog", |b| {
        b.iter(|| match dispatch(black_box(&wire)) {
            Dispatch::Reply { reply, entry } => black_box((reply, entry)),
            other => panic!("unexpected dispatch {other:?}"),
        });
    });
    group.finish();
}

fn records(c: &mut Criterion) {
    let mut group = c.benchmark_group("rpc");
    let call = encoded(&sendlog_call(7, &sample::log_entry()));
    // The call split into three fragments, the last one flagged.
    let cuts = [0, call.len() / 3, 2 * call.len() / 3, call.len()];
    let mut stream = BytesMut::new();
    for (i, w) in cuts.windows(2).enumerate() {
        let part = &call[w[0]..w[1]];
        stream.put_slice(
            &RecordMark {
                last: i == 2,
                len: part.len() as u32,
            }
            .to_bytes(),
        );
        stream.put_slice(part);
    }
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("rpc_parse_record_3_fragments", |b| {
        b.iter_batched(
            || (RecordDecoder::new(DEFAULT_MAX_RECORD), stream.clone()),
            |(mut decoder, mut src)| {
                let record = decoder
                    .decode(&mut src)
                    .expect("valid record")
                    .expect("complete record");
                assert_eq!(record.len(), call.len());
                black_box(record)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, sendlog, records);
criterion_main!(benches);
