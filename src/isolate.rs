//! Running one job so that a panic in it (a bug that some file reaches) becomes that
//! job's one-line error instead of ending the thread, the monitor or the process.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs an isolated job: its panics are reported as the
    /// job's error, not printed by the panic hook.
    static ISOLATED: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `job`; a panic inside it comes back as `Err` with the panic's message.
pub fn isolated<T>(job: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !is_isolated() {
                previous(info);
            }
        }));
    });
    let outer = ISOLATED.replace(true);
    let result = panic::catch_unwind(AssertUnwindSafe(job));
    ISOLATED.set(outer);
    result.map_err(|payload| format!("internal error: {}", message(&*payload)))
}

/// Whether the current thread is inside [`isolated`]: a panic hook that would otherwise
/// act (restore the terminal, print) leaves such a panic to it.
pub fn is_isolated() -> bool {
    ISOLATED.get()
}

fn message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    // One line: libtorch's messages carry C++ backtraces.
    text.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error() {
        assert_eq!(isolated(|| 2 + 2), Ok(4));
        let error = isolated(|| -> usize {
            let v: Vec<usize> = Vec::new();
            v[3]
        })
        .unwrap_err();
        assert!(
            error.starts_with("internal error: index out of bounds"),
            "{error}"
        );
        assert!(!is_isolated());
    }
}
