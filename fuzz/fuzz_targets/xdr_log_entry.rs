#![no_main]

p2p_proto::fuzz_target!(xdr_log_entry);
