//! TODO: timestamp
