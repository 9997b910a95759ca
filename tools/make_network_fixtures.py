#!/usr/bin/env python3
"""Writes checkpoints of the network families beyond ResNet (ConvNeXt, EfficientNet,
MobileNetV3, ViT/DeiT, PP-LCNet, PP-HGNet), with their framework's own outputs, for
the Rust tests.

timm members are built by `timm.create_model`, saved with `torch.save` (the `tf_` ones
as timm's train.py writes them: `{"epoch", "arch", "state_dict"}` in a `.pth.tar`);
PaddleClas members by PaddleClas's own constructors (see make_family_fixtures.py),
saved with `paddle.save`, one per process. Weights are moved off their initial values
so that no layer is an identity: normalisation affine parameters, layer scales and
GRN parameters drawn at random, then BatchNorm statistics gathered from random images
in train mode, and a classifier bias under which every sample's prediction is clear.

For each member `<stem>.ref.safetensors` holds an input batch, the logits, the output
of each checked tap (`tap.<path>`, spatial `[B, C, h, w]`; ViT tokens without the
prefix tokens, on the patch grid), the number of trainable parameters, the predicted
class of each sample image (`samples-<size>/`) and maps of the last tap for them:
pytorch-grad-cam's (`<method>@<tap>`, every gradient method, ScoreCAM for a few, an
SVD EigenCAM) for timm members, Grad-CAM and HiResCAM computed in PaddlePaddle at
feature resolution for PaddleClas members (and ScoreCAM for one member of each
family). `manifest.json` lists the members.

`shapes/<model>.json` holds the state-dict shapes of every 1000-class model camwatch
claims to read (timm ones built on the meta device), `shapes/unsupported/` those of a
few it does not, and `unsupported/` two small real checkpoints of networks it does not
read, for its error messages.

Usage: make_network_fixtures.py OUT_DIR      (a few minutes; needs paddlepaddle, timm,
pytorch-grad-cam and .venv/paddleclas)
"""

import importlib
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_family_fixtures as mff  # noqa: E402
import make_fixtures as mf  # noqa: E402

SEED = 20261206
CLASSES = 5
SAMPLES = 3
SAMPLE_SIZES = (128, 224, 256)
ODD = (2, 3, 77, 93)       # odd sizes: "SAME" padding, ceil-mode and uneven strides
BN_BATCHES = 8             # random batches that BatchNorm statistics are gathered from
BN_BATCH = 2
BIAS_TRIES = 10
SCORECAM_BATCH = 64

# The custom ViT: registers, layer scale and average pooling with fc_norm.
VIT_REG4_AVG = dict(img_size=128, patch_size=16, embed_dim=128, depth=3, num_heads=2,
                    reg_tokens=4, global_pool="avg", init_values=1e-5)


def timm_entry(model, family, taps, size=128, scorecam=False, tar=False, stem=None,
               name=None, kwargs=None):
    """A timm member. `taps` are the taps checked, the last being the one mapped."""
    vit = family == "vit"
    return dict(stem=stem or f"timm_{model}", variant="timm", family=family, model=model,
                kwargs=kwargs or {}, name=model if name is None else name, size=size,
                input=(2, 3, size, size) if vit else ODD, taps=taps, scorecam=scorecam,
                file=(stem or f"timm_{model}") + (".pth.tar" if tar else ".pth"), tar=tar)


def paddle_entry(constructor, module, family, taps, scorecam_images=0):
    """A PaddleClas member; ScoreCAM's reference for its first `scorecam_images` samples."""
    return dict(stem=f"paddle_{constructor}", variant="paddle", family=family,
                model=constructor, module=module, name=constructor, size=128, input=ODD,
                taps=taps, scorecam=scorecam_images > 0, scorecam_images=scorecam_images,
                file=f"paddle_{constructor}.pdparams")


