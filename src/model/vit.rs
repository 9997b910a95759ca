//! The Vision Transformer as timm defines it (`timm/models/vision_transformer.py`), with
//! DeiT's distillation token (`deit.py`): a patch embedding (a p×p convolution with
//! stride p), prefix tokens (class, distillation, registers) and a learnt position
//! embedding, optionally LayerNorm (`norm_pre`), then pre-norm transformer blocks
//! (`x + ls1(attn(norm1(x)))`, `x + ls2(mlp(norm2(x)))`, multi-head self-attention with a
//! fused `qkv`, an MLP with GELU, optional layer scales), then the final LayerNorm and
//! the class token's features, or (`fc_norm`) the mean of the patch tokens and
//! LayerNorm; then the classifier (DeiT distilled: the mean of the class token's and the
//! distillation token's classifiers).
//!
//! Members: `vit_{tiny,small,medium,base,large,huge}_patch{p}_{size}` (DeiT without
//! distillation is the same network), `deit_{tiny,small,base}_distilled_patch{p}_{size}`,
//! `…_reg{R}` with registers, and other widths and depths (`vit_{C}d{depth}_…`).
//!
//! Taps: every block's first LayerNorm, `blocks.{i}.norm1` (pytorch-grad-cam's documented
//! `blocks[-1].norm1`); the last block's is the last. A tap gives the tokens
//! `[B, prefix + h·w, C]` and carries the block's input, whose residual connection passes
//! by the tapped normalisation. No pooled linear classifier follows a tap.
//!
//! Read off the file: width, depth, patch, MLP width, the prefix tokens, whether the
//! position embedding covers the prefix (`no_embed_class`, from its length), the
//! training grid (its length: square grids), layer scales, `norm_pre`, and the pooling
//! (`fc_norm` present, or no class token: the mean of the patch tokens). What the file
//! cannot tell is the number of heads: timm's 64 channels per head, but for the widths
//! whose timm models have 16 heads (huge: 1280, so400m: 1152, giant: 1408, gigantic:
//! 1664). At an input size other than the training one the grid part of the position
//! embedding is resampled as timm's `resample_abs_pos_embed` does (bicubic, antialiased
//! as its default).

use std::any::Any;
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{DType, Device, Tensor};

use super::layers::{
    Act, ConvAct, ConvSpec, LayerNorm, Padding, Stored, cast, cast_first, conv, in_dtype_of, linear,
};
use super::{
    Activation, Arch, ArchSpec, Backbone, Hints, Init, Names, Network, Params, Source, Tapped,
    Variant, prefix_of,
};
use crate::checkpoint::{LoadError, Weights};

/// timm's ViT LayerNorm epsilon.
const LN_EPSILON: f64 = 1e-6;

/// How the tokens become one vector for the classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// The class token (`global_pool="token"`).
    Token,
    /// The mean of the patch tokens, the prefix left out (`global_pool="avg"`).
    Avg,
}

impl Pool {
    fn as_str(self) -> &'static str {
        match self {
            Pool::Token => "token",
            Pool::Avg => "avg",
        }
    }
}

/// Every architectural decision of a ViT, as read off a checkpoint.
#[derive(Clone, Debug)]
pub struct Config {
    /// The prefix of every tensor name (`module.`, or none).
    pub prefix: String,
    pub patch: usize,
    /// The training grid's side (the position embedding's): the input size is
    /// `grid · patch`.
    pub grid: usize,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    /// The MLP's hidden width.
    pub hidden: usize,
    pub class_token: bool,
    /// DeiT's distillation token (after the class token) and second classifier.
    pub distilled: bool,
    /// Register tokens (after the class token).
    pub registers: usize,
    /// The position embedding covers the patches only, added before the prefix tokens
    /// are put in front (DeiT III).
    pub no_embed_class: bool,
    pub patch_bias: bool,
    pub qkv_bias: bool,
    pub norm_pre: bool,
    pub layer_scale: bool,
    /// The final LayerNorm over every token (`norm`).
    pub final_norm: bool,
    /// LayerNorm after the pooling (`fc_norm`).
    pub fc_norm: bool,
    pub pool: Pool,
    pub classes: usize,
    /// Trainable parameters, as timm counts them.
    pub parameters: usize,
}

