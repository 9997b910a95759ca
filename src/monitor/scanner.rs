//! The scanner thread: learns of files from a scan at start, file-system events (inotify
//! through notify) and periodic rescans (the only source with `--poll`, for network
//! file systems), waits until each is complete, and queues it for the worker.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::ScanMessage;
use super::epoch::epoch_of;
use super::queue::Queue;
use super::readiness::{Incomplete, Tracker};
use super::scan::{self, Fingerprint};
use super::worker::{Content, Job, Prepared, content_hash};
use crate::checkpoint::{self, complete};

pub struct Scanner {
    pub dir: PathBuf,
    /// camwatch's own folder, never scanned (its writes are not checkpoints).
    pub skip: PathBuf,
    pub tracker: Tracker,
    pub queue: Arc<Queue<Job>>,
    pub messages: Receiver<ScanMessage>,
    /// Time between full scans: `--poll`, or a slow safety net beside events.
    pub rescan_every: Duration,
}

impl Scanner {
    pub fn run(mut self) {
        self.rescan(Instant::now());
        let mut next_rescan = Instant::now() + self.rescan_every;
        loop {
            let now = Instant::now();
            let wake = self
                .tracker
                .next_check()
                .map_or(next_rescan, |t| t.min(next_rescan));
            let first = match self
                .messages
                .recv_timeout(wake.saturating_duration_since(now))
            {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Drain, then act once: a burst of write events becomes one look at the file.
            let mut paths = HashSet::new();
            let mut written = HashSet::new();
            let mut rescan = false;
            let mut prepare = false;
            for message in first.into_iter().chain(self.messages.try_iter()) {
                match message {
                    ScanMessage::Stop => return,
                    ScanMessage::Rescan => rescan = true,
                    ScanMessage::Paths(p) => paths.extend(p),
                    ScanMessage::Written(p) => written.extend(p),
                    ScanMessage::PrepareNext => prepare = true,
                    ScanMessage::Recheck(p) => {
                        self.tracker.forget(&p);
                        paths.insert(p);
                    }
                }
            }
            let now = Instant::now();
            if rescan || now >= next_rescan {
                self.rescan(now);
                next_rescan = now + self.rescan_every;
            } else {
                for path in paths {
                    self.observe(path, now);
                }
            }
            // After the rescan too: it does not know who closed what.
            for path in written {
                if !path.starts_with(&self.skip) && scan::is_checkpoint_name(&path) {
                    let fingerprint = Fingerprint::of(&path);
                    self.tracker.written(&path, fingerprint, now);
                }
            }
            for (path, fingerprint) in self.tracker.due(Instant::now()) {
                self.check(path, fingerprint);
            }
            if prepare {
                self.prepare_next();
            }
        }
    }

    /// Reads, hashes and parses the job the worker takes next (a burst of checkpoints:
    /// the one after the one it computes), unless a parsed checkpoint already waits: one
    /// at most is held in memory.
    fn prepare_next(&mut self) {
        if self
            .queue
            .any(|job| matches!(job.content, Content::Prepared(_)))
        {
            return;
        }
        let next = self.queue.peek_next(|path, job| {
            matches!(job.content, Content::Unread).then(|| (path.to_path_buf(), job.fingerprint))
        });
        let Some(Some((path, fingerprint))) = next else {
            return;
        };
        // Changed while read, or unreadable: the events bring it again, or the worker
        // finds out what happened to it.
        let Some(prepared) = Prepared::read(&path, fingerprint) else {
            return;
        };
        self.queue.update(&path, |job| {
            if job.fingerprint == fingerprint && matches!(job.content, Content::Unread) {
                job.content = Content::Prepared(Box::new(prepared));
            }
        });
    }

    fn rescan(&mut self, now: Instant) {
        let found = scan::scan(&self.dir, &self.skip);
        let present: HashSet<PathBuf> = found.iter().cloned().collect();
        self.tracker.retain(&present);
        for path in found {
            let fingerprint = Fingerprint::of(&path);
            self.tracker.observe(&path, fingerprint, now);
        }
    }

    fn observe(&mut self, path: PathBuf, now: Instant) {
        if path.starts_with(&self.skip) {
            return;
        }
        if path.is_dir() {
            // A new folder (`<epoch>/` of older PaddleClas) may hold files written before
            // its watch was set up.
            for file in scan::scan(&path, &self.skip) {
                let fingerprint = Fingerprint::of(&file);
                self.tracker.observe(&file, fingerprint, now);
            }
        } else if scan::is_checkpoint_name(&path) {
            let fingerprint = Fingerprint::of(&path);
            self.tracker.observe(&path, fingerprint, now);
        }
    }

    /// Reads a file that has stood still: complete → queued; incomplete → later, or
    /// reported once it has stayed incomplete too long.
    fn check(&mut self, path: PathBuf, fingerprint: Fingerprint) {
        let now = Instant::now();
        let current = Fingerprint::of(&path);
        if current != Some(fingerprint) {
            self.tracker.observe(&path, current, now);
            return;
        }
        let read = checkpoint::with_file(&path, |data| {
            crate::isolate::isolated(|| {
                if !complete::is_complete(data) {
                    return (
                        Content::Hashed(content_hash(data)),
                        Some(complete::missing_end(data)),
                    );
                }
                // The worker's next job (it is busy with another, or idle): hashed and
                // parsed here and now, beside its computing. Later ones it reads itself,
                // so that one parsed checkpoint at most waits in memory.
                let content = if self.queue.is_empty() {
                    Content::Prepared(Box::new(Prepared::of(&path, data)))
                } else {
                    Content::Unread
                };
                (content, None)
            })
        });
        // Written to while being read: the bytes may be a mix, so they are not used.
        let after = Fingerprint::of(&path);
        if after != Some(fingerprint) {
            self.tracker.observe(&path, after, now);
            return;
        }
        let (content, failure) = match read {
            Ok(Err(panic)) => (
                Content::Hashed(unreadable_hash(fingerprint)),
                Some(format!("{}: {panic}", path.display())),
            ),
            Ok(Ok((content, None))) => (content, None),
            Ok(Ok((content, Some(missing)))) => match self.tracker.incomplete(&path, now) {
                Incomplete::Retry => return,
                Incomplete::GiveUp(after) => (
                    content,
                    Some(format!(
                        "{}: incomplete: {missing}, and unchanged for {} s",
                        path.display(),
                        after.as_secs()
                    )),
                ),
            },
            Err(e) => match self.tracker.incomplete(&path, now) {
                Incomplete::Retry => return,
                Incomplete::GiveUp(_) => (
                    Content::Hashed(unreadable_hash(fingerprint)),
                    Some(e.to_string()),
                ),
            },
        };
        self.tracker.settled(&path);
        let urgent = failure.is_some();
        let job = Job {
            epoch: epoch_of(&path),
            path: path.clone(),
            fingerprint,
            content,
            failure,
        };
        self.queue.push(path, fingerprint.mtime_ns, urgent, job);
    }
}

/// A stand-in identity for a file that could not be read: its size and mtime.
fn unreadable_hash(fingerprint: Fingerprint) -> String {
    format!("unreadable-{}-{}", fingerprint.size, fingerprint.mtime_ns)
}

/// Starts inotify (or the platform's equivalent) on `dir`, forwarding to `messages`.
pub fn watch_events(
    dir: &Path,
    messages: Sender<ScanMessage>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let message = match event {
            Ok(event) if event.need_rescan() => ScanMessage::Rescan,
            Ok(event) => {
                use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
                match event.kind {
                    // The writer is done: a close after writing, or a rename into place.
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                    | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                        ScanMessage::Written(event.paths)
                    }
                    // Both ends of a rename: the old name is gone, the new one is whole.
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                        let mut paths = event.paths;
                        let to = paths.pop();
                        if !paths.is_empty() {
                            let _ = messages.send(ScanMessage::Paths(paths));
                        }
                        ScanMessage::Written(to.into_iter().collect())
                    }
                    // Opens and reads (ours included) change nothing.
                    EventKind::Access(_) => return,
                    _ => ScanMessage::Paths(event.paths),
                }
            }
            // Overflow or a watch that went away: look at everything again.
            Err(_) => ScanMessage::Rescan,
        };
        let _ = messages.send(message);
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok(watcher)
}
