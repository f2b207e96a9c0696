//! DHCP server packet path: any packet is dropped with a reason or parsed, and every reply the
//! server could make to it (OFFER, ACK, NAK) emits within the 576-byte limit and parses back with
//! smoltcp's own parser; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    boma::net::dhcp::fuzz_packet(data);
});
