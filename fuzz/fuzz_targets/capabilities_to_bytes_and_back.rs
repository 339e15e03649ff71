#![no_main]

p2p_proto::fuzz_target!(capabilities_to_bytes_and_back);
