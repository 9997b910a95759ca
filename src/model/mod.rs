//! Res2Net-vd as Burn modules, in both variants found in the wild.

mod bottleneck;
mod config;
mod layers;
mod load;
mod naming;
mod res2net;

pub use bottleneck::Bottleneck;
pub use config::{Res2NetConfig, STANDARD_DEPTHS, Variant};
pub use layers::{ConvBn, ConvSpec};
pub use naming::{ConvNames, Naming, infer};
pub use res2net::{ConvSlot, LayerSource, Res2Net, Res2NetOutput, Stage};
