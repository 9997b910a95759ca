#!/usr/bin/env python3
"""Writes the checkpoint fixtures and reference outputs the Rust tests compare with.

Every checkpoint here is written by the framework that writes it in real training runs
(`paddle.save`, `torch.save`, `safetensors`), with perturbed weights: BatchNorm
statistics and affine parameters are drawn at random so that none is the identity.
Each `<name>.ref.safetensors` holds an input batch and the framework's own logits and
four stage outputs for it, computed in float32 on the CPU. `manifest.json` lists every
fixture with the architecture camwatch must infer from it.

Usage: make_fixtures.py OUT_DIR      (takes about a minute; needs paddlepaddle and timm)
"""

import builtins
import json
import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as rm  # noqa: E402

SEED = 20261128


def perturb_paddle(model, rng):
    import paddle
    for name, p in model.state_dict().items():
        if "_batch_norm" in name:
            n = p.shape[0]
            value = {
                "weight": rng.uniform(0.5, 1.5, n),
                "bias": rng.normal(0.0, 0.1, n),
                "_mean": rng.normal(0.0, 0.1, n),
                "_variance": rng.uniform(0.5, 2.0, n),
            }[name.rsplit(".", 1)[1]]
            p.set_value(paddle.to_tensor(value.astype(np.float32)))
        elif name == "out.bias":
            p.set_value(paddle.to_tensor(rng.normal(0, 0.1, p.shape).astype(np.float32)))
    model.eval()


def perturb_torch(model, rng):
    import torch
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, n).astype(np.float32)))
                module.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, n).astype(np.float32)))
                module.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.1, n).astype(np.float32)))
                module.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, n).astype(np.float32)))
        model.fc.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, model.fc.bias.shape).astype(np.float32)))
    model.eval()


def save_reference(path, x, logits, stages):
    from safetensors.numpy import save_file
    tensors = {"input": x, "logits": logits}
    for i, s in enumerate(stages):
        tensors[f"stage{i + 1}"] = s
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, path)


def paddle_fixtures(out, rng, manifest):
    import paddle
    from paddle.framework import io_utils
    paddle.set_device("cpu")
    paddle.seed(SEED)

    specs = [
        # name, depths, width, scales, classes, stem_width, base, paddle `layers`, input size
        ("paddle_r50", rm.PADDLE_DEPTHS[50], 26, 4, 4, 32, 64, 50, (224, 224)),
        ("paddle_small", [1, 2, 1, 1], 6, 3, 5, 8, 16, None, (97, 113)),
        ("paddle_d101", rm.PADDLE_DEPTHS[101], 4, 4, 3, 8, 8, 101, (64, 64)),
    ]
    for name, depths, width, scales, classes, stem, base, layers, size in specs:
        model = rm.paddle_model(depths, width, scales, classes, stem, base, layers)
        perturb_paddle(model, rng)
        x = rng.normal(0, 1, (2, 3) + size).astype(np.float32)
        with paddle.no_grad():
            logits, stages = model(paddle.to_tensor(x))
        save_reference(os.path.join(out, name + ".ref.safetensors"), x, logits.numpy(),
                       [s.numpy() for s in stages])
        arch = dict(variant="paddle", depths=depths, width=width, scales=scales,
                    classes=classes, stem_width=stem, base_channels=base)
        protocols = (2, 4) if name != "paddle_d101" else (4,)
        for protocol in protocols:
            file = f"{name}.p{protocol}.pdparams"
            paddle.save(model.state_dict(), os.path.join(out, file), protocol=protocol)
            manifest.append(dict(file=file, reference=name + ".ref.safetensors", arch=arch))
        if name == "paddle_small":
            # Under protocols 2 and 3 paddle.save splits arrays of 2**30 bytes or more into
            # `name@@.i` parts listed in `UnpackBigParamInfor@@`. Lower that limit to 1000
            # elements (the module reads `int` from its globals first) so a small model
            # goes through the real splitting code.
            io_utils.int = lambda v: 1000 if v > 2**27 else builtins.int(v)
            try:
                file = f"{name}.split.p2.pdparams"
                paddle.save(model.state_dict(), os.path.join(out, file), protocol=2)
            finally:
                del io_utils.int
            with open(os.path.join(out, file), "rb") as f:
                assert "UnpackBigParamInfor@@" in pickle.load(f), "split did not happen"
            manifest.append(dict(file=file, reference=name + ".ref.safetensors", arch=arch))
        if name == "paddle_r50":
            bad = {k: v for k, v in model.state_dict().items()}
            bad["bb_2_3.conv2._conv.weight"] = paddle.zeros([1024, 208, 3, 3])
            paddle.save(bad, os.path.join(out, "bad_shape.pdparams"))
            del bad["bb_2_3.conv2._conv.weight"]
            del bad["bb_1_0.res3a_branch2b_2._batch_norm._variance"]
            paddle.save(bad, os.path.join(out, "bad_missing.pdparams"))


