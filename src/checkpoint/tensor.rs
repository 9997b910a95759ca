//! Named weight tensors as read from a file, converted to `f32`.

use std::collections::BTreeMap;

use super::LoadError;

/// One tensor from a checkpoint, row-major, as `f32` whatever it was stored as.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl WeightTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Every floating-point tensor of a checkpoint by name; integer tensors (such as
/// BatchNorm's `num_batches_tracked`) are listed in `skipped`, not converted.
#[derive(Clone, Debug, Default)]
pub struct Weights {
    pub tensors: BTreeMap<String, WeightTensor>,
    pub skipped: Vec<String>,
    /// The model's name, where the file carries one beside the weights (timm's training
    /// checkpoints: `arch`), for what the tensors cannot tell.
    pub arch: Option<String>,
}

/// Element types found in checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F16,
    BF16,
    F32,
    F64,
    I8,
    U8,
    I16,
    I32,
    I64,
    Bool,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    /// NumPy's type code without byte order: `f4`, `float32`, `<f4`…
    pub fn from_numpy(code: &str) -> Option<DType> {
        Some(match code.trim_start_matches(['<', '>', '=', '|']) {
            "f2" | "float16" => DType::F16,
            "f4" | "float32" => DType::F32,
            "f8" | "float64" => DType::F64,
            "i1" | "int8" => DType::I8,
            "u1" | "uint8" => DType::U8,
            "i2" | "int16" => DType::I16,
            "i4" | "int32" => DType::I32,
            "i8" | "int64" => DType::I64,
            "b1" | "bool" => DType::Bool,
            // ml_dtypes' bfloat16, as Paddle writes it through NumPy.
            "V2" | "bfloat16" => DType::BF16,
            _ => return None,
        })
    }

    /// torch's typed storage classes (`torch.FloatStorage`) and dtypes (`torch.float32`).
    pub fn from_torch(name: &str) -> Option<DType> {
        let name = name.trim_start_matches("torch.");
        Some(match name {
            "HalfStorage" | "float16" | "half" => DType::F16,
            "BFloat16Storage" | "bfloat16" => DType::BF16,
            "FloatStorage" | "float32" | "float" => DType::F32,
            "DoubleStorage" | "float64" | "double" => DType::F64,
            "CharStorage" | "int8" => DType::I8,
            "ByteStorage" | "uint8" => DType::U8,
            "ShortStorage" | "int16" => DType::I16,
            "IntStorage" | "int32" => DType::I32,
            "LongStorage" | "int64" | "long" => DType::I64,
            "BoolStorage" | "bool" => DType::Bool,
            _ => return None,
        })
    }

    pub fn from_safetensors(name: &str) -> Option<DType> {
        Some(match name {
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F32" => DType::F32,
            "F64" => DType::F64,
            "I8" => DType::I8,
            "U8" => DType::U8,
            "I16" => DType::I16,
            "I32" => DType::I32,
            "I64" => DType::I64,
            "BOOL" => DType::Bool,
            _ => return None,
        })
    }
}

/// How many values the tensors of one file may decode to, all together: one per byte
/// of the file (plus a little for tiny files). Every element of a real checkpoint is
/// stored in at least two bytes (f16), so this leaves room for tensors that share
/// storage, while views that repeat the same data (stride 0, one array under thousands
/// of names, overlapping ranges) cannot turn a small file into gigabytes.
#[derive(Debug)]
pub struct Budget {
    left: usize,
    total: usize,
}

impl Budget {
    pub fn for_file(len: usize) -> Budget {
        let total = len.saturating_add(1 << 12);
        Budget { left: total, total }
    }

    fn spend(&mut self, name: &str, numel: usize) -> Result<(), LoadError> {
        self.left = self
            .left
            .checked_sub(numel)
            .ok_or_else(|| LoadError::Tensor {
                name: name.to_string(),
                message: format!(
                    "its {numel} values would take the file's tensors past {} values, more than \
                 a file of this size holds (views repeating the same data?)",
                    self.total
                ),
            })?;
        Ok(())
    }
}

