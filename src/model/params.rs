//! Weights found by name path, as candle's `VarBuilder`: a family's builder walks its own
//! module tree (`p.pp("stages").pp(s).pp("blocks").pp(b)`) and takes each tensor checked
//! against the shape the network needs. The same walk builds a seeded untrained network,
//! with the values drawn in the order the tensors are asked for.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::{Device, Tensor, TensorData};

use super::Source;
use crate::checkpoint::{LoadError, WeightTensor, Weights};

/// How a tensor of a fresh (seeded) network is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// He-normal over the fan-in of all but the first dimension (convolutions).
    Conv,
    /// Normal with standard deviation √(1/in) for a weight stored `[out, in]`.
    Linear,
    Zeros,
    Ones,
    Normal(f32),
}

enum Store {
    Checkpoint {
        weights: Weights,
        /// Names not in the file, reported together once the walk is done.
        missing: Vec<String>,
    },
    Seeded(crate::rng::Normal),
}

/// A path into the network's weights.
#[derive(Clone)]
pub struct Params {
    store: Rc<RefCell<Store>>,
    path: String,
    device: Device,
}

impl Params {
    pub fn new(source: Source, prefix: &str, device: &Device) -> Params {
        let store = match source {
            Source::Checkpoint(weights) => Store::Checkpoint {
                weights,
                missing: Vec::new(),
            },
            Source::Seeded(seed) => Store::Seeded(crate::rng::Normal::new(seed)),
        };
        Params {
            store: Rc::new(RefCell::new(store)),
            path: prefix.trim_end_matches('.').to_string(),
            device: device.clone(),
        }
    }

    /// The path one level down: `p.pp("blocks").pp(3)` is `blocks.3`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Params {
        let name = name.to_string();
        Params {
            store: Rc::clone(&self.store),
            path: if self.path.is_empty() {
                name
            } else {
                format!("{}.{name}", self.path)
            },
            device: self.device.clone(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn full(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The values of tensor `name` (row-major), checked to be of `shape`, finite. A
    /// missing tensor is recorded and stands in as zeros so that the walk goes on and
    /// reports every missing name ([`Params::finish`]).
    pub fn values(&self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>, LoadError> {
        let full = self.full(name);
        let numel: usize = shape.iter().product();
        let mut store = self.store.borrow_mut();
        match &mut *store {
            Store::Checkpoint { weights, missing } => match weights.tensors.remove(&full) {
                None => {
                    missing.push(full);
                    Ok(vec![0.0; numel])
                }
                Some(t) => checked(full, t, shape),
            },
            Store::Seeded(normal) => Ok(match init {
                Init::Zeros => vec![0.0; numel],
                Init::Ones => vec![1.0; numel],
                Init::Normal(std) => (0..numel).map(|_| normal.sample() * std).collect(),
                Init::Conv => {
                    let fan_in: usize = shape[1..].iter().product();
                    let std = (2.0 / fan_in.max(1) as f32).sqrt();
                    (0..numel).map(|_| normal.sample() * std).collect()
                }
                Init::Linear => {
                    let fan_in = shape.get(1).copied().unwrap_or(1);
                    let std = (1.0 / fan_in.max(1) as f32).sqrt();
                    (0..numel).map(|_| normal.sample() * std).collect()
                }
            }),
        }
    }

    /// Tensor `name` of `shape` on the device.
    pub fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        init: Init,
    ) -> Result<Tensor<D>, LoadError> {
        let values = self.values(name, &shape, init)?;
        Ok(self.upload(values, shape))
    }

    /// Values made on the host (a BatchNorm folded into its convolution) on the device.
    pub fn upload<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), &self.device)
    }

    /// Every tensor taken: `Err` listing the missing ones, if any.
    pub fn finish(&self) -> Result<(), LoadError> {
        match &*self.store.borrow() {
            Store::Checkpoint { missing, .. } if !missing.is_empty() => Err(LoadError::Missing {
                names: missing.clone(),
            }),
            _ => Ok(()),
        }
    }
}

fn checked(name: String, t: WeightTensor, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
    if t.shape != shape {
        return Err(LoadError::Shape {
            name,
            expected: shape.to_vec(),
            found: t.shape,
        });
    }
    // A run that diverged writes NaN: say so rather than compute meaningless maps.
    if !t.values.iter().all(|v| v.is_finite()) {
        return Err(LoadError::Tensor {
            name,
            message: "holds NaN or infinite values (did training diverge?)".into(),
        });
    }
    Ok(t.values)
}

/// A checkpoint's tensor names and shapes under a prefix, as a detector reads them.
pub struct Names<'a> {
    weights: &'a Weights,
    prefix: String,
}

impl<'a> Names<'a> {
    pub fn new(weights: &'a Weights, prefix: &str) -> Self {
        Names {
            weights,
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn has(&self, name: &str) -> bool {
        self.weights
            .tensors
            .contains_key(&format!("{}{name}", self.prefix))
    }

    /// The shape of tensor `name`, or the error that names it missing.
    pub fn shape(&self, name: &str) -> Result<&'a [usize], LoadError> {
        let full = format!("{}{name}", self.prefix);
        self.weights
            .tensors
            .get(&full)
            .map(|t| t.shape.as_slice())
            .ok_or(LoadError::Missing { names: vec![full] })
    }

    /// Dimension `axis` of tensor `name`.
    pub fn dim(&self, name: &str, axis: usize) -> Result<usize, LoadError> {
        let shape = self.shape(name)?;
        shape.get(axis).copied().ok_or_else(|| LoadError::Tensor {
            name: format!("{}{name}", self.prefix),
            message: format!(
                "has shape {shape:?}, expected at least {} dimensions",
                axis + 1
            ),
        })
    }

    /// How many of `name(0)`, `name(1)`, … exist, counting from 0 until one is missing.
    pub fn count(&self, name: impl Fn(usize) -> String) -> usize {
        (0..).take_while(|&i| self.has(&name(i))).count()
    }

    /// The trainable parameters among the tensors ([`super::count_parameters`]).
    pub fn parameters(&self) -> usize {
        super::count_parameters(self.weights, &self.prefix)
    }
}