TIMM = [
    timm_entry("convnext_atto", "convnext", ["stages.2", "stages.3"], scorecam=True),
    timm_entry("convnext_tiny", "convnext", ["stages.3"]),
    timm_entry("convnextv2_atto", "convnext", ["stages.3"]),
    timm_entry("convnextv2_tiny", "convnext", ["stages.3"]),
    # ScoreCAM of its 1280 channels would take minutes: mobilenetv3_small_075 has it.
    timm_entry("efficientnet_b0", "efficientnet", ["blocks.5", "bn2"]),
    timm_entry("efficientnet_b2", "efficientnet", ["bn2"]),
    timm_entry("tf_efficientnet_b0", "efficientnet", ["bn2"], tar=True),
    timm_entry("mobilenetv3_large_100", "mobilenetv3", ["blocks.5", "blocks.6"]),
    # The small MobileNetV3s have six block stages: blocks.5 is the last.
    timm_entry("mobilenetv3_small_075", "mobilenetv3", ["blocks.5"], scorecam=True),
    timm_entry("tf_mobilenetv3_large_075", "mobilenetv3", ["blocks.6"], tar=True),
    timm_entry("vit_tiny_patch16_224", "vit", ["blocks.5.norm1", "blocks.11.norm1"], size=256,
               scorecam=True, stem="timm_vit_tiny_patch16_256", name="vit_tiny_patch16_256",
               kwargs=dict(img_size=256)),
    timm_entry("deit_tiny_distilled_patch16_224", "vit", ["blocks.11.norm1"], size=224),
    timm_entry(None, "vit", ["blocks.2.norm1"], stem="timm_vit_reg4_avg", name=None,
               kwargs=VIT_REG4_AVG),
]

PADDLE = [
    paddle_entry("PPLCNet_x1_0", "pp_lcnet", "pplcnet", ["blocks5", "blocks6"]),
    # ScoreCAM on one member per family, the smallest: a forward pass per channel and
    # image (PP-HGNet's 768 channels on one image only).
    paddle_entry("PPLCNet_x0_25", "pp_lcnet", "pplcnet", ["blocks6"], scorecam_images=SAMPLES),
    paddle_entry("MobileNetV3_large_x1_0", "mobilenet_v3", "mobilenetv3",
                 ["blocks.14", "last_second_conv"]),
    paddle_entry("MobileNetV3_small_x0_35", "mobilenet_v3", "mobilenetv3", ["last_second_conv"],
                 scorecam_images=SAMPLES),
    paddle_entry("PPHGNet_tiny", "pp_hgnet", "pphgnet", ["stages.2", "stages.3"],
                 scorecam_images=1),
    paddle_entry("PPHGNet_small", "pp_hgnet", "pphgnet", ["stages.3"]),
]

# Every model camwatch claims to read: the timm ones by family, the PaddleClas ones by
# their module under ppcls/arch/backbone/legendary_models.
TIMM_SHAPES = {
    "convnext": [f"convnext_{s}" for s in
                 "atto femto pico nano tiny small base large xlarge".split()]
    + [f"convnextv2_{s}" for s in "atto femto pico nano tiny base large huge".split()],
    "efficientnet": [f"{p}efficientnet_b{i}" for p in ("", "tf_") for i in range(8)],
    "mobilenetv3": ["mobilenetv3_large_075", "mobilenetv3_large_100", "mobilenetv3_small_050",
                    "mobilenetv3_small_075", "mobilenetv3_small_100",
                    "tf_mobilenetv3_large_075", "tf_mobilenetv3_large_100",
                    "tf_mobilenetv3_small_075", "tf_mobilenetv3_small_100"],
    "vit": ["vit_tiny_patch16_224", "vit_tiny_patch16_384", "vit_small_patch16_224",
            "vit_small_patch32_224", "vit_base_patch16_224", "vit_base_patch32_224",
            "vit_base_patch16_384", "vit_large_patch16_224", "deit_tiny_patch16_224",
            "deit_small_patch16_224", "deit_base_patch16_224", "deit_tiny_distilled_patch16_224",
            "deit_small_distilled_patch16_224", "deit_base_distilled_patch16_224",
            "deit_base_distilled_patch16_384"],
}
PADDLE_SHAPES = {
    "pp_lcnet": ("pplcnet", [f"PPLCNet_x{s}" for s in
                             "0_25 0_35 0_5 0_75 1_0 1_5 2_0 2_5".split()]),
    "mobilenet_v3": ("mobilenetv3", [f"MobileNetV3_{k}_x{s}" for k in ("small", "large")
                                     for s in "0_35 0_5 0_75 1_0 1_25".split()]),
    "pp_hgnet": ("pphgnet", ["PPHGNet_tiny", "PPHGNet_small", "PPHGNet_base"]),
}
UNSUPPORTED_SHAPES = {"swin_tiny_patch4_window7_224": "swin", "regnetx_002": "regnet",
                      "densenet121": "densenet", "vgg11": "vgg", "mobilevit_xxs": "mobilevit"}
SMALL_SWIN = dict(img_size=64, patch_size=4, window_size=4, embed_dim=24, depths=(1, 1),
                  num_heads=(1, 1))

METHODS = ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam"]


