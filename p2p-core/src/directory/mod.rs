//! Directory server.