impl Config {
    pub fn prefix_tokens(&self) -> usize {
        usize::from(self.class_token) + usize::from(self.distilled) + self.registers
    }
}

/// A ViT checkpoint's architecture, when its names are this family's.
pub fn detect(weights: &Weights, hints: &Hints) -> Option<Result<Arch, LoadError>> {
    let prefix = prefix_of(weights, "blocks.0.attn.qkv.weight")?;
    let names = Names::new(weights, &prefix);
    if !names.has("patch_embed.proj.weight") || !names.has("pos_embed") {
        return None;
    }
    // A tensor outside the layout: another transformer (named by `infer`), or a ViT
    // variant this file does not compute.
    if let Some(name) = weights
        .tensors
        .keys()
        .filter_map(|k| k.strip_prefix(prefix.as_str()))
        .find(|k| !known(k))
    {
        if super::NOT_READ
            .iter()
            .any(|(marker, _)| name.contains(marker))
        {
            return None;
        }
        return Some(Err(LoadError::NotSupported(format!(
            "a Vision Transformer with tensor {:?}, which camwatch's ViT does not have",
            format!("{prefix}{name}")
        ))));
    }
    Some(read(&names, hints).map(|config| Arc::new(config) as Arch))
}

/// Whether `name` (without the prefix) is one of the tensors a ViT of this file has.
fn known(name: &str) -> bool {
    const TOP: &[&str] = &[
        "cls_token",
        "dist_token",
        "reg_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "norm_pre.weight",
        "norm_pre.bias",
        "norm.weight",
        "norm.bias",
        "fc_norm.weight",
        "fc_norm.bias",
        "head.weight",
        "head.bias",
        "head_dist.weight",
        "head_dist.bias",
    ];
    const BLOCK: &[&str] = &[
        "norm1.weight",
        "norm1.bias",
        "attn.qkv.weight",
        "attn.qkv.bias",
        "attn.proj.weight",
        "attn.proj.bias",
        "ls1.gamma",
        "norm2.weight",
        "norm2.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
        "ls2.gamma",
    ];
    if TOP.contains(&name) {
        return true;
    }
    name.strip_prefix("blocks.")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(index, rest)| index.parse::<usize>().is_ok() && BLOCK.contains(&rest))
}

/// A tensor whose shape does not fit the layout.
fn misfit(names: &Names, name: &str, expected: &str) -> LoadError {
    let shape = names.shape(name).unwrap_or(&[]);
    LoadError::Tensor {
        name: format!("{}{name}", names.prefix()),
        message: format!("has shape {shape:?}, a ViT's is {expected}"),
    }
}

/// The number of heads of a ViT `dim` wide: timm's 64 channels per head, but for the
/// widths whose models have 16 heads.
fn heads_of(dim: usize, hints: &Hints) -> Option<usize> {
    let named = hints.name.as_deref().unwrap_or("");
    let sixteen = ["huge", "giant", "so400m", "gigantic"]
        .iter()
        .any(|w| named.contains(w));
    match dim {
        1152 | 1280 | 1408 | 1664 => Some(16),
        _ if sixteen && dim.is_multiple_of(16) => Some(16),
        _ if dim.is_multiple_of(64) => Some(dim / 64),
        _ => None,
    }
}

