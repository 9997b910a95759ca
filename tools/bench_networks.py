#!/usr/bin/env python3
"""Time per checkpoint for each family beyond the ResNets: open file → Grad-CAM at the
network's last layer for 6 and 64 images at the member's input size, camwatch warm in
one process (examples/bench_cam.rs, fp32, CPU) against pytorch-grad-cam warm in this
process (torch.load, timm model, load_state_dict, preprocessing, GradCAM at the same
layer; ViT and DeiT with a reshape_transform that drops the prefix tokens), both after a
first untimed run, medians of N runs. PaddleClas members have no pytorch-grad-cam: their
time is camwatch's alone. The fixtures are tools/make_network_fixtures.py's.

Usage: bench_networks.py BENCH_CAM FIXTURE_DIR [N]    (scripts/bench-networks runs it)
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

# One member per family (the manifest's stem), with the timm name to build it by.
MEMBERS = [
    ("timm_convnext_tiny", "convnext_tiny", {}),
    ("timm_convnextv2_atto", "convnextv2_atto", {}),
    ("timm_efficientnet_b0", "efficientnet_b0", {}),
    ("timm_mobilenetv3_large_100", "mobilenetv3_large_100", {}),
    ("timm_vit_tiny_patch16_256", "vit_tiny_patch16_224", {"img_size": 256}),
    ("timm_deit_tiny_distilled_patch16_224", "deit_tiny_distilled_patch16_224", {}),
    ("paddle_PPLCNet_x1_0", None, {}),
    ("paddle_MobileNetV3_large_x1_0", None, {}),
    ("paddle_PPHGNet_tiny", None, {}),
]


def copies(samples, count):
    """A folder of `count` images: the sample set's, again and again."""
    folder = tempfile.mkdtemp(prefix=f"camwatch-bench-{count}-")
    names = sorted(n for n in os.listdir(samples) if n.endswith(".png"))
    for i in range(count):
        shutil.copy(os.path.join(samples, names[i % len(names)]),
                    os.path.join(folder, f"s{i:02}.png"))
    return folder


def grad_cam_run(checkpoint, timm_name, kwargs, tap, folder, size):
    import timm
    import torch
    from PIL import Image
    from pytorch_grad_cam import GradCAM
    start = time.perf_counter()
    state = torch.load(checkpoint)
    state = state.get("state_dict", state)
    net = timm.create_model(timm_name, num_classes=5, **kwargs)
    net.load_state_dict(state)
    net.eval()
    images = []
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".png")):
        img = Image.open(os.path.join(folder, name)).convert("RGB").resize((size, size),
                                                                           Image.BILINEAR)
        x = (np.asarray(img, dtype=np.float32) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
        images.append(x.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(images).astype(np.float32))
    reshape = None
    if hasattr(net, "patch_embed"):
        prefix, grid = net.num_prefix_tokens, net.patch_embed.grid_size

        def reshape(t):
            t = t[:, prefix:, :].reshape(t.size(0), grid[0], grid[1], t.size(2))
            return t.permute(0, 3, 1, 2)
    with GradCAM(model=net, target_layers=[net.get_submodule(tap)],
                 reshape_transform=reshape) as cam:
        cam(input_tensor=x, targets=None)
    return (time.perf_counter() - start) * 1e3


def camwatch_warm(bench_cam, checkpoint, folder, n, size):
    out = subprocess.run([bench_cam, checkpoint, folder, "gradcam", "last", str(n), "fp32",
                          str(size)], check=True, capture_output=True, text=True).stdout
    return float(out)


def main():
    bench_cam, fixtures = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    import torch
    print(f"torch threads: {torch.get_num_threads()}", file=sys.stderr)
    with open(os.path.join(fixtures, "manifest.json")) as f:
        manifest = {m["reference"].split(".ref.")[0]: m for m in json.load(f)}
    print("| network | images | size | layer | camwatch ms | pytorch-grad-cam ms "
          "| camwatch / pytorch-grad-cam |")
    print("|---|---|---|---|---|---|---|")
    for stem, timm_name, kwargs in MEMBERS:
        member = manifest[stem]
        checkpoint = os.path.join(fixtures, member["file"])
        size = member["input_size"]
        for count in (6, 64):
            folder = copies(os.path.join(fixtures, member["samples"]), count)
            ours = camwatch_warm(bench_cam, checkpoint, folder, n, size)
            theirs, ratio = "–", "–"
            if timm_name:
                run = lambda: grad_cam_run(checkpoint, timm_name, kwargs, member["last_tap"],
                                           folder, size)
                run()
                t = statistics.median(run() for _ in range(n))
                theirs, ratio = f"{t:.0f}", f"{ours / t:.2f}"
            name = member["name"] or stem
            print(f"| {name} | {count} | {size} | {member['last_tap']} | {ours:.0f} | {theirs} "
                  f"| {ratio} |", flush=True)
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
