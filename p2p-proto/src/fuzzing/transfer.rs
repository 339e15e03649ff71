//! Fuzz target bodies of the transfer protocol (`GET_FILE`, `GET_FILE_FROM` and their headers).

use super::*;

/// Peer ↔ peer `GET_FILE` request decoder ([`GetFile::decode`]).
///
/// Expectation: no panic; a decoded request re-encodes to exactly the bytes consumed.
pub fn transfer_get_file(data: &[u8]) {
    if let Ok(Some((request, consumed))) = decode_streaming(data, GetFile::decode) {
        let bytes = round_trip((), &request);
        assert_eq!(&bytes[..], &data[..consumed]);
        assert!(bytes.len() <= crate::transfer::MAX_GET_FILE_LEN);
    }
}

/// Transfer reply header decoder ([`TransferHeader::decode`]).
///
/// Expectation: no panic; the body after the header is never consumed; a decoded header re-encodes
/// to a value-equal header no longer than the bytes consumed (a `SIZE` may carry leading zeros,
/// the re-encoding has none).
pub fn transfer_header(data: &[u8]) {
    if let Ok(Some((header, consumed))) = decode_streaming(data, TransferHeader::decode) {
        let bytes = round_trip((), &header);
        assert!(bytes.len() <= consumed, "{header:?} re-encoded longer");
        assert!(bytes.len() <= crate::transfer::MAX_HEADER_LEN);
        assert_eq!(data[0], header.code());
        if !matches!(header, TransferHeader::Ok { .. }) {
            assert_eq!(consumed, 1);
        }
    }
}

/// Either transfer request, as a serving peer reads it ([`TransferRequest::decode`]:
/// `GET_FILE` and `GET_FILE_FROM`).
///
/// Expectation: no panic; a decoded request re-encodes to a value-equal request no longer than
/// the bytes consumed (an `OFFSET` may carry leading zeros).
pub fn transfer_request(data: &[u8]) {
    if let Ok(Some((request, consumed))) = decode_streaming(data, TransferRequest::decode) {
        let bytes = round_trip((), &request);
        assert!(bytes.len() <= consumed, "{request:?} re-encoded longer");
        assert!(bytes.len() <= crate::transfer::MAX_GET_FILE_FROM_LEN);
        if let TransferRequest::GetFile(_) = request {
            assert_eq!(&bytes[..], &data[..consumed]);
        }
    }
}

/// `GET_FILE_FROM` reply header decoder ([`GetFileFromHeader::decode`]).
///
/// Expectation: no panic; the body after the header is never consumed; a decoded header
/// re-encodes to a value-equal header no longer than the bytes consumed; a digest is only ever
/// its one canonical form, so it re-encodes to the very bytes received.
pub fn transfer_from_header(data: &[u8]) {
    if let Ok(Some((header, consumed))) = decode_streaming(data, GetFileFromHeader::decode) {
        let bytes = round_trip((), &header);
        assert!(bytes.len() <= consumed, "{header:?} re-encoded longer");
        assert!(bytes.len() <= crate::transfer::MAX_FROM_HEADER_LEN);
        assert_eq!(data[0], header.code());
        match header {
            GetFileFromHeader::Ok { .. } => {
                let digest_at = consumed - crate::transfer::DIGEST_LEN - 1;
                assert_eq!(
                    &data[digest_at..consumed],
                    &bytes[bytes.len() - crate::transfer::DIGEST_LEN - 1..]
                );
            }
            _ => assert_eq!(consumed, 1),
        }
    }
}