fn read(names: &Names, hints: &Hints) -> Result<Config, LoadError> {
    let proj = "patch_embed.proj.weight";
    let &[dim, 3, patch, patch_w] = names.shape(proj)? else {
        return Err(misfit(names, proj, "[C, 3, p, p]"));
    };
    if patch != patch_w || patch == 0 || dim == 0 {
        return Err(misfit(names, proj, "[C, 3, p, p]"));
    }
    let token = |name: &str| -> Result<usize, LoadError> {
        if !names.has(name) {
            return Ok(0);
        }
        match names.shape(name)? {
            &[1, n, c] if c == dim && n > 0 => Ok(n),
            _ => Err(misfit(names, name, &format!("[1, n, {dim}]"))),
        }
    };
    let class_token = token("cls_token")? == 1;
    let distilled = token("dist_token")? == 1;
    let registers = token("reg_token")?;
    if names.has("cls_token") && !class_token {
        return Err(misfit(names, "cls_token", &format!("[1, 1, {dim}]")));
    }
    if names.has("dist_token") && !(distilled && class_token) {
        return Err(misfit(
            names,
            "dist_token",
            &format!("[1, 1, {dim}] after a class token"),
        ));
    }
    let prefix_tokens = usize::from(class_token) + usize::from(distilled) + registers;
    let length = match names.shape("pos_embed")? {
        &[1, length, c] if c == dim => length,
        _ => return Err(misfit(names, "pos_embed", &format!("[1, L, {dim}]"))),
    };
    let side = |n: usize| {
        let s = (n as f64).sqrt().round() as usize;
        (s > 0 && s * s == n).then_some(s)
    };
    let (grid, no_embed_class) = match length.checked_sub(prefix_tokens).and_then(side) {
        Some(grid) => (grid, false),
        None => match side(length) {
            Some(grid) if prefix_tokens > 0 => (grid, true),
            _ => {
                return Err(misfit(
                    names,
                    "pos_embed",
                    &format!("[1, {prefix_tokens} + g², {dim}] or [1, g², {dim}]"),
                ));
            }
        },
    };
    let depth = names.count(|i| format!("blocks.{i}.attn.qkv.weight"));
    let qkv = "blocks.0.attn.qkv.weight";
    if names.shape(qkv)? != [3 * dim, dim] {
        return Err(misfit(names, qkv, &format!("[{}, {dim}]", 3 * dim)));
    }
    let hidden = names.dim("blocks.0.mlp.fc1.weight", 0)?;
    let heads = heads_of(dim, hints).ok_or_else(|| {
        LoadError::NotSupported(format!(
            "a ViT {dim} wide: camwatch cannot tell its number of heads (timm's are 64 channels each)"
        ))
    })?;
    let fc_norm = names.has("fc_norm.weight");
    let pool = if fc_norm || !class_token {
        Pool::Avg
    } else {
        Pool::Token
    };
    if distilled && pool != Pool::Token {
        return Err(LoadError::NotSupported(
            "a distilled ViT that averages its patch tokens (DeiT's reads the class and distillation tokens)".into(),
        ));
    }
    let classes = names.dim("head.weight", 0)?;
    if names.shape("head.weight")? != [classes, dim] {
        return Err(misfit(names, "head.weight", &format!("[classes, {dim}]")));
    }
    Ok(Config {
        prefix: names.prefix().to_string(),
        patch,
        grid,
        dim,
        depth,
        heads,
        hidden,
        class_token,
        distilled,
        registers,
        no_embed_class,
        patch_bias: names.has("patch_embed.proj.bias"),
        qkv_bias: names.has("blocks.0.attn.qkv.bias"),
        norm_pre: names.has("norm_pre.weight"),
        layer_scale: names.has("blocks.0.ls1.gamma"),
        final_norm: names.has("norm.weight"),
        fc_norm,
        pool,
        classes,
        parameters: names.parameters(),
    })
}

/// timm's sizes: (name, width, depth, heads).
const SIZES: &[(&str, usize, usize, usize)] = &[
    ("tiny", 192, 12, 3),
    ("small", 384, 12, 6),
    ("medium", 512, 12, 8),
    ("base", 768, 12, 12),
    ("large", 1024, 24, 16),
    ("huge", 1280, 32, 16),
];

