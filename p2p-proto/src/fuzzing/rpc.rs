//! Fuzz target bodies of XDR, ONC RPC (calls, replies, the log program's dispatcher, record
//! marking) and rpcbind.

use super::*;

/// Checks what every decoded [`LogEntry`] must satisfy.
fn check_log_entry(entry: &LogEntry) {
    assert_eq!(
        LogEntry::new(entry.user(), entry.op(), entry.timestamp(), entry.file()).as_ref(),
        Ok(entry),
        "a decoded entry breaks the constructor's rules"
    );
    let line = entry.to_string();
    assert!(
        !line.chars().any(char::is_control),
        "output line {line:?} holds a control character"
    );
}

/// XDR `log_entry` decoder ([`LogEntry::decode`]).
///
/// Expectation: no panic; a decoded entry satisfies [`LogEntry::new`]'s rules, prints as one line
/// without control characters, and re-encodes to as many bytes as were consumed (values compared:
/// pad bytes are accepted whatever they hold) that decode to the same entry.
pub fn xdr_log_entry(data: &[u8]) {
    if let Ok(Some((entry, consumed))) = decode_streaming(data, LogEntry::decode) {
        check_log_entry(&entry);
        let bytes = round_trip((), &entry);
        assert_eq!(bytes.len(), consumed);
    }
}

/// Checks the interpretation of a decoded credential or verifier.
fn check_opaque_auth(auth: &OpaqueAuth) {
    assert!(auth.body().len() <= message::MAX_AUTH_BYTES as usize);
    match auth.credentials() {
        Ok(Credentials::None) => assert_eq!(auth.flavor(), message::AUTH_NONE),
        Ok(Credentials::Sys(params)) => {
            assert_eq!(auth.flavor(), message::AUTH_SYS);
            // Well-formed parameters re-encode within the bound, to parameters equal to them.
            let again = OpaqueAuth::sys(&params);
            assert!(again.body().len() <= message::MAX_AUTH_BYTES as usize);
            assert_eq!(again.credentials(), Ok(Credentials::Sys(params)));
        }
        Ok(Credentials::Other { flavor }) => assert_eq!(flavor, auth.flavor()),
        Err(stat) => {
            assert_eq!(auth.flavor(), message::AUTH_SYS);
            assert_eq!(stat, AuthStat::BadCred);
        }
    }
}

/// ONC RPC message header decoder ([`RpcMessage::decode`]), calls and replies.
///
/// Expectation: no panic; credentials and verifiers are interpreted without panic; a decoded
/// header re-encodes to as many bytes as were consumed (values compared: pad bytes) that decode to
/// the same header.
pub fn rpc_call(data: &[u8]) {
    if let Ok(Some((msg, consumed))) = decode_streaming(data, RpcMessage::decode) {
        match &msg.body {
            MessageBody::Call(call) => {
                check_opaque_auth(&call.cred);
                check_opaque_auth(&call.verf);
            }
            MessageBody::Reply(ReplyBody::Accepted(accepted)) => check_opaque_auth(&accepted.verf),
            MessageBody::Reply(ReplyBody::Denied(_)) => {}
        }
        let bytes = round_trip((), &msg);
        assert_eq!(bytes.len(), consumed);
    }
}

/// Builds the reply message that carries `outcome` (AUTH_NONE verifier), with `put` writing the
/// results of a success.
fn build_reply<T>(
    xid: u32,
    outcome: &Result<T, CallFailure>,
    put: impl Fn(&T, &mut Vec<u8>),
) -> Vec<u8> {
    let mut bytes = Vec::new();
    match outcome {
        Ok(results) => {
            RpcMessage::accepted(xid, AcceptStat::Success).encode(&mut bytes);
            put(results, &mut bytes);
        }
        Err(CallFailure::Accepted { stat }) => {
            assert_ne!(*stat, AcceptStat::Success, "a failure that succeeded");
            RpcMessage::accepted(xid, *stat).encode(&mut bytes);
        }
        Err(CallFailure::Denied { reason }) => RpcMessage::denied(xid, *reason).encode(&mut bytes),
    }
    bytes
}

