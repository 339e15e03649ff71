//! Console texts.
