//! `watch --tensorboard DIR`: each run's checkpoints written as they are reported, on a
//! thread of its own (encoding PNGs never holds up the monitor or the UI), one flush
//! per checkpoint. The stored history is reported first at start, so a restarted
//! watcher writes what its last run missed and nothing twice.
//!
//! TensorBoard wants each tag's steps in order (see `log`), but the monitor computes
//! the newest checkpoint first when several wait, and measures trust figures newest
//! first. So reports are held while they keep coming, and once the monitor has been
//! quiet for [`QUIET`] they are written in training order. A checkpoint trained
//! alone is written [`QUIET`] after its maps; a burst, once it is through. What comes
//! for an epoch below one already written (an old file found late) is left out: a
//! fresh `camwatch export` into an empty folder writes the whole history in order.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the monitor must have reported nothing before held reports are written.
pub const QUIET: Duration = Duration::from_secs(2);

use super::export::{ExportError, RunExport};
use crate::monitor::{CheckpointReport, setting};
use crate::render::CamSettings;

enum Message {
    Report {
        run: usize,
        report: Box<CheckpointReport>,
        settings: Box<CamSettings>,
    },
}

/// A report waiting for the monitor to be quiet.
struct Held {
    run: usize,
    report: Box<CheckpointReport>,
    settings: Box<CamSettings>,
}

/// Keeps `message`'s report, in place of an older one of the same checkpoint.
fn hold(
    held: &mut Vec<Held>,
    Message::Report {
        run,
        report,
        settings,
    }: Message,
) {
    let same = |a: &CamSettings, b: &CamSettings| {
        a.request.methods == b.request.methods && setting(a, 0) == setting(b, 0)
    };
    held.retain(|h| {
        !(h.run == run && h.report.hash == report.hash && same(&h.settings, &settings))
    });
    held.push(Held {
        run,
        report,
        settings,
    });
}

/// Writes what is held, in training order, a flush per checkpoint. A run whose export
/// fails says so once and is written no more (a full disk); the watcher goes on.
fn write_held(runs: &mut [Option<RunExport>], held: &mut Vec<Held>, warn: &Warn) {
    held.sort_by_key(|h| (h.run, h.report.epoch, h.report.mtime_ns));
    for Held {
        run,
        report,
        settings,
    } in held.drain(..)
    {
        let Some(slot) = runs.get_mut(run) else {
            continue;
        };
        let Some(export) = slot.as_mut() else {
            continue;
        };
        let written = crate::isolate::isolated(|| export.checkpoint(&report, &settings))
            .unwrap_or_else(|e| Err(ExportError::Internal(e)));
        if let Err(e) = written {
            warn(format!("TensorBoard export stopped: {e}"));
            *slot = None;
        }
    }
}

/// The writer thread of a watcher's exports, one per run (by the monitor's run index).
pub struct Live {
    handle: LiveHandle,
    thread: Option<JoinHandle<()>>,
}

/// What the writer says when a run's export fails: its one-line error. That run's
/// export stops there (a full disk), the watcher goes on.
pub type Warn = Box<dyn Fn(String) + Send>;

impl Live {
    pub fn start(runs: Vec<RunExport>, warn: Warn) -> Live {
        let (tx, rx) = mpsc::channel::<Message>();
        let thread = std::thread::Builder::new()
            .name("camwatch-tensorboard".into())
            .spawn(move || {
                let mut runs: Vec<Option<RunExport>> = runs.into_iter().map(Some).collect();
                let mut held: Vec<Held> = Vec::new();
                loop {
                    let closed = match rx.recv_timeout(QUIET) {
                        Ok(message) => {
                            hold(&mut held, message);
                            continue;
                        }
                        Err(RecvTimeoutError::Timeout) => false,
                        Err(RecvTimeoutError::Disconnected) => true,
                    };
                    write_held(&mut runs, &mut held, &warn);
                    if closed {
                        return;
                    }
                }
            })
            .ok();
        Live {
            handle: LiveHandle(Some(tx)),
            thread,
        }
    }

    /// Writes what `report` of run `run` has that its log lacks.
    pub fn report(&self, run: usize, report: &CheckpointReport, settings: &CamSettings) {
        self.handle.report(run, report, settings);
    }

    /// A sender for another thread (the UI's monitors).
    pub fn handle(&self) -> LiveHandle {
        self.handle.clone()
    }

    /// Writes what was sent, then ends the thread.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.handle.0 = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop();
    }
}

/// [`Live::report`] from another thread.
#[derive(Clone)]
pub struct LiveHandle(Option<Sender<Message>>);

impl LiveHandle {
    pub fn report(&self, run: usize, report: &CheckpointReport, settings: &CamSettings) {
        if let Some(messages) = &self.0 {
            let _ = messages.send(Message::Report {
                run,
                report: Box::new(report.clone()),
                settings: Box::new(settings.clone()),
            });
        }
    }
}
