//! Fuzz target bodies, compiled and linted with the crate (feature `fuzzing`).
//!
//! Each `fuzz/fuzz_targets/NAME.rs` is a one-liner calling the function `NAME` of this module with
//! the fuzzer's bytes, so that the checks build, lint and can be reused (for example replayed from
//! a regression file in a unit test) without cargo-fuzz.
//!
//! Every function panics (with an assertion message) when the code under test breaks a property,
//! and returns normally otherwise. The properties, for a decoder `decode(bytes) ->
//! Result<Option<(value, consumed)>, error>`:
//!
//! - **No panic** on any input, and no unbounded work or allocation.
//! - **Round trip** ([`crate::testing::round_trip`]): when `bytes` decode to `value`,
//!   `encode(value)` writes exactly `encoded_len(value)` bytes and decodes to `value`, consuming
//!   all of them.
//! - **Canonical form**: where the wire has one spelling per value the re-encoding is the very
//!   bytes consumed; where it allows several (leading zeros in decimal numbers, textual IP
//!   addresses, XDR pad bytes, which are accepted whatever they hold), only the decoded *values*
//!   are compared, plus the length where the spelling cannot change it (XDR).
//! - **Streaming**: the decision never changes as bytes are appended. `bytes[..consumed]` alone
//!   decodes to the same value, `bytes[..consumed - 1]` is incomplete (`Ok(None)`), and any prefix
//!   of `bytes` is either incomplete or gives the same answer as the whole.
//!
//! The `*_to_bytes_and_back` functions build a value from the bytes with [`arbitrary`] and check
//! `decode(encode(value)) == (value, encoded_len(value))`.

/// A cargo-fuzz target calling the function of this module it names, for a target file of two
/// lines (the fuzz crate depends on `libfuzzer-sys`, where the expansion resolves):
///
/// ```text
/// #![no_main]
/// p2p_proto::fuzz_target!(directory_request);
/// ```
#[macro_export]
macro_rules! fuzz_target {
    ($name:ident) => {
        ::libfuzzer_sys::fuzz_target!(|data: &[u8]| $crate::fuzzing::$name(data));
    };
}

use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use arbitrary::{Arbitrary, Unstructured};

use crate::codec::{Decode, Encode, StreamDecoder, decode_from, to_vec};
use crate::testing::round_trip;
use bytes::{BufMut, BytesMut};

use crate::directory::{
    CapabilitiesReply, CapabilitiesRequest, MAX_SEARCH_TERM_LEN, MAX_SEARCH_TERMS, OpCode, Reply,
    Request, RequestBody, RequestDecoder, SearchQuery, ServerMessage, ServerMessageDecoder,
    matches, search_words,
};
use crate::rpc::log::{
    self, CloseReason, Dispatch, LOG_PROG, LOG_VERS, LogEntry, LogReply, NULLPROC, SENDLOG,
};
use crate::rpc::message::{
    self, AcceptStat, AcceptedReply, AuthStat, AuthSysParams, CallBody, CallFailure, Credentials,
    MessageBody, OpaqueAuth, RejectedReply, ReplyBody, RpcMessage,
};
use crate::rpc::record::{MARK_LEN, RecordDecoder, RecordError, RecordMark};
use crate::rpcbind::{self, Mapping, Rpcb};
use crate::timestamp::Timestamp;
use crate::transfer::{GetFile, GetFileFromHeader, TransferHeader, TransferRequest};
use crate::xdr::{self, XdrError};

/// What every decoder of this crate returns.
type Decoded<T, E> = Result<Option<(T, usize)>, E>;

/// A cut point in `0..=data.len()` derived from the bytes themselves (FNV-1a), so that the input
/// stays exactly the message under test (seeds are plain known-answer bytes) while the streaming
/// checks still see many different splits.
fn cut_point(data: &[u8]) -> usize {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    // The remainder is at most `data.len()`, so it fits in `usize`.
    (hash % (data.len() as u64 + 1)) as usize
}

