#!/usr/bin/env python3
"""Time per checkpoint, open file → every map, for the 6 fixture images at 224×224 on
timm res2net50d weights: pytorch-grad-cam in this process (torch.load, model,
load_state_dict, image preprocessing, one CAM object per method), warm, after a first
untimed run; camwatch warm in one process as well (examples/bench_cam.rs: reading the
images, loading, every map), in fp32 and with the forward pass in bf16; `camwatch render`
in a fresh process (its summary's timings_ms.total: load and maps, writing excluded);
and the floor: PyTorch's own torch.load + load_state_dict + no_grad forward of the same
batch, in fp32 and in bf16. Also 64 images (the six, copied) at stage 4. Medians of N
runs.

Usage: bench_cam.py CAMWATCH BENCH_CAM FIXTURE_DIR [N]    (scripts/bench-cam runs it)
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

GRADIENT_METHODS = ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam"]
# The timm res2net50d fixture (tools/make_fixtures.py): its file, timm name and classes.
RES2NET50D = ("timm_r50.pth", "res2net50d", 4)


def timm_net(fixtures, model):
    """A timm network with the weights of `model` = (file in `fixtures`, timm name, classes)."""
    import timm
    import torch
    file, name, classes = model
    state = torch.load(os.path.join(fixtures, file))
    net = timm.create_model(name, num_classes=classes)
    net.load_state_dict(state)
    return net.eval()


def grad_cam_run(fixtures, samples, methods, layer, model=RES2NET50D):
    import torch
    from PIL import Image
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
    classes = {"gradcam": GradCAM, "hirescam": HiResCAM, "gradcam++": GradCAMPlusPlus,
               "xgradcam": XGradCAM, "layercam": LayerCAM}
    start = time.perf_counter()
    net = timm_net(fixtures, model)
    folder = samples
    images = []
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".png")):
        img = Image.open(os.path.join(folder, name)).convert("RGB").resize((224, 224), Image.BILINEAR)
        x = (np.asarray(img, dtype=np.float32) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
        images.append(x.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(images).astype(np.float32))
    for method in methods:
        with classes[method](model=net, target_layers=[getattr(net, layer)]) as cam:
            cam(input_tensor=x, targets=None)
    return (time.perf_counter() - start) * 1e3


def torch_floor(fixtures, count, bf16, model=RES2NET50D):
    """torch.load, model, load_state_dict and a no_grad forward: no CAM at all."""
    import torch
    start = time.perf_counter()
    net = timm_net(fixtures, model)
    x = torch.randn(count, 3, 224, 224)
    if bf16:
        net, x = net.to(torch.bfloat16), x.to(torch.bfloat16)
    with torch.no_grad():
        net(x)
    return (time.perf_counter() - start) * 1e3


def camwatch_run(camwatch, fixtures, samples, methods, stage, file=RES2NET50D[0]):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([camwatch, "render", "--checkpoint", os.path.join(fixtures, file),
                        "--samples", samples, "--out", out,
                        "--method", ",".join(methods), "--layer", stage, "--device", "cpu"],
                       check=True, capture_output=True)
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f)["timings_ms"]["total"]


def camwatch_warm(bench_cam, fixtures, samples, methods, stage, n, precision="fp32",
                  file=RES2NET50D[0]):
    out = subprocess.run([bench_cam, os.path.join(fixtures, file),
                          samples, ",".join(methods), stage, str(n),
                          precision],
                         check=True, capture_output=True, text=True).stdout
    return float(out)


def main():
    camwatch, bench_cam, fixtures = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    import torch
    print(f"torch threads: {torch.get_num_threads()}", file=sys.stderr)
    six = os.path.join(fixtures, "cam_samples")
    # 64 images: the six, again and again, under other names.
    many = tempfile.mkdtemp(prefix="camwatch-bench-64-")
    names = sorted(n for n in os.listdir(six) if n.endswith(".png"))
    for i in range(64):
        shutil.copy(os.path.join(six, names[i % len(names)]), os.path.join(many, f"s{i:02}.png"))
    print("| images | layer | methods | pytorch-grad-cam ms | PyTorch load + forward fp32 / bf16 ms "
          "| camwatch fp32 ms | ratio | vs floor | camwatch bf16 ms | ratio | vs bf16 floor "
          "| camwatch fresh process fp32 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    cases = [(6, six, "layer4", "stage4", ["gradcam"]),
             (6, six, "layer4", "stage4", GRADIENT_METHODS),
             (6, six, "layer3", "stage3", ["gradcam"]),
             (6, six, "layer3", "stage3", GRADIENT_METHODS),
             (64, many, "layer4", "stage4", ["gradcam"])]
    floors = {}
    for count, samples, layer, stage, methods in cases:
        if count not in floors:
            floors[count] = {bf16: (torch_floor(fixtures, count, bf16), statistics.median(
                torch_floor(fixtures, count, bf16) for _ in range(n)))[1] for bf16 in (False, True)}
        floor = floors[count]
        grad_cam_run(fixtures, samples, methods, layer)
        theirs = statistics.median(grad_cam_run(fixtures, samples, methods, layer) for _ in range(n))
        warm = camwatch_warm(bench_cam, fixtures, samples, methods, stage, n)
        bf16 = camwatch_warm(bench_cam, fixtures, samples, methods, stage, n, "bf16")
        fresh = statistics.median(
            camwatch_run(camwatch, fixtures, samples, methods, stage) for _ in range(n))
        label = methods[0] if len(methods) == 1 else f"{len(methods)} gradient methods"
        print(f"| {count} | {stage} | {label} | {theirs:.0f} | {floor[False]:.0f} / {floor[True]:.0f} "
              f"| {warm:.0f} | {warm / theirs:.2f} | {warm / floor[False]:.2f} | {bf16:.0f} "
              f"| {bf16 / theirs:.2f} | {bf16 / floor[True]:.2f} | {fresh:.0f} |", flush=True)
    shutil.rmtree(many)


if __name__ == "__main__":
    main()
