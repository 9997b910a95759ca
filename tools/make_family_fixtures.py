#!/usr/bin/env python3
"""Writes a checkpoint of every supported ResNet-family member, with its framework's
own outputs, for tests/family.rs.

PaddleClas members are built by PaddleClas's own model code (the `paddleclas` wheel,
installed without its dependencies by `scripts/setup --reference` into
`.venv/paddleclas`; only its pretrained-weight downloader is stubbed out) and saved
with `paddle.save`; timm members by `timm.create_model`, saved with `torch.save`.
BatchNorm statistics and affine parameters are drawn at random so that none is the
identity.

For each member `<name>.ref.safetensors` holds an input batch (odd sizes, so that
ceil-mode pools and "SAME" padding are exercised), the logits and the four stage
outputs; and maps for the sample images in `samples/` (128×128): pytorch-grad-cam's
for timm members (every gradient method, stage 3 and 4; ScoreCAM at stage 4 for the
smallest), the original write-up's procedure in PaddlePaddle for PaddleClas members.
`manifest.json` lists each file with the architecture its name stands for.

Usage: make_family_fixtures.py OUT_DIR      (a few minutes; needs paddlepaddle, timm,
pytorch-grad-cam and .venv/paddleclas)
"""

import json
import os
import subprocess
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixtures as mf  # noqa: E402

SEED = 20261204
CLASSES = 5
INPUT = (2, 3, 77, 93)
SAMPLES = 3
SAMPLE_SIZE = 128


def arch(variant, block, stem, depths, width, avg_down, groups=1, scales=1, se=None):
    """What camwatch must read off the member's file."""
    return dict(variant=variant, block=block, stem=stem, depths=depths, width=width,
                scales=scales, groups=groups, avg_down=avg_down, se_ratio=se)


D18, D34, D101, D152 = [2, 2, 2, 2], [3, 4, 6, 3], [3, 4, 23, 3], [3, 8, 36, 3]
D50, D26 = D34, D18

# PaddleClas constructor, its module under ppcls/arch/backbone, camwatch's name for it,
# and the architecture.
PADDLE = [
    ("ResNet18", "legendary_models.resnet", "ResNet18",
     arch("paddle", "basic", "plain", D18, 64, False)),
    ("ResNet18_vd", "legendary_models.resnet", "ResNet18_vd",
     arch("paddle", "basic", "deep", D18, 64, True)),
    ("ResNet34", "legendary_models.resnet", "ResNet34",
     arch("paddle", "basic", "plain", D34, 64, False)),
    ("ResNet34_vd", "legendary_models.resnet", "ResNet34_vd",
     arch("paddle", "basic", "deep", D34, 64, True)),
    ("ResNet50", "legendary_models.resnet", "ResNet50",
     arch("paddle", "bottleneck", "plain", D50, 64, False)),
    ("ResNet50_vd", "legendary_models.resnet", "ResNet50_vd",
     arch("paddle", "bottleneck", "deep", D50, 64, True)),
    ("ResNet101", "legendary_models.resnet", "ResNet101",
     arch("paddle", "bottleneck", "plain", D101, 64, False)),
    ("ResNet101_vd", "legendary_models.resnet", "ResNet101_vd",
     arch("paddle", "bottleneck", "deep", D101, 64, True)),
    ("ResNet152", "legendary_models.resnet", "ResNet152",
     arch("paddle", "bottleneck", "plain", D152, 64, False)),
    ("ResNet152_vd", "legendary_models.resnet", "ResNet152_vd",
     arch("paddle", "bottleneck", "deep", D152, 64, True)),
    ("ResNeXt50_32x4d", "model_zoo.resnext", "ResNeXt50_32x4d",
     arch("paddle", "bottleneck", "plain", D50, 128, False, groups=32)),
    ("ResNeXt50_64x4d", "model_zoo.resnext", "ResNeXt50_64x4d",
     arch("paddle", "bottleneck", "plain", D50, 256, False, groups=64)),
    ("ResNeXt101_32x4d", "model_zoo.resnext", "ResNeXt101_32x4d",
     arch("paddle", "bottleneck", "plain", D101, 128, False, groups=32)),
    ("ResNeXt101_64x4d", "model_zoo.resnext", "ResNeXt101_64x4d",
     arch("paddle", "bottleneck", "plain", D101, 256, False, groups=64)),
    ("ResNeXt50_vd_32x4d", "model_zoo.resnext_vd", "ResNeXt50_vd_32x4d",
     arch("paddle", "bottleneck", "deep", D50, 128, True, groups=32)),
    ("ResNeXt50_vd_64x4d", "model_zoo.resnext_vd", "ResNeXt50_vd_64x4d",
     arch("paddle", "bottleneck", "deep", D50, 256, True, groups=64)),
    ("ResNeXt101_vd_32x4d", "model_zoo.resnext_vd", "ResNeXt101_vd_32x4d",
     arch("paddle", "bottleneck", "deep", D101, 128, True, groups=32)),
    ("ResNeXt101_vd_64x4d", "model_zoo.resnext_vd", "ResNeXt101_vd_64x4d",
     arch("paddle", "bottleneck", "deep", D101, 256, True, groups=64)),
    ("SE_ResNeXt50_vd_32x4d", "model_zoo.se_resnext_vd", "SE_ResNeXt50_vd_32x4d",
     arch("paddle", "bottleneck", "deep", D50, 128, True, groups=32, se=16)),
    ("Res2Net50_26w_4s", "model_zoo.res2net", "Res2Net50_26w_4s",
     arch("paddle", "res2net", "plain", D50, 26, False, scales=4)),
]

