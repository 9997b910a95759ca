#!/usr/bin/env python3
"""Time per checkpoint across the ResNet family: open file → Grad-CAM at stage 4 for
the 6 fixture images at 224×224, for Res2Net50 next to ResNet50(-vd) and ResNeXt50,
from the files of tools/make_fixtures.py and tools/make_family_fixtures.py. camwatch
warm in one process (examples/bench_cam.rs), fp32; pytorch-grad-cam warm (timm members);
PyTorch's floor (load + one no_grad forward, no CAM). Medians of N runs, as
tools/bench_cam.py measures them.

Usage: bench_family.py BENCH_CAM FIXTURE_DIR [N]    (scripts/bench-family runs it)
"""

import os
import statistics
import sys

from bench_cam import camwatch_warm, grad_cam_run, torch_floor

CLASSES = 5
# Checkpoint (under FIXTURE_DIR), camwatch's name for it, timm name (None: PaddleClas).
MEMBERS = [
    ("timm_r50.pth", "Res2Net50_vd_26w_4s", "res2net50d"),
    ("family/timm_res2net50_26w_4s.pth", "Res2Net50_26w_4s", "res2net50_26w_4s"),
    ("family/timm_resnet50.pth", "ResNet50", "resnet50"),
    ("family/timm_resnet50d.pth", "ResNet50_vd", "resnet50d"),
    ("family/timm_resnext50_32x4d.pth", "ResNeXt50_32x4d", "resnext50_32x4d"),
    ("family/timm_seresnext50_32x4d.pth", "SE_ResNeXt50_32x4d", "seresnext50_32x4d"),
    ("family/paddle_ResNet50_vd.pdparams", "ResNet50_vd", None),
    ("family/paddle_ResNeXt50_32x4d.pdparams", "ResNeXt50_32x4d", None),
    ("family/paddle_Res2Net50_26w_4s.pdparams", "Res2Net50_26w_4s", None),
]


def main():
    bench_cam, fixtures = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    six = os.path.join(fixtures, "cam_samples")
    print("| file | network | camwatch ms | pytorch-grad-cam ms | PyTorch load + forward ms "
          "| camwatch / pytorch-grad-cam |")
    print("|---|---|---|---|---|---|")
    for file, name, timm_name in MEMBERS:
        ours = camwatch_warm(bench_cam, fixtures, six, ["gradcam"], "stage4", n, file=file)
        theirs = floor = "–"
        ratio = "–"
        if timm_name:
            model = (file, timm_name, 4 if file == "timm_r50.pth" else CLASSES)
            grad_cam_run(fixtures, six, ["gradcam"], "layer4", model)
            theirs = statistics.median(
                grad_cam_run(fixtures, six, ["gradcam"], "layer4", model) for _ in range(n))
            floor = statistics.median(torch_floor(fixtures, 6, False, model) for _ in range(n))
            ratio = f"{ours / theirs:.2f}"
            theirs, floor = f"{theirs:.0f}", f"{floor:.0f}"
        framework = "timm" if timm_name else "PaddleClas"
        print(f"| {os.path.basename(file)} | {name} ({framework}) | {ours:.0f} | {theirs} "
              f"| {floor} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
