//! A store run's checkpoint objects, kept in a local folder that the monitor follows.
//!
//! Every `poll` the prefix is listed (paged by `object_store`, at most [`MAX_OBJECTS`]).
//! An object is new or changed when its ETag, size or last-modified differ from what was
//! fetched; objects only appear once their PUT (or multipart upload) completed, and the
//! monitor still checks each format's end marker. A download goes into
//! `.camwatch/downloads/` in ranges of [`RANGE`] bytes, [`PARALLEL`] at a time, each
//! asked for with the listed ETag (a replaced object is not stitched from two versions)
//! and tried again on its own when a connection drops; only a whole, checked file is
//! renamed into place, with the object's last-modified as its mtime (training order).
//! Objects larger than a checkpoint may be are refused from their listed size. Once the
//! cache holds more than its limit, the oldest files whose maps the history already
//! holds are removed (and not fetched again unless the object changes).
//!
//! Results published beside the run ([`crate::results`]) are found in the same listing:
//! a checkpoint whose results are published for this setting is not downloaded, its
//! results are handed to the monitor instead ([`MirrorEvent::Published`]); with
//! `--compute never` no checkpoint is downloaded at all, and one without results waits
//! for them.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::OpenStore;
use crate::cam::Method;
use crate::results::{
    Compute, Delivered, Expected, Identity, Published, PublishedSetting, PublishedTrust, Shelf,
};
use crate::scan::{is_checkpoint_name, nanos_since_epoch};
use crate::untrusted::{MAX_CHECKPOINT_BYTES, human_bytes};

/// Objects listed under one prefix at most; beyond, the first ones are followed.
pub const MAX_OBJECTS: usize = 100_000;
/// Bytes per ranged GET.
pub const RANGE: u64 = 16 << 20;
/// Ranged GETs of one object in flight at once.
pub const PARALLEL: usize = 4;
/// Tries of one range before the download is given up (until the next listing).
const TRIES: u32 = 6;

#[derive(Clone, Debug)]
pub struct MirrorConfig {
    pub store: OpenStore,
    /// The local folder: the monitor's run folder.
    pub dir: PathBuf,
    pub poll: Duration,
    /// Bytes of checkpoints kept in `dir` before recorded ones are removed.
    pub cache_limit: u64,
    /// Which of the run's files the history holds maps for, asked before any is
    /// removed (set by the monitor, which keeps the history); `None`: none is removed.
    pub recorded: Option<Recorded>,
    /// Where this setting's published results are, and how they are used; `None`: not
    /// looked for (`--compute always`, `check`).
    pub results: Option<MirrorResults>,
}

/// The files (paths in the run's folder) whose maps are recorded, or `None` when that
/// cannot be known now.
#[derive(Clone)]
pub struct Recorded(pub Arc<dyn Fn() -> Option<Vec<PathBuf>> + Send + Sync>);

impl std::fmt::Debug for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorded(..)")
    }
}

/// What the mirror needs to know of the results published beside the run.
#[derive(Clone, Debug)]
pub struct MirrorResults {
    pub shelf: Shelf,
    pub compute: Compute,
    pub setting: PublishedSetting,
    /// The samples' keys and the methods: results that lack some are not taken instead
    /// of computing (`--compute auto`).
    pub sample_keys: Vec<String>,
    pub methods: Vec<Method>,
}

/// What the mirror tells the monitor.
pub enum MirrorEvent {
    /// The store cannot be listed or an object not fetched (one line), or is reachable
    /// again.
    Warning(String),
    /// A large download under way.
    Progress { url: String, done: u64, total: u64 },
    /// Results published for the checkpoint object `key` (its size and last-modified).
    Published {
        key: String,
        size: u64,
        modified_ns: i64,
        delivered: Box<Delivered>,
    },
}