# timm model name, camwatch's name for it, and the architecture.
TIMM = [
    ("resnet18", "ResNet18", arch("timm", "basic", "plain", D18, 64, False)),
    ("resnet34d", "ResNet34_vd", arch("timm", "basic", "deep", D34, 64, True)),
    ("resnet50", "ResNet50", arch("timm", "bottleneck", "plain", D50, 64, False)),
    ("resnet50d", "ResNet50_vd", arch("timm", "bottleneck", "deep", D50, 64, True)),
    ("resnet101", "ResNet101", arch("timm", "bottleneck", "plain", D101, 64, False)),
    ("resnet152d", "ResNet152_vd", arch("timm", "bottleneck", "deep", D152, 64, True)),
    ("resnext50_32x4d", "ResNeXt50_32x4d",
     arch("timm", "bottleneck", "plain", D50, 128, False, groups=32)),
    ("resnext50d_32x4d", "ResNeXt50_vd_32x4d",
     arch("timm", "bottleneck", "deep", D50, 128, True, groups=32)),
    ("resnext101_32x4d", "ResNeXt101_32x4d",
     arch("timm", "bottleneck", "plain", D101, 128, False, groups=32)),
    ("seresnext50_32x4d", "SE_ResNeXt50_32x4d",
     arch("timm", "bottleneck", "plain", D50, 128, False, groups=32, se=16)),
    ("seresnext26d_32x4d", "SE_ResNeXt26_vd_32x4d",
     arch("timm", "bottleneck", "deep", D26, 128, True, groups=32, se=16)),
    ("res2net50_26w_4s", "Res2Net50_26w_4s",
     arch("timm", "res2net", "plain", D50, 26, False, scales=4)),
    ("res2net50_48w_2s", "Res2Net50_48w_2s",
     arch("timm", "res2net", "plain", D50, 48, False, scales=2)),
    ("res2net101_26w_4s", "Res2Net101_26w_4s",
     arch("timm", "res2net", "plain", D101, 26, False, scales=4)),
    # Small ones, for custom sizes (and as fuzzing seeds: scripts/fuzz).
    ("tiny_resnet_d", "ResNet[1, 1, 1, 1]_vd",
     arch("timm", "basic", "deep", [1, 1, 1, 1], 8, True)),
    ("tiny_seresnext", "SE_ResNeXt[1, 2, 1, 1]_4x2d",
     arch("timm", "bottleneck", "plain", [1, 2, 1, 1], 8, False, groups=4, se=16)),
]


