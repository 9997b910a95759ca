//! `.safetensors`: an 8-byte little-endian header length, a JSON header mapping names to
//! `{dtype, shape, data_offsets}`, then the raw little-endian data.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::LoadError;
use super::tensor::{self, Budget, DType, Weights};

#[derive(Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// The header length and the data length the header promises: a complete file is exactly
/// `8 + header + data` bytes long.
pub fn expected_len(data: &[u8]) -> Result<usize, LoadError> {
    let (header_len, header) = header(data)?;
    let end = header
        .values()
        .filter_map(|v| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    usize::try_from(end)
        .ok()
        .and_then(|end| end.checked_add(8 + header_len))
        .ok_or_else(|| LoadError::Safetensors("data offsets overflow".into()))
}

/// The largest JSON header read: about 100 bytes per tensor, so room for a hundred
/// thousand tensors; parsing a larger one could take gigabytes of JSON values.
const MAX_HEADER: u64 = 16 << 20;

fn header(data: &[u8]) -> Result<(usize, BTreeMap<String, serde_json::Value>), LoadError> {
    let bad = |m: String| LoadError::Safetensors(m);
    let len = data
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        .ok_or_else(|| bad("shorter than its 8-byte header length".into()))?;
    if len > MAX_HEADER {
        return Err(bad(format!(
            "header of {len} bytes (a checkpoint's header takes a few hundred kilobytes; \
             camwatch reads up to {MAX_HEADER})"
        )));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= data.len().saturating_sub(8))
        .ok_or_else(|| {
            bad(format!(
                "header of {len} bytes runs past the end of the file"
            ))
        })?;
    let header = serde_json::from_slice(&data[8..8 + len])
        .map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
    Ok((len, header))
}

pub fn read(data: &[u8]) -> Result<Weights, LoadError> {
    let (header_len, header) = header(data)?;
    let body = &data[8 + header_len..];
    let mut weights = Weights::default();
    let mut budget = Budget::for_file(data.len());
    for (name, value) in header {
        if name == "__metadata__" {
            continue;
        }
        let entry: Entry = serde_json::from_value(value)
            .map_err(|e| LoadError::Safetensors(format!("entry {name:?}: {e}")))?;
        let dtype = DType::from_safetensors(&entry.dtype).ok_or_else(|| LoadError::Tensor {
            name: name.clone(),
            message: format!("unsupported dtype {}", entry.dtype),
        })?;
        if !dtype.is_float() {
            weights.skipped.push(name);
            continue;
        }
        let [start, end] = entry.data_offsets;
        let bytes = body.get(start..end).ok_or_else(|| LoadError::Tensor {
            name: name.clone(),
            message: format!(
                "data range {start}..{end} is outside the file's {} data bytes (truncated?)",
                body.len()
            ),
        })?;
        let t = tensor::decode(
            &name,
            bytes,
            dtype,
            false,
            &entry.shape,
            None,
            0,
            &mut budget,
        )?;
        if t.numel() * dtype.size() != bytes.len() {
            return Err(LoadError::Tensor {
                name,
                message: format!(
                    "shape {:?} does not fill its {} bytes",
                    entry.shape,
                    bytes.len()
                ),
            });
        }
        weights.tensors.insert(name, t);
    }
    Ok(weights)
}
