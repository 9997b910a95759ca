//! The shape of a network of the ResNet family, as read off a checkpoint or chosen by
//! hand: every member (ResNet, ResNet-D/vd, ResNeXt, SE-ResNeXt, Res2Net) is this one
//! configuration with other values.

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::model::Variant;

/// What a residual block computes between its input and the addition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet18/34).
    Basic,
    /// 1×1 → 3×3 (grouped in ResNeXt) → 1×1, four times wider out than in the middle.
    Bottleneck,
    /// 1×1 → a cascade of 3×3 convolutions over channel groups → 1×1.
    Res2Net,
}

impl BlockKind {
    /// Output channels of a block per channel of `base_channels`.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck | BlockKind::Res2Net => 4,
        }
    }

    /// Convolutions on a block's main path, for the layer count in a network's name.
    fn convs(self) -> usize {
        match self {
            BlockKind::Basic => 2,
            BlockKind::Bottleneck | BlockKind::Res2Net => 3,
        }
    }
}

/// The first layers, before the max pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    /// One 7×7 convolution, stride 2, of `stem_width` channels.
    Plain,
    /// Three 3×3 convolutions (the first of stride 2) of `stem_width`, `stem_width` and
    /// `2 · stem_width` channels: the "vd"/"d" stem.
    Deep,
}

/// A network of the ResNet family: a stem, four stages of residual blocks, average
/// pool, linear.
#[derive(Config, Debug, PartialEq)]
pub struct ResNetConfig {
    pub variant: Variant,
    pub block: BlockKind,
    pub stem: Stem,
    /// Blocks per stage: `[3, 4, 6, 3]` is a 50-layer bottleneck network.
    pub depths: Vec<usize>,
    /// Channels inside a stage-0 block, doubling every stage: a Res2Net branch's (26 in
    /// 26w_4s), a bottleneck's middle (64 in ResNet50, 128 = 32 groups × 4 in
    /// ResNeXt50_32x4d), a basic block's (64).
    #[config(default = 64)]
    pub width: usize,
    /// Res2Net's branches per block ("4s"); 1 for the other blocks.
    #[config(default = 1)]
    pub scales: usize,
    /// Groups of the 3×3 convolutions: the cardinality of a ResNeXt, else 1.
    #[config(default = 1)]
    pub groups: usize,
    #[config(default = 64)]
    pub stem_width: usize,
    /// A stage's output has `expansion · base_channels · 2^stage` channels.
    #[config(default = 64)]
    pub base_channels: usize,
    /// Whether a strided shortcut average-pools first and then projects with stride 1
    /// ("vd", timm's `avg_down`) instead of projecting with stride 2.
    #[config(default = false)]
    pub avg_down: bool,
    /// Whether the first block of every stage projects its shortcut even where the
    /// shapes already match (PaddleClas's ResNet18/34 do, timm's do not).
    #[config(default = false)]
    pub project_first: bool,
    /// Squeeze-and-excitation after each block's last convolution, reducing channels by
    /// this ratio (16 in SE-ResNeXt).
    pub se_ratio: Option<usize>,
    #[config(default = 1000)]
    pub num_classes: usize,
}

/// The depth lists the frameworks name by layer count, with the block they are for.
const STANDARD_DEPTHS: [(BlockKind, [usize; 4]); 8] = [
    (BlockKind::Basic, [2, 2, 2, 2]),
    (BlockKind::Basic, [3, 4, 6, 3]),
    (BlockKind::Bottleneck, [2, 2, 2, 2]),
    (BlockKind::Bottleneck, [3, 4, 6, 3]),
    (BlockKind::Bottleneck, [3, 4, 23, 3]),
    (BlockKind::Bottleneck, [3, 8, 36, 3]),
    (BlockKind::Bottleneck, [3, 12, 48, 3]),
    (BlockKind::Bottleneck, [3, 24, 36, 3]),
];

impl ResNetConfig {
    /// The network of the original write-up: Res2Net50_vd_26w_4s.
    pub fn res2net50_vd_26w_4s(variant: Variant, num_classes: usize) -> Self {
        ResNetConfig::new(variant, BlockKind::Res2Net, Stem::Deep, vec![3, 4, 6, 3])
            .with_width(26)
            .with_scales(4)
            .with_stem_width(32)
            .with_avg_down(true)
            .with_num_classes(num_classes)
    }

    /// The layer count of a standard depth list (18, 34, 26, 50, 101, 152, 200, 269).
    pub fn layers(&self) -> Option<usize> {
        let kind = match self.block {
            BlockKind::Res2Net => BlockKind::Bottleneck,
            other => other,
        };
        STANDARD_DEPTHS
            .iter()
            .any(|(k, d)| *k == kind && d[..] == self.depths[..])
            .then(|| self.block.convs() * self.depths.iter().sum::<usize>() + 2)
    }