def tiny(model_name):
    """The small timm networks of `TIMM`, built with timm's own ResNet class."""
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet
    if model_name == "tiny_resnet_d":
        return ResNet(block=BasicBlock, layers=[1, 1, 1, 1], num_classes=CLASSES,
                      stem_type="deep", stem_width=8, avg_down=True, channels=(8, 16, 32, 64))
    return ResNet(block=Bottleneck, layers=[1, 2, 1, 1], num_classes=CLASSES, cardinality=4,
                  base_width=8, channels=(16, 32, 64, 128), block_args=dict(attn_layer="se"))

GRADIENT_METHODS = ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam"]


def import_paddleclas():
    """PaddleClas's backbone modules without its package `__init__`s, which import the
    whole training stack (and `requests` for downloads)."""
    root = os.path.join(os.path.dirname(HERE), ".venv", "paddleclas", "paddleclas")
    if not os.path.isdir(root):
        sys.exit(f"make_family_fixtures: no PaddleClas in {root}: run scripts/setup --reference")

    def package(name, path):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(root, path)]
        sys.modules[name] = module
        return module

    for name in ["ppcls", "ppcls.arch", "ppcls.arch.backbone",
                 "ppcls.arch.backbone.legendary_models", "ppcls.arch.backbone.model_zoo"]:
        package(name, name.replace(".", "/"))
    utils = package("ppcls.utils", "ppcls/utils")

    def no_download(*args, **kwargs):
        raise RuntimeError("fixtures use no pretrained weights")

    save_load = types.ModuleType("ppcls.utils.save_load")
    save_load.load_dygraph_pretrain = no_download
    save_load.load_dygraph_pretrain_from_url = no_download
    logger = types.ModuleType("ppcls.utils.logger")
    for level in ("info", "warning", "error", "debug"):
        setattr(logger, level, lambda *a, **k: None)
    for module in (save_load, logger):
        sys.modules[module.__name__] = module
        setattr(utils, module.__name__.rsplit(".", 1)[1], module)


def paddle_member(out, index):
    """One PaddleClas member (each in its own process: PaddleClas names parameters
    globally, and two models may not share a name)."""
    import importlib

    import paddle
    from safetensors.numpy import save_file

    constructor, module, name, _ = PADDLE[index]
    import_paddleclas()
    paddle.set_device("cpu")
    paddle.seed(SEED + index)
    rng = np.random.default_rng(SEED + index)
    module = importlib.import_module("ppcls.arch.backbone." + module)
    model = getattr(module, constructor)(class_num=CLASSES)
    for layer in model.sublayers():
        if isinstance(layer, (paddle.nn.BatchNorm, paddle.nn.BatchNorm2D)):
            n = layer.weight.shape[0]
            layer.weight.set_value(rng.uniform(0.5, 1.5, n).astype(np.float32))
            layer.bias.set_value(rng.normal(0.0, 0.1, n).astype(np.float32))
            layer._mean.set_value(rng.normal(0.0, 0.1, n).astype(np.float32))
            layer._variance.set_value(rng.uniform(0.5, 2.0, n).astype(np.float32))
    model.eval()

    # The last block of each stage gives that stage's output.
    blocks = list(model.blocks if hasattr(model, "blocks") else model.block_list)
    depths = PADDLE[index][3]["depths"]
    ends = np.cumsum(depths) - 1
    captured = {}

    def hook(stage):
        def store(layer, inputs, output):
            captured[stage] = output
        return store

    for stage, end in enumerate(ends):
        blocks[end].register_forward_post_hook(hook(stage))

    x = rng.normal(0, 1, INPUT).astype(np.float32)
    refs = {"input": x}
    with paddle.no_grad():
        refs["logits"] = model(paddle.to_tensor(x)).numpy()
    for stage in range(4):
        refs[f"stage{stage + 1}"] = captured[stage].numpy()

    # The original write-up, for stage 3 and 4: raw 0..255 input, channel mean of
    # gradient × activation, ReLU, divided by the maximum.
    _, raw = mf.load_samples(os.path.join(out, "samples"), "none")
    refs["raw"] = raw
    for stage in (2, 3):
        maps, predicted = [], []
        for img in raw:
            logits = model(paddle.to_tensor(img[None]))
            feature = captured[stage]
            pred = int(logits.argmax(axis=1).numpy()[0])
            (grad,) = paddle.grad(outputs=logits[:, pred], inputs=feature)
            heat = np.maximum(paddle.mean(grad * feature, axis=1)[0].numpy(), 0)
            maps.append(heat / max(heat.max(), 1e-12))
            predicted.append(pred)
        refs[f"writeup.stage{stage + 1}"] = np.float32(maps)
        refs["predicted"] = np.float32(predicted)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in refs.items()},
              os.path.join(out, f"paddle_{name}.ref.safetensors"))
    paddle.save(model.state_dict(), os.path.join(out, f"paddle_{name}.pdparams"))


