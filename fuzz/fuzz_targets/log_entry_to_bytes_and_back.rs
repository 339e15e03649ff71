#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| p2p_proto::fuzzing::log_entry_to_bytes_and_back(data));
