//! Feeds arbitrary bytes to the decoders that see untrusted client input:
//! the startup packet and the stream of frontend messages. They must never
//! panic; they return a message, "incomplete" or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proxy::protocol::{decode_frontend_message, decode_startup};

fuzz_target!(|data: &[u8]| {
    let _ = decode_startup(data);
    let mut rest = data;
    while let Ok(Some((_, used))) = decode_frontend_message(rest, 1 << 20) {
        rest = &rest[used..];
    }
});
