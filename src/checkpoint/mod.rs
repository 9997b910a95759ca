//! Reading weight files of the ResNet family: `.pdparams` (PaddlePaddle), `.pt/.pth/.pth.tar/.ckpt`
//! (PyTorch), `.safetensors`. The format is told from the content, not the file name.

pub mod complete;
pub mod pdparams;
pub mod pickle;
pub mod safetensors;
pub mod tensor;
pub mod torch;
pub mod zip;

use std::fmt;
use std::path::{Path, PathBuf};

pub use tensor::{WeightTensor, Weights};

/// What can be wrong with a weight file. Always reported with the file's path, through
/// [`CheckpointError`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("empty file")]
    Empty,
    #[error("not a checkpoint: {0}")]
    UnknownFormat(String),
    #[error("legacy torch.save format (before PyTorch 1.6); re-save it with a newer PyTorch")]
    LegacyTorch,
    #[error("broken pickle: {0}")]
    Pickle(#[from] pickle::PickleError),
    #[error("broken ZIP archive: {0}")]
    Zip(String),
    #[error("broken safetensors file: {0}")]
    Safetensors(String),
    #[error("not a state dict: {0}")]
    NotAStateDict(String),
    #[error("tensor {name:?}: {message}")]
    Tensor { name: String, message: String },
    #[error("not a network camwatch reads: {0}")]
    NotSupported(String),
    #[error("{} tensor(s) missing, first {:?}{}", names.len(), names[0],
        if names.len() > 1 { format!(" (also {:?}…)", names[1]) } else { String::new() })]
    Missing { names: Vec<String> },
    #[error("tensor {name:?} has shape {found:?}, the network needs {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
}

/// A [`LoadError`] with the file it came from: `path: what is wrong`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct CheckpointError {
    pub path: PathBuf,
    #[source]
    pub source: LoadError,
}

impl CheckpointError {
    pub fn new(path: &Path, source: LoadError) -> Self {
        CheckpointError {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `paddle.save`: a bare pickle.
    Pdparams,
    /// `torch.save`: a ZIP holding a pickle and raw storages.
    Torch,
    Safetensors,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pdparams => "pdparams",
            Format::Torch => "torch",
            Format::Safetensors => "safetensors",
        })
    }
}

/// The pickle torch.save wrote before 1.6 starts with this magic number.
const LEGACY_TORCH_MAGIC: &[u8] = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// Tells the format from the first bytes.
pub fn detect(data: &[u8]) -> Result<Format, LoadError> {
    if data.is_empty() {
        return Err(LoadError::Empty);
    }
    if data.starts_with(b"PK\x03\x04") {
        return Ok(Format::Torch);
    }
    // Before the pickle test: a header of 640 bytes (0x280, and 1 in 256 other lengths)
    // starts like a pickle's protocol 2 opcode. A header length under 2⁴⁰ has three zero
    // bytes before the JSON; no pickle of protocol 2 to 5 has them there.
    if data.len() >= 9 && data[8] == b'{' && data[5..8] == [0, 0, 0] {
        return Ok(Format::Safetensors);
    }
    if data[0] == 0x80 && data.get(1).is_some_and(|&p| (2..=5).contains(&p)) {
        if data[2..].starts_with(LEGACY_TORCH_MAGIC) {
            return Err(LoadError::LegacyTorch);
        }
        return Ok(Format::Pdparams);
    }
    // The file's bytes are not shown: a symlink may point at somebody's private file.
    Err(LoadError::UnknownFormat(
        "no pickle, ZIP or safetensors header".into(),
    ))
}

/// Keys under which training scripts keep the model's state dict beside epochs,
/// optimiser state and hyper-parameters, in order of preference.
const STATE_DICT_KEYS: [&str; 5] = ["state_dict", "model", "model_state_dict", "module", "net"];

