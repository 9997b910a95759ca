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

    # A network outside the ResNet family.
    other = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=4)
    torch.save(other.state_dict(), os.path.join(out, "mobilenet.pth"))


def make_samples(directory, rng, size, count, classes):
    """Synthetic photos-with-objects: a smooth textured background and one bright shape,
    with its class and box in labels.csv (as camwatch reads a sample directory)."""
    from PIL import Image, ImageDraw
    os.makedirs(directory, exist_ok=True)
    w, h = size
    rows = []
    for i in range(count):
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        freq = rng.uniform(3, 9, 3)
        phase = rng.uniform(0, 6.3, 3)
        base = np.stack([127 + 60 * np.sin(freq[c] * (xx + yy * (c - 1)) * 6.3 + phase[c])
                         for c in range(3)], axis=-1)
        base += rng.normal(0, 12, base.shape)
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        bw, bh = rng.integers(w // 5, w // 2), rng.integers(h // 5, h // 2)
        x0, y0 = rng.integers(0, w - bw), rng.integers(0, h - bh)
        label = int(rng.integers(0, classes))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if label % 2 == 0:
            draw.ellipse([x0, y0, x0 + bw, y0 + bh], fill=color)
        else:
            draw.rectangle([x0, y0, x0 + bw, y0 + bh], fill=color)
        name = f"sample{i}.png"
        img.save(os.path.join(directory, name))
        rows.append(f"{name},{label},{x0},{y0},{x0 + bw},{y0 + bh}")
    with open(os.path.join(directory, "labels.csv"), "w") as f:
        f.write("file,label,x0,y0,x1,y1\n" + "\n".join(rows) + "\n")
    with open(os.path.join(directory, "classes.txt"), "w") as f:
        f.write("\n".join(f"class{c}" for c in range(classes)) + "\n")


def load_samples(directory, normalize):
    """Images as camwatch preprocesses them: RGB float32, CHW, `imagenet` or `none`."""
    from PIL import Image
    names = sorted(n for n in os.listdir(directory) if n.endswith(".png"))
    x = np.stack([np.asarray(Image.open(os.path.join(directory, n)).convert("RGB"),
                             dtype=np.float32) for n in names])
    if normalize == "imagenet":
        x = (x / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return names, np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def eigen_projection(a):
    """First principal component of each [K, h, w] activation, sign fixed so that the
    map correlates positively with the channel sum, then ReLU: camwatch's eigencam, by
    NumPy's SVD (as pytorch-grad-cam's get_2d_projection, plus the sign rule)."""
    maps = []
    for act in a.astype(np.float64):
        x = act.reshape(act.shape[0], -1).T
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        proj = x @ vt[0]
        if np.corrcoef(proj, act.sum(axis=0).ravel())[0, 1] < 0:
            proj = -proj
        maps.append(np.maximum(proj, 0).reshape(act.shape[1:]))
    return np.float32(maps)


def cam_fixtures(out, rng):
    """References for the CAM engine: pytorch-grad-cam on timm weights, the original
    write-up's procedure in PaddlePaddle, ScoreCAM and an SVD EigenCAM, and OpenCV's
    colormaps."""
    import cv2
    import paddle
    import torch
    from pytorch_grad_cam import (GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM,
                                  XGradCAM)
    from safetensors.numpy import save_file

    samples = os.path.join(out, "cam_samples")
    make_samples(samples, rng, (224, 224), 6, 4)
    names, x = load_samples(samples, "imagenet")
    refs = {"input": x}

    # pytorch-grad-cam on the timm res2net50d fixture.
    model = torch.load(os.path.join(out, "timm_r50.pth"))
    import timm
    net = timm.create_model("res2net50d", num_classes=4)
    net.load_state_dict(model)
    net.eval()
    xt = torch.from_numpy(x)
    with torch.no_grad():
        refs["predicted"] = net(xt).argmax(1).numpy().astype(np.float32)
    methods = [("gradcam", GradCAM, "layer4"), ("hirescam", HiResCAM, "layer4"),
               ("gradcam++", GradCAMPlusPlus, "layer4"), ("xgradcam", XGradCAM, "layer4"),
               ("layercam", LayerCAM, "layer4"), ("gradcam", GradCAM, "layer3")]
    for method, cls, layer in methods:
        with cls(model=net, target_layers=[getattr(net, layer)]) as cam:
            refs[f"{method}.{layer}"] = cam(input_tensor=xt, targets=None)
    with torch.no_grad():
        _, stages = rm.timm_forward(net, xt)
    refs["eigencam.layer4"] = eigen_projection(stages[3].numpy())
    refs["eigencam.layer3"] = eigen_projection(stages[2].numpy())
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in refs.items()},
              os.path.join(out, "cam_timm.ref.safetensors"))

    # ScoreCAM (2 forwards per channel) on the small timm model, at 64×64.
    small_samples = os.path.join(out, "cam_samples_64")
    make_samples(small_samples, rng, (64, 64), 3, 6)
    _, xs = load_samples(small_samples, "imagenet")
    small = rm.timm_model([2, 1, 3, 1], 8, 4, 6, 8, 16)
    small.load_state_dict(torch.load(os.path.join(out, "timm_small.pth")))
    small.eval()
    with ScoreCAM(model=small, target_layers=[small.layer4]) as cam:
        cam.batch_size = 64
        score = cam(input_tensor=torch.from_numpy(xs), targets=None)
    save_file({"input": xs, "scorecam.layer4": np.float32(score)},
              os.path.join(out, "cam_small.ref.safetensors"))

    # The original write-up, in PaddlePaddle: raw 0..255 input, channel mean of
    # gradient × activation of the last feature map, ReLU, divided by the maximum.
    paddle.set_device("cpu")
    pmodel = rm.paddle_model(rm.PADDLE_DEPTHS[50], classes=4, layers=50)
    pmodel.set_state_dict(paddle.load(os.path.join(out, "paddle_r50.p4.pdparams")))
    pmodel.eval()
    _, raw = load_samples(samples, "none")
    maps, preds = [], []
    for img in raw:
        inp = paddle.to_tensor(img[None])
        logits, stages = pmodel(inp)
        feature = stages[3]
        pred = int(logits.argmax(axis=1).numpy()[0])
        (grad,) = paddle.grad(outputs=logits[:, pred], inputs=feature)
        heat = paddle.mean(grad * feature, axis=1)[0].numpy()
        heat = np.maximum(heat, 0)
        heat /= np.max(heat)
        maps.append(heat)
        preds.append(pred)
    save_file({"input": raw, "writeup": np.float32(maps), "predicted": np.float32(preds)},
              os.path.join(out, "cam_paddle.ref.safetensors"))

    # OpenCV's colormaps, all 256 entries, as RGB.
    lut = np.arange(256, dtype=np.uint8).reshape(256, 1)
    save_file({name: cv2.cvtColor(cv2.applyColorMap(lut, code), cv2.COLOR_BGR2RGB)
               .reshape(256, 3).astype(np.float32)
               for name, code in [("jet", cv2.COLORMAP_JET), ("turbo", cv2.COLORMAP_TURBO),
                                  ("viridis", cv2.COLORMAP_VIRIDIS),
                                  ("inferno", cv2.COLORMAP_INFERNO)]},
              os.path.join(out, "colormaps.ref.safetensors"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    manifest = []
    paddle_fixtures(out, rng, manifest)
    timm_fixtures(out, rng, manifest)
    cam_fixtures(out, rng)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(manifest)} checkpoints and their references to {out}")


if __name__ == "__main__":
    main()