/// Checks one whole-message reply decoder on `data`: no panic; a decoded reply is a reply
/// header over the whole message, and the reply rebuilt from what was decoded decodes the same.
fn check_reply_decoder<T: Clone + PartialEq + Debug>(
    data: &[u8],
    decode: impl Fn(&[u8]) -> Result<Option<message::Reply<T>>, XdrError>,
    put: impl Fn(&T, &mut Vec<u8>),
) -> Option<message::Reply<T>> {
    let Ok(Some((xid, outcome))) = decode(data) else {
        return None;
    };
    match RpcMessage::decode(data) {
        Ok(Some((header, _))) => {
            assert_eq!(header.xid, xid);
            assert!(
                matches!(header.body, MessageBody::Reply(_)),
                "a call decoded as a reply"
            );
        }
        other => panic!("reply decoded, but its header gives {other:?}"),
    }
    let rebuilt = build_reply(xid, &outcome, put);
    assert_eq!(
        decode(&rebuilt),
        Ok(Some((xid, outcome.clone()))),
        "rebuilt reply {rebuilt:02x?} decodes differently"
    );
    Some((xid, outcome))
}

/// ONC RPC whole-reply decoders: [`log::decode_sendlog_reply`], [`log::decode_null_reply`] and the
/// rpcbind ones ([`rpcbind::decode_bool_reply`], [`rpcbind::decode_getport_reply`],
/// [`rpcbind::decode_getaddr_reply`]), all on the same bytes.
///
/// Expectation: no panic; a decoded reply covers the whole message (trailing bytes are an error),
/// its header is a reply with the same xid, and the reply rebuilt from the decoded xid and outcome
/// decodes to the same; a universal address in a GETADDR reply parses without panic.
pub fn rpc_reply(data: &[u8]) {
    check_reply_decoder(data, log::decode_sendlog_reply, |v, b| xdr::put_i32(b, *v));
    check_reply_decoder(data, log::decode_null_reply, |(), _| {});
    check_reply_decoder(data, rpcbind::decode_bool_reply, |v, b| {
        xdr::put_bool(b, *v);
    });
    check_reply_decoder(data, rpcbind::decode_getport_reply, |v, b| {
        xdr::put_u32(b, v.map_or(0, u32::from));
    });
    let getaddr = check_reply_decoder(data, rpcbind::decode_getaddr_reply, |v, b| {
        xdr::put_string(b, v);
    });
    if let Some((_, Ok(uaddr))) = getaddr
        && let Ok(addr) = rpcbind::socket_addr_from_uaddr(&uaddr)
    {
        check_socket_addr(addr);
    }
}

