//! Fuzz target bodies of the directory protocol (requests, replies, `CAPABILITIES`, `SEARCH`
//! queries) and of the `DATETIME` field.

use super::*;

/// Directory request decoder ([`Request::decode`]) and its streaming form ([`RequestDecoder`]).
///
/// Expectation: no panic; a decoded request re-encodes to the bytes it came from (values only for
/// `CONNECT`, whose `PORT` may carry leading zeros) and decodes back to itself; an error names
/// the operation only when the input starts with that operation's `OP` field; the
/// [`RequestDecoder`] fed the input in two chunks, and byte by byte, answers exactly as the one-shot
/// decoder does.
pub fn directory_request(data: &[u8]) {
    let whole = decode_streaming(data, Request::decode);
    match &whole {
        Ok(Some((request, consumed))) => {
            let bytes = round_trip((), request);
            assert!(bytes.len() <= crate::directory::MAX_REQUEST_LEN);
            if !matches!(request.body, RequestBody::Connect { .. }) {
                assert_eq!(
                    &bytes[..],
                    &data[..*consumed],
                    "{request:?} is not re-encoded as received"
                );
            }
        }
        Ok(None) => {}
        Err(error) => {
            if let Some(op) = error.op {
                let name = op.as_str().as_bytes();
                assert!(
                    data.starts_with(name) && data.get(name.len()) == Some(&0),
                    "error {error:?} names an operation the input does not start with"
                );
            }
        }
    }

    // Two chunks: every answer of the decoder is the one-shot answer for the same bytes.
    let cut = cut_point(data);
    let mut decoder = RequestDecoder::new();
    let first = decode_from(&mut decoder, &data[..cut]);
    assert_eq!(
        first,
        Request::decode(&data[..cut]),
        "first chunk of {cut} bytes"
    );
    if first == Ok(None) {
        assert_eq!(
            decode_from(&mut decoder, data),
            whole,
            "second chunk after {cut} bytes"
        );
    }

    // Byte by byte: the decoder decides at the first byte where the one-shot decoder does.
    let mut decoder = RequestDecoder::new();
    decides_like_the_whole(data, &whole, |b| decode_from(&mut decoder, b));
}

/// Directory reply decoder ([`Reply::decode`]); the first byte selects the [`OpCode`] answered
/// (modulo 11, in [`OpCode::ALL`] order: the nine of §1, then `SEARCH` and `PING`), the rest is
/// the reply.
///
/// Expectation: no panic; a decoded reply answers that operation, re-encodes to bytes of
/// `encoded_len` that decode to the same value (values compared: counts and ports may carry
/// leading zeros and IP addresses have several spellings).
pub fn directory_reply(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let op = OpCode::ALL[usize::from(selector) % OpCode::ALL.len()];
    let decode = |b: &[u8]| Reply::decode_with(op, b);
    if let Ok(Some((reply, _))) = decode_streaming(bytes, decode) {
        assert_eq!(reply.op(), op, "reply to the wrong operation");
        assert_eq!(reply.is_ok(), reply.code() == 0);
        round_trip(op, &reply);
    }
}

/// What a directory server reads ([`ServerMessage::decode`], [`ServerMessageDecoder`]): a request
/// or `CAPABILITIES\0`.
///
/// Expectation: no panic; on input starting with `CAPABILITIES\0` exactly that message, 13 bytes
/// consumed, and [`CapabilitiesRequest::decode`] agrees; on any other input exactly
/// [`Request::decode`]'s answer; a decoded message re-encodes to the bytes consumed (values
/// only for `CONNECT`); the [`ServerMessageDecoder`] fed byte by byte decides at the first byte
/// where the one-shot decoder does, with the same answer.
pub fn directory_server_message(data: &[u8]) {
    let whole = decode_streaming(data, ServerMessage::decode);
    if data.starts_with(b"CAPABILITIES\0") {
        assert_eq!(whole, Ok(Some((ServerMessage::Capabilities, 13))));
        assert_eq!(
            CapabilitiesRequest::decode(data),
            Ok(Some((CapabilitiesRequest, 13)))
        );
    } else {
        let request = Request::decode(data).map(|o| o.map(|(r, n)| (ServerMessage::Request(r), n)));
        assert_eq!(whole, request, "differs from the request decoder");
        assert!(
            !matches!(CapabilitiesRequest::decode(data), Ok(Some(_))),
            "CAPABILITIES decoded from other bytes"
        );
    }
    if let Ok(Some((message, consumed))) = &whole {
        let bytes = round_trip((), message);
        if !matches!(
            message,
            ServerMessage::Request(Request {
                body: RequestBody::Connect { .. },
                ..
            })
        ) {
            assert_eq!(
                &bytes[..],
                &data[..*consumed],
                "{message:?} not re-encoded as received"
            );
        }
    }
    let mut decoder = ServerMessageDecoder::new();
    decides_like_the_whole(data, &whole, |b| decode_from(&mut decoder, b));
}

/// `CAPABILITIES` reply decoder ([`CapabilitiesReply::decode`]).
///
/// Expectation: no panic; a decoded reply lists at most
/// [`MAX_CAPABILITIES`](crate::directory::MAX_CAPABILITIES) names, re-encodes to bytes of
/// `encoded_len` that decode to the same value (the count may carry leading zeros), and
/// `supports` agrees with the names.
pub fn capabilities_reply(data: &[u8]) {
    if let Ok(Some((reply, consumed))) = decode_streaming(data, CapabilitiesReply::decode) {
        assert!(reply.operations.len() <= crate::directory::MAX_CAPABILITIES);
        let bytes = round_trip((), &reply);
        assert!(bytes.len() <= consumed);
        for op in OpCode::ALL {
            assert_eq!(
                reply.supports(op),
                reply.known_ops().any(|known| known == op),
                "{op}"
            );
        }
    }
}

