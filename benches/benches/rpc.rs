//! Log RPC codecs: a SENDLOG call as the directory sends it, as the log service parses and
//! dispatches it, and TCP record reassembly.

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use p2p_benches::sample;
use p2p_proto::rpc::RpcMessage;
use p2p_proto::rpc::log::{Dispatch, LogEntry, dispatch, sendlog_call};
use p2p_proto::rpc::record::{DEFAULT_MAX_RECORD, RecordDecoder, RecordMark, encode_record};

fn sendlog(c: &mut Criterion) {
    let mut group = c.benchmark_group("rpc");
    let entry = sample::log_entry();
    let call = sendlog_call(7, &entry);
    let mut framed = Vec::new();
    encode_record(&call, &mut framed);

    group.throughput(Throughput::Bytes(framed.len() as u64));
    group.bench_function("rpc_encode_sendlog_call", |b| {
        let mut buf = Vec::with_capacity(framed.len());
        b.iter(|| {
            buf.clear();
            let msg = sendlog_call(black_box(7), black_box(&entry));
            encode_record(&msg, &mut buf);
            black_box(buf.len())
        });
    });

    group.throughput(Throughput::Bytes(call.len() as u64));
    group.bench_function("rpc_parse_sendlog_call", |b| {
        b.iter(|| {
            let (header, used) = RpcMessage::decode(black_box(&call))
                .expect("valid header")
                .expect("complete header");
            let (entry, _) = LogEntry::decode(&call[used..])
                .expect("valid entry")
                .expect("complete entry");
            black_box((header, entry))
        });
    });

    group.bench_function("rpc_parse_dispatch_sendlog", |b| {
        b.iter(|| match dispatch(black_box(&call)) {
            Dispatch::Reply { reply, entry } => black_box((reply, entry)),
            other => panic!("unexpected dispatch {other:?}"),
        });
    });
    group.finish();
}

fn records(c: &mut Criterion) {
    let mut group = c.benchmark_group("rpc");
    let call = sendlog_call(7, &sample::log_entry());
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
