//! Test helpers of the crate's unit tests (the codec checks themselves are [`crate::testing`]).

pub(crate) use crate::testing::known_answer;

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

/// [`known_answer`] for a message that needs no context.
pub(crate) fn check_kat<T>(bytes: &[u8], expected: &T)
where
    T: crate::Encode + crate::Decode + PartialEq + std::fmt::Debug,
    T::Error: std::fmt::Debug,
{
    known_answer((), bytes, expected);
}
