//! U-Boot environment blocks (the A/B state file on the boot partition): any bytes are decoded
//! or refused, never a panic; what decodes encodes again at the same size and decodes to the
//! same variables.
#![no_main]

use libfuzzer_sys::fuzz_target;

use boma::update::env;

fuzz_target!(|data: &[u8]| {
    // Give the fuzzer a correct CRC half of the time, so it reaches the entries.
    let mut block = data.to_vec();
    if block.len() >= 8 && block[0] & 1 == 0 {
        let crc = env::crc32(&block[4..]).to_le_bytes();
        block[..4].copy_from_slice(&crc);
    }
    if let Ok(vars) = env::decode(&block)
        && let Ok(again) = env::encode(&vars, block.len())
    {
        assert_eq!(env::decode(&again).ok(), Some(vars));
    }
});