impl Config {
    /// timm's size name, when width, depth, heads and MLP are one of its sizes.
    fn size(&self) -> Option<&'static str> {
        let (name, ..) = SIZES.iter().find(|(_, dim, depth, heads)| {
            *dim == self.dim && *depth == self.depth && *heads == self.heads
        })?;
        (self.hidden == 4 * self.dim).then_some(*name)
    }
}

impl ArchSpec for Config {
    fn family(&self) -> &'static str {
        "vit"
    }

    fn variant(&self) -> Variant {
        Variant::Timm
    }

    fn name(&self) -> String {
        let size = match self.size() {
            Some(size) => size.to_string(),
            None => format!("{}d{}", self.dim, self.depth),
        };
        let (family, distilled) = if self.distilled {
            ("deit", "_distilled")
        } else {
            ("vit", "")
        };
        let registers = if self.registers > 0 {
            format!("_reg{}", self.registers)
        } else {
            String::new()
        };
        format!(
            "{family}_{size}{distilled}_patch{}_{}{registers}",
            self.patch,
            self.grid * self.patch
        )
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn parameter_count(&self) -> usize {
        self.parameters
    }

    fn taps(&self) -> Vec<String> {
        (0..self.depth)
            .map(|i| format!("blocks.{i}.norm1"))
            .collect()
    }

    fn pooled_classifier(&self) -> bool {
        false
    }

    fn input_size(&self) -> Option<usize> {
        Some(self.grid * self.patch)
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let value = serde_json::json!({
            "patch": self.patch,
            "grid": self.grid,
            "dim": self.dim,
            "depth": self.depth,
            "heads": self.heads,
            "prefix_tokens": self.prefix_tokens(),
            "pool": self.pool.as_str(),
        });
        match value {
            serde_json::Value::Object(map) => map,
            _ => Default::default(),
        }
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        let mut prefix = Vec::new();
        if self.class_token {
            prefix.push("class".to_string());
        }
        if self.distilled {
            prefix.push("distillation".to_string());
        }
        if self.registers > 0 {
            prefix.push(format!("{} registers", self.registers));
        }
        let size = self.grid * self.patch;
        vec![
            (
                "input",
                format!(
                    "{size}×{size} (a {g}×{g} grid of {p}×{p} patches; other sizes resample the position embedding)",
                    g = self.grid,
                    p = self.patch
                ),
            ),
            (
                "blocks",
                format!(
                    "{} × (attention with {} heads, MLP {}){}",
                    self.depth,
                    self.heads,
                    self.hidden,
                    if self.layer_scale {
                        ", layer scale"
                    } else {
                        ""
                    }
                ),
            ),
            ("width", self.dim.to_string()),
            (
                "prefix tokens",
                if prefix.is_empty() {
                    "none".into()
                } else {
                    prefix.join(", ")
                },
            ),
            (
                "pooling",
                match (self.pool, self.distilled) {
                    (Pool::Token, true) => "class and distillation tokens, two classifiers".into(),
                    (Pool::Token, false) => "class token".into(),
                    (Pool::Avg, _) => "mean of the patch tokens".into(),
                },
            ),
        ]
    }

    fn build(&self, source: Source, device: &Device) -> Result<Network, LoadError> {
        let p = Params::new(source, &self.prefix, device);
        let network = Vit::read(self, &p)?;
        p.finish()?;
        Ok(Network::Vit(network))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Patches to tokens, prefix tokens in front, position embedding added.
#[derive(Module, Debug)]
pub struct Embed {
    /// `[B, 3, H, W]` → `[B, C, H/p, W/p]`
    pub proj: ConvAct,
    /// The prefix tokens, in order: class `[1, 1, C]`, distillation `[1, 1, C]`,
    /// registers `[1, R, C]`, those the network has.
    pub prefix: Vec<Param<Tensor<3>>>,
    /// `[1, (prefix +) g², C]`
    pub pos_embed: Param<Tensor<3>>,
    pub norm_pre: Option<LayerNorm>,
    /// The training grid's side.
    #[module(skip)]
    pub grid: usize,
    #[module(skip)]
    pub no_embed_class: bool,
}

/// Multi-head self-attention: `[B, N, C]` → `[B, N, C]`.
#[derive(Module, Debug)]
pub struct Attention {
    /// C → 3C: q, k, v, each head after head.
    pub qkv: Linear,
    pub proj: Linear,
    #[module(skip)]
    pub heads: usize,
}

#[derive(Module, Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attention,
    /// `[C]`
    pub ls1: Option<Param<Tensor<1>>>,
    pub norm2: LayerNorm,
    /// C → 4C
    pub fc1: Linear,
    /// 4C → C
    pub fc2: Linear,
    /// `[C]`
    pub ls2: Option<Param<Tensor<1>>>,
}

#[derive(Module, Debug)]
pub struct Head {
    pub norm: Option<LayerNorm>,
    pub fc_norm: Option<LayerNorm>,
    /// The classifier (`head`), and DeiT's second (`head_dist`) on the distillation
    /// token: the logits are their mean.
    pub heads: Vec<Linear>,
    #[module(skip)]
    pub pool: Pool,
    #[module(skip)]
    pub prefix: usize,
}

#[derive(Module, Debug)]
pub struct Vit {
    pub embed: Embed,
    pub blocks: Vec<Block>,
    pub head: Head,
}

fn layer_scale(
    p: &Params,
    present: bool,
    dim: usize,
) -> Result<Option<Param<Tensor<1>>>, LoadError> {
    Ok(if present {
        Some(Param::from_tensor(p.tensor("gamma", [dim], Init::Ones)?))
    } else {
        None
    })
}

fn norm(p: &Params, present: bool, dim: usize) -> Result<Option<LayerNorm>, LoadError> {
    Ok(if present {
        Some(LayerNorm::read(p, dim, LN_EPSILON)?)
    } else {
        None
    })
}

impl Vit {
    fn read(c: &Config, p: &Params) -> Result<Self, LoadError> {
        let dim = c.dim;
        let token = |name: &str, present: bool, n: usize| -> Result<_, LoadError> {
            Ok(if present {
                Some(Param::from_tensor(p.tensor(
                    name,
                    [1, n, dim],
                    Init::Normal(0.02),
                )?))
            } else {
                None
            })
        };
        let positions = c.grid * c.grid
            + if c.no_embed_class {
                0
            } else {
                c.prefix_tokens()
            };
        let embed = Embed {
            proj: conv(
                &p.pp("patch_embed").pp("proj"),
                ConvSpec::new(3, dim, c.patch, c.patch),
                c.patch_bias,
                Padding::Valid,
                Act::Identity,
            )?,
            prefix: [
                token("cls_token", c.class_token, 1)?,
                token("dist_token", c.distilled, 1)?,
                token("reg_token", c.registers > 0, c.registers)?,
            ]
            .into_iter()
            .flatten()
            .collect(),
            pos_embed: Param::from_tensor(p.tensor(
                "pos_embed",
                [1, positions, dim],
                Init::Normal(0.02),
            )?),
            norm_pre: norm(&p.pp("norm_pre"), c.norm_pre, dim)?,
            grid: c.grid,
            no_embed_class: c.no_embed_class,
        };
        let blocks = (0..c.depth)
            .map(|i| {
                let bp = p.pp("blocks").pp(i);
                let ap = bp.pp("attn");
                let mp = bp.pp("mlp");
                Ok(Block {
                    norm1: LayerNorm::read(&bp.pp("norm1"), dim, LN_EPSILON)?,
                    attn: Attention {
                        qkv: linear(&ap.pp("qkv"), dim, 3 * dim, Stored::OutIn, c.qkv_bias)?,
                        proj: linear(&ap.pp("proj"), dim, dim, Stored::OutIn, true)?,
                        heads: c.heads,
                    },
                    ls1: layer_scale(&bp.pp("ls1"), c.layer_scale, dim)?,
                    norm2: LayerNorm::read(&bp.pp("norm2"), dim, LN_EPSILON)?,
                    fc1: linear(&mp.pp("fc1"), dim, c.hidden, Stored::OutIn, true)?,
                    fc2: linear(&mp.pp("fc2"), c.hidden, dim, Stored::OutIn, true)?,
                    ls2: layer_scale(&bp.pp("ls2"), c.layer_scale, dim)?,
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let head = Head {
            norm: norm(&p.pp("norm"), c.final_norm, dim)?,
            fc_norm: norm(&p.pp("fc_norm"), c.fc_norm, dim)?,
            heads: (if c.distilled {
                &["head", "head_dist"][..]
            } else {
                &["head"][..]
            })
            .iter()
            .map(|name| linear(&p.pp(name), dim, c.classes, Stored::OutIn, true))
            .collect::<Result<_, _>>()?,
            pool: c.pool,
            prefix: c.prefix_tokens(),
        };
        Ok(Vit {
            embed,
            blocks,
            head,
        })
    }

    fn prefix_tokens(&self) -> usize {
        self.head.prefix
    }

    /// Runs blocks `..tap` and block `tap`'s first LayerNorm.
    fn tapped(&self, tap: usize, images: Tensor<4>) -> Tapped {
        let (x, grid) = self.embed.forward(images);
        let x = self.blocks[..tap]
            .iter()
            .fold(x, |x, block| block.forward(x));
        let block = &self.blocks[tap];
        let x = in_dtype_of(x, &block.norm1.weight);
        Tapped {
            activation: Activation::Tokens {
                tokens: block.norm1.forward(x.clone()),
                prefix: self.prefix_tokens(),
                grid,
            },
            carry: Some(x),
        }
    }
}

impl Embed {
    /// `[B, 3, H, W]` → `[B, prefix + h·w, C]` and the grid `[h, w]`.
    fn forward(&self, images: Tensor<4>) -> (Tensor<3>, [usize; 2]) {
        let x = self
            .proj
            .forward(in_dtype_of(images, &self.proj.conv.weight));
        let [batch, channels, h, w] = x.dims();
        let patches = x.reshape([batch, channels, h * w]).swap_dims(1, 2); // [B, h·w, C]
        let pos = self.pos_embed.val();
        let positions = pos.dims()[1];
        let embedded = positions - self.grid * self.grid;
        let pos = if [h, w] == [self.grid, self.grid] {
            pos
        } else {
            let prefix = pos.clone().narrow(1, 0, embedded);
            let grid = pos.narrow(1, embedded, self.grid * self.grid);
            let grid = resample(grid, self.grid, [h, w]);
            Tensor::cat(vec![prefix, grid], 1)
        };
        let mut prefix: Vec<Tensor<3>> = self
            .prefix
            .iter()
            .map(|t| t.val().repeat_dim(0, batch))
            .collect();
        let x = if self.no_embed_class {
            prefix.push(patches + pos);
            Tensor::cat(prefix, 1)
        } else {
            prefix.push(patches);
            Tensor::cat(prefix, 1) + pos
        };
        let x = match &self.norm_pre {
            Some(norm) => norm.forward(x),
            None => x,
        };
        (x, [h, w])
    }
}

/// The position embedding of a `grid`×`grid` grid `[1, grid², C]` resampled to `size`
/// as `torch.nn.functional.interpolate(mode="bicubic", align_corners=False,
/// antialias=True)` (timm's `resample_abs_pos_embed`): rows, then columns, each a
/// matrix of weights made on the host.
fn resample(pos: Tensor<3>, grid: usize, size: [usize; 2]) -> Tensor<3> {
    let [_, _, channels] = pos.dims();
    let device = pos.device();
    let dtype = pos.dtype();
    let matrix = |from: usize, to: usize| -> Tensor<2> {
        let values = antialiased_bicubic(from, to);
        Tensor::<2>::from_data(burn::tensor::TensorData::new(values, [to, from]), &device)
            .cast(dtype)
    };
    let [h, w] = size;
    // Rows: [h, g] · [g, g·C] → [h, g·C].
    let rows = matrix(grid, h).matmul(pos.reshape([grid, grid * channels]));
    // Columns, row by row: [h, w, g] · [h, g, C] → [h, w, C].
    let columns = matrix(grid, w)
        .reshape([1, w, grid])
        .repeat_dim(0, h)
        .matmul(rows.reshape([h, grid, channels]));
    columns.reshape([1, h * w, channels])
}

/// The `[to, from]` weights of PyTorch's antialiased bicubic resampling along one axis
/// (`_upsample_bicubic2d_aa`, align_corners False): Keys' cubic with a = −0.5, widened by
/// the scale when shrinking, truncated at the edges and normalised.
fn antialiased_bicubic(from: usize, to: usize) -> Vec<f32> {
    fn cubic(x: f64) -> f64 {
        const A: f64 = -0.5;
        let x = x.abs();
        if x < 1.0 {
            ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            (((x - 5.0) * x + 8.0) * x - 4.0) * A
        } else {
            0.0
        }
    }
    let scale = from as f64 / to as f64;
    let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
    let inverse = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let mut out = vec![0.0f32; to * from];
    for i in 0..to {
        let center = scale * (i as f64 + 0.5);
        let min = ((center - support + 0.5).trunc() as i64).max(0) as usize;
        let max = ((center + support + 0.5).trunc() as i64).clamp(0, from as i64) as usize;
        let weights: Vec<f64> = (min..max)
            .map(|j| cubic((j as f64 - center + 0.5) * inverse))
            .collect();
        let total: f64 = weights.iter().sum();
        for (j, w) in (min..max).zip(weights) {
            out[i * from + j] = if total != 0.0 { w / total } else { w } as f32;
        }
    }
    out
}

impl Attention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, tokens, channels] = x.dims();
        let heads = self.heads;
        let head_dim = channels / heads;
        // [B, N, 3·heads, d]: q's heads, then k's, then v's.
        let qkv = self
            .qkv
            .forward(x)
            .reshape([batch, tokens, 3 * heads, head_dim]);
        let part = |i: usize| qkv.clone().narrow(2, i * heads, heads).swap_dims(1, 2); // [B, h, N, d]
        let (q, k, v) = (part(0), part(1), part(2));
        let scale = (head_dim as f64).powf(-0.5);
        let attention = softmax(q.mul_scalar(scale).matmul(k.swap_dims(2, 3)), 3); // [B, h, N, N]
        let x = attention
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, tokens, channels]);
        self.proj.forward(x)
    }
}

