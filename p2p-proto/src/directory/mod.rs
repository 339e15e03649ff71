//! Directory protocol.
