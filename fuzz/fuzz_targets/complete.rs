//! The scanner's "is this file complete yet?" test on arbitrary bytes and on every
//! prefix of them: it may say yes or no, never panic, hang or exhaust memory, and a
//! strict prefix of a pickle that parses whole is never complete.
#![no_main]

use camwatch::checkpoint::complete::{is_complete, missing_end};
use camwatch::checkpoint::{Format, detect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let complete = is_complete(data);
    if !complete {
        let _ = missing_end(data);
    }
    // (Of a protocol camwatch reads: other bytes are garbage, "complete" to be reported.)
    let whole_pickle = matches!(detect(data), Ok(Format::Pdparams))
        && camwatch::checkpoint::pickle::parse(data).is_ok_and(|(_, end)| end == data.len());
    if whole_pickle {
        assert!(complete, "a pickle that parses whole is complete");
    }
    // Cuts at a few places, as a watcher sees a file being written.
    for cut in [data.len() / 4, data.len() / 2, data.len().saturating_sub(1)] {
        let prefix_complete = is_complete(&data[..cut]);
        if whole_pickle && cut < data.len() {
            assert!(!prefix_complete, "a strict prefix ({cut} bytes) of a whole pickle");
        }
    }
});