/// What was fetched of one object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub etag: Option<String>,
    pub size: u64,
    pub modified_ns: i64,
    pub state: State,
    /// When it was fetched (for the cache's oldest-first removal).
    pub fetched_ns: i64,
    /// Whether its published trust figures were handed over (state `published`).
    #[serde(default)]
    pub trust: bool,
    /// The setting folder it was `published` or `awaiting` for: another setting's
    /// results are looked for anew.
    #[serde(default)]
    pub setting: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Cached,
    /// Removed from the cache after its maps were recorded.
    Evicted,
    /// Larger than a checkpoint may be: not fetched.
    Refused,
    /// Its published results were handed over instead: not fetched.
    Published,
    /// Waiting for its results to be published (`--compute never`): not fetched.
    Awaiting,
}

/// The objects fetched, by key (the path under the run's prefix), shared with the
/// headless printer for their ETags.
#[derive(Default)]
pub struct Objects(Mutex<HashMap<String, Object>>);

impl Objects {
    pub fn etag(&self, key: &str) -> Option<String> {
        let objects = self.0.lock().unwrap_or_else(|e| e.into_inner());
        objects.get(key).and_then(|o| o.etag.clone())
    }
}

/// A running mirror thread; stopped when dropped.
pub struct Mirror {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub objects: Arc<Objects>,
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn index_file(dir: &Path) -> PathBuf {
    dir.join(crate::scan::HISTORY_DIR).join("objects.json")
}

impl Mirror {
    pub fn start(config: MirrorConfig, report: Box<dyn Fn(MirrorEvent) + Send>) -> Mirror {
        let worker = Worker::new(config, report);
        let (objects, stop) = (Arc::clone(&worker.objects), Arc::clone(&worker.stop));
        let thread = std::thread::Builder::new()
            .name("camwatch-mirror".into())
            .spawn(move || worker.run())
            .ok();
        Mirror {
            stop,
            thread,
            objects,
        }
    }
}

/// One listing of the run and its downloads, now (for commands that end: `check`).
pub fn sync(config: MirrorConfig, report: Box<dyn Fn(MirrorEvent) + Send>) -> Result<(), String> {
    let worker = Worker::new(config, report);
    worker.runtime()?.block_on(worker.pass())
}

/// The object `key` of the run, fetched into its folder (`render --checkpoint URL`).
pub fn fetch(
    config: MirrorConfig,
    key: &str,
    report: Box<dyn Fn(MirrorEvent) + Send>,
) -> Result<PathBuf, String> {
    let worker = Worker::new(config, report);
    let open = &worker.config.store;
    let location =
        StorePath::from(format!("{}/{key}", open.prefix.as_ref()).trim_start_matches('/'));
    worker.runtime()?.block_on(async {
        let meta = open
            .store
            .head(&location)
            .await
            .map_err(|e| open.explain(Some(key), &e))?;
        if meta.size > MAX_CHECKPOINT_BYTES {
            return Err(format!(
                "{}: {}, more than a checkpoint may be ({})",
                open.url.join(key),
                human_bytes(meta.size),
                human_bytes(MAX_CHECKPOINT_BYTES)
            ));
        }
        worker.download(key, &meta).await?;
        Ok(worker.config.dir.join(key))
    })
}

struct Worker {
    config: MirrorConfig,
    report: Box<dyn Fn(MirrorEvent) + Send>,
    objects: Arc<Objects>,
    stop: Arc<AtomicBool>,
    /// Published objects found unusable (by name and version), said once; `true` where
    /// their content was refused.
    rejected: Mutex<HashMap<String, bool>>,
}

impl Worker {
    fn new(config: MirrorConfig, report: Box<dyn Fn(MirrorEvent) + Send>) -> Worker {
        // What was fetched before (a restart fetches nothing again).
        let known: HashMap<String, Object> = std::fs::read(index_file(&config.dir))
            .ok()
            .and_then(|data| serde_json::from_slice(&data).ok())
            .unwrap_or_default();
        Worker {
            config,
            report,
            objects: Arc::new(Objects(Mutex::new(known))),
            stop: Arc::new(AtomicBool::new(false)),
            rejected: Mutex::default(),
        }
    }

