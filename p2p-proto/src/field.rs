//! TODO: field
