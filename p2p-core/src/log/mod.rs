//! Log service and client.
