//! Results published beside a run: each checkpoint's maps, predictions and box figures
//! under one setting, as one immutable object that any camwatch with read access finds
//! from a listing, so that a sweep is computed on the nodes that train it and looked at
//! from anywhere (`watch --publish`, `--compute`).
//!
//! ```text
//! RUN/.camwatch/results/<setting>/<checkpoint key>.<identity>.json        maps, predictions
//! RUN/.camwatch/results/<setting>/<checkpoint key>.<identity>.trust.json  trust figures
//! ```
//!
//! - `<setting>`: what the results depend on besides the weights (preprocessing and
//!   precision, layer, target, deletion's steps, the methods), readable and hashed
//!   ([`setting_folder`]);
//! - `<identity>`: which content of the checkpoint they are for, known without reading
//!   it: in an object store its ETag (hashed into a safe name), in a folder its content
//!   hash ([`Identity`]).
//!
//! Objects are written with create-if-absent ([`Shelf::put_new`]; `If-None-Match: *` in
//! S3 and Azure, a hard link in a folder): two nodes computing the same checkpoint never
//! overwrite each other, and neither sees an error. Drift and events are not published:
//! they depend on the neighbouring checkpoint, which another node may publish later, so
//! every reader derives them from the published maps, as it does from its history.
//!
//! What is read is untrusted: an object cut short, foreign, or for another setting is
//! refused with one line naming it ([`Published::decode`]).

mod shelf;
pub mod stored;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::cam::{Map, Method};
use crate::render::SampleTrust;
use crate::scan::Fingerprint;
use stored::{CheckpointRow, Prediction, Setting, Status, StoredMap, StoredSample};

pub use shelf::{Put, Shelf};

/// The folder, under the run, that holds the published results.
pub const RESULTS_DIR: &str = ".camwatch/results";
/// The largest result object read (64 samples × 1000 classes × two vectors is about 1 MB).
pub const MAX_OBJECT_BYTES: u64 = 256 << 20;

const RESULTS_FORMAT: &str = "camwatch.results";
const TRUST_FORMAT: &str = "camwatch.trust";
const VERSION: u32 = 1;

/// When published results are used instead of computing (`--compute`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Compute {
    /// Use what is published; compute what is not.
    #[default]
    Auto,
    /// Only show what is published (a laptop, a login node): nothing is computed and no
    /// checkpoint of a store run is downloaded.
    Never,
    /// Compute everything here, published or not.
    Always,
}

/// Which content of a checkpoint a result is for, as a name part.
#[derive(Clone, Copy, Debug)]
pub enum Identity<'a> {
    /// A store object's ETag, from a listing.
    ETag(&'a str),
    /// The content's BLAKE3 hash (hex), in a folder.
    Hash(&'a str),
}

impl Identity<'_> {
    /// The name part: hex only, whatever the ETag holds (quotes, slashes).
    pub fn name(self) -> String {
        match self {
            Identity::ETag(etag) => {
                let hex = blake3::hash(etag.trim_matches('"').as_bytes()).to_hex();
                format!("e{}", &hex[..24])
            }
            Identity::Hash(hash) => format!("h{}", &hash[..hash.len().min(32)]),
        }
    }
}

/// The folder of one setting's results: `imagenet@224_layer4_predicted_s16_gradcam+scorecam-<hash>`.
pub fn setting_folder(setting: &Setting, methods: &[Method]) -> String {
    let methods: Vec<&str> = sorted_methods(methods);
    let exact = format!(
        "{}\n{}\n{}\n{}\n{}",
        setting.prep,
        setting.layer,
        setting.target,
        setting.steps,
        methods.join("+")
    );
    let readable: String = format!(
        "{}_{}_{}_s{}_{}",
        setting.prep,
        setting.layer,
        setting.target,
        setting.steps,
        methods.join("+")
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() || "@+-".contains(c) {
            c
        } else {
            '_'
        }
    })
    .take(100)
    .collect();
    let hash = blake3::hash(exact.as_bytes()).to_hex();
    format!("{readable}-{}", &hash[..12])
}

