//! The shape of a Res2Net-vd network, as read off a checkpoint or chosen by hand.

use std::fmt;

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// The two definitions of the same network found in the wild. They share every weight
/// shape and differ in two computations (see `Bottleneck`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// PaddleClas `Res2Net_vd`.
    Paddle,
    /// timm `res2net50d`.
    Timm,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::Paddle => "paddle",
            Variant::Timm => "timm",
        })
    }
}

/// Res2Net-vd: a deep stem, four stages of Res2Net bottlenecks, average pool, linear.
#[derive(Config, Debug, PartialEq)]
pub struct Res2NetConfig {
    pub variant: Variant,
    /// Bottlenecks per stage: `[3, 4, 6, 3]` is Res2Net50.
    pub depths: Vec<usize>,
    /// Channels of one branch in the first stage ("26w"); doubles every stage.
    #[config(default = 26)]
    pub width: usize,
    /// Branches per bottleneck ("4s").
    #[config(default = 4)]
    pub scales: usize,
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Channels of the first two stem convolutions; the stem ends with twice as many.
    #[config(default = 32)]
    pub stem_width: usize,
    /// A stage's output has `4 · base_channels · 2^stage` channels (256 … 2048).
    #[config(default = 64)]
    pub base_channels: usize,
}

/// The depth lists PaddleClas names by layer count.
pub const STANDARD_DEPTHS: [(usize, [usize; 4]); 4] = [
    (50, [3, 4, 6, 3]),
    (101, [3, 4, 23, 3]),
    (152, [3, 8, 36, 3]),
    (200, [3, 12, 48, 3]),
];

impl Res2NetConfig {
    /// The network of the original write-up: Res2Net50_vd_26w_4s.
    pub fn res2net50_vd_26w_4s(variant: Variant, num_classes: usize) -> Self {
        Res2NetConfig::new(variant, vec![3, 4, 6, 3]).with_num_classes(num_classes)
    }

    /// 50, 101, 152 or 200 for the standard depth lists.
    pub fn layers(&self) -> Option<usize> {
        STANDARD_DEPTHS
            .iter()
            .find(|(_, d)| d[..] == self.depths[..])
            .map(|(layers, _)| *layers)
    }

    /// A name like `Res2Net50_vd_26w_4s`, or the depth list when it is not a standard one.
    pub fn name(&self) -> String {
        let depth = match self.layers() {
            Some(layers) => layers.to_string(),
            None => format!("{:?}", self.depths),
        };
        format!("Res2Net{depth}_vd_{}w_{}s", self.width, self.scales)
    }

    /// Whether this is a network camwatch can build: every size positive and within
    /// what any published Res2Net-vd uses, with room to spare (read off a file, the
    /// sizes are whatever its shapes say).
    pub fn check(&self) -> Result<(), String> {
        let within = |what: &str, value: usize, max: usize| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!("{what} {value}, outside 1..={max}"))
            }
        };
        if self.depths.len() != 4 {
            return Err(format!("{} stages, Res2Net-vd has 4", self.depths.len()));
        }
        for &depth in &self.depths {
            within("a stage of", depth, 256)?;
        }
        within("branch width", self.width, 4096)?;
        within("scales", self.scales, 64)?;
        if self.scales < 2 {
            return Err(format!(
                "{} scale: Res2Net splits into at least 2",
                self.scales
            ));
        }
        within("classes", self.num_classes, 1 << 20)?;
        within("stem width", self.stem_width, 4096)?;
        within("base channels", self.base_channels, 4096)
    }

    pub fn stem_channels(&self) -> usize {
        2 * self.stem_width
    }

    /// Output channels of stage `stage`.
    pub fn stage_channels(&self, stage: usize) -> usize {
        (4 * self.base_channels) << stage
    }

    /// Input channels of stage `stage`.
    pub fn stage_input(&self, stage: usize) -> usize {
        match stage {
            0 => self.stem_channels(),
            s => self.stage_channels(s - 1),
        }
    }

    /// Channels of one branch in stage `stage`.
    pub fn branch_width(&self, stage: usize) -> usize {
        self.width << stage
    }

    pub fn feature_channels(&self) -> usize {
        self.stage_channels(self.depths.len() - 1)
    }

    /// Trainable parameters (convolutions, BatchNorm scale and shift, classifier) as
    /// frameworks count them; BatchNorm running statistics are buffers, not parameters.
    pub fn parameter_count(&self) -> usize {
        let conv_bn = |i: usize, o: usize, k: usize| i * o * k * k + 2 * o;
        let w = self.stem_width;
        let mut count = conv_bn(3, w, 3) + conv_bn(w, w, 3) + conv_bn(w, 2 * w, 3);
        for (stage, &depth) in self.depths.iter().enumerate() {
            let (width, out) = (self.branch_width(stage), self.stage_channels(stage));
            for block in 0..depth {
                let input = if block == 0 {
                    self.stage_input(stage)
                } else {
                    out
                };
                count += conv_bn(input, width * self.scales, 1)
                    + (self.scales - 1) * conv_bn(width, width, 3)
                    + conv_bn(width * self.scales, out, 1);
                if block == 0 {
                    count += conv_bn(input, out, 1);
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
        // sum(p.numel() for p in timm.create_model("res2net50d", num_classes=N).parameters())
        let config = |n| Res2NetConfig::res2net50_vd_26w_4s(Variant::Timm, n);
        assert_eq!(config(1000).parameter_count(), 25_718_352);
        assert_eq!(config(4).parameter_count(), 23_677_548);
    }

    #[test]
    fn names_standard_and_custom_depths() {
        let config = Res2NetConfig::res2net50_vd_26w_4s(Variant::Paddle, 4);
        assert_eq!(config.name(), "Res2Net50_vd_26w_4s");
        let custom = Res2NetConfig::new(Variant::Timm, vec![2, 1, 3, 1]).with_width(8);
        assert_eq!(custom.name(), "Res2Net[2, 1, 3, 1]_vd_8w_4s");
    }
}
