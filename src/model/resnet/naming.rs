//! Which tensor of a file feeds which layer, for the three naming schemes in the wild,
//! and the architecture read off the names and shapes. Any common prefix (`module.`,
//! `model.`) is accepted.
//!
//! | scheme | written by | a block's first convolution |
//! |---|---|---|
//! | PaddleClas model zoo | `ResNeXt*`, `SE_ResNeXt*`, `Res2Net*` | `bb_0_0.conv0._conv.weight` |
//! | PaddleClas legendary | `ResNet18`…`ResNet200_vd` | `blocks.0.conv0.conv.weight` |
//! | timm | `resnet*`, `resnext*`, `seresnext*`, `res2net*` | `layer1.0.conv1.weight` |

use std::collections::HashMap;

use super::config::{BlockKind, ResNetConfig, Stem};
use super::network::ConvSlot;
use crate::checkpoint::{LoadError, Weights};
use crate::model::Variant;
use crate::model::prefix_of;

/// The file's names for one convolution and its BatchNorm.
pub struct ConvNames {
    pub weight: String,
    pub bn_weight: String,
    pub bn_bias: String,
    pub bn_mean: String,
    pub bn_var: String,
}

/// How a fully connected layer's weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// `[in, out]`: PaddlePaddle's Linear (and Burn's).
    InOut,
    /// `[out, in]`: PyTorch's Linear.
    OutIn,
    /// `[out, in, 1, 1]`: a 1×1 convolution (timm's squeeze-excitation).
    OutIn1x1,
}

/// The file's names for one fully connected layer.
pub struct LinearNames {
    pub weight: String,
    pub bias: String,
    pub stored: Stored,
}

#[derive(Clone, Debug)]
enum Scheme {
    /// PaddleClas `ppcls/arch/backbone/model_zoo`: `conv1_1._conv`, `bb_{s}_{i}.conv0._batch_norm`,
    /// `bb_{s}_{i}.scale.squeeze`, `out`. The stem is named per module (`conv1_1`…`conv1_3`,
    /// `conv1`, `conv`).
    PaddleZoo { stem: Vec<&'static str> },
    /// PaddleClas `legendary_models/resnet.py`: `stem.{i}.conv`, `blocks.{k}.conv0.bn`, `fc`,
    /// with the blocks of all stages numbered in one sequence.
    PaddleLegendary { first_block: Vec<usize> },
    /// timm `resnet.py`/`res2net.py`: `conv1.0`/`bn1`, `layer{s+1}.{i}.conv1`, `fc`.
    Timm { deep_stem: bool, avg_down: bool },
}

#[derive(Clone, Debug)]
pub struct Naming {
    scheme: Scheme,
    block: BlockKind,
    prefix: String,
    /// PaddleClas names Res2Net branch convolutions after the ResNet convention (`res3a`,
    /// `res4b12`…), which depends on the depth: read them off the file.
    paddle_branches: HashMap<(usize, usize, usize), String>,
}

impl Naming {
    pub fn variant(&self) -> Variant {
        match self.scheme {
            Scheme::PaddleZoo { .. } | Scheme::PaddleLegendary { .. } => Variant::Paddle,
            Scheme::Timm { .. } => Variant::Timm,
        }
    }

    /// A Paddle block's layer name.
    fn paddle_block(&self, stage: usize, block: usize) -> String {
        match &self.scheme {
            Scheme::PaddleLegendary { first_block } => {
                let k = first_block.get(stage).copied().unwrap_or(usize::MAX / 2) + block;
                format!("blocks.{k}")
            }
            _ => format!("bb_{stage}_{block}"),
        }
    }

