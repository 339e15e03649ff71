#![no_main]

p2p_proto::fuzz_target!(directory_request_to_bytes_and_back);
