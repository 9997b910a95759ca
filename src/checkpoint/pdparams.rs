//! `.pdparams`, as `paddle.save` writes a state dict: a pickle of a dict from parameter
//! name to NumPy array, plus the `StructuredToParameterName@@` name table, plus, under
//! protocols 2 and 3, arrays of 2^30 bytes or more split into `name@@.i` parts listed
//! in `UnpackBigParamInfor@@`.

use super::LoadError;
use super::pickle::{self, Value};
use super::tensor::{self, Budget, DType, WeightTensor, Weights};

const NAME_TABLE: &str = "StructuredToParameterName@@";
const SPLIT_TABLE: &str = "UnpackBigParamInfor@@";

pub fn read(data: &[u8]) -> Result<Weights, LoadError> {
    let (pickle, _) = pickle::parse(data)?;
    let root = pickle.root.clone();
    let root = super::find_state_dict(root, |v| {
        let v = paddle_tensor_array(v);
        matches!(numpy_array("", &v), Ok(Some(_)))
    });
    let Some(items) = root.dict_items() else {
        return Err(LoadError::NotAStateDict(format!(
            "the pickle holds a {}, not a dict of arrays",
            root.kind()
        )));
    };
    let mut weights = Weights::default();
    let mut budget = Budget::for_file(data.len());
    let mut split_table = None;
    for (key, value) in items {
        let Some(name) = key.as_str() else { continue };
        match name {
            NAME_TABLE => continue,
            SPLIT_TABLE => {
                split_table = Some(value);
                continue;
            }
            _ => {}
        }
        match numpy_array(name, &paddle_tensor_array(&value))? {
            Some(t) if t.dtype.is_float() => {
                weights
                    .tensors
                    .insert(name.to_string(), t.decode(name, &mut budget)?);
            }
            Some(_) => weights.skipped.push(name.to_string()),
            None => {} // not an array: training metadata, ignore
        }
    }
    if let Some(table) = split_table {
        join_split_arrays(&mut weights, &table)?;
    }
    Ok(weights)
}

/// The array inside a Paddle Tensor pickled outside a state dict, which reduces to
/// `(name, ndarray)`; any other value as it is.
fn paddle_tensor_array<'a>(value: &Value<'a>) -> Value<'a> {
    match value.small_seq(2).as_deref() {
        Some([name, array]) if name.as_str().is_some() => array.clone(),
        _ => value.clone(),
    }
}

/// Reassembles arrays that `paddle.save` split into parts, as `_pack_loaded_dict` does.
fn join_split_arrays(weights: &mut Weights, table: &Value) -> Result<(), LoadError> {
    let bad = |name: &str, message: String| LoadError::Tensor {
        name: name.to_string(),
        message,
    };
    for (key, info) in table.dict_items().unwrap_or_default() {
        let Some(name) = key.as_str() else { continue };
        let shape = info
            .get("OriginShape")
            .and_then(|s| int_list(&s))
            .ok_or_else(|| bad(name, "split array has no OriginShape".into()))?;
        let parts = info
            .get("slices")
            .and_then(|s| s.as_seq())
            .ok_or_else(|| bad(name, "split array has no slices".into()))?;
        let mut values = Vec::new();
        for part in parts {
            let part = part.as_str().unwrap_or_default().to_string();
            let t = weights
                .tensors
                .remove(&part)
                .ok_or_else(|| bad(name, format!("part {part:?} is missing")))?;
            values.extend(t.values);
        }
        let expected: usize = shape.iter().product();
        if values.len() != expected {
            return Err(bad(
                name,
                format!(
                    "parts hold {} values, shape {shape:?} needs {expected}",
                    values.len()
                ),
            ));
        }
        weights
            .tensors
            .insert(name.to_string(), WeightTensor { shape, values });
    }
    Ok(())
}

/// A tensor's shape or strides: a short list of non-negative integers.
pub(crate) fn int_list(v: &Value) -> Option<Vec<usize>> {
    v.small_seq(MAX_RANK)?
        .iter()
        .map(|d| d.as_int().and_then(|i| usize::try_from(i).ok()))
        .collect()
}

/// More dimensions than any tensor of a network has (NumPy allows 64).
const MAX_RANK: usize = 16;

