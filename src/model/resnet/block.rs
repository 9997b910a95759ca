//! The residual block of every member: convolutions on a main path, an optional
//! squeeze-and-excitation, a residual connection.
//!
//! - basic (ResNet18/34): `conv0` 3×3 → `conv2` 3×3;
//! - bottleneck (ResNet50+, ResNeXt): `conv0` 1×1 → one (grouped) 3×3 in `branches` →
//!   `conv2` 1×1;
//! - Res2Net: `conv0` 1×1 → the channels split into `scales` groups, a cascade of 3×3
//!   convolutions over all but the last (`branches`) → `conv2` 1×1.

use burn::module::Module;
use burn::nn::pool::AvgPool2d;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use super::layers::{ConvBn, SqueezeExcite};

#[derive(Module, Debug)]
pub struct Block {
    pub conv0: ConvBn,
    /// The 3×3 convolutions between `conv0` and `conv2`: none in a basic block, one in a
    /// bottleneck, one per Res2Net branch but the last.
    pub branches: Vec<ConvBn>,
    /// Whether `conv0`'s output is split into channel groups (Res2Net), the last of
    /// which passes without a convolution.
    pub split: bool,
    /// Res2Net: whether branch `s > 0` adds the output of branch `s − 1` to its input.
    /// PaddleClas: in every block of stride 1. timm: in every block but a stage's first.
    pub cascade: bool,
    /// Res2Net: what happens to the last channel group: PaddleClas pools it (3×3,
    /// padding not counted) in blocks of stride 2; timm pools it (3×3, padding counted)
    /// in every stage's first block, stride 1 included.
    pub last_pool: Option<AvgPool2d>,
    pub conv2: ConvBn,
    pub se: Option<SqueezeExcite>,
    /// Projection of the input, in a stage's first block; identity otherwise.
    pub shortcut: Option<ConvBn>,
}

impl Block {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv0.forward(x.clone());
        let y = if self.split {
            self.res2net_branches(y)
        } else {
            self.branches.iter().fold(y, |y, conv| conv.forward(y))
        };
        let mut y = self.conv2.forward(y); // [B, out, H/stride, W/stride]
        if let Some(se) = &self.se {
            y = se.forward(y);
        }
        let shortcut = match &self.shortcut {
            Some(projection) => projection.forward(x),
            None => x,
        };
        relu(y + shortcut)
    }

    /// `[B, width·scales, H, W]` → `[B, width·scales, H/stride, W/stride]`
    fn res2net_branches(&self, y: Tensor<4>) -> Tensor<4> {
        let groups = y.chunk(self.branches.len() + 1, 1); // scales × [B, width, H, W]
        let mut outputs: Vec<Tensor<4>> = Vec::with_capacity(groups.len());
        for (conv, group) in self.branches.iter().zip(&groups) {
            let input = match outputs.last() {
                Some(previous) if self.cascade => group.clone() + previous.clone(),
                _ => group.clone(),
            };
            outputs.push(conv.forward(input)); // [B, width, H/stride, W/stride]
        }
        let last = groups[groups.len() - 1].clone();
        outputs.push(match &self.last_pool {
            Some(pool) => pool.forward(last),
            None => last,
        });
        Tensor::cat(outputs, 1)
    }
}
