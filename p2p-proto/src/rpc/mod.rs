//! ONC RPC.