    /// The PaddleClas name: `ResNet50_vd`, `ResNeXt101_32x4d`, `SE_ResNeXt50_vd_32x4d`,
    /// `Res2Net50_vd_26w_4s`; the depth list stands for the layer count when it is not a
    /// standard one.
    pub fn name(&self) -> String {
        let depth = match self.layers() {
            Some(layers) => layers.to_string(),
            None => format!("{:?}", self.depths),
        };
        let vd = if self.avg_down { "_vd" } else { "" };
        let se = if self.se_ratio.is_some() { "SE_" } else { "" };
        match self.block {
            BlockKind::Res2Net => {
                let x = if self.groups > 1 {
                    "Res2NeXt"
                } else {
                    "Res2Net"
                };
                format!("{se}{x}{depth}{vd}_{}w_{}s", self.width, self.scales)
            }
            _ if self.groups > 1 => format!(
                "{se}ResNeXt{depth}{vd}_{}x{}d",
                self.groups,
                self.width / self.groups
            ),
            _ => format!("{se}ResNet{depth}{vd}"),
        }
    }

    /// Whether this is a network camwatch can build: every size positive and within
    /// what any published member uses, with room to spare (read off a file, the sizes
    /// are whatever its shapes say).
    pub fn check(&self) -> Result<(), String> {
        let within = |what: &str, value: usize, max: usize| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!("{what} {value}, outside 1..={max}"))
            }
        };
        if self.depths.len() != 4 {
            return Err(format!(
                "{} stages, the ResNet family has 4",
                self.depths.len()
            ));
        }
        for &depth in &self.depths {
            within("a stage of", depth, 256)?;
        }
        within("width", self.width, 8192)?;
        within("scales", self.scales, 64)?;
        within("groups", self.groups, 1024)?;
        if (self.block == BlockKind::Res2Net) != (self.scales >= 2) {
            return Err(format!(
                "{} scales in a {:?} block: Res2Net splits into at least 2, the others not",
                self.scales, self.block
            ));
        }
        if self.block == BlockKind::Basic && self.groups != 1 {
            return Err(format!("a basic block of {} groups", self.groups));
        }
        if !self.width.is_multiple_of(self.groups) {
            return Err(format!(
                "width {} is not divisible into {} groups",
                self.width, self.groups
            ));
        }
        within("classes", self.num_classes, 1 << 20)?;
        within("stem width", self.stem_width, 4096)?;
        within("base channels", self.base_channels, 4096)?;
        if let Some(ratio) = self.se_ratio {
            within("squeeze-excitation ratio", ratio, 1024)?;
            for stage in 0..4 {
                if self.se_channels(self.stage_channels(stage)) == 0 {
                    return Err(format!(
                        "squeeze-excitation ratio {ratio} leaves no channel"
                    ));
                }
            }
        }
        Ok(())
    }

    /// `bottleneck, 32 groups × 4 channels, squeeze-excitation 1/16`, `Res2Net, 4 scales × 26 channels`.
    pub fn describe_block(&self) -> String {
        let mut text = match self.block {
            BlockKind::Basic => format!("basic, {} channels", self.width),
            BlockKind::Bottleneck if self.groups > 1 => format!(
                "bottleneck, {} groups × {} channels",
                self.groups,
                self.width / self.groups
            ),
            BlockKind::Bottleneck => format!("bottleneck, {} channels", self.width),
            BlockKind::Res2Net => {
                format!("Res2Net, {} scales × {} channels", self.scales, self.width)
            }
        };
        if let Some(ratio) = self.se_ratio {
            text.push_str(&format!(", squeeze-excitation 1/{ratio}"));
        }
        text
    }

    pub fn stem_channels(&self) -> usize {
        match self.stem {
            Stem::Plain => self.stem_width,
            Stem::Deep => 2 * self.stem_width,
        }
    }

    /// Output channels of stage `stage`.
    pub fn stage_channels(&self, stage: usize) -> usize {
        (self.block.expansion() * self.base_channels) << stage
    }

    /// Input channels of stage `stage`.
    pub fn stage_input(&self, stage: usize) -> usize {
        match stage {
            0 => self.stem_channels(),
            s => self.stage_channels(s - 1),
        }
    }

    /// Channels inside a block of stage `stage` (per branch in a Res2Net).
    pub fn stage_width(&self, stage: usize) -> usize {
        self.width << stage
    }

    /// Whether block `block` of stage `stage` projects its shortcut.
    pub fn projects(&self, stage: usize, block: usize) -> bool {
        block == 0
            && (self.project_first || stage != 0 || self.stage_input(0) != self.stage_channels(0))
    }

    /// The channels a squeeze-excitation of `channels` reduces to: PaddleClas divides,
    /// timm rounds to a multiple of 8 (`make_divisible`).
    pub fn se_channels(&self, channels: usize) -> usize {
        let Some(ratio) = self.se_ratio else {
            return 0;
        };
        match self.variant {
            Variant::Paddle => channels / ratio,
            Variant::Timm => {
                let v = channels as f64 / ratio as f64;
                (((v + 4.0) as usize) / 8 * 8).max(8)
            }
        }
    }

    pub fn feature_channels(&self) -> usize {
        self.stage_channels(self.depths.len() - 1)
    }

    /// Trainable parameters (convolutions, BatchNorm scale and shift, squeeze-excitation,
    /// classifier) as frameworks count them; BatchNorm running statistics are buffers.
    pub fn parameter_count(&self) -> usize {
        let conv_bn = |i: usize, o: usize, k: usize, groups: usize| i / groups * o * k * k + 2 * o;
        let w = self.stem_width;
        let mut count = match self.stem {
            Stem::Plain => conv_bn(3, w, 7, 1),
            Stem::Deep => conv_bn(3, w, 3, 1) + conv_bn(w, w, 3, 1) + conv_bn(w, 2 * w, 3, 1),
        };
        for (stage, &depth) in self.depths.iter().enumerate() {
            let (width, out) = (self.stage_width(stage), self.stage_channels(stage));
            for block in 0..depth {
                let input = if block == 0 {
                    self.stage_input(stage)
                } else {
                    out
                };
                count += match self.block {
                    BlockKind::Basic => conv_bn(input, width, 3, 1) + conv_bn(width, out, 3, 1),
                    BlockKind::Bottleneck => {
                        conv_bn(input, width, 1, 1)
                            + conv_bn(width, width, 3, self.groups)
                            + conv_bn(width, out, 1, 1)
                    }
                    BlockKind::Res2Net => {
                        conv_bn(input, width * self.scales, 1, 1)
                            + (self.scales - 1) * conv_bn(width, width, 3, self.groups)
                            + conv_bn(width * self.scales, out, 1, 1)
                    }
                };
                if self.se_ratio.is_some() {
                    let reduced = self.se_channels(out);
                    count += 2 * out * reduced + reduced + out;
                }
                if self.projects(stage, block) {
                    count += conv_bn(input, out, 1, 1);
                }
            }
        }
        count + self.feature_channels() * self.num_classes + self.num_classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_count_matches_timm() {
        // sum(p.numel() for p in timm.create_model(name, num_classes=N).parameters())
        let config = |n| ResNetConfig::res2net50_vd_26w_4s(Variant::Timm, n);
        assert_eq!(config(1000).parameter_count(), 25_718_352);
        assert_eq!(config(4).parameter_count(), 23_677_548);
        let resnet18 = ResNetConfig::new(
            Variant::Timm,
            BlockKind::Basic,
            Stem::Plain,
            vec![2, 2, 2, 2],
        );
        assert_eq!(resnet18.parameter_count(), 11_689_512);
        let resnet50 = ResNetConfig::new(
            Variant::Timm,
            BlockKind::Bottleneck,
            Stem::Plain,
            vec![3, 4, 6, 3],
        );
        assert_eq!(resnet50.parameter_count(), 25_557_032);
        let seresnext50 = resnet50
            .clone()
            .with_width(128)
            .with_groups(32)
            .with_se_ratio(Some(16));
        assert_eq!(seresnext50.parameter_count(), 27_559_896);
    }

    #[test]
    fn names_the_members() {
        let config = ResNetConfig::res2net50_vd_26w_4s(Variant::Paddle, 4);
        assert_eq!(config.name(), "Res2Net50_vd_26w_4s");
        let mut custom = ResNetConfig::res2net50_vd_26w_4s(Variant::Timm, 4).with_width(8);
        custom.depths = vec![2, 1, 3, 1];
        assert_eq!(custom.name(), "Res2Net[2, 1, 3, 1]_vd_8w_4s");
        let basic = ResNetConfig::new(
            Variant::Paddle,
            BlockKind::Basic,
            Stem::Deep,
            vec![3, 4, 6, 3],
        )
        .with_avg_down(true);
        assert_eq!(basic.name(), "ResNet34_vd");
        let next = ResNetConfig::new(
            Variant::Paddle,
            BlockKind::Bottleneck,
            Stem::Deep,
            vec![3, 4, 6, 3],
        )
        .with_width(128)
        .with_groups(32)
        .with_avg_down(true)
        .with_se_ratio(Some(16));
        assert_eq!(next.name(), "SE_ResNeXt50_vd_32x4d");
        let mut deeper = next.with_se_ratio(None);
        deeper.depths = vec![3, 4, 23, 3];
        assert_eq!(deeper.name(), "ResNeXt101_vd_32x4d");
    }
}