/// Runs `decode` on `data` and checks the streaming properties of the module documentation;
/// returns the whole input's result.
fn decode_streaming<T, E>(data: &[u8], decode: impl Fn(&[u8]) -> Decoded<T, E>) -> Decoded<T, E>
where
    T: PartialEq + Debug,
    E: PartialEq + Debug,
{
    let whole = decode(data);
    let cut = cut_point(data);
    let prefix = decode(&data[..cut]);
    assert!(
        prefix == Ok(None) || prefix == whole,
        "prefix of {cut} bytes gives {prefix:?}, the whole input {whole:?}"
    );
    if let Ok(Some((_, consumed))) = &whole {
        let consumed = *consumed;
        assert!(
            (1..=data.len()).contains(&consumed),
            "consumed {consumed} of {} bytes",
            data.len()
        );
        assert_eq!(
            decode(&data[..consumed]),
            whole,
            "the consumed bytes alone decode differently"
        );
        assert_eq!(
            decode(&data[..consumed - 1]),
            Ok(None),
            "one byte short of a message is not incomplete"
        );
    }
    whole
}

/// Feeds `data` to a streaming `decode` one more byte at a time and checks that it decides at
/// the first byte where the one-shot decoder does, with `whole`'s answer.
fn decides_like_the_whole<T, E>(
    data: &[u8],
    whole: &Decoded<T, E>,
    mut decode: impl FnMut(&[u8]) -> Decoded<T, E>,
) where
    T: PartialEq + Debug,
    E: PartialEq + Debug,
{
    for end in 0..=data.len() {
        let streamed = decode(&data[..end]);
        if streamed != Ok(None) {
            assert_eq!(
                &streamed, whole,
                "byte-wise decision after {end} bytes differs from the whole input's"
            );
            return;
        }
    }
    assert_eq!(whole, &Ok(None), "byte-wise feeding never decided");
}

mod directory;
mod rpc;
mod transfer;

pub use directory::*;
pub use rpc::*;
pub use transfer::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target accepts the empty input and a few known answers (the fuzz seeds' shapes).
    #[test]
    fn targets_run_on_known_answers() {
        let targets: [fn(&[u8]); 22] = [
            directory_request,
            directory_reply,
            directory_server_message,
            capabilities_reply,
            search_query,
            capabilities_to_bytes_and_back,
            transfer_get_file,
            transfer_header,
            transfer_request,
            transfer_from_header,
            timestamp,
            xdr_log_entry,
            rpc_call,
            rpc_reply,
            rpc_dispatch,
            record_reassembler,
            rpcbind,
            uaddr,
            directory_request_to_bytes_and_back,
            directory_reply_to_bytes_and_back,
            rpc_message_to_bytes_and_back,
            log_entry_to_bytes_and_back,
        ];
        let entry = LogEntry::new("alice", "PUBLISH", "24/11/2026 19:40:12", "song.mp3").unwrap();
        let call = to_vec(&log::sendlog_call(7, &entry));
        let mut framed = vec![200, 0];
        crate::rpc::record::encode_record(&call, &mut framed);
        let from_header = [b"\x003\x00blake3:".as_slice(), &[b'a'; 64], b"\x00abc"].concat();
        let inputs: [&[u8]; 17] = [
            b"",
            b"CAPABILITIES\0",
            b"SEARCH\x0024/11/2026 20:42:35\0alice\0Beat HELP \xc3\x89cole\0",
            b"PING\0alice\0",
            b"\x09\x002\x00bob\x00/The_Beatles-Help.mp3\x00live\x00carol\x00/b\x00\x00",
            b"\x003\x00GET_USER_INFO\x00SEARCH\x00PING\x00",
            b"beat  help STRA\xe1\xba\x9eE 2\xc3\xa8me",
            b"GET_FILE_FROM\0a.txt\x00007\0",
            &from_header,
            b"REGISTER\x0024/11/2026 20:42:35\x00alice\x00",
            b"CONNECT\0alice\x0000080\0",
            b"\x06\x002\x00bob\x0010.0.0.2\x001\x00carol\x00::ffff:0:0\x00045678\x00",
            b"\x00008\x00abc",
            b"24/11/2026 20:42:35",
            &call,
            &framed,
            b"127.0.0.1.0.111",
        ];
        for target in targets {
            for input in inputs {
                target(input);
            }
        }
    }
}