/// The log service's dispatcher ([`log::dispatch`]) on one received message.
///
/// Expectation: no panic; its decision agrees with the message's header (a close for a truncated
/// or malformed header, a reply, or `rpcvers` ≠ 2; otherwise a reply with the call's xid); its
/// reply decodes as a reply; a SENDLOG that yields an entry is a call of `LOG_PROG` v1 procedure 1
/// whose arguments decode to that entry, and its reply decodes to `(xid, Ok(0))`.
pub fn rpc_dispatch(data: &[u8]) {
    let header = RpcMessage::decode(data);
    match log::dispatch(data) {
        Dispatch::Close { reason } => match reason {
            CloseReason::Truncated => assert_eq!(header, Ok(None)),
            CloseReason::Malformed(e) => assert_eq!(header, Err(e)),
            CloseReason::NotACall => assert!(matches!(
                header,
                Ok(Some((
                    RpcMessage {
                        body: MessageBody::Reply(_),
                        ..
                    },
                    _
                )))
            )),
            CloseReason::RpcVersion { rpcvers } => {
                assert_ne!(rpcvers, message::RPC_VERSION);
                assert!(matches!(
                    header,
                    Ok(Some((RpcMessage { body: MessageBody::Call(CallBody { rpcvers: r, .. }), .. }, _)))
                        if r == rpcvers
                ));
            }
        },
        Dispatch::Reply { reply, entry } => {
            assert_eq!(
                LogReply::decode_with(
                    if entry.is_some() { SENDLOG } else { NULLPROC },
                    &to_vec(&reply)
                ),
                Ok(Some((reply.clone(), reply.encoded_len()))),
                "the typed reply does not survive the wire"
            );
            let reply = to_vec(&reply);
            let Ok(Some((call_header, used))) = header else {
                panic!("a reply to a message whose header gives {header:?}");
            };
            let MessageBody::Call(call) = &call_header.body else {
                panic!("a reply to a reply");
            };
            assert_eq!(call.rpcvers, message::RPC_VERSION);
            let xid = call_header.xid;
            match RpcMessage::decode(&reply) {
                Ok(Some((
                    RpcMessage {
                        xid: reply_xid,
                        body: MessageBody::Reply(_),
                    },
                    _,
                ))) => assert_eq!(reply_xid, xid),
                other => panic!("the reply {reply:02x?} decodes as {other:?}"),
            }
            match entry {
                Some(entry) => {
                    assert_eq!(
                        (call.prog, call.vers, call.procedure),
                        (LOG_PROG, LOG_VERS, SENDLOG)
                    );
                    assert!(matches!(
                        LogEntry::decode(&data[used..]),
                        Ok(Some((ref args, _))) if *args == entry
                    ));
                    check_log_entry(&entry);
                    assert_eq!(log::decode_sendlog_reply(&reply), Ok(Some((xid, Ok(0)))));
                }
                None => {
                    // No results: a failure, or NULL's empty success.
                    let Ok(Some((reply_xid, outcome))) = log::decode_null_reply(&reply) else {
                        panic!("the reply {reply:02x?} to a call without entry has results");
                    };
                    assert_eq!(reply_xid, xid);
                    if outcome.is_ok() {
                        assert_eq!((call.prog, call.vers), (LOG_PROG, LOG_VERS));
                        assert_eq!(call.procedure, NULLPROC);
                    }
                }
            }
        }
    }
}

/// What the reference splitter makes of a whole stream.
#[derive(Debug, Default, PartialEq, Eq)]
struct Split {
    records: Vec<Vec<u8>>,
    /// The error that stops the stream, if any.
    error: Option<RecordError>,
    /// Whether the stream ends inside a record (after its first mark).
    mid_record: bool,
    /// Bytes left unconsumed at the end (the start of a mark), when no error stopped the stream.
    leftover: usize,
}

/// Record marking as RFC 5531 §11 describes it, applied to the whole stream at once.
fn reference_split(stream: &[u8], max: usize) -> Split {
    let mut split = Split::default();
    let mut record = Vec::new();
    let mut pos = 0;
    loop {
        let Some(head) = stream[pos..].first_chunk::<MARK_LEN>() else {
            split.mid_record = !record.is_empty();
            split.leftover = stream.len() - pos;
            return split;
        };
        let mark = RecordMark::from_bytes(*head);
        if mark.len == 0 && !mark.last {
            split.error = Some(RecordError::EmptyFragment);
            return split;
        }
        let len = mark.len as usize;
        if record.len() + len > max {
            split.error = Some(RecordError::TooLarge {
                len: (record.len() + len) as u64,
                max,
            });
            return split;
        }
        pos += MARK_LEN;
        if stream.len() - pos < len {
            split.mid_record = true;
            return split;
        }
        record.extend_from_slice(&stream[pos..pos + len]);
        pos += len;
        if mark.last {
            split.records.push(std::mem::take(&mut record));
        }
    }
}

