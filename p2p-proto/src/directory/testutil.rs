//! Test helpers shared by the directory and transfer tests.

use std::fmt::Debug;

/// Bytes from a hex string (whitespace ignored); panics on bad hex (test input only).
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ascii hex");
            u8::from_str_radix(pair, 16).expect("hex digit pair")
        })
        .collect()
}

/// Known-answer test of one message:
/// - `encode(expected)` is exactly `bytes`;
/// - `bytes` followed by junk decodes to `expected`, consuming exactly `bytes.len()`;
/// - every strict prefix of `bytes` decodes as incomplete (`Ok(None)`).
pub(crate) fn check_kat<T, E>(
    bytes: &[u8],
    expected: &T,
    decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
    encode: impl Fn(&T) -> Vec<u8>,
) where
    T: PartialEq + Debug,
    E: PartialEq + Debug,
{
    assert_eq!(encode(expected), bytes, "encoding of {expected:?}");
    let mut with_junk = bytes.to_vec();
    with_junk.extend_from_slice(b"???");
    match decode(&with_junk) {
        Ok(Some((value, consumed))) => {
            assert_eq!(&value, expected, "decoding of {bytes:02x?}");
            assert_eq!(consumed, bytes.len(), "consumed of {bytes:02x?}");
            assert_eq!(&with_junk[consumed..], b"???");
        }
        other => panic!("decoding of {bytes:02x?} gave {other:?}"),
    }
    for cut in 0..bytes.len() {
        assert_eq!(
            decode(&bytes[..cut]),
            Ok(None),
            "prefix of {cut} bytes of {bytes:02x?}"
        );
    }
}