fn scaled(x: Tensor<3>, gamma: &Option<Param<Tensor<1>>>) -> Tensor<3> {
    match gamma {
        Some(gamma) => {
            let channels = gamma.dims()[0];
            x * gamma.val().reshape([1, 1, channels])
        }
        None => x,
    }
}

impl Block {
    /// `[B, N, C]` → `[B, N, C]`
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = in_dtype_of(x, &self.norm1.weight);
        let tokens = self.norm1.forward(x.clone());
        self.rest(x, tokens)
    }

    /// The block after its first LayerNorm: `x` its input, `tokens` `norm1(x)`.
    fn rest(&self, x: Tensor<3>, tokens: Tensor<3>) -> Tensor<3> {
        let x = x + scaled(self.attn.forward(tokens), &self.ls1);
        let hidden = gelu(self.fc1.forward(self.norm2.forward(x.clone())));
        x + scaled(self.fc2.forward(hidden), &self.ls2)
    }
}

impl Head {
    /// `[B, N, C]` → `[B, classes]`
    fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let x = match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        let [batch, tokens, channels] = x.dims();
        // One vector per classifier: the class token (and DeiT's distillation token),
        // or the mean of the patch tokens.
        let logits = self.heads.iter().enumerate().map(|(i, head)| {
            let pooled = match self.pool {
                Pool::Token => x.clone().narrow(1, i, 1).reshape([batch, channels]),
                Pool::Avg => x
                    .clone()
                    .narrow(1, self.prefix, tokens - self.prefix)
                    .mean_dim(1)
                    .reshape([batch, channels]),
            };
            let pooled = match &self.fc_norm {
                Some(norm) => norm.forward(pooled),
                None => pooled,
            };
            head.forward(in_dtype_of(pooled, &head.weight))
        });
        let count = self.heads.len();
        let sum = logits.reduce(|a, b| a + b);
        match sum {
            Some(sum) if count > 1 => sum.div_scalar(count as f64),
            Some(sum) => sum,
            // No classifier: never built so.
            None => Tensor::zeros([batch, 0], &x.device()),
        }
    }
}