/// The record-marking reassembler ([`RecordDecoder`]) fed in chunks of sizes taken from the input.
///
/// Input layout: byte 0 is the maximum record size (0..=255 bytes, small so that the limit is
/// hit often); byte 1 gives the number `k` (1..=8) of chunk-size bytes that follow; the chunk sizes
/// (1..=256 each) are used in turn, cyclically; the rest is the byte stream.
///
/// Expectation: no panic; the records and the final error (`TooLarge` or `EmptyFragment`) are
/// exactly those of a whole-stream reference splitter, no record is over the maximum, and at the
/// end the decoder holds the same unconsumed bytes and mid-record state as the reference.
pub fn record_reassembler(data: &[u8]) {
    let [max, k, rest @ ..] = data else {
        return;
    };
    let max = usize::from(*max);
    let k = usize::from(*k % 8) + 1;
    let Some((sizes, stream)) = rest.split_at_checked(k) else {
        return;
    };
    let expected = reference_split(stream, max);

    let mut decoder = RecordDecoder::new(max);
    let mut src = BytesMut::new();
    let mut got = Split::default();
    let mut fed = 0;
    'feed: for &size in sizes.iter().cycle() {
        if fed == stream.len() {
            break;
        }
        let end = (fed + usize::from(size) + 1).min(stream.len());
        src.put_slice(&stream[fed..end]);
        fed = end;
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(record)) => {
                    assert!(record.len() <= max, "record of {} > {max}", record.len());
                    got.records.push(record.to_vec());
                }
                Ok(None) => break,
                Err(e) => {
                    got.error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    if got.error.is_none() {
        got.mid_record = decoder.is_mid_record();
        got.leftover = src.len();
    }
    assert_eq!(
        got, expected,
        "chunked reassembly differs from the reference"
    );
}

/// rpcbind messages: [`Mapping`] and [`Rpcb`] decoders on the same bytes, and the call builders.
/// (The reply decoders are in [`rpc_reply`].)
///
/// Expectation: no panic; a decoded mapping re-encodes to exactly its 16 bytes; a decoded `rpcb`
/// re-encodes to as many bytes as were consumed (values compared: pad bytes); calls built from
/// them with [`rpcbind::pmap_call`] and [`rpcbind::rpcb_call`] decode to the same argument.
pub fn rpcbind(data: &[u8]) {
    if let Ok(Some((mapping, consumed))) = decode_streaming(data, Mapping::decode) {
        let bytes = round_trip((), &mapping);
        assert_eq!(&bytes[..], &data[..consumed]);
        let call = to_vec(&rpcbind::pmap_call(1, rpcbind::PMAPPROC_GETPORT, &mapping));
        let Ok(Some((_, used))) = RpcMessage::decode(&call) else {
            panic!("pmap_call header does not decode");
        };
        assert_eq!(
            Mapping::decode(&call[used..]),
            Ok(Some((mapping, Mapping::ENCODED_LEN)))
        );
    }
    if let Ok(Some((rpcb, consumed))) = decode_streaming(data, Rpcb::decode) {
        assert_eq!(
            Rpcb::new(
                rpcb.prog(),
                rpcb.vers(),
                rpcb.netid(),
                rpcb.addr(),
                rpcb.owner()
            )
            .as_ref(),
            Ok(&rpcb)
        );
        let bytes = round_trip((), &rpcb);
        assert_eq!(bytes.len(), consumed);
        let call = to_vec(&rpcbind::rpcb_call(
            1,
            rpcbind::RPCBVERS_4,
            rpcbind::RPCBPROC_GETADDR,
            &rpcb,
        ));
        let Ok(Some((_, used))) = RpcMessage::decode(&call) else {
            panic!("rpcb_call header does not decode");
        };
        assert_eq!(
            Rpcb::decode(&call[used..]),
            Ok(Some((rpcb.clone(), rpcb.encoded_len())))
        );
        if let Ok(addr) = rpcbind::socket_addr_from_uaddr(rpcb.addr()) {
            check_socket_addr(addr);
        }
    }
}

/// Checks that a socket address survives universal-address text both ways.
fn check_socket_addr(addr: SocketAddr) {
    let uaddr = rpcbind::uaddr_from_socket_addr(&addr);
    let again = rpcbind::socket_addr_from_uaddr(&uaddr);
    assert_eq!(again, Ok(addr), "{addr} → {uaddr:?} → {again:?}");
}