/// `SEARCH`'s query rules ([`SearchQuery::terms`]) and words ([`search_words`]) on any bytes.
///
/// Expectation: no panic; good terms number 1 to 8, are non-empty, at most
/// `MAX_SEARCH_TERM_LEN` bytes as sent, lowercase, and every one is a word of the query text
/// itself, so [`matches`] finds a good query in its own text (as a file name and as a
/// description); the words of any text are non-empty and hold only letters and digits (before
/// lowercasing, which may add marks such as U+0307).
pub fn search_query(data: &[u8]) {
    let Ok(query) = SearchQuery::from_bytes(data) else {
        return;
    };
    assert_eq!(query.as_bytes(), data);
    let text = String::from_utf8_lossy(data);
    for word in search_words(&text) {
        assert!(!word.is_empty());
    }
    let Ok(terms) = query.terms() else {
        return;
    };
    let text = query.as_str().expect("good queries are UTF-8");
    assert!((1..=MAX_SEARCH_TERMS).contains(&terms.len()));
    let sent: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(sent.len(), terms.len());
    for (term, raw) in terms.iter().zip(sent) {
        assert!(!term.as_str().is_empty() && raw.len() <= MAX_SEARCH_TERM_LEN);
        assert!(raw.chars().all(char::is_alphanumeric), "{raw:?}");
        assert!(
            search_words(raw).eq([std::borrow::Cow::Borrowed(term.as_str())]),
            "{raw:?}"
        );
    }
    assert!(matches(&terms, text, ""), "{text:?} does not match itself");
    assert!(matches(&terms, "", text), "{text:?} does not match itself");
}

/// [`ServerMessage`] and [`CapabilitiesReply`] values from [`arbitrary`]: encode, then decode.
///
/// Expectation: `decode(encode(x)) == (x, encoded_len)` for both, the message also through
/// [`ServerMessageDecoder`] in two chunks.
pub fn capabilities_to_bytes_and_back(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if let Ok(message) = ServerMessage::arbitrary(&mut u) {
        let bytes = round_trip((), &message);
        let cut = cut_point(&bytes).min(bytes.len() - 1);
        let mut decoder = ServerMessageDecoder::new();
        assert_eq!(decode_from(&mut decoder, &bytes[..cut]), Ok(None));
        assert_eq!(
            decode_from(&mut decoder, &bytes),
            Ok(Some((message, bytes.len()))),
            "ServerMessageDecoder after a cut at {cut}"
        );
    }
    if let Ok(reply) = CapabilitiesReply::arbitrary(&mut u) {
        round_trip((), &reply);
    }
}

/// The `DD/MM/YYYY HH:MM:SS` field ([`Timestamp::parse`]) and its chrono conversions.
///
/// Expectation: no panic; `parse` accepts exactly the pattern-shaped 19 bytes and keeps them
/// verbatim; a real date converts to chrono and back to the same bytes. When the input holds at
/// least 8 bytes, they are also read as seconds since the epoch: [`Timestamp::from_naive`] of that
/// time always matches the pattern, and converts back to the time for years 0000..=9999.
pub fn timestamp(data: &[u8]) {
    match Timestamp::parse(data) {
        Ok(ts) => {
            assert!(Timestamp::matches_pattern(data));
            assert_eq!(&ts.as_bytes()[..], data);
            assert_eq!(ts.as_str().as_bytes(), data);
            assert_eq!(ts.to_string().parse::<Timestamp>(), Ok(ts));
            if let Some(dt) = ts.to_naive() {
                assert_eq!(Timestamp::from_naive(dt), ts, "{dt} does not format back");
            }
        }
        Err(_) => assert!(!Timestamp::matches_pattern(data)),
    }
    if let Some(secs) = data.first_chunk::<8>() {
        let secs = i64::from_be_bytes(*secs);
        if let Some(dt) = chrono::DateTime::from_timestamp(secs, 0) {
            let dt = dt.naive_utc();
            let ts = Timestamp::from_naive(dt);
            assert!(Timestamp::matches_pattern(ts.as_bytes()), "{dt} → {ts:?}");
            if (0..=9999).contains(&chrono::Datelike::year(&dt)) {
                assert_eq!(ts.to_naive(), Some(dt), "{dt} → {ts:?}");
            }
        }
    }
}

/// [`Request`] values from [`arbitrary`]: encode, then decode.
///
/// Expectation: `decode(encode(request)) == (request, encoded_len)`, also through
/// [`RequestDecoder`] in two chunks; every encoding is at most
/// [`MAX_REQUEST_LEN`](crate::directory::MAX_REQUEST_LEN) bytes.
pub fn directory_request_to_bytes_and_back(data: &[u8]) {
    let Ok(request) = Request::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let bytes = round_trip((), &request);
    assert!(bytes.len() <= crate::directory::MAX_REQUEST_LEN);
    let cut = cut_point(&bytes).min(bytes.len() - 1);
    let mut decoder = RequestDecoder::new();
    assert_eq!(decode_from(&mut decoder, &bytes[..cut]), Ok(None));
    assert_eq!(
        decode_from(&mut decoder, &bytes),
        Ok(Some((request, bytes.len()))),
        "RequestDecoder after a cut at {cut}"
    );
}

/// [`Reply`] values from [`arbitrary`]: encode, then decode for the reply's operation.
///
/// Expectation: `decode(op, encode(reply)) == (reply, encoded_len)`.
pub fn directory_reply_to_bytes_and_back(data: &[u8]) {
    let Ok(reply) = Reply::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let op = reply.op();
    let bytes = round_trip(op, &reply);
    assert_eq!(bytes[0], reply.code());
}
