//! The runs of the sweeps being watched (`--runs`): those found at start, and a thread
//! that looks again every poll and sends the runs that appeared (or, once until it
//! changes, why a sweep could not be looked at).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::store::{Location, sweep};

pub struct Sweep {
    pub first: Vec<PathBuf>,
    pub joined: Receiver<Result<PathBuf, String>>,
}

impl Sweep {
    /// The sweeps `roots`, looked at now and then every `poll` until `stop`; and why a
    /// root could not be looked at now.
    pub fn start(
        roots: Vec<Location>,
        poll: Duration,
        stop: Arc<AtomicBool>,
    ) -> (Sweep, Vec<String>) {
        let find = move |roots: &[Location]| -> (Vec<PathBuf>, Vec<String>) {
            let (mut found, mut errors) = (Vec::new(), Vec::new());
            for root in roots {
                match sweep::runs(root) {
                    Ok(runs) => found.extend(runs),
                    Err(e) => errors.push(e),
                }
            }
            (found, errors)
        };
        let (first, errors) = find(&roots);
        let (tx, joined) = mpsc::channel();
        let mut known: HashSet<PathBuf> = first.iter().cloned().collect();
        let mut said = errors.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let end = Instant::now() + poll;
                while Instant::now() < end {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let (found, errors) = find(&roots);
                for e in errors.iter().filter(|e| !said.contains(e)) {
                    if tx.send(Err(e.clone())).is_err() {
                        return;
                    }
                }
                said = errors;
                for run in found {
                    if known.insert(run.clone()) && tx.send(Ok(run)).is_err() {
                        return;
                    }
                }
            }
        });
        (Sweep { first, joined }, errors)
    }
}
