//! The Res2Net bottleneck: a 1×1 convolution, a cascade of 3×3 convolutions over
//! channel groups, a 1×1 convolution, a residual connection.

use burn::module::Module;
use burn::nn::pool::AvgPool2d;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use super::layers::ConvBn;

#[derive(Module, Debug)]
pub struct Bottleneck {
    pub conv0: ConvBn,
    /// One 3×3 convolution per branch but the last.
    pub branches: Vec<ConvBn>,
    /// Whether branch `s > 0` adds the output of branch `s − 1` to its input. PaddleClas:
    /// in every block of stride 1. timm: in every block but a stage's first.
    pub cascade: bool,
    /// What happens to the last channel group, which has no convolution: PaddleClas pools
    /// it (3×3, padding not counted) in blocks of stride 2; timm pools it (3×3, padding
    /// counted) in every stage's first block, stride 1 included.
    pub last_pool: Option<AvgPool2d>,
    pub conv2: ConvBn,
    /// Projection of the input, in a stage's first block; identity otherwise.
    pub shortcut: Option<ConvBn>,
}

impl Bottleneck {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv0.forward(x.clone()); // [B, width·scales, H, W]
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
        let y = self.conv2.forward(Tensor::cat(outputs, 1)); // [B, out, H/stride, W/stride]
        let shortcut = match &self.shortcut {
            Some(projection) => projection.forward(x),
            None => x,
        };
        relu(y + shortcut)
    }
}