def timm_member(out, index):
    import timm
    import torch
    from pytorch_grad_cam import (GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM,
                                  XGradCAM)
    from safetensors.numpy import save_file

    model_name, name, _ = TIMM[index]
    torch.manual_seed(SEED + index)
    rng = np.random.default_rng(SEED + 100 + index)
    if model_name.startswith("tiny_"):
        model = tiny(model_name)
    else:
        model = timm.create_model(model_name, pretrained=False, num_classes=CLASSES)
    mf.perturb_torch(model, rng)
    x = rng.normal(0, 1, INPUT).astype(np.float32)
    with torch.no_grad():
        logits, stages = mf.rm.timm_forward(model, torch.from_numpy(x))
    refs = {"input": x, "logits": logits.numpy(),
            "parameters": np.float32([sum(p.numel() for p in model.parameters())])}
    for i, s in enumerate(stages):
        refs[f"stage{i + 1}"] = s.numpy()

    _, samples = mf.load_samples(os.path.join(out, "samples"), "imagenet")
    xs = torch.from_numpy(samples)
    with torch.no_grad():
        refs["predicted"] = model(xs).argmax(1).numpy().astype(np.float32)
    classes = {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus,
               "xgradcam": XGradCAM, "layercam": LayerCAM}
    for stage in ("layer3", "layer4"):
        for method in GRADIENT_METHODS:
            with classes[method](model=model, target_layers=[getattr(model, stage)]) as cam:
                refs[f"{method}.{stage}"] = cam(input_tensor=xs, targets=None)
        with torch.no_grad():
            _, feats = mf.rm.timm_forward(model, xs)
        refs[f"eigencam.{stage}"] = mf.eigen_projection(feats[int(stage[-1]) - 1].numpy())
    if model_name == "resnet18":
        with ScoreCAM(model=model, target_layers=[model.layer4]) as cam:
            cam.batch_size = 64
            refs["scorecam.layer4"] = cam(input_tensor=xs, targets=None)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in refs.items()},
              os.path.join(out, f"timm_{model_name}.ref.safetensors"))
    torch.save(model.state_dict(), os.path.join(out, f"timm_{model_name}.pth"))


def main():
    if len(sys.argv) == 4:
        # One member, in a process of its own.
        kind, out, index = sys.argv[1], sys.argv[2], int(sys.argv[3])
        (paddle_member if kind == "paddle" else timm_member)(out, index)
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    mf.make_samples(os.path.join(out, "samples"), rng, (SAMPLE_SIZE, SAMPLE_SIZE), SAMPLES,
                    CLASSES)
    manifest = []
    for kind, members in (("paddle", PADDLE), ("timm", TIMM)):
        for index, member in enumerate(members):
            if kind == "paddle":
                _, _, name, expected = member
                file = f"paddle_{name}.pdparams"
            else:
                model_name, name, expected = member
                file = f"timm_{model_name}.pth"
            print(f"make_family_fixtures: {file}", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, __file__, kind, out, str(index)], check=True)
            manifest.append(dict(file=file, reference=file.rsplit(".", 1)[0] + ".ref.safetensors",
                                 name=name, classes=CLASSES, **expected))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(manifest)} members to {out}")


if __name__ == "__main__":
    main()