/// The state dict inside a checkpoint's root object: the first entry under one of
/// [`STATE_DICT_KEYS`] that holds tensors, else the root itself.
fn find_state_dict<'a>(
    root: pickle::Value<'a>,
    is_tensor: impl Fn(&pickle::Value) -> bool,
) -> pickle::Value<'a> {
    STATE_DICT_KEYS
        .iter()
        .filter_map(|k| root.get(k))
        .find(|v| {
            v.dict_items()
                .is_some_and(|items| items.iter().any(|(_, v)| is_tensor(v)))
        })
        .unwrap_or(root)
}

/// Reads every floating-point tensor of a weight file held in memory.
pub fn parse(data: &[u8]) -> Result<(Format, Weights), LoadError> {
    let format = detect(data)?;
    let weights = match format {
        Format::Pdparams => pdparams::read(data)?,
        Format::Torch => torch::read(data)?,
        Format::Safetensors => safetensors::read(data)?,
    };
    if weights.tensors.is_empty() {
        return Err(LoadError::NotAStateDict(
            "it holds no floating-point tensors".into(),
        ));
    }
    Ok((format, weights))
}

thread_local! {
    /// The file buffer, kept for the thread's next read: a monitor reads checkpoint after
    /// checkpoint, and a fresh 100 MB buffer costs more in page faults than the read.
    static FILE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads a weight file from disk.
pub fn read(path: &Path) -> Result<(Format, Weights), CheckpointError> {
    with_file(path, |data| {
        parse(data).map_err(|e| CheckpointError::new(path, e))
    })?
}

/// Reads the whole file at `path` (a regular file, at most
/// [`MAX_CHECKPOINT_BYTES`](crate::untrusted::MAX_CHECKPOINT_BYTES)) into the thread's
/// reusable buffer and hands it to `f`.
pub fn with_file<T>(path: &Path, f: impl FnOnce(&[u8]) -> T) -> Result<T, CheckpointError> {
    FILE_BUFFER.with_borrow_mut(|buffer| {
        crate::untrusted::read_into(path, crate::untrusted::MAX_CHECKPOINT_BYTES, buffer)
            .map_err(|e| CheckpointError::new(path, e.into()))?;
        let result = f(buffer);
        // Keep the buffer only while it fits the files being read.
        if buffer.capacity() > 2 * buffer.len().max(1 << 20) {
            *buffer = Vec::new();
        }
        Ok(result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One f32 tensor, the header padded to `length` bytes with metadata.
    fn safetensors_with_header(length: usize) -> Vec<u8> {
        let mut json =
            br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"a":""#
                .to_vec();
        let close = br#""}}"#;
        json.resize(length - close.len(), b'x');
        json.extend_from_slice(close);
        let mut data = (length as u64).to_le_bytes().to_vec();
        data.extend_from_slice(&json);
        data.extend_from_slice(&1f32.to_le_bytes());
        data
    }

    #[test]
    fn a_safetensors_header_that_starts_like_a_pickle_is_safetensors() {
        // 0x280: the first two bytes are 0x80 0x02, a pickle's protocol 2 opcode.
        for length in [0x280, 0x380, 0x480, 0x580, 0x1_0280, 100] {
            let data = safetensors_with_header(length);
            assert_eq!(
                detect(&data).unwrap(),
                Format::Safetensors,
                "header of {length}"
            );
            let (_, weights) = parse(&data).unwrap_or_else(|e| panic!("header of {length}: {e}"));
            assert_eq!(weights.tensors["w"].values, [1.0]);
        }
    }

    #[test]
    fn pickles_are_pickles() {
        // torch.save's and paddle.save's protocol 2 and protocol 4 beginnings.
        for data in [
            &b"\x80\x02}q\x00(X\x05\x00\x00\x00"[..],
            &b"\x80\x04\x95\x40\x00\x00\x00\x00\x00\x00\x00}\x94"[..],
        ] {
            assert_eq!(detect(data).unwrap(), Format::Pdparams);
        }
    }
}
