//! The `.pdparams` reader (pickle machine + NumPy arrays + split-array joining) on
//! arbitrary bytes: it may reject them, never panic, hang or exhaust memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = camwatch::checkpoint::pdparams::read(data);
});
