#![no_main]

p2p_proto::fuzz_target!(transfer_get_file);
