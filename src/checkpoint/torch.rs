//! `.pt/.pth/.pth.tar/.ckpt`, as `torch.save` writes them since PyTorch 1.6: a ZIP with
//! `<folder>/data.pkl` (the object, whose tensors refer to storages by key) and
//! `<folder>/data/<key>` (the raw storages).
//!
//! The state dict may be the object itself or sit under `state_dict` or `model` (trainers
//! put epochs, optimiser state and hyper-parameters beside it).

use std::collections::HashMap;

use super::pdparams::int_list;
use super::pickle::{self, Value};
use super::tensor::{self, Budget, DType, Weights};
use super::{LoadError, zip};

pub fn read(data: &[u8]) -> Result<Weights, LoadError> {
    let entries = zip::entries(data)?;
    let pkl = entries
        .iter()
        .filter(|e| e.name.ends_with("data.pkl"))
        .min_by_key(|e| e.name.len())
        .ok_or_else(|| LoadError::Zip("no data.pkl: a ZIP, but not one torch.save wrote".into()))?;
    let folder = pkl.name.trim_end_matches("data.pkl");
    let storages: HashMap<&str, &[u8]> = entries
        .iter()
        .filter_map(|e| Some((e.name.strip_prefix(folder)?.strip_prefix("data/")?, e.data)))
        .collect();
    let big_endian = entries
        .iter()
        .find(|e| e.name == format!("{folder}byteorder"))
        .is_some_and(|e| e.data.starts_with(b"big"));

    let (pickle, _) = pickle::parse(pkl.data)?;
    let root = pickle.root.clone();
    // A short name only: anything else is not a model name.
    let arch = root
        .get("arch")
        .and_then(|a| a.as_str().map(str::to_string))
        .filter(|a| a.len() <= 128);
    let state = super::find_state_dict(root, is_tensor);
    let Some(items) = state.dict_items() else {
        return Err(LoadError::NotAStateDict(format!(
            "the file holds a {}, not a state dict",
            state.kind()
        )));
    };

    let mut weights = Weights {
        arch,
        ..Weights::default()
    };
    let mut budget = Budget::for_file(data.len());
    for (key, value) in items {
        let Some(name) = key.as_str() else { continue };
        let Some(view) = tensor_view(name, &value)? else {
            continue;
        };
        if !view.dtype.is_float() {
            weights.skipped.push(name.to_string());
            continue;
        }
        let bytes = storages
            .get(view.key.as_str())
            .ok_or_else(|| LoadError::Tensor {
                name: name.to_string(),
                message: format!("storage data/{} is missing from the archive", view.key),
            })?;
        let t = tensor::decode(
            name,
            bytes,
            view.dtype,
            big_endian,
            &view.shape,
            Some(&view.strides),
            view.offset,
            &mut budget,
        )?;
        weights.tensors.insert(name.to_string(), t);
    }
    Ok(weights)
}

struct TensorView {
    key: String,
    dtype: DType,
    offset: usize,
    shape: Vec<usize>,
    strides: Vec<usize>,
}

fn is_tensor(v: &Value) -> bool {
    matches!(v.class_name().as_deref(), Some(c) if c.starts_with("torch._utils._rebuild")
        || c == "torch._tensor._rebuild_from_type_v2")
}

/// Follows `_rebuild_tensor_v2(storage, offset, size, stride, …)`, also when wrapped in
/// `_rebuild_parameter` or `_rebuild_from_type_v2`. `Ok(None)` for anything else.
fn tensor_view(name: &str, value: &Value) -> Result<Option<TensorView>, LoadError> {
    tensor_view_at(name, value, 0)
}

/// torch wraps a tensor once or twice; a file that wraps it deeper is no checkpoint.
const MAX_WRAPPING: usize = 8;

fn tensor_view_at(
    name: &str,
    value: &Value,
    depth: usize,
) -> Result<Option<TensorView>, LoadError> {
    let bad = |message: String| LoadError::Tensor {
        name: name.to_string(),
        message,
    };
    if depth > MAX_WRAPPING {
        return Err(bad(format!(
            "a tensor wrapped more than {MAX_WRAPPING} times"
        )));
    }
    let Value::Object(obj) = value else {
        return Ok(None);
    };
    let obj = obj.borrow();
    let class = obj.callable.class_name().unwrap_or_default();
    // Every rebuild function takes a handful of arguments.
    let args = obj.args.small_seq(8).unwrap_or_default();
    match class.as_str() {
        "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => {
            match args.first() {
                Some(inner) => tensor_view_at(name, inner, depth + 1),
                None => Err(bad("parameter without data".into())),
            }
        }
        "torch._tensor._rebuild_from_type_v2" => {
            // (func, new_type, args, state): rebuild with func(*args).
            let (Some(func), Some(inner_args)) = (args.first(), args.get(2)) else {
                return Err(bad("bad _rebuild_from_type_v2 call".into()));
            };
            let inner = Value::Object(std::rc::Rc::new(std::cell::RefCell::new(
                pickle::Object::new(func.clone(), inner_args.clone()),
            )));
            tensor_view_at(name, &inner, depth + 1)
        }
        "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
            let [storage, offset, size, stride, ..] = args.as_slice() else {
                return Err(bad(format!(
                    "_rebuild_tensor_v2 with {} arguments",
                    args.len()
                )));
            };
            let Value::Persistent(pid) = storage else {
                return Err(bad("tensor storage is not a persistent reference".into()));
            };
            // ('storage', torch.FloatStorage, key, location, numel)
            let record = pid.small_seq(8).unwrap_or_default();
            let [_, storage_type, key, ..] = record.as_slice() else {
                return Err(bad("bad storage reference".into()));
            };
            let type_name = storage_type.class_name().unwrap_or_default();
            let dtype = DType::from_torch(&type_name)
                .ok_or_else(|| bad(format!("unsupported storage type {type_name}")))?;
            let key = match (key.as_str(), key.as_int()) {
                (Some(s), _) => s.to_string(),
                (None, Some(i)) => i.to_string(),
                _ => return Err(bad(format!("storage key is a {}", key.kind()))),
            };
            Ok(Some(TensorView {
                key,
                dtype,
                offset: offset
                    .as_int()
                    .and_then(|o| usize::try_from(o).ok())
                    .ok_or_else(|| bad("bad storage offset".into()))?,
                shape: int_list(size).ok_or_else(|| bad("bad tensor size".into()))?,
                strides: int_list(stride).ok_or_else(|| bad("bad tensor stride".into()))?,
            }))
        }
        _ => Ok(None),
    }
}