    pub fn conv(&self, slot: ConvSlot) -> ConvNames {
        let p = &self.prefix;
        match &self.scheme {
            Scheme::PaddleZoo { .. } | Scheme::PaddleLegendary { .. } => {
                let b = |stage, block| self.paddle_block(stage, block);
                let layer = match slot {
                    ConvSlot::Stem(i) => match &self.scheme {
                        Scheme::PaddleZoo { stem } => stem.get(i).unwrap_or(&"conv1").to_string(),
                        _ => format!("stem.{i}"),
                    },
                    ConvSlot::Conv0 { stage, block } => format!("{}.conv0", b(stage, block)),
                    ConvSlot::Branch {
                        stage,
                        block,
                        scale,
                    } if self.block == BlockKind::Res2Net => self
                        .paddle_branches
                        .get(&(stage, block, scale))
                        .cloned()
                        .unwrap_or_else(|| {
                            let letter = (b'a' + block as u8) as char;
                            format!(
                                "{}.res{}{letter}_branch2b_{}",
                                b(stage, block),
                                stage + 2,
                                scale + 1
                            )
                        }),
                    ConvSlot::Branch { stage, block, .. } => format!("{}.conv1", b(stage, block)),
                    ConvSlot::Conv2 { stage, block } => match self.block {
                        BlockKind::Basic => format!("{}.conv1", b(stage, block)),
                        _ => format!("{}.conv2", b(stage, block)),
                    },
                    ConvSlot::Shortcut { stage } => format!("{}.short", b(stage, 0)),
                };
                let (conv, bn) = match self.scheme {
                    Scheme::PaddleZoo { .. } => ("_conv", "_batch_norm"),
                    _ => ("conv", "bn"),
                };
                ConvNames {
                    weight: format!("{p}{layer}.{conv}.weight"),
                    bn_weight: format!("{p}{layer}.{bn}.weight"),
                    bn_bias: format!("{p}{layer}.{bn}.bias"),
                    bn_mean: format!("{p}{layer}.{bn}._mean"),
                    bn_var: format!("{p}{layer}.{bn}._variance"),
                }
            }
            &Scheme::Timm {
                deep_stem,
                avg_down,
            } => {
                let b = |stage: usize, block: usize| format!("layer{}.{block}", stage + 1);
                let pair = |block: String, i: usize| {
                    (format!("{block}.conv{i}"), format!("{block}.bn{i}"))
                };
                let (conv, bn) = match slot {
                    ConvSlot::Stem(0) if !deep_stem => ("conv1".to_string(), "bn1".to_string()),
                    ConvSlot::Stem(0) => ("conv1.0".to_string(), "conv1.1".to_string()),
                    ConvSlot::Stem(1) => ("conv1.3".to_string(), "conv1.4".to_string()),
                    ConvSlot::Stem(_) => ("conv1.6".to_string(), "bn1".to_string()),
                    ConvSlot::Conv0 { stage, block } => pair(b(stage, block), 1),
                    ConvSlot::Branch {
                        stage,
                        block,
                        scale,
                    } if self.block == BlockKind::Res2Net => {
                        let b = b(stage, block);
                        (format!("{b}.convs.{scale}"), format!("{b}.bns.{scale}"))
                    }
                    ConvSlot::Branch { stage, block, .. } => pair(b(stage, block), 2),
                    ConvSlot::Conv2 { stage, block } => match self.block {
                        BlockKind::Basic => pair(b(stage, block), 2),
                        _ => pair(b(stage, block), 3),
                    },
                    ConvSlot::Shortcut { stage } => {
                        // `downsample.0` is the pool when the shortcut pools first.
                        let d = format!("{}.downsample", b(stage, 0));
                        let at = usize::from(avg_down);
                        (format!("{d}.{at}"), format!("{d}.{}", at + 1))
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

    /// The reducing and the expanding layer of a block's squeeze-and-excitation.
    pub fn squeeze_excite(&self, stage: usize, block: usize) -> (LinearNames, LinearNames) {
        let p = &self.prefix;
        let (layers, stored) = match self.scheme {
            Scheme::Timm { .. } => {
                let se = format!("layer{}.{block}.se", stage + 1);
                ([format!("{se}.fc1"), format!("{se}.fc2")], Stored::OutIn1x1)
            }
            _ => {
                let se = format!("{}.scale", self.paddle_block(stage, block));
                (
                    [format!("{se}.squeeze"), format!("{se}.excitation")],
                    Stored::InOut,
                )
            }
        };
        let [reduce, expand] = layers.map(|layer| LinearNames {
            weight: format!("{p}{layer}.weight"),
            bias: format!("{p}{layer}.bias"),
            stored,
        });
        (reduce, expand)
    }

    /// The classifier.
    pub fn fc(&self) -> LinearNames {
        let (layer, stored) = match self.scheme {
            Scheme::PaddleZoo { .. } => ("out", Stored::InOut),
            Scheme::PaddleLegendary { .. } => ("fc", Stored::InOut),
            Scheme::Timm { .. } => ("fc", Stored::OutIn),
        };
        LinearNames {
            weight: format!("{}{layer}.weight", self.prefix),
            bias: format!("{}{layer}.bias", self.prefix),
            stored,
        }
    }
}

/// The tensor each scheme's first block opens with.
const FIRST_CONV: [&str; 3] = [
    "bb_0_0.conv0._conv.weight",
    "blocks.0.conv0.conv.weight",
    "layer1.0.conv1.weight",
];

/// Whether the file names its layers in one of the family's schemes.
pub fn is_resnet(weights: &Weights) -> bool {
    FIRST_CONV
        .iter()
        .any(|marker| prefix_of(weights, marker).is_some())
}

/// Reads the architecture off the names and shapes of a file's tensors.
pub fn infer(weights: &Weights) -> Result<(ResNetConfig, Naming), LoadError> {
    let found = FIRST_CONV
        .iter()
        .enumerate()
        .find_map(|(i, marker)| prefix_of(weights, marker).map(|p| (i, p)));
    let Some((scheme, prefix)) = found else {
        let examples: Vec<&String> = weights.tensors.keys().take(3).collect();
        return Err(LoadError::NotSupported(format!(
            "no first block `{}` (PaddleClas), `{}` (PaddleClas ResNet) or `{}` (timm) \
             among its {} tensors (first: {examples:?})",
            FIRST_CONV[0],
            FIRST_CONV[1],
            FIRST_CONV[2],
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
    let strip = |name: String| name[prefix.len()..].to_string();

    let (scheme, depths, stem) = match scheme {
        0 => {
            let stem: Vec<&'static str> = if has("conv1_1._conv.weight") {
                vec!["conv1_1", "conv1_2", "conv1_3"]
            } else if has("conv1._conv.weight") {
                vec!["conv1"]
            } else {
                vec!["conv"]
            };
            let deep = stem.len() == 3;
            let block =
                |stage: usize, block: usize| has(&format!("bb_{stage}_{block}.conv0._conv.weight"));
            (Scheme::PaddleZoo { stem }, count_stages(block), deep)
        }
        1 => {
            // One sequence of blocks: a stage starts where a block projects its shortcut.
            let blocks = (0..)
                .take_while(|k| has(&format!("blocks.{k}.conv0.conv.weight")))
                .count();
            let mut first_block = vec![0];
            first_block
                .extend((1..blocks).filter(|k| has(&format!("blocks.{k}.short.conv.weight"))));
            let mut depths: Vec<usize> = first_block.windows(2).map(|w| w[1] - w[0]).collect();
            depths.push(blocks - first_block[first_block.len() - 1]);
            let deep = has("stem.1.conv.weight");
            (Scheme::PaddleLegendary { first_block }, depths, deep)
        }
        _ => {
            let deep = has("conv1.0.weight");
            // With `avg_down` the projection is `downsample.1`, after the pool; without,
            // `downsample.1` is its BatchNorm.
            let avg_down = shape("layer2.0.downsample.1.weight").is_ok_and(|s| s.len() == 4);
            let block = |stage: usize, block: usize| {
                has(&format!("layer{}.{block}.conv1.weight", stage + 1))
            };
            let scheme = Scheme::Timm {
                deep_stem: deep,
                avg_down,
            };
            (scheme, count_stages(block), deep)
        }
    };
    if depths.len() != 4 {
        return Err(LoadError::NotSupported(format!(
            "found {} stages of blocks, the ResNet family has 4",
            depths.len()
        )));
    }

    let paddle_branches = match scheme {
        Scheme::PaddleZoo { .. } => paddle_branches(weights, &prefix),
        _ => HashMap::new(),
    };
    let mut naming = Naming {
        scheme,
        block: BlockKind::Res2Net,
        prefix: prefix.clone(),
        paddle_branches,
    };
    let first = |naming: &Naming, slot| strip(naming.conv(slot).weight);
    let branch = |naming: &Naming, scale| {
        first(
            naming,
            ConvSlot::Branch {
                stage: 0,
                block: 0,
                scale,
            },
        )
    };
    let conv0 = ConvSlot::Conv0 { stage: 0, block: 0 };
    let conv2 = ConvSlot::Conv2 { stage: 0, block: 0 };
    let branches = (0..).take_while(|&s| has(&branch(&naming, s))).count();
    if branches == 0 {
        naming.block = BlockKind::Bottleneck;
        if !has(&first(&naming, conv2)) {
            naming.block = BlockKind::Basic;
        }
    }
    let block = naming.block;
    let (width, scales) = match block {
        BlockKind::Res2Net => (dim(&branch(&naming, 0), 0)?, branches + 1),
        _ => (dim(&first(&naming, conv0), 0)?, 1),
    };
    let groups = match block {
        BlockKind::Basic => 1,
        _ => width / dim(&branch(&naming, 0), 1)?.max(1),
    };
    let channels = dim(&first(&naming, conv2), 0)?;
    // Read at the widest stage, where timm's rounding to multiples of 8 does not hide it.
    let se_ratio = match naming.squeeze_excite(3, 0) {
        (reduce, _) if weights.tensors.contains_key(&reduce.weight) => {
            let axis = usize::from(reduce.stored == Stored::InOut);
            let reduced = dim(&strip(reduce.weight), axis)?.max(1);
            let widest = channels << 3;
            Some(((widest as f64 / reduced as f64).round() as usize).max(1))
        }
        _ => None,
    };
    let fc = naming.fc();
    let classes_axis = usize::from(fc.stored == Stored::InOut);
    let variant = naming.variant();
    let avg_down = match naming.scheme {
        Scheme::Timm { avg_down, .. } => avg_down,
        // PaddleClas pools its shortcuts in the "vd" members, which all have a deep stem.
        _ => stem,
    };
    let config = ResNetConfig {
        variant,
        block,
        stem: if stem { Stem::Deep } else { Stem::Plain },
        depths,
        width,
        scales,
        groups,
        stem_width: dim(&first(&naming, ConvSlot::Stem(0)), 0)?,
        base_channels: channels / block.expansion(),
        avg_down,
        project_first: has(&first(&naming, ConvSlot::Shortcut { stage: 0 })),
        se_ratio,
        num_classes: dim(&strip(fc.weight), classes_axis)?,
    };
    config.check().map_err(LoadError::NotSupported)?;
    // Every parameter comes from the file: a network far larger than the file's
    // tensors would only be built (gigabytes, perhaps) to report them missing. A few
    // missing tensors are reported by name when the network is built.
    let held: usize = weights.tensors.values().map(|t| t.numel()).sum();
    let needed = config.parameter_count();
    if needed > held.saturating_mul(2).saturating_add(1 << 20) {
        return Err(LoadError::NotSupported(format!(
            "its names describe {} with {needed} parameters, but its tensors hold {held} values",
            config.name()
        )));
    }
    Ok((config, naming))
}

/// Blocks per stage, for names that number stages and blocks.
fn count_stages(has_block: impl Fn(usize, usize) -> bool) -> Vec<usize> {
    (0..)
        .map(|stage| (0..).take_while(|&b| has_block(stage, b)).count())
        .take_while(|&n| n > 0)
        .collect()
}

/// PaddleClas's Res2Net branch layers by (stage, block, scale), read off names like
/// `bb_{stage}_{block}.res{..}_branch2b_{scale+1}._conv.weight`.
fn paddle_branches(weights: &Weights, prefix: &str) -> HashMap<(usize, usize, usize), String> {
    let mut branches = HashMap::new();
    for key in weights.tensors.keys() {
        let Some(rest) = key.strip_prefix(prefix) else {
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
            branches.insert((stage, block, scale - 1), layer.to_string());
        }
    }
    branches
}
