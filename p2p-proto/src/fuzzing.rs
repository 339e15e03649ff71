//! Fuzz target bodies, compiled and linted with the crate (feature `fuzzing`).
