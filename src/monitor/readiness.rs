//! When is a checkpoint file ready to read? Trainers write straight into the final path,
//! so a file is read only once its size and modification time have stood still for a
//! settling time; a file that is still incomplete then (no end marker) is checked again
//! with growing pauses, and reported as an error if it stays incomplete and unchanged
//! for long. Pure bookkeeping over [`Instant`]s: the caller stats and reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::scan::Fingerprint;

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long size and mtime must stay unchanged before the file is read.
    pub settle: Duration,
    /// How long an incomplete file may stay unchanged before it is reported.
    pub give_up: Duration,
}

/// Longest pause between two checks of an incomplete file.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

#[derive(Debug)]
struct Tracked {
    fingerprint: Fingerprint,
    changed_at: Instant,
    state: State,
}

#[derive(Debug, PartialEq)]
enum State {
    Waiting {
        check_at: Instant,
        attempts: u32,
    },
    /// Read (or reported) at this fingerprint; nothing to do until it changes.
    Settled,
}

/// What became of a file that was read and found without its end marker.
#[derive(Debug, PartialEq)]
pub enum Incomplete {
    /// Look again later.
    Retry,
    /// Unchanged for this long and still incomplete: report it.
    GiveUp(Duration),
}

#[derive(Debug)]
pub struct Tracker {
    timing: Timing,
    files: HashMap<PathBuf, Tracked>,
}

impl Tracker {
    pub fn new(timing: Timing) -> Self {
        Tracker {
            timing,
            files: HashMap::new(),
        }
    }

    /// A file already in the history at this fingerprint: not read again unless it changes.
    pub fn known(&mut self, path: PathBuf, fingerprint: Fingerprint, now: Instant) {
        self.files.insert(
            path,
            Tracked {
                fingerprint,
                changed_at: now,
                state: State::Settled,
            },
        );
    }

    /// Records what `path` looks like now (`None`: gone). A new or changed file waits for
    /// the settling time before it is due.
    pub fn observe(&mut self, path: &Path, fingerprint: Option<Fingerprint>, now: Instant) {
        let Some(fingerprint) = fingerprint else {
            self.files.remove(path);
            return;
        };
        if self
            .files
            .get(path)
            .is_some_and(|t| t.fingerprint == fingerprint)
        {
            return;
        }
        self.files.insert(
            path.to_path_buf(),
            Tracked {
                fingerprint,
                changed_at: now,
                state: State::Waiting {
                    check_at: now + self.timing.settle,
                    attempts: 0,
                },
            },
        );
    }

    /// Its writer closed `path` (or renamed it into place): it is due now, without the
    /// settling time; the end-marker check still decides whether it is whole.
    pub fn written(&mut self, path: &Path, fingerprint: Option<Fingerprint>, now: Instant) {
        self.observe(path, fingerprint, now);
        if let Some(tracked) = self.files.get_mut(path)
            && let State::Waiting { check_at, .. } = &mut tracked.state
        {
            *check_at = now;
        }
    }

