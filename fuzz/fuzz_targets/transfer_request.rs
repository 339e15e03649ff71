#![no_main]

use libfuzzer_sys::fuzz_target;
use p2p_proto::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::transfer_request(data));