def camwatch_name(model):
    """DeiT without distillation is the ViT architecture under another name."""
    if model.startswith("deit_") and "distilled" not in model:
        return "vit_" + model[len("deit_"):]
    return model


def save_refs(path, refs):
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in refs.items()}, path)


def unambiguous(logits):
    """Whether the top two logits of every row are apart by 1e-3 of the row's largest."""
    top = np.sort(logits, axis=1)
    return bool(np.all(top[:, -1] - top[:, -2] >= 1e-3 * np.abs(logits).max(axis=1)))


def uniform(rng, low, high, shape):
    return rng.uniform(low, high, shape).astype(np.float32)


def normal(rng, std, shape):
    return rng.normal(0.0, std, shape).astype(np.float32)


def clear_predictions(set_bias, shape, forward, xs, rng):
    """Draws the classifier bias until each sample's top logit is clear of the next;
    the samples' logits."""
    for _ in range(BIAS_TRIES):
        set_bias(normal(rng, 0.1, shape))
        logits = forward(xs)
        if unambiguous(logits):
            return logits
    raise RuntimeError("no classifier bias gives clear predictions")


def statistics_batch(rng, size):
    """Random images for BatchNorm statistics: white noise, like the input batches, and
    noise constant over 8×8 tiles, flat like the sample images' regions (without which
    their activations outgrow the statistics in deep networks)."""
    white = normal(rng, 1.0, (BN_BATCH // 2, 3, size, size))
    tiles = normal(rng, 1.0, (BN_BATCH - BN_BATCH // 2, 3, size // 8, size // 8))
    return np.concatenate([white, tiles.repeat(8, axis=2).repeat(8, axis=3)])


def samples(out, size):
    return os.path.join(out, f"samples-{size}")


# ---------------------------------------------------------------------------- timm

def build_timm(entry, classes):
    import timm
    from timm.models.vision_transformer import VisionTransformer
    if entry["model"] is None:
        return VisionTransformer(num_classes=classes, **entry["kwargs"])
    return timm.create_model(entry["model"], pretrained=False, num_classes=classes,
                             **entry["kwargs"])


def perturb_timm(model, rng, size):
    """Norm affine parameters, layer scales and GRN drawn; then BatchNorm statistics as
    a cumulative average over random images, so that they describe the network saved."""
    import torch
    from timm.layers.grn import GlobalResponseNorm
    from torch.nn.modules.batchnorm import _BatchNorm

    def draw(tensor, values):
        tensor.copy_(torch.from_numpy(values))

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (_BatchNorm, torch.nn.LayerNorm)):
                draw(module.weight, uniform(rng, 0.5, 1.5, module.weight.shape))
                draw(module.bias, normal(rng, 0.1, module.bias.shape))
            elif isinstance(module, GlobalResponseNorm):
                draw(module.weight, normal(rng, 0.1, module.weight.shape))
                draw(module.bias, normal(rng, 0.1, module.bias.shape))
        for name, p in model.named_parameters():
            if name.rsplit(".", 1)[-1] == "gamma":    # ConvNeXt and ViT layer scales
                draw(p, uniform(rng, 0.1, 1.0, p.shape))
        norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        momenta = [bn.momentum for bn in norms]
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        for _ in range(BN_BATCHES if norms else 0):
            model(torch.from_numpy(statistics_batch(rng, size)))
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
    model.eval()


def token_grid(model, size):
    """ViT tokens [B, N, C] to [B, C, gh, gw], without the class, distillation and
    register tokens; the grid is the one the input size gives."""
    patch = model.patch_embed.patch_size[0]
    prefix = model.num_prefix_tokens

    def reshape(t):
        return t[:, prefix:, :].reshape(t.shape[0], size // patch, size // patch,
                                        t.shape[2]).permute(0, 3, 1, 2)
    return reshape


def timm_taps(model, entry, x):
    """Logits and the spatial outputs of the checked taps for the batch `x`."""
    import torch
    captured = {}
    handles = [model.get_submodule(tap).register_forward_hook(
        lambda m, i, o, tap=tap: captured.__setitem__(tap, o)) for tap in entry["taps"]]
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(x)).numpy()
    finally:
        for h in handles:
            h.remove()
    spatial = token_grid(model, x.shape[-1]) if entry["family"] == "vit" else (lambda t: t)
    return logits, {tap: spatial(t).numpy() for tap, t in captured.items()}


def timm_maps(model, entry, xs):
    """pytorch-grad-cam's maps of the last tap on the samples, and EigenCAM's."""
    import torch
    from pytorch_grad_cam import (GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM,
                                  XGradCAM)
    tap = entry["taps"][-1]
    layer = model.get_submodule(tap)
    reshape = token_grid(model, entry["size"]) if entry["family"] == "vit" else None
    classes = dict(zip(METHODS, [GradCAM, HiResCAM, GradCAMPlusPlus, XGradCAM, LayerCAM]))
    if entry["scorecam"]:
        classes["scorecam"] = ScoreCAM
    xt = torch.from_numpy(xs)
    maps = {}
    for method, cls in classes.items():
        with cls(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
            if method == "scorecam":
                cam.batch_size = SCORECAM_BATCH
            maps[f"{method}@{tap}"] = cam(input_tensor=xt, targets=None)
    _, taps = timm_taps(model, dict(entry, taps=[tap]), xs)
    maps[f"eigencam@{tap}"] = mf.eigen_projection(taps[tap])
    return maps


def timm_member(out, entry, rng):
    import torch
    model = build_timm(entry, CLASSES)
    perturb_timm(model, rng, entry["size"])
    _, xs = mf.load_samples(samples(out, entry["size"]), "imagenet")

    def forward(batch):
        with torch.no_grad():
            return model(torch.from_numpy(batch)).numpy()

    heads = model.get_classifier()
    heads = heads if isinstance(heads, tuple) else (heads,)    # DeiT: (head, head_dist)

    def set_bias(values):
        for head, v in zip(heads, values):
            head.bias.data.copy_(torch.from_numpy(v))

    sample_logits = clear_predictions(set_bias, (len(heads), CLASSES), forward, xs, rng)
    x = normal(rng, 1.0, entry["input"])
    logits, taps = timm_taps(model, entry, x)
    refs = {"input": x, "logits": logits,
            "parameters": np.float32([sum(p.numel() for p in model.parameters())]),
            "predicted": sample_logits.argmax(1)}
    refs.update({f"tap.{tap}": t for tap, t in taps.items()})
    refs.update(timm_maps(model, entry, xs))
    save_refs(os.path.join(out, entry["stem"] + ".ref.safetensors"), refs)

    state = model.state_dict()
    path = os.path.join(out, entry["file"])
    torch.save({"epoch": 3, "arch": entry["model"], "state_dict": state} if entry["tar"]
               else state, path)
    # The file read back into a fresh model gives the same logits.
    fresh = build_timm(entry, CLASSES)
    saved = torch.load(path)
    fresh.load_state_dict(saved["state_dict"] if entry["tar"] else saved)
    fresh.eval()
    with torch.no_grad():
        again = fresh(torch.from_numpy(x)).numpy()
    assert np.array_equal(again, logits), f"{entry['file']}: logits differ once reloaded"
    return [k.split("@")[0] for k in refs if "@" in k]


# -------------------------------------------------------------------------- Paddle

def build_paddle(constructor, module, classes):
    mff.import_paddleclas()
    module = importlib.import_module("ppcls.arch.backbone.legendary_models." + module)
    return getattr(module, constructor)(class_num=classes)


def perturb_paddle(model, rng, size):
    """As perturb_timm: BatchNorm affine parameters drawn, then statistics as a
    cumulative average over random images (momentum i/(i+1) at batch i)."""
    import paddle
    norms = [m for m in model.sublayers()
             if isinstance(m, (paddle.nn.BatchNorm, paddle.nn.layer.norm._BatchNormBase))]
    for bn in norms:
        n = bn.weight.shape[0]
        bn.weight.set_value(uniform(rng, 0.5, 1.5, n))
        bn.bias.set_value(normal(rng, 0.1, n))
    momenta = [bn._momentum for bn in norms]
    model.train()
    with paddle.no_grad():
        for i in range(BN_BATCHES):
            for bn in norms:
                bn._momentum = i / (i + 1)
            model(paddle.to_tensor(statistics_batch(rng, size)))
    for bn, momentum in zip(norms, momenta):
        bn._momentum = momentum
    model.eval()


def paddle_maps(model, layer, tap, xs):
    """Grad-CAM and HiResCAM of `layer` at feature resolution, one sample at a time:
    ReLU(Σ_k mean(g_k) A_k) and ReLU(Σ_k g_k ⊙ A_k), each divided by its maximum."""
    import paddle
    captured = {}
    handle = layer.register_forward_post_hook(lambda m, i, o: captured.__setitem__("a", o))
    maps = {f"gradcam@{tap}": [], f"hirescam@{tap}": []}
    for img in xs:
        logits = model(paddle.to_tensor(img[None]))
        a = captured["a"]
        pred = int(logits.argmax(axis=1).numpy()[0])
        (g,) = paddle.grad(outputs=logits[:, pred], inputs=a)
        a, g = a.numpy()[0], g.numpy()[0]
        for key, heat in ((f"gradcam@{tap}", np.einsum("k,khw->hw", g.mean(axis=(1, 2)), a)),
                          (f"hirescam@{tap}", (g * a).sum(axis=0))):
            heat = np.maximum(heat, 0)
            maps[key].append(heat / max(heat.max(), 1e-12))
    handle.remove()
    return {k: np.float32(v) for k, v in maps.items()}


def paddle_scorecam(model, layer, tap, xs):
    """ScoreCAM of `layer` at feature resolution, as pytorch-grad-cam defines it: each
    channel upsampled to the input (bilinear, aligned corners) and scaled to [0, 1] masks
    the input; the predicted class's logits of the masked images, softmaxed over the
    channels, weight the channels; ReLU, divided by the maximum."""
    import paddle
    import paddle.nn.functional as F
    captured = {}
    handle = layer.register_forward_post_hook(lambda m, i, o: captured.__setitem__("a", o))
    maps = []
    with paddle.no_grad():
        for img in xs:
            x = paddle.to_tensor(img[None])
            pred = int(model(x).argmax(axis=1).numpy()[0])
            a = captured["a"]                                  # [1, K, h, w]
            activation = a.numpy()[0]
            up = F.interpolate(a, size=list(img.shape[-2:]), mode="bilinear",
                               align_corners=True)[0]         # [K, H, W]
            flat = up.reshape([up.shape[0], -1])
            lo, hi = flat.min(axis=1), flat.max(axis=1)
            masks = (up - lo[:, None, None]) / (hi - lo + 1e-8)[:, None, None]
            scores = []
            for start in range(0, masks.shape[0], SCORECAM_BATCH):
                masked = x * masks[start:start + SCORECAM_BATCH, None]
                scores.append(model(masked)[:, pred].numpy())
            scores = np.concatenate(scores)
            weights = np.exp(scores - scores.max())
            weights /= weights.sum()
            heat = np.maximum(np.einsum("k,khw->hw", weights, activation), 0)
            maps.append(heat / max(heat.max(), 1e-12))
    handle.remove()
    return {f"scorecam@{tap}": np.float32(maps)}


def paddle_member(out, index):
    """One PaddleClas member, in a process of its own (PaddleClas names parameters
    globally)."""
    import paddle
    entry = PADDLE[index]
    paddle.set_device("cpu")
    paddle.seed(SEED + index)
    rng = np.random.default_rng(SEED + 100 + index)
    model = build_paddle(entry["model"], entry["module"], CLASSES)
    perturb_paddle(model, rng, entry["size"])
    _, xs = mf.load_samples(samples(out, entry["size"]), "imagenet")

    def forward(batch):
        with paddle.no_grad():
            return model(paddle.to_tensor(batch)).numpy()

    sample_logits = clear_predictions(model.fc.bias.set_value, model.fc.bias.shape, forward,
                                      xs, rng)

    layers = dict(model.named_sublayers())
    captured = {}
    for tap in entry["taps"]:
        layers[tap].register_forward_post_hook(
            lambda m, i, o, tap=tap: captured.__setitem__(tap, o.numpy()))
    x = normal(rng, 1.0, entry["input"])
    logits = forward(x)
    refs = {"input": x, "logits": logits,
            "parameters": np.float32([sum(p.size for p in model.parameters()
                                          if not p.stop_gradient)]),
            "predicted": sample_logits.argmax(1)}
    refs.update({f"tap.{tap}": captured[tap] for tap in entry["taps"]})
    tap = entry["taps"][-1]
    refs.update(paddle_maps(model, layers[tap], tap, xs))
    if entry["scorecam"]:
        refs.update(paddle_scorecam(model, layers[tap], tap, xs[:entry["scorecam_images"]]))
    save_refs(os.path.join(out, entry["stem"] + ".ref.safetensors"), refs)

    path = os.path.join(out, entry["file"])
    paddle.save(model.state_dict(), path)
    fresh = build_paddle(entry["model"], entry["module"], CLASSES)
    fresh.set_state_dict(paddle.load(path))
    fresh.eval()
    with paddle.no_grad():
        again = fresh(paddle.to_tensor(x)).numpy()
    assert np.array_equal(again, logits), f"{entry['file']}: logits differ once reloaded"


# -------------------------------------------------------------------------- shapes

def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def meta_timm(model, **kwargs):
    """A timm model on the meta device: shapes without memory."""
    import timm
    import torch
    with torch.device("meta"):
        return timm.create_model(model, pretrained=False, **kwargs)


def tensor_shapes(state):
    return {k: [int(d) for d in v.shape] for k, v in state.items()}


def timm_shapes(out):
    for family, models in TIMM_SHAPES.items():
        for model in models:
            net = meta_timm(model, num_classes=1000)
            shapes = dict(tensors=tensor_shapes(net.state_dict()), family=family,
                          name=camwatch_name(model), variant="timm", classes=1000,
                          parameters=sum(p.numel() for p in net.parameters()))
            if model.startswith("tf_"):
                shapes["hint"] = model
            write_json(os.path.join(out, "shapes", model + ".json"), shapes)
    for model, family in UNSUPPORTED_SHAPES.items():
        net = meta_timm(model)
        write_json(os.path.join(out, "shapes", "unsupported", model + ".json"),
                   dict(tensors=tensor_shapes(net.state_dict()), family=family))


def paddle_shapes(out, module):
    """The shapes of one PaddleClas module's models (in a process of its own)."""
    import paddle
    paddle.set_device("cpu")
    family, constructors = PADDLE_SHAPES[module]
    for constructor in constructors:
        net = build_paddle(constructor, module, 1000)
        write_json(os.path.join(out, "shapes", constructor + ".json"), dict(
            tensors=tensor_shapes(net.state_dict()), family=family, name=constructor,
            variant="paddle", classes=1000,
            parameters=sum(int(p.size) for p in net.parameters() if not p.stop_gradient)))


def unsupported_checkpoints(out):
    """Small real checkpoints of networks camwatch does not read."""
    import timm
    import torch
    from timm.models.swin_transformer import SwinTransformer
    torch.manual_seed(SEED)
    os.makedirs(os.path.join(out, "unsupported"), exist_ok=True)
    regnet = timm.create_model("regnetx_002", pretrained=False, num_classes=CLASSES)
    torch.save(regnet.state_dict(), os.path.join(out, "unsupported", "regnetx_002.pth"))
    swin = SwinTransformer(num_classes=CLASSES, **SMALL_SWIN)
    torch.save(swin.state_dict(), os.path.join(out, "unsupported", "swin.pth"))


# ---------------------------------------------------------------------------- main

def manifest_entry(entry, methods):
    return dict(file=entry["file"], reference=entry["stem"] + ".ref.safetensors",
                family=entry["family"], variant=entry["variant"], name=entry["name"],
                classes=CLASSES, samples=f"samples-{entry['size']}",
                input_size=entry["size"], last_tap=entry["taps"][-1],
                taps_checked=entry["taps"], methods=methods, scorecam=entry["scorecam"])


def run_child(*args):
    subprocess.run([sys.executable, __file__, *map(str, args)], check=True)


def main():
    if len(sys.argv) == 4:
        # One Paddle member, or one PaddleClas module's shapes, in a process of its own.
        kind, out, what = sys.argv[1:]
        if kind == "paddle":
            paddle_member(out, int(what))
        else:
            paddle_shapes(out, what)
        return
    import torch
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for size in SAMPLE_SIZES:
        mf.make_samples(samples(out, size), rng, (size, size), SAMPLES, CLASSES)

    manifest = []
    for index, entry in enumerate(TIMM):
        print(f"make_network_fixtures: {entry['file']}", file=sys.stderr, flush=True)
        torch.manual_seed(SEED + index)
        methods = timm_member(out, entry, np.random.default_rng(SEED + 200 + index))
        manifest.append(manifest_entry(entry, methods))
    for index, entry in enumerate(PADDLE):
        print(f"make_network_fixtures: {entry['file']}", file=sys.stderr, flush=True)
        run_child("paddle", out, index)
        methods = ["gradcam", "hirescam"] + (["scorecam"] if entry["scorecam"] else [])
        manifest.append(manifest_entry(entry, methods))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)

    print("make_network_fixtures: shapes and unsupported networks", file=sys.stderr, flush=True)
    timm_shapes(out)
    for module in PADDLE_SHAPES:
        run_child("paddle-shapes", out, module)
    unsupported_checkpoints(out)
    print(f"wrote {len(manifest)} members to {out}")


if __name__ == "__main__":
    main()