def timm_fixtures(out, rng, manifest):
    import timm
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(SEED)

    specs = [
        ("timm_r50", [3, 4, 6, 3], 26, 4, 4, 32, 64, (224, 224)),
        ("timm_small", [2, 1, 3, 1], 8, 4, 6, 8, 16, (75, 90)),
    ]
    for name, depths, width, scales, classes, stem, base, size in specs:
        if name == "timm_r50":
            model = timm.create_model("res2net50d", pretrained=False, num_classes=classes)
        else:
            model = rm.timm_model(depths, width, scales, classes, stem, base)
        perturb_torch(model, rng)
        x = rng.normal(0, 1, (2, 3) + size).astype(np.float32)
        with torch.no_grad():
            logits, stages = rm.timm_forward(model, torch.from_numpy(x))
        save_reference(os.path.join(out, name + ".ref.safetensors"), x, logits.numpy(),
                       [s.numpy() for s in stages])
        arch = dict(variant="timm", depths=depths, width=width, scales=scales,
                    classes=classes, stem_width=stem, base_channels=base)
        state = model.state_dict()
        files = {f"{name}.pth": state, f"{name}.safetensors": None}
        if name == "timm_small":
            # The wrappers training scripts use: a DataParallel `module.` prefix inside
            # `state_dict` (timm's train.py), a `model` entry (many trainers), and a
            # Lightning checkpoint.
            files[f"{name}.wrapped.pth.tar"] = {
                "epoch": 3, "arch": "res2net50d",
                "state_dict": {"module." + k: v for k, v in state.items()},
                "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict(),
            }
            files[f"{name}.model.pt"] = {"model": state, "args": {"lr": 0.1, "epochs": 10}}
            files["epoch=2-step=300.ckpt"] = {
                "epoch": 2, "global_step": 300, "pytorch-lightning_version": "2.5.0",
                "state_dict": {"model." + k: v for k, v in state.items()},
                "hyper_parameters": {"lr": 0.1, "name": "res2net"},
            }
        for file, obj in files.items():
            if file.endswith(".safetensors"):
                save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, file))
            else:
                torch.save(obj, os.path.join(out, file))
            manifest.append(dict(file=file, reference=name + ".ref.safetensors", arch=arch))
        if name == "timm_small":
            half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
            torch.save(half, os.path.join(out, f"{name}.f16.pth"))
            manifest.append(dict(file=f"{name}.f16.pth", reference=name + ".ref.safetensors",
                                 arch=arch, tolerance=0.05))

    other = timm.create_model("resnet18", pretrained=False, num_classes=4)
    torch.save(other.state_dict(), os.path.join(out, "resnet18.pth"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    manifest = []
    paddle_fixtures(out, rng, manifest)
    timm_fixtures(out, rng, manifest)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(manifest)} checkpoints and their references to {out}")


if __name__ == "__main__":
    main()
