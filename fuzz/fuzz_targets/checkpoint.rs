//! Every reader behind format detection (pickle, torch ZIP, safetensors), then
//! architecture inference, on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, weights)) = camwatch::checkpoint::parse(data) {
        let _ = camwatch::model::infer(&weights, &Default::default());
    }
});
