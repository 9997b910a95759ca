//! Following a run that another camwatch writes (see [`super::lock`]): its history is
//! read, never written, and read again whenever the writer commits. What changed goes
//! out as the same events a worker sends, so nothing downstream tells the two apart.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::time::Duration;

use super::history::History;
use super::{CheckpointReport, HistoryReader, MonitorEvent, Source, lock};
use crate::cam::SampleSet;
use crate::cam::engine::Cancel;
use crate::render::CamSettings;

/// How often the follower asks whether the writer committed (a cheap query).
const POLL: Duration = Duration::from_millis(300);
/// Every so many polls, whether the writer is still there.
const WRITER_CHECK: u32 = 7;

pub struct Follower {
    pub history: History,
    pub samples: SampleSet,
    pub settings: CamSettings,
    pub steps: usize,
    pub events: Sender<MonitorEvent>,
    pub cancel: Cancel,
    /// Whether a writer is there to notice gone.
    pub writer: bool,
}

impl Follower {
    pub fn run(self) {
        // Each checkpoint as last sent, to tell new ones from revised ones.
        let mut sent: HashMap<String, CheckpointReport> = HashMap::new();
        let mut reader = HistoryReader::default();
        let mut version = None;
        let mut replayed = false;
        let mut writer = self.writer;
        for poll in 1u32.. {
            if self.cancel.is_cancelled() {
                return;
            }
            // Asked before reading, so that the writer's last commit is read first.
            let gone = writer
                && poll.is_multiple_of(WRITER_CHECK)
                && !lock::held_elsewhere(self.history.file());
            match self.history.data_version() {
                Ok(v) if Some(v) == version => {}
                Ok(v) => {
                    version = Some(v);
                    match reader.read(&self.history, &self.samples, &self.settings, self.steps) {
                        Ok(reports) => {
                            if self.send_changes(reports, &mut sent).is_err() {
                                return;
                            }
                        }
                        Err(e) => self.warn(e.to_string()),
                    }
                }
                Err(e) => self.warn(e.to_string()),
            }
            if !replayed {
                replayed = true;
                let replay = MonitorEvent::Replayed {
                    checkpoints: sent.len(),
                };
                if self.events.send(replay).is_err() {
                    return;
                }
            }
            if gone {
                // Still followed (nothing more comes); the user of the monitor may
                // start a writer in its place.
                writer = false;
                if self.events.send(MonitorEvent::WriterGone).is_err() {
                    return;
                }
            }
            let mut slept = Duration::ZERO;
            while slept < POLL && !self.cancel.is_cancelled() {
                std::thread::sleep(Duration::from_millis(50));
                slept += Duration::from_millis(50);
            }
        }
    }

    fn warn(&self, message: String) {
        let _ = self.events.send(MonitorEvent::Warning(message));
    }

    /// Sends what is new or different since the last read; `Err` once nobody listens.
    fn send_changes(
        &self,
        reports: Vec<CheckpointReport>,
        sent: &mut HashMap<String, CheckpointReport>,
    ) -> Result<(), ()> {
        for report in reports {
            let event = match sent.get(&report.hash) {
                None => MonitorEvent::Checkpoint {
                    report: Box::new(report.clone()),
                    source: Source::History,
                    ms: 0.0,
                },
                Some(before) if *before == report => continue,
                Some(before) => {
                    let trust_changed = before.samples.len() != report.samples.len()
                        || before
                            .samples
                            .iter()
                            .zip(&report.samples)
                            .any(|(a, b)| a.metrics != b.metrics || a.sanity != b.sanity);
                    if trust_changed {
                        MonitorEvent::Measured(Box::new(report.clone()))
                    } else {
                        MonitorEvent::Revised(Box::new(report.clone()))
                    }
                }
            };
            sent.insert(report.hash.clone(), report);
            self.events.send(event).map_err(|_| ())?;
        }
        Ok(())
    }
}
