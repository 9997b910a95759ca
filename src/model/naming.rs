//! Which tensor of a file feeds which layer, for the two naming schemes in the wild
//! (PaddleClas `Res2Net_vd`, timm `res2net50d`), and the architecture read off the names
//! and shapes. Any common prefix (`module.`, `model.`) is accepted.

use std::collections::HashMap;

use super::{ConvSlot, Res2NetConfig, Variant};
use crate::checkpoint::{LoadError, Weights};

/// The file's names for one convolution and its BatchNorm.
pub struct ConvNames {
    pub weight: String,
    pub bn_weight: String,
    pub bn_bias: String,
    pub bn_mean: String,
    pub bn_var: String,
}

#[derive(Clone, Debug)]
pub struct Naming {
    pub variant: Variant,
    prefix: String,
    /// PaddleClas names branch convolutions after the ResNet convention (`res3a`,
    /// `res4b12`…), which depends on the depth: read them off the file.
    paddle_branches: HashMap<(usize, usize, usize), String>,
}

impl Naming {
    pub fn conv(&self, slot: ConvSlot) -> ConvNames {
        let p = &self.prefix;
        match self.variant {
            Variant::Paddle => {
                let layer = match slot {
                    ConvSlot::Stem(i) => format!("conv1_{}", i + 1),
                    ConvSlot::Conv0 { stage, block } => format!("bb_{stage}_{block}.conv0"),
                    ConvSlot::Branch {
                        stage,
                        block,
                        scale,
                    } => self
                        .paddle_branches
                        .get(&(stage, block, scale))
                        .cloned()
                        .unwrap_or_else(|| {
                            let letter = (b'a' + block as u8) as char;
                            format!(
                                "bb_{stage}_{block}.res{}{letter}_branch2b_{}",
                                stage + 2,
                                scale + 1
                            )
                        }),
                    ConvSlot::Conv2 { stage, block } => format!("bb_{stage}_{block}.conv2"),
                    ConvSlot::Shortcut { stage } => format!("bb_{stage}_0.short"),
                };
                ConvNames {
                    weight: format!("{p}{layer}._conv.weight"),
                    bn_weight: format!("{p}{layer}._batch_norm.weight"),
                    bn_bias: format!("{p}{layer}._batch_norm.bias"),
                    bn_mean: format!("{p}{layer}._batch_norm._mean"),
                    bn_var: format!("{p}{layer}._batch_norm._variance"),
                }
            }
            Variant::Timm => {
                let (conv, bn) = match slot {
                    ConvSlot::Stem(0) => ("conv1.0".to_string(), "conv1.1".to_string()),
                    ConvSlot::Stem(1) => ("conv1.3".to_string(), "conv1.4".to_string()),
                    ConvSlot::Stem(_) => ("conv1.6".to_string(), "bn1".to_string()),
                    ConvSlot::Conv0 { stage, block } => {
                        let b = format!("layer{}.{block}", stage + 1);
                        (format!("{b}.conv1"), format!("{b}.bn1"))
                    }
                    ConvSlot::Branch {
                        stage,
                        block,
                        scale,
                    } => {
                        let b = format!("layer{}.{block}", stage + 1);
                        (format!("{b}.convs.{scale}"), format!("{b}.bns.{scale}"))
                    }
                    ConvSlot::Conv2 { stage, block } => {
                        let b = format!("layer{}.{block}", stage + 1);
                        (format!("{b}.conv3"), format!("{b}.bn3"))
                    }
                    ConvSlot::Shortcut { stage } => {
                        let b = format!("layer{}.0.downsample", stage + 1);
                        (format!("{b}.1"), format!("{b}.2"))
                    }
                };
                ConvNames {
                    weight: format!("{p}{conv}.weight"),
                    bn_weight: format!("{p}{bn}.weight"),
                    bn_bias: format!("{p}{bn}.bias"),
                    bn_mean: format!("{p}{bn}.running_mean"),
                    bn_var: format!("{p}{bn}.running_var"),
                }
            }
        }
    }

    /// The classifier's weight and bias names. Paddle stores the weight `[in, out]`,
    /// timm `[out, in]`.
    pub fn fc(&self) -> (String, String) {
        let layer = match self.variant {
            Variant::Paddle => "out",
            Variant::Timm => "fc",
        };
        (
            format!("{}{layer}.weight", self.prefix),
            format!("{}{layer}.bias", self.prefix),
        )
    }
}

/// The prefix before `suffix` in the shortest name that ends with it at a name boundary.
fn prefix_of(weights: &Weights, suffix: &str) -> Option<String> {
    weights
        .tensors
        .keys()
        .filter_map(|k| k.strip_suffix(suffix))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .min_by_key(|p| p.len())
        .map(str::to_string)
}

