#![no_main]

p2p_proto::fuzz_target!(rpc_message_to_bytes_and_back);
