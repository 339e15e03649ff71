//! Datetime service and client.
