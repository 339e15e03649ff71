#![no_main]

p2p_proto::fuzz_target!(rpc_dispatch);
