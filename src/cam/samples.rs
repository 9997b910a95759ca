//! A sample directory: the images camwatch explains, their labels and object boxes
//! (`labels.csv`), class names (`classes.txt`) and the run's defaults (`camwatch.toml`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::Deserialize;

use super::options::{Layer, Method, Normalize, Target};

pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "webp"];

/// An object box in original-image pixels: `[x0, y0, x1, y1]`.
pub type BoundingBox = [f32; 4];

#[derive(Clone)]
pub struct Sample {
    /// The file stem: outputs are named after it.
    pub name: String,
    pub file: PathBuf,
    /// BLAKE3 of the file's bytes (32 hex digits), hashed from the same bytes that were
    /// decoded: the history's key for the sample.
    pub digest: String,
    pub image: RgbImage,
    pub label: Option<usize>,
    pub bbox: Option<BoundingBox>,
}

/// `camwatch.toml`: a sample set's own preprocessing and defaults; flags override it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunDefaults {
    pub normalize: Option<Normalize>,
    pub input_size: Option<usize>,
    pub methods: Option<Vec<Method>>,
    pub layer: Option<Layer>,
    pub target: Option<Target>,
    pub precision: Option<crate::precision::PrecisionChoice>,
}

#[derive(Clone)]
pub struct SampleSet {
    pub dir: PathBuf,
    pub samples: Vec<Sample>,
    pub classes: Option<Vec<String>>,
    pub defaults: RunDefaults,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct SampleError {
    pub path: PathBuf,
    pub message: String,
}

fn error(path: &Path, message: impl Into<String>) -> SampleError {
    SampleError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl SampleSet {
    /// Reads a sample directory, or one image file as a set of one (with its folder's
    /// labels, classes and defaults).
    pub fn load(path: &Path) -> Result<SampleSet, SampleError> {
        if path.is_file() {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let classes = read_classes(&dir.join("classes.txt"))?;
            let labels = read_labels(&dir.join("labels.csv"), classes.as_deref())?;
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            return Ok(SampleSet {
                dir: dir.to_path_buf(),
                samples: vec![load_image(path, labels.get(name))?],
                classes,
                defaults: read_defaults(&dir.join("camwatch.toml"))?,
            });
        }
        let entries =
            std::fs::read_dir(path).map_err(|e| error(path, format!("cannot read: {e}")))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(error(path, "no images (png, jpg, jpeg, bmp, webp)"));
        }
        // Outputs are named after the stem: `a.png` and `a.jpg` would overwrite each
        // other's maps and share one history key.
        let mut stems = HashMap::new();
        for file in &files {
            if let Some(other) = stems.insert(file.file_stem(), file) {
                return Err(error(
                    file,
                    format!(
                        "has the same name as {} but for its extension: outputs are named \
                         after the name, rename one",
                        other.display()
                    ),
                ));
            }
        }

        let classes = read_classes(&path.join("classes.txt"))?;
        let labels = read_labels(&path.join("labels.csv"), classes.as_deref())?;
        let defaults = read_defaults(&path.join("camwatch.toml"))?;
        let samples = files
            .iter()
            .map(|file| {
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                load_image(file, labels.get(name))
            })
            .collect::<Result<_, _>>()?;
        Ok(SampleSet {
            dir: path.to_path_buf(),
            samples,
            classes,
            defaults,
        })
    }

    pub fn has_boxes(&self) -> bool {
        self.samples.iter().any(|s| s.bbox.is_some())
    }
}

/// Decoding limits: a small file may claim a huge image (a "decompression bomb").
const MAX_IMAGE_SIDE: u32 = 16384;
const MAX_IMAGE_ALLOC: u64 = 1 << 30;
/// Text files beside the images (labels, classes, defaults).
const MAX_TEXT_BYTES: u64 = 16 << 20;

fn load_image(file: &Path, label: Option<&LabelRow>) -> Result<Sample, SampleError> {
    let bytes = crate::untrusted::read(file, crate::untrusted::MAX_IMAGE_BYTES)
        .map_err(|e| error(file, format!("cannot read: {e}")))?;
    let image = decode_image(&bytes).map_err(|e| error(file, e))?;
    let digest = blake3::hash(&bytes).to_hex()[..32].to_string();
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| error(file, "file name is not UTF-8"))?
        .to_string();
    Ok(Sample {
        name,
        file: file.to_path_buf(),
        digest,
        image,
        label: label.map(|l| l.label),
        bbox: label.and_then(|l| l.bbox),
    })
}

