#![no_main]

p2p_proto::fuzz_target!(log_entry_to_bytes_and_back);