fn sorted_methods(methods: &[Method]) -> Vec<&'static str> {
    let mut names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The results object's name in a setting folder.
pub fn results_name(key: &str, identity: &str) -> String {
    format!("{key}.{identity}.json")
}

/// The trust object's name in a setting folder.
pub fn trust_name(key: &str, identity: &str) -> String {
    format!("{key}.{identity}.trust.json")
}

/// What a name in a setting folder is: (checkpoint key, identity, trust or results).
pub fn parse_name(name: &str) -> Option<(&str, &str, Kind)> {
    let (stem, kind) = match name.strip_suffix(".trust.json") {
        Some(stem) => (stem, Kind::Trust),
        None => (name.strip_suffix(".json")?, Kind::Results),
    };
    let (key, identity) = stem.rsplit_once('.')?;
    (!key.is_empty() && !identity.is_empty()).then_some((key, identity, kind))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Results,
    Trust,
}

/// The setting as published: [`Setting`] and the methods.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedSetting {
    pub prep: String,
    pub layer: String,
    pub target: String,
    pub steps: usize,
    pub methods: Vec<String>,
}

impl PublishedSetting {
    pub fn new(setting: &Setting, methods: &[Method]) -> Self {
        PublishedSetting {
            prep: setting.prep.clone(),
            layer: setting.layer.clone(),
            target: setting.target.clone(),
            steps: setting.steps,
            methods: sorted_methods(methods)
                .into_iter()
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The checkpoint a result is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedCheckpoint {
    /// Its path under the run (the object's key under the run's prefix).
    pub key: String,
    pub identity: String,
    /// Its content's BLAKE3 hash, which the history keys results by.
    pub hash: String,
    pub epoch: Option<u64>,
    pub size: u64,
    pub mtime_ns: i64,
    /// `ok`, or `error` with the error (a corrupt checkpoint is published too: nobody
    /// else need find out again).
    pub status: String,
    pub error: Option<String>,
    pub format: Option<String>,
    pub arch: Option<String>,
}

/// One checkpoint's results under one setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub format: String,
    pub version: u32,
    pub setting: PublishedSetting,
    pub checkpoint: PublishedCheckpoint,
    pub samples: Vec<PublishedSample>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedSample {
    /// The sample's key: its image's content digest (and label, when the maps explain it).
    pub key: String,
    pub prediction: Option<PublishedPrediction>,
    pub maps: Vec<PublishedMap>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedPrediction {
    #[serde(with = "f32s")]
    pub logits: Vec<f32>,
    #[serde(with = "f32s")]
    pub probs: Vec<f32>,
    pub predicted: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedMap {
    pub method: String,
    pub class: usize,
    pub height: usize,
    pub width: usize,
    /// Little-endian float32, row-major, base64: exact, and a tenth of JSON numbers' size.
    #[serde(with = "f32s")]
    pub values: Vec<f32>,
    /// The box measured against (`x0,y0,x1,y1`), its energy and the pointing hit.
    pub on_object: Option<(String, f32, bool)>,
}

/// One checkpoint's trust figures under one setting, published once all are measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedTrust {
    pub format: String,
    pub version: u32,
    pub setting: PublishedSetting,
    pub key: String,
    pub identity: String,
    pub hash: String,
    /// Per sample key, the history's trust rows.
    pub samples: Vec<(String, Vec<TrustRow>)>,
}

/// One trust figure as the history stores it: (method, figure, steps, value).
pub type TrustRow = (String, String, usize, f32);

/// What was found published for one checkpoint: its results, its trust figures, or
/// both.
#[derive(Debug)]
pub struct Delivered {
    pub results: Option<Published>,
    pub trust: Option<PublishedTrust>,
    /// Where the results were read (a URL or a path), for the history.
    pub origin: String,
}

/// What a reader expects of an object: its name's parts and its own setting.
pub struct Expected<'a> {
    pub key: &'a str,
    pub identity: &'a str,
    pub setting: &'a PublishedSetting,
}

impl Expected<'_> {
    /// What both kinds of object are checked for: their format and version (`format`
    /// expected), that they are for the checkpoint their name says, and for the setting
    /// of their folder.
    fn check(
        &self,
        format: &str,
        found: (&str, u32),
        checkpoint: (&str, &str),
        setting: &PublishedSetting,
    ) -> Result<(), String> {
        if found != (format, VERSION) {
            return Err(format!(
                "{} version {}, this camwatch reads {format} version {VERSION}",
                found.0, found.1
            ));
        }
        if checkpoint != (self.key, self.identity) {
            return Err(format!(
                "is for {} ({}), not what its name says",
                checkpoint.0, checkpoint.1
            ));
        }
        if setting != self.setting {
            return Err("is for another setting than its folder's".into());
        }
        Ok(())
    }
}

impl Published {
    /// `row`'s results (every sample of `stored`, keyed), as published.
    pub fn new(
        row: &CheckpointRow,
        key: &str,
        identity: &str,
        setting: PublishedSetting,
        stored: &[(String, StoredSample)],
    ) -> Published {
        let samples = stored
            .iter()
            .map(|(key, s)| PublishedSample {
                key: key.clone(),
                prediction: s.prediction.as_ref().map(|p| PublishedPrediction {
                    logits: p.logits.clone(),
                    probs: p.probs.clone(),
                    predicted: p.predicted,
                }),
                maps: s
                    .maps
                    .iter()
                    .map(|m| PublishedMap {
                        method: m.method.name().to_string(),
                        class: m.class,
                        height: m.map.height,
                        width: m.map.width,
                        values: m.map.values.clone(),
                        on_object: m.on_object.clone(),
                    })
                    .collect(),
            })
            .collect();
        Published {
            format: RESULTS_FORMAT.into(),
            version: VERSION,
            setting,
            checkpoint: PublishedCheckpoint {
                key: key.to_string(),
                identity: identity.to_string(),
                hash: row.hash.clone(),
                epoch: row.epoch,
                size: row.fingerprint.size,
                mtime_ns: row.fingerprint.mtime_ns,
                status: row.status.as_str().to_string(),
                error: row.error.clone(),
                format: row.format.clone(),
                arch: row.arch.clone(),
            },
            samples,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("results serialise")
    }

    /// An object read from a listing, checked whole: its format, that it is for the
    /// checkpoint and setting its name says, and that every map and prediction holds
    /// together. The error says what is wrong (the caller names the object).
    pub fn decode(bytes: &[u8], expected: &Expected) -> Result<Published, String> {
        let published: Published =
            serde_json::from_slice(bytes).map_err(|e| not_results(&e, bytes))?;
        let c = &published.checkpoint;
        expected.check(
            RESULTS_FORMAT,
            (&published.format, published.version),
            (&c.key, &c.identity),
            &published.setting,
        )?;
        if c.hash.len() != 64 || !c.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{:?} is not a content hash", c.hash));
        }
        if !matches!(c.status.as_str(), "ok" | "error") {
            return Err(format!("status {:?}", c.status));
        }
        for sample in &published.samples {
            if let Some(p) = &sample.prediction
                && !as_prediction(p).is_whole()
            {
                return Err(format!(
                    "sample {}: a prediction that does not hold together",
                    sample.key
                ));
            }
            for m in &sample.maps {
                if m.method.parse::<Method>().is_err() {
                    return Err(format!(
                        "sample {}: unknown method {:?}",
                        sample.key, m.method
                    ));
                }
                if !as_map(m).is_whole() || m.values.iter().any(|v| !v.is_finite()) {
                    return Err(format!(
                        "sample {}: a {}×{} {} map with {} values",
                        sample.key,
                        m.height,
                        m.width,
                        m.method,
                        m.values.len()
                    ));
                }
            }
        }
        Ok(published)
    }

    /// The checkpoint's history row, for its file (or object) at `path`, taken from the
    /// object `origin`.
    pub fn row(&self, path: std::path::PathBuf, origin: String) -> CheckpointRow {
        let c = &self.checkpoint;
        CheckpointRow {
            path,
            hash: c.hash.clone(),
            fingerprint: Fingerprint {
                size: c.size,
                mtime_ns: c.mtime_ns,
            },
            epoch: c.epoch,
            status: if c.status == "ok" {
                Status::Ok
            } else {
                Status::Error
            },
            error: c.error.clone(),
            format: c.format.clone(),
            arch: c.arch.clone(),
            origin: Some(origin),
        }
    }

    /// The results as the history stores them, keyed by sample.
    pub fn stored(&self) -> Vec<(String, StoredSample)> {
        self.samples
            .iter()
            .map(|s| {
                let maps = s
                    .maps
                    .iter()
                    .filter_map(|m| {
                        Some(StoredMap {
                            method: m.method.parse().ok()?,
                            class: m.class,
                            map: as_map(m),
                            on_object: m.on_object.clone(),
                        })
                    })
                    .collect();
                let stored = StoredSample {
                    prediction: s.prediction.as_ref().map(as_prediction),
                    maps,
                    trust: SampleTrust::default(),
                };
                (s.key.clone(), stored)
            })
            .collect()
    }

    /// Whether it holds a prediction and every map of `methods` for each of `keys`.
    pub fn covers(&self, keys: &[String], methods: &[Method]) -> bool {
        keys.iter().all(|key| {
            self.samples.iter().any(|s| {
                &s.key == key
                    && s.prediction.is_some()
                    && methods
                        .iter()
                        .all(|m| s.maps.iter().any(|x| x.method == m.name()))
            })
        })
    }
}

impl PublishedTrust {
    pub fn new(
        setting: PublishedSetting,
        key: &str,
        identity: &str,
        hash: &str,
        trust: &[(String, SampleTrust)],
    ) -> PublishedTrust {
        PublishedTrust {
            format: TRUST_FORMAT.into(),
            version: VERSION,
            key: key.to_string(),
            identity: identity.to_string(),
            hash: hash.to_string(),
            samples: trust
                .iter()
                .map(|(sample, t)| {
                    let rows = stored::trust_rows(t, setting.steps)
                        .into_iter()
                        .map(|(method, figure, steps, value)| {
                            (method.name().to_string(), figure.to_string(), steps, value)
                        })
                        .collect();
                    (sample.clone(), rows)
                })
                .collect(),
            setting,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("trust figures serialise")
    }

    /// A trust object read from a listing, checked as [`Published::decode`] checks.
    pub fn decode(bytes: &[u8], expected: &Expected) -> Result<PublishedTrust, String> {
        let trust: PublishedTrust =
            serde_json::from_slice(bytes).map_err(|e| not_results(&e, bytes))?;
        expected.check(
            TRUST_FORMAT,
            (&trust.format, trust.version),
            (&trust.key, &trust.identity),
            &trust.setting,
        )?;
        Ok(trust)
    }

    /// The figures as the history stores them, keyed by sample (figures this camwatch
    /// does not know are left out).
    pub fn figures(&self) -> Vec<(String, SampleTrust)> {
        self.samples
            .iter()
            .map(|(sample, rows)| {
                let mut trust = SampleTrust::default();
                for (method, figure, _, value) in rows {
                    if let Ok(method) = method.parse::<Method>()
                        && value.is_finite()
                    {
                        stored::set_figure(&mut trust, method, figure, *value);
                    }
                }
                (sample.clone(), trust)
            })
            .collect()
    }
}

/// Why bytes are no results object: cut short, or something else entirely.
fn not_results(error: &serde_json::Error, bytes: &[u8]) -> String {
    if error.is_eof() {
        format!("cut short after {} bytes", bytes.len())
    } else {
        format!("not a camwatch results object ({error})")
    }
}

fn as_prediction(p: &PublishedPrediction) -> Prediction {
    Prediction {
        logits: p.logits.clone(),
        probs: p.probs.clone(),
        predicted: p.predicted,
    }
}

fn as_map(m: &PublishedMap) -> Map {
    Map {
        height: m.height,
        width: m.width,
        values: m.values.clone(),
    }
}

/// `Vec<f32>` as base64 of its little-endian bytes.
mod f32s {
    use super::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(values: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom("not whole float32 values"));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting() -> Setting {
        Setting {
            prep: "imagenet@224".into(),
            layer: "stage4".into(),
            target: "predicted".into(),
            steps: 16,
        }
    }

    fn published() -> Published {
        let row = CheckpointRow {
            path: "run/epoch_1.pdparams".into(),
            hash: "ab".repeat(32),
            fingerprint: Fingerprint {
                size: 10,
                mtime_ns: 5,
            },
            epoch: Some(1),
            status: Status::Ok,
            error: None,
            format: Some("pdparams".into()),
            arch: None,
            origin: None,
        };
        let sample = StoredSample {
            prediction: Some(Prediction {
                logits: vec![1.0, -2.5],
                probs: vec![0.97, 0.03],
                predicted: 0,
            }),
            maps: vec![StoredMap {
                method: Method::GradCam,
                class: 0,
                map: Map {
                    height: 1,
                    width: 2,
                    values: vec![0.1, f32::MIN_POSITIVE],
                },
                on_object: Some(("0,0,4,4".into(), 0.75, true)),
            }],
            trust: SampleTrust::default(),
        };
        let setting = PublishedSetting::new(&setting(), &[Method::GradCam]);
        Published::new(
            &row,
            "epoch_1.pdparams",
            "e1",
            setting,
            &[("s1".into(), sample)],
        )
    }

    #[test]
    fn results_round_trip_exactly_and_are_checked() {
        let p = published();
        let expected = Expected {
            key: "epoch_1.pdparams",
            identity: "e1",
            setting: &p.setting,
        };
        let bytes = p.to_bytes();
        let back = Published::decode(&bytes, &expected).unwrap();
        assert_eq!(back, p);
        assert_eq!(
            back.stored()[0].1.maps[0].map.values,
            vec![0.1, f32::MIN_POSITIVE]
        );
        assert!(back.covers(&["s1".into()], &[Method::GradCam]));
        assert!(!back.covers(&["s1".into(), "s2".into()], &[Method::GradCam]));

        let cut = Published::decode(&bytes[..bytes.len() / 2], &expected).unwrap_err();
        assert!(cut.starts_with("cut short"), "{cut}");
        let foreign = Published::decode(b"{\"hello\": 1}", &expected).unwrap_err();
        assert!(
            foreign.starts_with("not a camwatch results object"),
            "{foreign}"
        );
        let other = Expected {
            identity: "e2",
            ..expected
        };
        assert!(Published::decode(&bytes, &other).is_err());
        let mut broken = p.clone();
        broken.samples[0].maps[0].values.pop();
        assert!(Published::decode(&broken.to_bytes(), &expected).is_err());
    }

    #[test]
    fn names_say_what_they_hold() {
        let folder = setting_folder(&setting(), &[Method::ScoreCam, Method::GradCam]);
        assert_eq!(
            folder,
            setting_folder(&setting(), &[Method::GradCam, Method::ScoreCam])
        );
        assert!(
            folder.starts_with("imagenet@224_stage4_predicted_s16_"),
            "{folder}"
        );
        assert_ne!(folder, setting_folder(&setting(), &[Method::GradCam]));
        let id = Identity::ETag("\"9b2cf535f27731c974343645a3985328\"").name();
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        assert_eq!(
            parse_name(&results_name("sub/epoch_3.pdparams", &id)),
            Some(("sub/epoch_3.pdparams", id.as_str(), Kind::Results))
        );
        assert_eq!(
            parse_name(&trust_name("epoch_3.pth", "h12")),
            Some(("epoch_3.pth", "h12", Kind::Trust))
        );
        assert_eq!(parse_name("notes.txt"), None);
    }
}