impl Backbone for Vit {
    fn tap_names(&self) -> Vec<String> {
        (0..self.blocks.len())
            .map(|i| format!("blocks.{i}.norm1"))
            .collect()
    }

    fn forward_to(&self, tap: usize, images: Tensor<4>) -> Tapped {
        self.tapped(tap, images)
    }

    fn forward_from(&self, tap: usize, tapped: Tapped) -> Tensor<2> {
        let tokens = match tapped.activation {
            Activation::Tokens { tokens, .. } => tokens,
            // Never made by a ViT: its patch tokens without the prefix.
            Activation::Map(map) => {
                let [batch, channels, h, w] = map.dims();
                map.reshape([batch, channels, h * w]).swap_dims(1, 2)
            }
        };
        // The block's input, whose residual connection passes by the tap: always carried
        // by `forward_to`; without it, the tokens stand in.
        let carry = tapped.carry.unwrap_or_else(|| tokens.clone());
        let block = &self.blocks[tap];
        let x = block.rest(in_dtype_of(carry, &block.norm1.weight), tokens);
        let x = self.blocks[tap + 1..]
            .iter()
            .fold(x, |x, block| block.forward(x));
        self.head.forward(x)
    }

    fn pooled_classifier(&self, _tap: usize) -> Option<&Linear> {
        None
    }

