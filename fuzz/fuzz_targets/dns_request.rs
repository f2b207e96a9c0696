//! DNS request path: any packet is dropped or answered with a reply that parses and fits its
//! transport, through parsing, admission, the local zone and the policies; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    boma::dns::fuzz_packet(data);
});
