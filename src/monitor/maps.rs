//! Stored maps for readers outside the monitor (the UI's images, its exports): a read
//! connection of their own to the run's history, and the keys the worker stores
//! results under, so that no reader rebuilds them.

use std::path::PathBuf;

use super::history::History;
use super::{sample_keys, setting};
use crate::cam::{Layer, Map, Method, SampleSet, Target};
use crate::render::CamSettings;

/// Which stored map: a sample (its index in the set) at a checkpoint (its content hash),
/// for one method, layer and target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MapId {
    pub sample: usize,
    pub hash: String,
    pub method: Method,
    pub layer: Layer,
    pub target: Target,
}

pub struct MapReader {
    history_file: PathBuf,
    dir: PathBuf,
    settings: CamSettings,
    /// Sample keys for targets other than the label, and for the label.
    keys: Vec<String>,
    label_keys: Vec<String>,
    /// Opened on first use, by the thread that uses it.
    history: Option<History>,
}

/// A copy for another thread, which opens its own connection.
impl Clone for MapReader {
    fn clone(&self) -> Self {
        MapReader {
            history_file: self.history_file.clone(),
            dir: self.dir.clone(),
            settings: self.settings.clone(),
            keys: self.keys.clone(),
            label_keys: self.label_keys.clone(),
            history: None,
        }
    }
}

impl MapReader {
    pub fn new(
        samples: &SampleSet,
        history_file: PathBuf,
        dir: PathBuf,
        settings: CamSettings,
    ) -> MapReader {
        MapReader {
            keys: sample_keys(samples, Target::Predicted),
            label_keys: sample_keys(samples, Target::Label),
            history_file,
            dir,
            settings,
            history: None,
        }
    }

    /// The stored map, if the history has it yet.
    pub fn map(&mut self, id: &MapId) -> Option<Map> {
        if self.history.is_none() {
            self.history = History::open_read_only(&self.history_file, &self.dir).ok();
        }
        let history = self.history.as_ref()?;
        let mut settings = self.settings.clone();
        settings.request.layer = id.layer;
        settings.request.target = id.target;
        let keys = if id.target == Target::Label {
            &self.label_keys
        } else {
            &self.keys
        };
        let stored = history
            .results(
                &id.hash,
                &setting(&settings, crate::cam::metrics::DEFAULT_STEPS),
                std::slice::from_ref(keys.get(id.sample)?),
            )
            .ok()?;
        stored
            .into_iter()
            .next()?
            .maps
            .into_iter()
            .find(|m| m.method == id.method)
            .map(|m| m.map)
    }
}
