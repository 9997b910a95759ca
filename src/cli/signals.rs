//! A second signal while `watch --headless` stops cleanly ends it at once, saying so.
//!
//! The first SIGINT or SIGTERM asks for a clean stop (status 0). One that comes while
//! that stop is under way ends the process at once with status 1, and like every
//! non-zero exit it says why, in one line. A repeat within a second is the same request,
//! not a second one: `timeout`, for one, signals its child and then the child's whole
//! process group, so camwatch gets the same SIGTERM twice at once (that used to end it
//! with status 1 and no word).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How long after the first signal another one is still the same request.
const REPEAT_MS: u64 = 1000;

/// After `signal` has set `stop`, a later one (a second apart or more) ends the process.
/// Register it before the handler that sets `stop`: handlers run in that order.
pub fn end_at_a_second(signal: i32, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let first_ms = Arc::new(AtomicU64::new(0));
    let handler = move || {
        let now = monotonic_ms();
        let first = first_ms.load(Ordering::SeqCst);
        if !stop.load(Ordering::SeqCst) || first == 0 {
            first_ms.store(now.max(1), Ordering::SeqCst);
            return;
        }
        if now.saturating_sub(first) < REPEAT_MS {
            return;
        }
        const SAID: &[u8] = b"camwatch: a second signal while stopping: ended at once\n";
        // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is static.
        unsafe {
            libc::write(2, SAID.as_ptr().cast(), SAID.len());
            libc::_exit(1);
        }
    };
    // SAFETY: the handler only touches atomics and calls async-signal-safe functions
    // (clock_gettime, write, _exit); it neither allocates nor locks.
    unsafe { signal_hook::low_level::register(signal, handler) }.map(drop)
}

/// Milliseconds on the monotonic clock (async-signal-safe).
fn monotonic_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec on the stack.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1000 + now.tv_nsec as u64 / 1_000_000
}