/// Universal addresses (RFC 5665): [`rpcbind::socket_addr_from_uaddr`] on the input as text, and
/// [`rpcbind::uaddr_from_socket_addr`] on a socket address built from the input's first bytes.
///
/// Expectation: no panic; whatever parses prints as a universal address that parses back to the
/// same socket address; every IPv4 or IPv6 socket address (no scope id) round-trips.
pub fn uaddr(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(addr) = rpcbind::socket_addr_from_uaddr(&text) {
        check_socket_addr(addr);
        // The port is the last two dot-separated decimal octets (leading zeros allowed).
        let mut parts = text.rsplitn(3, '.').map(|p| p.parse::<u16>().ok());
        let (lo, hi) = (parts.next().flatten(), parts.next().flatten());
        assert_eq!(hi.zip(lo).map(|(h, l)| (h << 8) | l), Some(addr.port()));
    }
    let mut u = Unstructured::new(data);
    let (Ok(v6), Ok(port), Ok(octets)) = (
        u.arbitrary::<bool>(),
        u.arbitrary::<u16>(),
        u.arbitrary::<[u8; 16]>(),
    ) else {
        return;
    };
    let addr = if v6 {
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0))
    } else {
        let [a, b, c, d, ..] = octets;
        SocketAddr::from((Ipv4Addr::new(a, b, c, d), port))
    };
    check_socket_addr(addr);
}

/// An [`Arbitrary`] [`OpaqueAuth`]: AUTH_NONE, well-formed AUTH_SYS, or any flavor and body.
fn arbitrary_opaque_auth(u: &mut Unstructured<'_>) -> arbitrary::Result<OpaqueAuth> {
    Ok(match u.int_in_range(0..=2_u8)? {
        0 => OpaqueAuth::none(),
        1 => {
            let mut machinename: Vec<u8> = u.arbitrary()?;
            machinename.truncate(message::MAX_MACHINE_NAME as usize);
            let mut gids: Vec<u32> = u.arbitrary()?;
            gids.truncate(message::MAX_GIDS as usize);
            let params = AuthSysParams::new(
                u.arbitrary()?,
                machinename,
                u.arbitrary()?,
                u.arbitrary()?,
                gids,
            )
            .map_err(|_| arbitrary::Error::IncorrectFormat)?;
            OpaqueAuth::sys(&params)
        }
        _ => {
            let mut body: Vec<u8> = u.arbitrary()?;
            body.truncate(message::MAX_AUTH_BYTES as usize);
            OpaqueAuth::new(u.arbitrary()?, body).map_err(|_| arbitrary::Error::IncorrectFormat)?
        }
    })
}

/// The `auth_stat` wire values this crate knows.
const AUTH_STAT_CODES: [u32; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 13, 14];

/// An [`RpcMessage`] built by [`Arbitrary`]: every call and reply header shape, any numbers.
///
/// [`RpcMessage`] has no `Arbitrary` impl of its own (its credentials are bounded byte strings);
/// this wrapper builds only values that can be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArbitraryRpcMessage(pub RpcMessage);

impl<'a> Arbitrary<'a> for ArbitraryRpcMessage {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let xid = u.arbitrary()?;
        let body = match u.int_in_range(0..=2_u8)? {
            0 => MessageBody::Call(CallBody {
                rpcvers: u.arbitrary()?,
                prog: u.arbitrary()?,
                vers: u.arbitrary()?,
                procedure: u.arbitrary()?,
                cred: arbitrary_opaque_auth(u)?,
                verf: arbitrary_opaque_auth(u)?,
            }),
            1 => {
                let verf = arbitrary_opaque_auth(u)?;
                let stat = match u.int_in_range(0..=5_u8)? {
                    0 => AcceptStat::Success,
                    1 => AcceptStat::ProgUnavail,
                    2 => AcceptStat::ProgMismatch {
                        low: u.arbitrary()?,
                        high: u.arbitrary()?,
                    },
                    3 => AcceptStat::ProcUnavail,
                    4 => AcceptStat::GarbageArgs,
                    _ => AcceptStat::SystemErr,
                };
                MessageBody::Reply(ReplyBody::Accepted(AcceptedReply { verf, stat }))
            }
            _ => MessageBody::Reply(ReplyBody::Denied(if u.arbitrary()? {
                RejectedReply::RpcMismatch {
                    low: u.arbitrary()?,
                    high: u.arbitrary()?,
                }
            } else {
                let code = *u.choose(&AUTH_STAT_CODES)?;
                RejectedReply::AuthError {
                    stat: AuthStat::from_code(code).ok_or(arbitrary::Error::IncorrectFormat)?,
                }
            })),
        };
        Ok(Self(RpcMessage { xid, body }))
    }
}

