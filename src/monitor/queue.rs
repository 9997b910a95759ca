//! Checkpoints waiting for the worker. The newest is taken first (a person watching a
//! run wants the latest epoch now), but nothing is dropped: older ones follow, so the
//! history has every checkpoint. A file queued again (rewritten before its turn)
//! replaces its older entry: its old content is gone from disk anyway.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::cam::engine::Cancel;

/// Position in the queue: larger is taken first.
type Key = (bool, i64, PathBuf);

#[derive(Debug)]
struct State<J> {
    jobs: BTreeMap<Key, J>,
    keys: HashMap<PathBuf, Key>,
    closed: bool,
}

#[derive(Debug)]
pub struct Queue<J> {
    state: Mutex<State<J>>,
    ready: Condvar,
    /// Cancelled by the next push or close: lets long background work (the trust
    /// metrics) give way to a new checkpoint at once.
    interrupt: Mutex<Option<Cancel>>,
}

impl<J> Default for Queue<J> {
    fn default() -> Self {
        Queue {
            state: Mutex::new(State {
                jobs: BTreeMap::new(),
                keys: HashMap::new(),
                closed: false,
            }),
            ready: Condvar::new(),
            interrupt: Mutex::new(None),
        }
    }
}

impl<J> Queue<J> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<J>> {
        // A panic elsewhere while holding the lock leaves the maps consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the job for `path`, written at `mtime_ns`. `urgent` jobs (cheap ones, such
    /// as recording an error) go before all others.
    pub fn push(&self, path: PathBuf, mtime_ns: i64, urgent: bool, job: J) {
        let mut state = self.lock();
        if let Some(old) = state.keys.remove(&path) {
            state.jobs.remove(&old);
        }
        let key = (urgent, mtime_ns, path.clone());
        state.keys.insert(path, key.clone());
        state.jobs.insert(key, job);
        self.ready.notify_one();
        drop(state);
        self.interrupt_now();
    }

    /// Cancels `token` when the next job arrives or the queue closes (replacing any
    /// earlier token), unless one is already waiting: then at once.
    pub fn interrupt_on_push(&self, token: Cancel) {
        *self.interrupt.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
        let state = self.lock();
        if !state.jobs.is_empty() || state.closed {
            drop(state);
            self.interrupt_now();
        }
    }

    fn interrupt_now(&self) {
        if let Some(token) = self
            .interrupt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            token.cancel();
        }
    }

    /// The newest job; waits up to `timeout` for one. `None` on timeout or once closed.
    pub fn pop(&self, timeout: Duration) -> Option<J> {
        let mut state = self.lock();
        if state.jobs.is_empty() && !state.closed {
            state = self
                .ready
                .wait_timeout_while(state, timeout, |s| s.jobs.is_empty() && !s.closed)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if state.closed {
            return None;
        }
        let ((_, _, path), job) = state.jobs.pop_last()?;
        state.keys.remove(&path);
        Some(job)
    }

    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Looks at the job `pop` would take now, with its path.
    pub fn peek_next<R>(&self, look: impl FnOnce(&Path, &J) -> R) -> Option<R> {
        let state = self.lock();
        let ((_, _, path), job) = state.jobs.last_key_value()?;
        Some(look(path, job))
    }

    /// Whether any queued job is as `test` says.
    pub fn any(&self, test: impl Fn(&J) -> bool) -> bool {
        self.lock().jobs.values().any(test)
    }

    /// Changes the job queued for `path`, if one still is.
    pub fn update(&self, path: &Path, change: impl FnOnce(&mut J)) {
        let mut state = self.lock();
        if let Some(key) = state.keys.get(path).cloned()
            && let Some(job) = state.jobs.get_mut(&key)
        {
            change(job);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes every waiter; `pop` returns `None` from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.interrupt_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const NOW: Duration = Duration::ZERO;

    #[test]
    fn a_push_interrupts_background_work() {
        let queue = Queue::default();
        let token = Cancel::default();
        queue.interrupt_on_push(token.clone());
        assert!(!token.is_cancelled());
        queue.push("a".into(), 1, false, 1);
        assert!(token.is_cancelled());
        // Something already waiting: interrupted at once.
        let late = Cancel::default();
        queue.interrupt_on_push(late.clone());
        assert!(late.is_cancelled());
        queue.pop(Duration::ZERO);
        let closing = Cancel::default();
        queue.interrupt_on_push(closing.clone());
        queue.close();
        assert!(closing.is_cancelled());
    }

    #[test]
    fn the_next_job_is_seen_and_changed_in_place() {
        let queue = Queue::default();
        assert_eq!(queue.peek_next(|_, j: &i64| *j), None);
        queue.push("epoch_1".into(), 1, false, 1);
        queue.push("epoch_2".into(), 2, false, 2);
        let next = queue.peek_next(|path, j| (path.to_path_buf(), *j));
        assert_eq!(next, Some(("epoch_2".into(), 2)));
        queue.update(Path::new("epoch_2"), |j| *j = 20);
        queue.update(Path::new("gone"), |j| *j = -1);
        assert!(queue.any(|j| *j == 20) && !queue.any(|j| *j == -1));
        // Changed, not moved: still taken first.
        let order: Vec<i64> = std::iter::from_fn(|| queue.pop(NOW)).collect();
        assert_eq!(order, [20, 1]);
    }

    #[test]
    fn newest_first_nothing_dropped() {
        let queue = Queue::default();
        for epoch in 1..=4 {
            queue.push(format!("epoch_{epoch}").into(), epoch, false, epoch);
        }
        // A rewrite of epoch_2 replaces its queued entry.
        queue.push("epoch_2".into(), 5, false, 20);
        queue.push("bad".into(), 0, true, -1);
        let order: Vec<i64> = std::iter::from_fn(|| queue.pop(NOW)).collect();
        assert_eq!(order, [-1, 20, 4, 3, 1]);
    }

    #[test]
    fn latest_wins_while_the_worker_is_busy() {
        let queue = Arc::new(Queue::default());
        let worker = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                let mut done = Vec::new();
                while let Some(job) = queue.pop(Duration::from_secs(5)) {
                    done.push(job);
                    if job == 1 {
                        // Busy with the first while 2, 3 and 4 arrive.
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    if done.len() == 4 {
                        break;
                    }
                }
                done
            })
        };
        queue.push("1".into(), 1, false, 1);
        std::thread::sleep(Duration::from_millis(50));
        for n in 2..=4 {
            queue.push(n.to_string().into(), n, false, n);
        }
        assert_eq!(worker.join().unwrap(), [1, 4, 3, 2]);
        queue.close();
        assert_eq!(queue.pop(Duration::from_secs(5)), None);
    }
}