/// Decodes an image file's bytes, refusing what the decoders would accept silently: a
/// JPEG cut short decodes with grey where its end is missing.
fn decode_image(bytes: &[u8]) -> Result<RgbImage, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_has_end(bytes) {
        return Err("truncated JPEG (no end-of-image marker)".into());
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    Ok(reader
        .decode()
        .map_err(|e| format!("cannot decode image: {e}"))?
        .to_rgb8())
}

/// Whether a JPEG's end-of-image marker (FF D9) is near its end; inside the compressed
/// data a 0xFF byte is always followed by 0x00, so the marker cannot appear by chance.
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xff, 0xd9])
}

/// A text file beside the images, `None` when there is none.
fn read_text(path: &Path) -> Result<Option<String>, SampleError> {
    match crate::untrusted::read(path, MAX_TEXT_BYTES) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| error(path, "not UTF-8 text")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(error(path, format!("cannot read: {e}"))),
    }
}

fn read_classes(path: &Path) -> Result<Option<Vec<String>>, SampleError> {
    Ok(read_text(path)?.map(|text| {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }))
}

fn read_defaults(path: &Path) -> Result<RunDefaults, SampleError> {
    match read_text(path)? {
        Some(text) => {
            let defaults: RunDefaults =
                toml::from_str(&text).map_err(|e| error(path, e.to_string().replace('\n', " ")))?;
            if let Some(n) = defaults.input_size {
                super::options::check_input_size(n)
                    .map_err(|e| error(path, format!("input_size: {e}")))?;
            }
            Ok(defaults)
        }
        None => Ok(RunDefaults::default()),
    }
}

struct LabelRow {
    label: usize,
    bbox: Option<BoundingBox>,
}

/// `labels.csv`: header `file,label` and optionally `x0,y0,x1,y1`. A label is a class
/// index or a name from `classes.txt`.
fn read_labels(
    path: &Path,
    classes: Option<&[String]>,
) -> Result<HashMap<String, LabelRow>, SampleError> {
    let Some(text) = read_text(path)? else {
        return Ok(HashMap::new());
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| error(path, e.to_string()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(file_col), Some(label_col)) = (column("file"), column("label")) else {
        return Err(error(
            path,
            "the header must name the columns `file` and `label`",
        ));
    };
    let box_cols: Option<Vec<usize>> = ["x0", "y0", "x1", "y1"].iter().map(|c| column(c)).collect();
    let mut rows = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| error(path, format!("line {line}: {e}")))?;
        let field = |c: usize| record.get(c).unwrap_or("");
        let label_text = field(label_col);
        let label = label_text
            .parse::<usize>()
            .ok()
            .or_else(|| classes?.iter().position(|c| c == label_text))
            .ok_or_else(|| {
                error(path, format!("line {line}: label {label_text:?} is neither a class index nor a name in classes.txt"))
            })?;
        if let Some(classes) = classes
            && label >= classes.len()
        {
            return Err(error(
                path,
                format!(
                    "line {line}: label {label} but classes.txt names {} classes",
                    classes.len()
                ),
            ));
        }
        let bbox = match &box_cols {
            Some(cols) if cols.iter().any(|&c| !field(c).is_empty()) => {
                let v: Vec<f32> = cols
                    .iter()
                    .map(|&c| field(c).parse::<f32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        error(
                            path,
                            format!("line {line}: box coordinates must be numbers"),
                        )
                    })?;
                if !v.iter().all(|c| c.is_finite()) {
                    return Err(error(
                        path,
                        format!(
                            "line {line}: box {v:?} has a coordinate that is not a finite number"
                        ),
                    ));
                }
                if v[2] <= v[0] || v[3] <= v[1] {
                    return Err(error(
                        path,
                        format!("line {line}: box {v:?} is empty (need x0 < x1, y0 < y1)"),
                    ));
                }
                Some([v[0], v[1], v[2], v[3]])
            }
            _ => None,
        };
        rows.insert(field(file_col).to_string(), LabelRow { label, bbox });
    }
    Ok(rows)
}