    fn runtime(&self) -> Result<tokio::runtime::Runtime, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                format!(
                    "{}: cannot start the store client ({e})",
                    self.config.store.url
                )
            })
    }

    fn run(self) {
        let runtime = match self.runtime() {
            Ok(runtime) => runtime,
            Err(message) => {
                (self.report)(MirrorEvent::Warning(message));
                return;
            }
        };
        let mut failing: Option<String> = None;
        let mut wait = self.config.poll;
        while !self.stop.load(Ordering::Relaxed) {
            // A pass stops with the monitor, even in the middle of a store's retries
            // (minutes, when it does not answer): what it had not finished is not
            // remembered, and is done again at the next start.
            let stopped = async {
                while !self.stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            let pass = runtime.block_on(async {
                match futures::future::select(Box::pin(self.pass()), Box::pin(stopped)).await {
                    futures::future::Either::Left((pass, _)) => Some(pass),
                    futures::future::Either::Right(_) => None,
                }
            });
            let Some(pass) = pass else {
                break;
            };
            match pass {
                Ok(()) => {
                    if failing.take().is_some() {
                        (self.report)(MirrorEvent::Warning(format!(
                            "{}: reachable again",
                            self.config.store.url
                        )));
                    }
                    wait = self.config.poll;
                }
                Err(message) => {
                    // Said once until it changes; tried again less and less often.
                    if failing.as_ref() != Some(&message) {
                        (self.report)(MirrorEvent::Warning(format!(
                            "{message}; trying again, at most a minute apart"
                        )));
                        failing = Some(message);
                    }
                    wait = (wait * 2).clamp(self.config.poll, Duration::from_secs(60));
                }
            }
            self.sleep(wait);
        }
    }

    fn sleep(&self, time: Duration) {
        let end = std::time::Instant::now() + time;
        while !self.stop.load(Ordering::Relaxed) && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One listing, and the downloads it calls for.
    async fn pass(&self) -> Result<(), String> {
        let open = &self.config.store;
        let listed: Vec<ObjectMeta> = open
            .store
            .list(Some(&open.prefix))
            .take(MAX_OBJECTS + 1)
            .try_collect()
            .await
            .map_err(|e| open.explain(None, &e))?;
        if listed.len() > MAX_OBJECTS {
            (self.report)(MirrorEvent::Warning(format!(
                "{}: more than {MAX_OBJECTS} objects; the first {MAX_OBJECTS} are followed",
                open.url
            )));
        }
        // This setting's published results, by name.
        let published: HashMap<String, ObjectMeta> = match &self.config.results {
            Some(results) => listed
                .iter()
                .filter_map(|m| Some((results.shelf.name_of(&m.location)?, m.clone())))
                .collect(),
            None => HashMap::new(),
        };
        for meta in listed.into_iter().take(MAX_OBJECTS) {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let Some(key) = self.key_of(&meta.location) else {
                continue;
            };
            let modified_ns = nanos_since_epoch(SystemTime::from(meta.last_modified));
            let setting = self.config.results.as_ref().map(|r| r.shelf.setting());
            let same = |o: &Object, meta: &ObjectMeta| {
                (meta.e_tag.is_none() || o.etag == meta.e_tag)
                    && o.size == meta.size
                    && o.modified_ns == modified_ns
                    && (!matches!(o.state, State::Published | State::Awaiting)
                        || o.setting.as_deref() == setting)
            };
            let known = self
                .objects
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned();
            if let Some(known) = known.as_ref().filter(|o| same(o, &meta)) {
                self.follow_up(&key, known, &published).await;
                continue;
            }
            // Some stores (s3s-fs among them) list no ETags: a new or changed object's
            // comes from a HEAD, so that its ranges are all asked of one version.
            let meta = match meta.e_tag {
                Some(_) => meta,
                None => match open.store.head(&meta.location).await {
                    Ok(head) => head,
                    Err(e) => {
                        (self.report)(MirrorEvent::Warning(open.explain(Some(&key), &e)));
                        continue;
                    }
                },
            };
            let mut object = Object {
                etag: meta.e_tag.clone(),
                size: meta.size,
                modified_ns,
                state: State::Cached,
                fetched_ns: nanos_since_epoch(SystemTime::now()),
                trust: false,
                setting: None,
            };
            if let Some(state) = self.take_published(&key, &mut object, &published).await {
                object.state = state;
            } else if meta.size > MAX_CHECKPOINT_BYTES {
                (self.report)(MirrorEvent::Warning(format!(
                    "{}: {}, more than a checkpoint may be ({}): not downloaded",
                    open.url.join(&key),
                    human_bytes(meta.size),
                    human_bytes(MAX_CHECKPOINT_BYTES)
                )));
                object.state = State::Refused;
            } else if let Err(message) = self.download(&key, &meta).await {
                // Not recorded: the next listing tries again.
                (self.report)(MirrorEvent::Warning(message));
                continue;
            }
            self.remember(key, object);
        }
        self.evict();
        Ok(())
    }

    /// Hands over the results published for the checkpoint object `key` instead of
    /// fetching it, when they are there and do (`--compute auto`: they hold every sample
    /// and method); the object's new state, or `None` to fetch it.
    async fn take_published(
        &self,
        key: &str,
        object: &mut Object,
        published: &HashMap<String, ObjectMeta>,
    ) -> Option<State> {
        let results = self.config.results.as_ref()?;
        if results.compute == Compute::Always {
            return None;
        }
        object.setting = Some(results.shelf.setting().to_string());
        let awaiting = (results.compute == Compute::Never).then_some(State::Awaiting);
        let Some(etag) = object.etag.clone() else {
            return awaiting;
        };
        let identity = Identity::ETag(&etag).name();
        let name = crate::results::results_name(key, &identity);
        let Some(meta) = published.get(&name) else {
            return awaiting;
        };
        let expected = Expected {
            key,
            identity: &identity,
            setting: &results.setting,
        };
        let Some(found) = self
            .read_published(&name, meta, |b| Published::decode(b, &expected))
            .await
        else {
            return awaiting;
        };
        if results.compute == Compute::Auto && !found.covers(&results.sample_keys, &results.methods)
        {
            return None;
        }
        let trust_name = crate::results::trust_name(key, &identity);
        let trust = match published.get(&trust_name) {
            Some(meta) => {
                self.read_published(&trust_name, meta, |b| PublishedTrust::decode(b, &expected))
                    .await
            }
            None => None,
        };
        object.trust = trust.is_some();
        (self.report)(MirrorEvent::Published {
            key: key.to_string(),
            size: object.size,
            modified_ns: object.modified_ns,
            delivered: Box::new(Delivered {
                results: Some(found),
                trust,
                origin: results.shelf.describe(&name),
            }),
        });
        Some(State::Published)
    }

    /// For an object already handled: results published since it began to wait, or
    /// trust figures published since its results were handed over.
    async fn follow_up(&self, key: &str, known: &Object, published: &HashMap<String, ObjectMeta>) {
        let Some(results) = self.config.results.as_ref() else {
            return;
        };
        match known.state {
            State::Awaiting => {
                let mut object = known.clone();
                if let Some(State::Published) =
                    self.take_published(key, &mut object, published).await
                {
                    object.state = State::Published;
                    self.remember(key.to_string(), object);
                }
            }
            State::Published if !known.trust => {
                let Some(etag) = known.etag.as_deref() else {
                    return;
                };
                let identity = Identity::ETag(etag).name();
                let name = crate::results::trust_name(key, &identity);
                let Some(meta) = published.get(&name) else {
                    return;
                };
                let expected = Expected {
                    key,
                    identity: &identity,
                    setting: &results.setting,
                };
                let Some(trust) = self
                    .read_published(&name, meta, |b| PublishedTrust::decode(b, &expected))
                    .await
                else {
                    return;
                };
                (self.report)(MirrorEvent::Published {
                    key: key.to_string(),
                    size: known.size,
                    modified_ns: known.modified_ns,
                    delivered: Box::new(Delivered {
                        results: None,
                        trust: Some(trust),
                        origin: results.shelf.describe(&name),
                    }),
                });
                let mut object = known.clone();
                object.trust = true;
                self.remember(key.to_string(), object);
            }
            _ => {}
        }
    }

    /// The published object `name` (listed as `meta`), read and checked by `decode`; one
    /// that cannot be read or does not check is said once and `None`, and not read again
    /// until it changes.
    async fn read_published<T>(
        &self,
        name: &str,
        meta: &ObjectMeta,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Option<T> {
        let shelf = &self.config.results.as_ref()?.shelf;
        // Said once per version of the object; one whose content was refused is not
        // read again until it changes (a store that failed is asked again).
        let version = format!(
            "{name} {:?} {} {}",
            meta.e_tag, meta.size, meta.last_modified
        );
        let lock = || self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        if lock().get(&version) == Some(&true) {
            return None;
        }
        let mut refused = false;
        let checked = |bytes: &[u8]| decode(bytes).inspect_err(|_| refused = true);
        match shelf.read_async(name, checked).await {
            Ok(value) => value,
            Err(message) => {
                if lock().insert(version, refused).is_none() {
                    (self.report)(MirrorEvent::Warning(format!("{message}: ignored")));
                }
                None
            }
        }
    }

    /// The object's path under the prefix, when it is a checkpoint camwatch follows (no
    /// hidden folder on the way, a checkpoint's name).
    fn key_of(&self, location: &StorePath) -> Option<String> {
        let parts: Vec<String> = location
            .prefix_match(&self.config.store.prefix)?
            .map(|p| p.as_ref().to_string())
            .collect();
        if parts.is_empty() || parts.iter().any(|p| p.starts_with('.') || p == "..") {
            return None;
        }
        let key = parts.join("/");
        is_checkpoint_name(Path::new(&key)).then_some(key)
    }

    fn remember(&self, key: String, object: Object) {
        let mut objects = self.objects.0.lock().unwrap_or_else(|e| e.into_inner());
        objects.insert(key, object);
        self.save(&objects);
    }

    /// Written whole and renamed: a crash leaves the previous index, never half of one.
    fn save(&self, objects: &HashMap<String, Object>) {
        let file = index_file(&self.config.dir);
        let part = file.with_extension("json.part");
        let written = serde_json::to_vec(objects)
            .map_err(std::io::Error::other)
            .and_then(|text| {
                std::fs::create_dir_all(file.parent().unwrap_or(Path::new(".")))?;
                std::fs::write(&part, text)?;
                std::fs::rename(&part, &file)
            });
        if let Err(e) = written {
            (self.report)(MirrorEvent::Warning(format!(
                "{}: cannot write ({e})",
                file.display()
            )));
        }
    }

    /// Fetches `meta` into the run folder as `key`: ranges in parallel into a part file,
    /// checked whole, then renamed into place.
    async fn download(&self, key: &str, meta: &ObjectMeta) -> Result<(), String> {
        let open = &self.config.store;
        let url = open.url.join(key);
        let downloads = self
            .config
            .dir
            .join(crate::scan::HISTORY_DIR)
            .join("downloads");
        let part = downloads.join(format!(
            "{}.part",
            &blake3::hash(key.as_bytes()).to_hex()[..24]
        ));
        let target = self.config.dir.join(key);
        let local = |e: std::io::Error, path: &Path| format!("{}: {e}", path.display());
        std::fs::create_dir_all(&downloads).map_err(|e| local(e, &downloads))?;
        let file = std::fs::File::create(&part).map_err(|e| local(e, &part))?;
        file.set_len(meta.size).map_err(|e| local(e, &part))?;
        let ranges: Vec<std::ops::Range<u64>> = (0..meta.size.div_ceil(RANGE))
            .map(|i| i * RANGE..((i + 1) * RANGE).min(meta.size))
            .collect();
        let done = std::sync::atomic::AtomicU64::new(0);
        let fetch = |range: std::ops::Range<u64>| {
            let (file, done, url, part) = (&file, &done, &url, &part);
            async move {
                let mut tries = 0;
                loop {
                    tries += 1;
                    let options = GetOptions {
                        range: Some(GetRange::Bounded(range.clone())),
                        if_match: meta.e_tag.clone(),
                        ..Default::default()
                    };
                    let got = async {
                        open.store
                            .get_opts(&meta.location, options)
                            .await?
                            .bytes()
                            .await
                    }
                    .await;
                    match got {
                        Ok(bytes) if bytes.len() as u64 == range.end - range.start => {
                            file.write_all_at(&bytes, range.start)
                                .map_err(|e| local(e, part))?;
                            let now = done.fetch_add(bytes.len() as u64, Ordering::Relaxed)
                                + bytes.len() as u64;
                            if meta.size >= 4 * RANGE {
                                (self.report)(MirrorEvent::Progress {
                                    url: url.clone(),
                                    done: now,
                                    total: meta.size,
                                });
                            }
                            return Ok(());
                        }
                        Ok(bytes) => {
                            if tries >= TRIES {
                                return Err(format!(
                                    "{url}: bytes {}..{} came back as {} bytes",
                                    range.start,
                                    range.end,
                                    bytes.len()
                                ));
                            }
                        }
                        // Replaced or removed since the listing: the next one tells.
                        Err(
                            e @ (object_store::Error::Precondition { .. }
                            | object_store::Error::NotFound { .. }
                            | object_store::Error::PermissionDenied { .. }
                            | object_store::Error::Unauthenticated { .. }),
                        ) => return Err(open.explain(Some(key), &e)),
                        Err(e) if tries >= TRIES => return Err(open.explain(Some(key), &e)),
                        Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_millis(250 << tries.min(6))).await;
                }
            }
        };
        let result: Result<Vec<()>, String> = futures::stream::iter(ranges)
            .map(fetch)
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await;
        let finish = || -> std::io::Result<()> {
            file.sync_all()?;
            file.set_modified(SystemTime::from(meta.last_modified))?;
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&part, &target)
        };
        let outcome = result.and_then(|_| finish().map_err(|e| local(e, &target)));
        if outcome.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        outcome
    }

    /// Removes the oldest fetched files whose maps the history holds until the cache is
    /// within its limit.
    fn evict(&self) {
        let mut objects = self.objects.0.lock().unwrap_or_else(|e| e.into_inner());
        let cached: u64 = objects
            .values()
            .filter(|o| o.state == State::Cached)
            .map(|o| o.size)
            .sum();
        if cached <= self.config.cache_limit {
            return;
        }
        let Some(recorded) = self.config.recorded.as_ref().and_then(|r| (r.0)()) else {
            return;
        };
        let recorded: std::collections::HashSet<&Path> =
            recorded.iter().map(PathBuf::as_path).collect();
        let mut candidates: Vec<(i64, String)> = objects
            .iter()
            .filter(|(key, o)| {
                o.state == State::Cached && recorded.contains(self.config.dir.join(key).as_path())
            })
            .map(|(key, o)| (o.fetched_ns, key.clone()))
            .collect();
        candidates.sort();
        let mut over = cached - self.config.cache_limit;
        for (_, key) in candidates {
            if over == 0 {
                break;
            }
            if std::fs::remove_file(self.config.dir.join(&key)).is_ok()
                && let Some(object) = objects.get_mut(&key)
            {
                object.state = State::Evicted;
                over = over.saturating_sub(object.size);
            }
        }
        self.save(&objects);
    }
}