    fn cast_through(mut self, tap: usize, dtype: DType) -> Self {
        self.embed = cast(self.embed, dtype);
        self.blocks = cast_first(self.blocks, tap + 1, dtype);
        self
    }

    fn dtype(&self) -> DType {
        self.embed.proj.conv.weight.val().dtype()
    }
}

#[cfg(test)]
mod tests {
    use super::antialiased_bicubic;

    /// `F.interpolate(torch.arange(4.).reshape(1, 1, 1, 4), size=(1, 6), mode="bicubic",
    /// align_corners=False, antialias=True)` and to size 3.
    #[test]
    fn resampling_weights_are_torchs() {
        let apply = |from: usize, to: usize| -> Vec<f32> {
            let w = antialiased_bicubic(from, to);
            (0..to)
                .map(|i| (0..from).map(|j| w[i * from + j] * j as f32).sum())
                .collect()
        };
        let up = apply(4, 6);
        let down = apply(4, 3);
        let torch_up = [
            -0.06578932f32,
            0.41176474,
            1.1666667,
            1.8333333,
            2.5882354,
            3.0657897,
        ];
        let torch_down = [0.18993133f32, 1.5, 2.8100688];
        for (a, b) in up.iter().zip(torch_up).chain(down.iter().zip(torch_down)) {
            assert!((a - b).abs() < 1e-5, "{up:?} {down:?}");
        }
    }
}