/// [`RpcMessage`] headers from [`ArbitraryRpcMessage`]: encode, append arbitrary arguments or
/// results, then decode.
///
/// Expectation: the header decodes to itself and consumes exactly `encoded_len` bytes, leaving
/// the arguments or results that follow it alone; every prefix of the header is incomplete.
pub fn rpc_message_to_bytes_and_back(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(ArbitraryRpcMessage(msg)) = ArbitraryRpcMessage::arbitrary(&mut u) else {
        return;
    };
    let bytes = round_trip((), &msg);
    let cut = cut_point(&bytes).min(bytes.len() - 1);
    assert_eq!(RpcMessage::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
    let mut with_args = bytes.clone();
    with_args.extend_from_slice(u.take_rest());
    assert_eq!(RpcMessage::decode(&with_args), Ok(Some((msg, bytes.len()))));
}

/// A string for a bounded XDR field: NULs dropped, cut to `max` bytes on a character boundary.
fn bounded_text(u: &mut Unstructured<'_>, max: u32) -> arbitrary::Result<String> {
    let raw: String = u.arbitrary()?;
    let mut s = String::new();
    for c in raw.chars().filter(|&c| c != '\0') {
        if s.len() + c.len_utf8() > max as usize {
            break;
        }
        s.push(c);
    }
    Ok(s)
}

/// A [`LogEntry`] built by [`Arbitrary`]: each string within its bound, without NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArbitraryLogEntry(pub LogEntry);

impl<'a> Arbitrary<'a> for ArbitraryLogEntry {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let user = bounded_text(u, log::USER_MAX)?;
        let op = bounded_text(u, log::OP_MAX)?;
        let timestamp = bounded_text(u, log::TIMESTAMP_MAX)?;
        let file = bounded_text(u, log::FILE_MAX)?;
        LogEntry::new(&user, &op, &timestamp, &file)
            .map(Self)
            .map_err(|_| arbitrary::Error::IncorrectFormat)
    }
}

/// [`LogEntry`] values from [`ArbitraryLogEntry`]: encode, then decode; and a SENDLOG call
/// carrying the entry through the dispatcher.
///
/// Expectation: `decode(encode(entry)) == (entry, encoded_len)`; [`log::dispatch`] of
/// [`log::sendlog_call`] yields the same entry and a reply that decodes to `(xid, Ok(0))`.
pub fn log_entry_to_bytes_and_back(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(ArbitraryLogEntry(entry)), Ok(xid)) =
        (ArbitraryLogEntry::arbitrary(&mut u), u.arbitrary::<u32>())
    else {
        return;
    };
    round_trip((), &entry);
    check_log_entry(&entry);
    match log::dispatch(&to_vec(&log::sendlog_call(xid, &entry))) {
        Dispatch::Reply {
            reply,
            entry: Some(got),
        } => {
            assert_eq!(got, entry);
            let reply = to_vec(&reply);
            assert_eq!(log::decode_sendlog_reply(&reply), Ok(Some((xid, Ok(0)))));
        }
        other => panic!("SENDLOG of {entry:?} dispatched as {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_split_matches_known_cases() {
        let split = reference_split(b"\x00\x00\x00\x01a\x80\x00\x00\x01b\x80\x00", 10);
        assert_eq!(split.records, vec![b"ab".to_vec()]);
        assert_eq!(
            (split.error, split.mid_record, split.leftover),
            (None, false, 2)
        );
        let split = reference_split(b"\x80\x00\x00\x0b", 10);
        assert_eq!(
            split.error,
            Some(RecordError::TooLarge { len: 11, max: 10 })
        );
        let split = reference_split(b"\x00\x00\x00\x00", 10);
        assert_eq!(split.error, Some(RecordError::EmptyFragment));
    }
}