    /// Forgets `path`: the next observation treats it as new.
    pub fn forget(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// Forgets every file not in `present` (after a full scan: they were deleted).
    pub fn retain(&mut self, present: &std::collections::HashSet<PathBuf>) {
        self.files.retain(|path, _| present.contains(path));
    }

    /// Files to read now, with the fingerprint they must still have when read.
    pub fn due(&self, now: Instant) -> Vec<(PathBuf, Fingerprint)> {
        let mut due: Vec<_> = self
            .files
            .iter()
            .filter(|(_, t)| matches!(t.state, State::Waiting { check_at, .. } if check_at <= now))
            .map(|(path, t)| (path.clone(), t.fingerprint))
            .collect();
        due.sort_by(|a, b| a.0.cmp(&b.0));
        due
    }

    /// When the next file falls due, if any is waiting.
    pub fn next_check(&self) -> Option<Instant> {
        self.files
            .values()
            .filter_map(|t| match t.state {
                State::Waiting { check_at, .. } => Some(check_at),
                State::Settled => None,
            })
            .min()
    }

    /// The file was read whole (or reported): nothing more until it changes.
    pub fn settled(&mut self, path: &Path) {
        if let Some(tracked) = self.files.get_mut(path) {
            tracked.state = State::Settled;
        }
    }

    /// The file was read and has no end marker yet.
    pub fn incomplete(&mut self, path: &Path, now: Instant) -> Incomplete {
        let Some(tracked) = self.files.get_mut(path) else {
            return Incomplete::Retry;
        };
        let unchanged = now.saturating_duration_since(tracked.changed_at);
        if unchanged >= self.timing.give_up {
            tracked.state = State::Settled;
            return Incomplete::GiveUp(unchanged);
        }
        let attempts = match tracked.state {
            State::Waiting { attempts, .. } => attempts + 1,
            State::Settled => 1,
        };
        let pause = (self.timing.settle.max(Duration::from_millis(50))
            * 2u32.pow(attempts.min(16)))
        .min(MAX_BACKOFF);
        // Never later than the moment the file would be given up on.
        let check_at = (now + pause).min(tracked.changed_at + self.timing.give_up);
        tracked.state = State::Waiting { check_at, attempts };
        Incomplete::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        settle: Duration::from_millis(500),
        give_up: Duration::from_secs(30),
    };

    fn fp(size: u64, mtime_ns: i64) -> Fingerprint {
        Fingerprint { size, mtime_ns }
    }

    #[test]
    fn a_file_is_due_once_it_stands_still() {
        let t0 = Instant::now();
        let path = Path::new("epoch_1.pdparams");
        let mut tracker = Tracker::new(TIMING);
        tracker.observe(path, Some(fp(10, 1)), t0);
        assert!(tracker.due(t0).is_empty());
        // Still growing: the settling time starts again.
        tracker.observe(path, Some(fp(20, 2)), t0 + Duration::from_millis(400));
        assert!(tracker.due(t0 + Duration::from_millis(600)).is_empty());
        let ready = t0 + Duration::from_millis(900);
        assert_eq!(tracker.next_check(), Some(ready));
        assert_eq!(tracker.due(ready), vec![(path.to_path_buf(), fp(20, 2))]);
        tracker.settled(path);
        assert!(tracker.due(ready + TIMING.give_up).is_empty());
        assert_eq!(tracker.next_check(), None);
        // Rewritten in place (latest.pdparams): due again.
        tracker.observe(path, Some(fp(20, 3)), ready);
        assert_eq!(tracker.due(ready + TIMING.settle).len(), 1);
    }

    #[test]
    fn a_closed_file_is_due_at_once_but_a_settled_one_stays_settled() {
        let t0 = Instant::now();
        let path = Path::new("epoch_2.pdparams");
        let mut tracker = Tracker::new(TIMING);
        tracker.observe(path, Some(fp(10, 1)), t0);
        let closed = t0 + Duration::from_millis(100);
        tracker.written(path, Some(fp(20, 2)), closed);
        assert_eq!(tracker.due(closed), vec![(path.to_path_buf(), fp(20, 2))]);
        tracker.settled(path);
        // The same bytes closed again (a reader that opened it for writing): nothing.
        tracker.written(path, Some(fp(20, 2)), closed);
        assert!(tracker.due(closed + TIMING.give_up).is_empty());
        // Incomplete at the close: the usual back-off, until the next close.
        tracker.written(path, Some(fp(30, 3)), closed);
        assert_eq!(tracker.incomplete(path, closed), Incomplete::Retry);
        assert!(tracker.due(closed + Duration::from_millis(10)).is_empty());
        let again = closed + Duration::from_millis(20);
        tracker.written(path, Some(fp(40, 4)), again);
        assert_eq!(tracker.due(again).len(), 1);
    }

    #[test]
    fn incomplete_files_back_off_then_are_given_up() {
        let t0 = Instant::now();
        let path = Path::new("cut.pdparams");
        let mut tracker = Tracker::new(TIMING);
        tracker.observe(path, Some(fp(10, 1)), t0);
        let mut now = t0 + TIMING.settle;
        let mut pauses = Vec::new();
        loop {
            match tracker.incomplete(path, now) {
                Incomplete::Retry => {
                    let next = tracker.next_check().unwrap();
                    pauses.push(next - now);
                    now = next;
                }
                Incomplete::GiveUp(after) => {
                    assert_eq!(after, TIMING.give_up);
                    break;
                }
            }
        }
        assert_eq!(pauses[0], Duration::from_secs(1));
        assert_eq!(pauses[1], Duration::from_secs(2));
        assert!(pauses.iter().all(|p| *p <= MAX_BACKOFF));
        assert_eq!(now, t0 + TIMING.give_up);
        assert_eq!(tracker.next_check(), None);
        // Known files and deleted files are not due.
        tracker.known(PathBuf::from("old.pdparams"), fp(1, 1), now);
        tracker.observe(path, None, now);
        assert!(tracker.due(now + TIMING.give_up).is_empty());
    }
}