/// A NumPy array found in a pickle, not yet converted.
pub(crate) struct NumpyArray<'a> {
    pub dtype: DType,
    big_endian: bool,
    shape: Vec<usize>,
    fortran: bool,
    data: Value<'a>,
}

impl NumpyArray<'_> {
    pub fn decode(&self, name: &str, budget: &mut Budget) -> Result<WeightTensor, LoadError> {
        let Some(bytes) = self.data.bytes() else {
            return Err(LoadError::Tensor {
                name: name.to_string(),
                message: format!("array data is a {}, not bytes", self.data.kind()),
            });
        };
        let strides = self.fortran.then(|| {
            let mut s = vec![1usize; self.shape.len()];
            for d in 1..self.shape.len() {
                s[d] = s[d - 1].saturating_mul(self.shape[d - 1]);
            }
            s
        });
        tensor::decode(
            name,
            bytes,
            self.dtype,
            self.big_endian,
            &self.shape,
            strides.as_deref(),
            0,
            budget,
        )
    }
}

/// Recognises the two ways NumPy pickles an array: `_reconstruct` plus `__setstate__`
/// (protocols 2 to 4, module `numpy.core` under NumPy 1 and `numpy._core` under NumPy 2)
/// and `_frombuffer` (protocol 5). `Ok(None)` when `value` is not an array.
pub(crate) fn numpy_array<'a>(
    name: &str,
    value: &Value<'a>,
) -> Result<Option<NumpyArray<'a>>, LoadError> {
    let Value::Object(obj) = value else {
        return Ok(None);
    };
    let obj = obj.borrow();
    let class = obj.callable.class_name().unwrap_or_default();
    let bad = |message: &str| LoadError::Tensor {
        name: name.to_string(),
        message: message.to_string(),
    };
    let numpy_module = |m: &str| m.starts_with("numpy.core.") || m.starts_with("numpy._core.");
    let Some((module, function)) = class.rsplit_once('.') else {
        return Ok(None);
    };
    if !numpy_module(module) {
        return Ok(None);
    }
    match function {
        "_reconstruct" => {
            let state = obj
                .state
                .as_ref()
                .and_then(|s| s.small_seq(5))
                .ok_or_else(|| bad("NumPy array without state"))?;
            // (version, shape, dtype, is_fortran, data); version is absent in old pickles.
            let state = match state.len() {
                5 => &state[1..],
                4 => &state[..],
                n => return Err(bad(&format!("NumPy array state has {n} fields"))),
            };
            let shape = int_list(&state[0]).ok_or_else(|| bad("bad NumPy array shape"))?;
            let (dtype, big_endian) = numpy_dtype(&state[1]).ok_or_else(|| bad("unknown dtype"))?;
            Ok(Some(NumpyArray {
                dtype,
                big_endian,
                shape,
                fortran: matches!(state[2], Value::Bool(true)),
                data: state[3].clone(),
            }))
        }
        "_frombuffer" => {
            let args = obj
                .args
                .small_seq(4)
                .ok_or_else(|| bad("bad _frombuffer call"))?;
            let [data, dtype, shape, order] = args.as_slice() else {
                return Err(bad("bad _frombuffer call"));
            };
            let (dtype, big_endian) = numpy_dtype(dtype).ok_or_else(|| bad("unknown dtype"))?;
            Ok(Some(NumpyArray {
                dtype,
                big_endian,
                shape: int_list(shape).ok_or_else(|| bad("bad NumPy array shape"))?,
                fortran: order.as_str() == Some("F"),
                data: data.clone(),
            }))
        }
        _ => Ok(None),
    }
}

/// `numpy.dtype('f4', False, True)` with state `(3, '<', …)`.
fn numpy_dtype(v: &Value) -> Option<(DType, bool)> {
    let Value::Object(obj) = v else { return None };
    let obj = obj.borrow();
    if !obj.callable.class_name()?.ends_with("dtype") {
        return None;
    }
    let args = obj.args.small_seq(3)?;
    let dtype = DType::from_numpy(args.first()?.as_str()?)?;
    let order = obj
        .state
        .as_ref()
        .and_then(|s| s.small_seq(8))
        .and_then(|s| s.get(1).and_then(|o| o.as_str().map(str::to_string)));
    Some((dtype, order.as_deref() == Some(">")))
}
