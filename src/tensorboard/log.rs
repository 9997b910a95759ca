//! One run's folder of event files: what camwatch already wrote there (its own files,
//! read back at start, so that a restarted export adds no step twice), and a new file
//! that each flush appends one checkpoint's records to in one write.
//!
//! Per tag, steps only go up. TensorBoard expects that: its data server takes a value
//! whose step is not above the last one's as a restart of training and drops the
//! values at and after that step. So a value at or below a tag's last step is not
//! written (the writers feed checkpoints in training order; see `live`).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use super::proto::{Event, Image, Kind, PluginData, Summary, SummaryMetadata, Value, What};
use super::record;

/// What marks camwatch's own event files (TensorBoard reads any name holding
/// `tfevents`); files without it are someone else's and are never read or touched.
const OWN_SUFFIX: &str = ".camwatch";

#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct LogError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

pub struct EventLog {
    folder: PathBuf,
    /// The file this log appends to (made at the first flush) and its length after the
    /// last whole flush.
    file: Option<(File, PathBuf, u64)>,
    /// Per tag, the last step in camwatch's files here (or waiting to be written).
    last_step: HashMap<String, i64>,
    /// Tags described in this log's file.
    described: HashSet<String>,
    /// Records waiting for the next flush, and each one's tag with its last step
    /// before it (to undo a failed flush).
    pending: Vec<u8>,
    pending_tags: Vec<(String, Option<i64>)>,
    /// Own files here that could not be read back whole, by name.
    pub unreadable: Vec<String>,
}

impl EventLog {
    /// The log of `folder` (created if missing), knowing what camwatch wrote there.
    pub fn open(folder: &Path) -> Result<EventLog, LogError> {
        let wrap = |source| LogError {
            path: folder.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(folder).map_err(wrap)?;
        let mut log = EventLog {
            folder: folder.to_path_buf(),
            file: None,
            last_step: HashMap::new(),
            described: HashSet::new(),
            pending: Vec::new(),
            pending_tags: Vec::new(),
            unreadable: Vec::new(),
        };
        for entry in std::fs::read_dir(folder).map_err(wrap)? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.contains("tfevents") && name.ends_with(OWN_SUFFIX)) {
                continue;
            }
            if !log.read_back(&entry.path()) {
                log.unreadable.push(name);
            }
        }
        Ok(log)
    }

    /// Learns the tags and last steps of one of camwatch's files, a record at a time;
    /// false when it is not whole (what it holds up to there still counts).
    fn read_back(&mut self, path: &Path) -> bool {
        let Ok((file, size)) = crate::untrusted::open_regular(path, u64::MAX) else {
            return false;
        };
        let mut reader = record::Reader::new(std::io::BufReader::new(file.take(size)));
        while let Some(data) = reader.next_record() {
            let Ok(event) = Event::decode(data.as_slice()) else {
                return false;
            };
            if let Some(What::Summary(summary)) = event.what {
                for value in summary.value {
                    let last = self.last_step.entry(value.tag).or_insert(event.step);
                    *last = (*last).max(event.step);
                }
            }
        }
        reader.used == size
    }

    /// Whether `tag` has a value at `step` or after it (written, or waiting for the
    /// next flush): one at `step` would then be a repeat, or out of order.
    pub fn has(&self, tag: &str, step: i64) -> bool {
        self.last_step.get(tag).is_some_and(|&last| last >= step)
    }

    pub fn scalar(&mut self, tag: &str, step: i64, wall_time: f64, value: f32, about: &str) {
        self.add(tag, step, wall_time, Kind::SimpleValue(value), about);
    }

    /// An RGB PNG of `width` × `height`.
    pub fn image(&mut self, tag: &str, step: i64, wall_time: f64, png: Vec<u8>, size: (u32, u32)) {
        let image = Image {
            width: size.0 as i32,
            height: size.1 as i32,
            colorspace: 3,
            encoded_image_string: png,
        };
        self.add(tag, step, wall_time, Kind::Image(image), "");
    }

    fn add(&mut self, tag: &str, step: i64, wall_time: f64, kind: Kind, about: &str) {
        if self.has(tag, step) {
            return;
        }
        let before = self.last_step.insert(tag.to_string(), step);
        self.pending_tags.push((tag.to_string(), before));
        let metadata = (!about.is_empty() && self.described.insert(tag.to_string())).then(|| {
            SummaryMetadata {
                plugin_data: Some(PluginData {
                    plugin_name: "scalars".into(),
                    content: Vec::new(),
                }),
                display_name: String::new(),
                summary_description: about.to_string(),
                data_class: 1,
            }
        });
        let event = Event {
            wall_time,
            step,
            what: Some(What::Summary(Summary {
                value: vec![Value {
                    tag: tag.to_string(),
                    metadata,
                    value: Some(kind),
                }],
            })),
        };
        record::frame(&event.encode_to_vec(), &mut self.pending);
    }

    /// Writes what waits, in one write, and flushes it to the disk; returns how many
    /// values it wrote. On failure (a full disk) the file is cut back to its last whole
    /// flush, so readers never meet a torn record, and what waited is dropped.
    pub fn flush(&mut self) -> Result<usize, LogError> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let pending = std::mem::take(&mut self.pending);
        let tags = std::mem::take(&mut self.pending_tags);
        let result = self.append(&pending);
        if result.is_err() {
            // Undone newest first, so that each tag gets back its step before the flush.
            for (tag, before) in tags.iter().rev() {
                match before {
                    Some(step) => self.last_step.insert(tag.clone(), *step),
                    None => self.last_step.remove(tag),
                };
                self.described.remove(tag);
            }
        }
        result.map(|()| tags.len())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let (file, path, good) = match &mut self.file {
            Some(open) => open,
            none => none.insert(create(&self.folder)?),
        };
        let written = file.write_all(bytes).and_then(|()| file.sync_data());
        if let Err(source) = written {
            let _ = file.set_len(*good);
            let _ = file.seek(SeekFrom::Start(*good));
            return Err(LogError {
                path: path.clone(),
                source,
            });
        }
        *good += bytes.len() as u64;
        Ok(())
    }
}

