//! The one bench shape of every codec: `{family}_encode_{name}` and `{family}_parse_{name}` of a
//! message, generic over `p2p_proto`'s `Encode` / `Decode`, with `Throughput::Bytes` of its
//! encoding. The message is checked with `p2p_proto::testing::round_trip` before it is timed.

use std::fmt::Debug;
use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Throughput};
use p2p_proto::{Decode, Encode, testing};

/// Benches encoding `message` and decoding its bytes (with context `ctx`) followed by `tail`
/// (what a socket read returns after a header, for instance).
pub(crate) fn encode_and_parse<C, T>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    family: &str,
    name: &str,
    ctx: C,
    message: &T,
    tail: &[u8],
) where
    C: Copy,
    T: Encode + Decode<C> + PartialEq + Debug,
    T::Error: Debug,
{
    let mut wire = testing::round_trip(ctx, message);
    let len = wire.len();
    wire.extend_from_slice(tail);
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function(format!("{family}_encode_{name}"), |b| {
        let mut buf = Vec::with_capacity(len);
        b.iter(|| {
            buf.clear();
            black_box(message).encode(&mut buf);
            black_box(buf.len())
        });
    });
    group.bench_function(format!("{family}_parse_{name}"), |b| {
        b.iter(|| T::decode_with(ctx, black_box(&wire)).expect("valid message"));
    });
}
