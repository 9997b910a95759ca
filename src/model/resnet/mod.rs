//! The ResNet family as Burn modules: one network (stem, four stages of residual blocks,
//! head) whose members (ResNet, ResNet-vd, ResNeXt, SE-ResNeXt, Res2Net, Res2Net-vd) are
//! values of [`ResNetConfig`], as PaddleClas and timm define them. Its taps are the four
//! stages' outputs, `stage1` … `stage4` (history keys since before other families).

mod block;
mod config;
mod layers;
mod load;
mod naming;
mod network;

use std::any::Any;

use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor};

pub use config::{BlockKind, ResNetConfig, Stem};
pub use naming::{Naming, infer};
pub use network::{ResNet, ResNetOutput};

use super::{
    Arch, ArchSpec, Backbone, Hints, Network, Source, Tapped,
    layers::{cast, cast_first},
};
use crate::checkpoint::{LoadError, Weights};

/// A ResNet-family checkpoint's architecture, when its names are of this family.
pub fn detect(weights: &Weights, _: &Hints) -> Option<Result<Arch, LoadError>> {
    if !naming::is_resnet(weights) {
        return None;
    }
    Some(
        infer(weights)
            .map(|(config, naming)| std::sync::Arc::new(Member { config, naming }) as Arch),
    )
}

/// A member read off a checkpoint: its configuration and the file's naming scheme.
#[derive(Debug)]
pub struct Member {
    pub config: ResNetConfig,
    pub naming: Naming,
}

impl ArchSpec for Member {
    fn family(&self) -> &'static str {
        "resnet"
    }

    fn variant(&self) -> super::Variant {
        self.config.variant
    }

    fn name(&self) -> String {
        self.config.name()
    }

    fn classes(&self) -> usize {
        self.config.num_classes
    }

    fn parameter_count(&self) -> usize {
        self.config.parameter_count()
    }

    fn taps(&self) -> Vec<String> {
        (1..=self.config.depths.len())
            .map(|s| format!("stage{s}"))
            .collect()
    }

    fn pooled_classifier(&self) -> bool {
        true
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let c = &self.config;
        let value = serde_json::json!({
            "depth": match c.layers() {
                Some(layers) => layers.into(),
                None => serde_json::Value::from(c.depths.clone()),
            },
            "depths": c.depths,
            "block": c.block,
            "stem": c.stem,
            "width": c.width,
            "scales": c.scales,
            "groups": c.groups,
            "avg_down": c.avg_down,
            "se_ratio": c.se_ratio,
        });
        match value {
            serde_json::Value::Object(map) => map,
            _ => Default::default(),
        }
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let c = &self.config;
        vec![
            ("depths", format!("{:?}", c.depths)),
            ("block", c.describe_block()),
            (
                "stem",
                match c.stem {
                    Stem::Plain => format!("one 7×7 convolution, {} channels", c.stem_width),
                    Stem::Deep => format!(
                        "three 3×3 convolutions, {w}, {w} and {} channels",
                        c.stem_channels(),
                        w = c.stem_width
                    ),
                },
            ),
            (
                "shortcut",
                if c.avg_down {
                    "average pool, then 1×1 (vd)".into()
                } else {
                    "strided 1×1".into()
                },
            ),
        ]
    }

    fn build(&self, source: Source, device: &Device) -> Result<Network, LoadError> {
        let network = match source {
            Source::Checkpoint(weights) => {
                ResNet::from_weights(&self.config, &self.naming, weights, device)?
            }
            Source::Seeded(seed) => self.config.init_seeded(device, seed),
        };
        Ok(Network::ResNet(network))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Backbone for ResNet {
    fn tap_names(&self) -> Vec<String> {
        (1..=self.stages.len())
            .map(|s| format!("stage{s}"))
            .collect()
    }

    fn forward_to(&self, tap: usize, images: Tensor<4>) -> Tapped {
        let x = self.stages[..=tap]
            .iter()
            .fold(self.forward_stem(images), |x, stage| stage.forward(x));
        Tapped::map(x)
    }

    fn forward_from(&self, tap: usize, tapped: Tapped) -> Tensor<2> {
        self.forward_from_stage(tap, tapped.activation.spatial())
    }

    fn pooled_classifier(&self, tap: usize) -> Option<&Linear> {
        (tap + 1 == self.stages.len()).then_some(&self.fc)
    }

    fn cast_through(mut self, tap: usize, dtype: DType) -> Self {
        self.stem = self.stem.into_iter().map(|c| cast(c, dtype)).collect();
        self.stages = cast_first(self.stages, tap + 1, dtype);
        self
    }

    fn dtype(&self) -> DType {
        self.stem[0].conv.weight.val().dtype()
    }
}
