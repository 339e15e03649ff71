#![no_main]

p2p_proto::fuzz_target!(record_reassembler);
