//! TODO: rpcbind