/// Reads the variant and architecture off the names and shapes of a file's tensors.
pub fn infer(weights: &Weights) -> Result<(Res2NetConfig, Naming), LoadError> {
    let (variant, prefix) = if let Some(p) = prefix_of(weights, "conv1_1._conv.weight") {
        (Variant::Paddle, p)
    } else if let Some(p) = prefix_of(weights, "conv1.0.weight") {
        (Variant::Timm, p)
    } else {
        let examples: Vec<&String> = weights.tensors.keys().take(3).collect();
        return Err(LoadError::NotRes2Net(format!(
            "no deep-stem convolution `conv1_1._conv.weight` (PaddleClas) or `conv1.0.weight` \
             (timm) among its {} tensors (first: {examples:?})",
            weights.tensors.len()
        )));
    };
    let has = |name: &str| weights.tensors.contains_key(&format!("{prefix}{name}"));
    let shape = |name: &str| -> Result<&[usize], LoadError> {
        let full = format!("{prefix}{name}");
        weights
            .tensors
            .get(&full)
            .map(|t| t.shape.as_slice())
            .ok_or(LoadError::Missing { names: vec![full] })
    };
    let dim = |name: &str, axis: usize| -> Result<usize, LoadError> {
        let s = shape(name)?;
        s.get(axis).copied().ok_or_else(|| LoadError::Tensor {
            name: format!("{prefix}{name}"),
            message: format!("has shape {s:?}, expected at least {} dimensions", axis + 1),
        })
    };

    let block_key = |stage: usize, block: usize| match variant {
        Variant::Paddle => format!("bb_{stage}_{block}.conv0._conv.weight"),
        Variant::Timm => format!("layer{}.{block}.conv1.weight", stage + 1),
    };
    let mut depths = Vec::new();
    for stage in 0.. {
        let n = (0..).take_while(|&b| has(&block_key(stage, b))).count();
        if n == 0 {
            break;
        }
        depths.push(n);
    }
    if depths.len() != 4 {
        return Err(LoadError::NotRes2Net(format!(
            "found {} bottleneck stages, Res2Net-vd has 4",
            depths.len()
        )));
    }

    let mut paddle_branches = HashMap::new();
    if variant == Variant::Paddle {
        // bb_{stage}_{block}.res{..}_branch2b_{scale+1}._conv.weight
        for key in weights.tensors.keys() {
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            let Some(layer) = rest.strip_suffix("._conv.weight") else {
                continue;
            };
            let Some((block_name, conv)) = layer.split_once('.') else {
                continue;
            };
            let Some((_, scale)) = conv.rsplit_once("_branch2b_") else {
                continue;
            };
            let mut ids = block_name.strip_prefix("bb_").unwrap_or("").split('_');
            let (Some(stage), Some(block), Ok(scale)) =
                (ids.next(), ids.next(), scale.parse::<usize>())
            else {
                continue;
            };
            if let (Ok(stage), Ok(block), true) = (stage.parse(), block.parse(), scale >= 1) {
                paddle_branches.insert((stage, block, scale - 1), layer.to_string());
            }
        }
    }
    let naming = Naming {
        variant,
        prefix: prefix.clone(),
        paddle_branches,
    };
    let strip = |name: String| name[prefix.len()..].to_string();
    let branch = |scale| {
        strip(
            naming
                .conv(ConvSlot::Branch {
                    stage: 0,
                    block: 0,
                    scale,
                })
                .weight,
        )
    };
    let branches = (0..).take_while(|&s| has(&branch(s))).count();
    if branches == 0 {
        return Err(LoadError::NotRes2Net(format!(
            "the first bottleneck has no branch convolution `{}{}`: a ResNet, not a Res2Net?",
            prefix,
            branch(0)
        )));
    }
    let (fc_weight, _) = naming.fc();
    let num_classes = dim(
        &strip(fc_weight),
        if variant == Variant::Paddle { 1 } else { 0 },
    )?;
    let config = Res2NetConfig {
        variant,
        depths,
        width: dim(&branch(0), 0)?,
        scales: branches + 1,
        num_classes,
        stem_width: dim(&strip(naming.conv(ConvSlot::Stem(0)).weight), 0)?,
        base_channels: dim(
            &strip(naming.conv(ConvSlot::Conv2 { stage: 0, block: 0 }).weight),
            0,
        )? / 4,
    };
    config.check().map_err(LoadError::NotRes2Net)?;
    // Every parameter comes from the file: a network far larger than the file's
    // tensors would only be built (gigabytes, perhaps) to report them missing. A few
    // missing tensors are reported by name when the network is built.
    let held: usize = weights.tensors.values().map(|t| t.numel()).sum();
    let needed = config.parameter_count();
    if needed > held.saturating_mul(2).saturating_add(1 << 20) {
        return Err(LoadError::NotRes2Net(format!(
            "its names describe {} with {needed} parameters, but its tensors hold {held} values",
            config.name()
        )));
    }
    Ok((config, naming))
}