/// Converts `count` elements of `dtype` starting at element `offset` of `bytes`, taking
/// `strides` (in elements) into account, to a row-major `f32` vector, spending
/// `budget`.
#[allow(clippy::too_many_arguments)]
pub fn decode(
    name: &str,
    bytes: &[u8],
    dtype: DType,
    big_endian: bool,
    shape: &[usize],
    strides: Option<&[usize]>,
    offset: usize,
    budget: &mut Budget,
) -> Result<WeightTensor, LoadError> {
    let bad = |message: String| LoadError::Tensor {
        name: name.to_string(),
        message,
    };
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    budget.spend(name, numel)?;
    let size = dtype.size();
    let contiguous = contiguous_strides(shape);
    let strides = strides.unwrap_or(&contiguous);
    if strides.len() != shape.len() {
        return Err(bad(format!(
            "{} strides for a {}-dimensional shape",
            strides.len(),
            shape.len()
        )));
    }
    // The furthest element the view touches must lie inside the data.
    let last = shape
        .iter()
        .zip(strides)
        .try_fold(offset, |acc, (&d, &s)| {
            acc.checked_add(d.saturating_sub(1).checked_mul(s)?)
        })
        .filter(|_| numel > 0)
        .unwrap_or(offset);
    let needed = if numel == 0 {
        0
    } else {
        last.checked_add(1)
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(|| bad("data range overflows".into()))?
    };
    if needed > bytes.len() {
        return Err(bad(format!(
            "needs {needed} bytes of data for shape {shape:?}, the file holds {}",
            bytes.len()
        )));
    }
    let read = |i: usize| -> f32 {
        let b = &bytes[i * size..(i + 1) * size];
        let mut a = [0u8; 8];
        a[..size].copy_from_slice(b);
        if big_endian {
            a[..size].reverse();
        }
        match dtype {
            DType::F16 => half::f16::from_le_bytes([a[0], a[1]]).to_f32(),
            DType::BF16 => half::bf16::from_le_bytes([a[0], a[1]]).to_f32(),
            DType::F32 => f32::from_le_bytes([a[0], a[1], a[2], a[3]]),
            DType::F64 => f64::from_le_bytes(a) as f32,
            DType::I8 => a[0] as i8 as f32,
            DType::U8 | DType::Bool => a[0] as f32,
            DType::I16 => i16::from_le_bytes([a[0], a[1]]) as f32,
            DType::I32 => i32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f32,
            DType::I64 => i64::from_le_bytes(a) as f32,
        }
    };
    let values = if numel == 0 {
        // Nothing to read, wherever the view claims to start.
        Vec::new()
    } else if strides == contiguous.as_slice() {
        let data = &bytes[offset * size..(offset + numel) * size];
        match dtype {
            DType::F32 if !big_endian => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            // Half-precision checkpoints (fp16 safetensors, mixed-precision runs) are
            // common: whole blocks converted at once, with F16C where the CPU has it.
            DType::F16 | DType::BF16 if !big_endian => widen_halves(data, dtype),
            _ => (offset..offset + numel).map(read).collect(),
        }
    } else {
        let mut values = Vec::with_capacity(numel);
        let mut index = vec![0usize; shape.len()];
        for _ in 0..numel {
            let at = offset + index.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
            values.push(read(at));
            for d in (0..shape.len()).rev() {
                index[d] += 1;
                if index[d] < shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        values
    };
    Ok(WeightTensor {
        shape: shape.to_vec(),
        values,
    })
}

/// Little-endian fp16 or bf16 values to f32, a block at a time (the bytes need not be
/// aligned).
fn widen_halves(data: &[u8], dtype: DType) -> Vec<f32> {
    use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
    const BLOCK: usize = 4096;
    let mut values = vec![0f32; data.len() / 2];
    let mut bits = [0u16; BLOCK];
    for (bytes, out) in data.chunks(2 * BLOCK).zip(values.chunks_mut(BLOCK)) {
        let bits = &mut bits[..out.len()];
        for (b, pair) in bits.iter_mut().zip(bytes.chunks_exact(2)) {
            *b = u16::from_le_bytes([pair[0], pair[1]]);
        }
        if dtype == DType::F16 {
            bits.reinterpret_cast::<half::f16>()
                .convert_to_f32_slice(out);
        } else {
            bits.reinterpret_cast::<half::bf16>()
                .convert_to_f32_slice(out);
        }
    }
    values
}

pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1].saturating_mul(shape[d + 1]);
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_view_is_gathered_row_major() {
        let bytes: Vec<u8> = [1f32, 2., 3., 4., 5., 6.]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        // A [3, 2] view of a [2, 3] buffer, transposed.
        let t = decode(
            "t",
            &bytes,
            DType::F32,
            false,
            &[3, 2],
            Some(&[1, 3]),
            0,
            &mut room(),
        )
        .unwrap();
        assert_eq!(t.values, vec![1., 4., 2., 5., 3., 6.]);
    }

    #[test]
    fn halves_in_blocks_are_exact() {
        // Every f16 and bf16 bit pattern, past a block's end and from an odd offset.
        for dtype in [DType::F16, DType::BF16] {
            let mut bytes = vec![0u8];
            bytes.extend((0..=u16::MAX).flat_map(|b| b.to_le_bytes()));
            let count = 1 << 16;
            let t = decode(
                "h",
                &bytes[1..],
                dtype,
                false,
                &[count],
                None,
                0,
                &mut room(),
            );
            let t = t.unwrap();
            for (bits, value) in (0..=u16::MAX).zip(&t.values) {
                let want = match dtype {
                    DType::F16 => half::f16::from_bits(bits).to_f32(),
                    _ => half::bf16::from_bits(bits).to_f32(),
                };
                assert!(
                    want.to_bits() == value.to_bits() || (want.is_nan() && value.is_nan()),
                    "{dtype:?} {bits:#06x}: {value} instead of {want}"
                );
            }
        }
    }

    #[test]
    fn half_and_big_endian() {
        let h = half::f16::from_f32(1.5).to_le_bytes();
        let t = decode("h", &h, DType::F16, false, &[1], None, 0, &mut room()).unwrap();
        assert_eq!(t.values, vec![1.5]);
        let b = 2.5f32.to_be_bytes();
        let t = decode("b", &b, DType::F32, true, &[1], None, 0, &mut room()).unwrap();
        assert_eq!(t.values, vec![2.5]);
    }

    #[test]
    fn out_of_range_view_is_an_error() {
        let bytes = [0u8; 8];
        let decode = |shape: &[usize], offset| {
            decode(
                "x",
                &bytes,
                DType::F32,
                false,
                shape,
                None,
                offset,
                &mut room(),
            )
        };
        assert!(decode(&[3], 0).is_err());
        assert!(decode(&[2], 1).is_err());
        assert!(decode(&[usize::MAX, 2], 0).is_err());
    }

    #[test]
    fn repeated_views_run_out_of_budget() {
        // A stride-0 view: one stored value seen a million times.
        let bytes = 1f32.to_le_bytes();
        let mut budget = Budget::for_file(600);
        let error = decode(
            "x",
            &bytes,
            DType::F32,
            false,
            &[1 << 20],
            Some(&[0]),
            0,
            &mut budget,
        );
        assert!(error.unwrap_err().to_string().contains("views repeating"));
        let mut budget = Budget::for_file(0);
        for _ in 0..1024 {
            decode(
                "x",
                &bytes,
                DType::F32,
                false,
                &[4],
                Some(&[0]),
                0,
                &mut budget,
            )
            .unwrap();
        }
        assert!(decode("x", &bytes, DType::F32, false, &[1], None, 0, &mut budget).is_err());
    }

    fn room() -> Budget {
        Budget::for_file(1 << 20)
    }
}
