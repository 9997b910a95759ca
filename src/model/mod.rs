//! The ResNet family as Burn modules: one network (stem, four stages of residual blocks,
//! head) whose members (ResNet, ResNet-vd, ResNeXt, SE-ResNeXt, Res2Net, Res2Net-vd) are
//! values of [`NetworkConfig`], as PaddleClas and timm define them.

mod block;
mod config;
mod layers;
mod load;
mod naming;
mod network;

pub use block::Block;
pub use config::{BlockKind, NetworkConfig, Stem, Variant};
pub use layers::{ConvBn, ConvSpec, SqueezeExcite};
pub use naming::{ConvNames, LinearNames, Naming, Stored, infer};
pub use network::{ConvSlot, LayerSource, Network, NetworkOutput, Stage};
