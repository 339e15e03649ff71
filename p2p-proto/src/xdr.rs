//! TODO: xdr