/// A new event file of camwatch's in `folder`, starting with its version record; with
/// its length.
fn create(folder: &Path) -> Result<(File, PathBuf, u64), LogError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // TensorBoard reads a folder's files in name order: the time first. The counter
    // keeps two logs of one process in one second apart.
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "events.out.tfevents.{}.{}.{}.{}{OWN_SUFFIX}",
        now.as_secs(),
        host_name(),
        std::process::id(),
        MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let path = folder.join(name);
    let wrap = |source| LogError {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(wrap)?;
    let version = Event {
        wall_time: now.as_secs_f64(),
        step: 0,
        what: Some(What::FileVersion("brain.Event:2".into())),
    };
    let mut bytes = Vec::new();
    record::frame(&version.encode_to_vec(), &mut bytes);
    if let Err(source) = file.write_all(&bytes).and_then(|()| file.sync_data()) {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(wrap(source));
    }
    Ok((file, path.clone(), bytes.len() as u64))
}

/// This machine's name, as event file names carry it (letters, digits, `-` and `.`).
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer's length is its own; gethostname NUL-terminates within it or
    // truncates, and the name is read up to the first NUL.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let name: String = buffer
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .filter(|c| c.is_ascii_alphanumeric() || "-.".contains(*c))
        .collect();
    if ok && !name.is_empty() {
        name
    } else {
        "localhost".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_log_knows_its_steps_and_leaves_foreign_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("events.out.tfevents.1.trainer");
        std::fs::write(&foreign, b"not ours, not even TFRecords").unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        log.scalar("camwatch/gradcam/box_energy", 1, 1.0, 0.5, "share");
        log.scalar("camwatch/gradcam/box_energy", 1, 1.0, 0.6, "share");
        log.image("cam/gradcam/a", 1, 1.0, vec![1, 2, 3], (4, 5));
        assert_eq!(log.flush().unwrap(), 2, "a step is written once");
        drop(log);

        let mut again = EventLog::open(dir.path()).unwrap();
        assert!(again.unreadable.is_empty());
        assert!(again.has("camwatch/gradcam/box_energy", 1));
        assert!(again.has("cam/gradcam/a", 1));
        assert!(!again.has("camwatch/gradcam/box_energy", 2));
        again.scalar("camwatch/gradcam/box_energy", 1, 1.0, 0.7, "share");
        assert_eq!(again.flush().unwrap(), 0);
        // Steps only go up per tag: a later step is written, an earlier one no more.
        again.scalar("camwatch/gradcam/box_energy", 3, 3.0, 0.7, "share");
        again.scalar("camwatch/gradcam/box_energy", 2, 2.0, 0.6, "share");
        assert_eq!(again.flush().unwrap(), 1);
        assert!(again.has("camwatch/gradcam/box_energy", 2));
        assert_eq!(
            std::fs::read(&foreign).unwrap(),
            b"not ours, not even TFRecords"
        );
        // A torn tail (a crash mid-write, before this writer cut it back) is noticed,
        // and what precedes it still counts.
        let own = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(OWN_SUFFIX))
            .unwrap();
        let mut bytes = std::fs::read(&own).unwrap();
        bytes.extend_from_slice(&[7; 9]);
        std::fs::write(&own, bytes).unwrap();
        let torn = EventLog::open(dir.path()).unwrap();
        assert_eq!(torn.unreadable.len(), 1);
        assert!(torn.has("camwatch/gradcam/box_energy", 1));
    }
}
