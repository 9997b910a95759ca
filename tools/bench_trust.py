#!/usr/bin/env python3
"""The trust figures (camwatch render --metrics) measured two ways:

1. Cost: milliseconds per checkpoint for each metric alone and for all of them
   (`timings_ms.metrics` of summary.json, the maps excluded), one method (gradcam,
   stage 4), 6 and 64 images at 224×224, on the demo network and on timm's res2net50d
   (the fixture). The 64 images are the 6 (or the demo's 12) copied.
2. Against the maps and the forward passes (`ratio`): the wall time of `render
   --metrics all` over `--metrics none` on the demo's last epoch (12 samples, the median
   of five runs of each), and on res2net50d with 64 images the figures' time over the
   forward passes they need. Those are timed in the same runs: deletion's figures are
   its 16 forward passes per image and next to nothing else, so they give one pass's
   time; every figure needs 51 passes per image (confidence 1, deletion and insertion
   16 each, ROAD 18) and the sanity checks two map computations (the untrained
   network's and the least probable class's), timed by the maps' own.
3. The demo run: per epoch, means over the 12 samples of box energy, pointing hits,
   deletion and insertion AUC, ROAD and confidence change, and the sanity flags; a
   markdown table on stdout and a chart in docs/trust-demo.png.

Usage: bench_trust.py CAMWATCH FIXTURES_DIR [cost|ratio|demo|both]
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

METRICS = ["confidence", "deletion", "insertion", "road", "sanity", "all"]


def render(camwatch, checkpoint, samples, metrics, out):
    subprocess.run([camwatch, "render", "--checkpoint", checkpoint, "--samples", samples,
                    "--out", out, "--device", "cpu", "--metrics", metrics],
                   check=True, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def copies(source, count, tmp):
    """`count` images: those of `source` copied round-robin, with labels and boxes."""
    target = os.path.join(tmp, f"{os.path.basename(source)}_{count}")
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(source, "labels.csv")) as f:
        header, *rows = f.read().splitlines()
    out_rows = []
    for i in range(count):
        row = rows[i % len(rows)].split(",")
        name = f"{i:03d}_{row[0]}"
        shutil.copy(os.path.join(source, row[0]), os.path.join(target, name))
        out_rows.append(",".join([name] + row[1:]))
    with open(os.path.join(target, "labels.csv"), "w") as f:
        f.write("\n".join([header] + out_rows) + "\n")
    for extra in ["classes.txt", "camwatch.toml"]:
        if os.path.exists(os.path.join(source, extra)):
            shutil.copy(os.path.join(source, extra), target)
    return target


def cost(camwatch, fixtures, tmp):
    cases = [("demo network", "checkpoints/epoch_16.pdparams", "samples"),
             ("res2net50d", os.path.join(fixtures, "timm_r50.pth"),
              os.path.join(fixtures, "cam_samples"))]
    print("| network | images | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for name, checkpoint, samples in cases:
        for count in [6, 64]:
            folder = copies(samples, count, tmp)
            cells = []
            for metrics in METRICS:
                summary = render(camwatch, checkpoint, folder, metrics,
                                 os.path.join(tmp, "out"))
                cells.append(f"{summary['timings_ms']['metrics'] / 1000:.1f} s")
            maps = summary["timings_ms"]["total"]
            print(f"| {name} (maps {maps:.0f} ms) | {count} | " + " | ".join(cells) + " |",
                  flush=True)


def ratio(camwatch, fixtures, tmp):
    cases = [("demo network, last epoch", "checkpoints/epoch_16.pdparams", "samples", 12, 5),
             ("res2net50d", os.path.join(fixtures, "timm_r50.pth"),
              os.path.join(fixtures, "cam_samples"), 64, 1)]
    print("| network | images | runs | maps (`none`), wall | `all`, wall | all ÷ none "
          "| figures | their forward passes | figures ÷ forwards |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, checkpoint, samples, count, runs in cases:
        folder = copies(samples, count, tmp)
        wall = {m: [] for m in ["none", "deletion", "all"]}
        figures = {m: [] for m in ["deletion", "all"]}
        maps = []
        for _ in range(runs):
            for metrics in wall:
                start = time.monotonic()
                summary = render(camwatch, checkpoint, folder, metrics, os.path.join(tmp, "out"))
                wall[metrics].append(time.monotonic() - start)
                timings = summary["timings_ms"]
                if metrics == "none":
                    maps.append((timings["forward"] + timings["cam"]) / 1000)
                else:
                    figures[metrics].append(timings["metrics"] / 1000)
        median = {m: statistics.median(v) for m, v in wall.items()}
        one_pass = statistics.median(figures["deletion"]) / (16 * count)
        forwards = 51 * count * one_pass + 2 * statistics.median(maps)
        all_figures = statistics.median(figures["all"])
        print(f"| {name} | {count} | {runs} | {median['none']:.2f} s | {median['all']:.2f} s "
              f"| {median['all'] / median['none']:.1f}× | {all_figures:.1f} s "
              f"| {forwards:.1f} s | {all_figures / forwards:.2f}× |", flush=True)


def demo(camwatch, tmp):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = sorted(int(f[6:-9]) for f in os.listdir("checkpoints")
                    if f.startswith("epoch_") and f.endswith(".pdparams"))
    rows = []
    for epoch in epochs:
        summary = render(camwatch, f"checkpoints/epoch_{epoch}.pdparams", "samples", "all",
                         os.path.join(tmp, "demo"))
        samples = summary["samples"]
        mean = lambda key: sum(s["metrics"]["gradcam"][key] for s in samples) / len(samples)  # noqa: E731
        flags = sum(1 for s in samples
                    if s["sanity"]["gradcam"]["class_corr"] >= 0.9
                    or s["sanity"]["gradcam"]["random_corr"] >= 0.7)
        rows.append({
            "epoch": epoch,
            "box": sum(s["box_energy"]["gradcam"] for s in samples) / len(samples),
            "hits": sum(s["pointing_hit"]["gradcam"] for s in samples),
            "p": sum(s["probs"][s["target"]] for s in samples) / len(samples),
            "deletion": mean("deletion_auc"),
            "insertion": mean("insertion_auc"),
            "road": mean("road_combined"),
            "confidence": mean("confidence_change"),
            "drop": summary["confidence"]["gradcam"]["average_drop"],
            "flags": flags,
        })
        print(f"epoch {epoch} done", file=sys.stderr, flush=True)
    keys = ["box", "hits", "p", "deletion", "insertion", "road", "confidence", "drop", "flags"]
    print("| epoch | box energy | pointing hits | mean p(target) | deletion AUC | insertion AUC "
          "| ROAD | confidence change | average drop % | sanity flags |")
    print("|---|" + "---|" * len(keys))
    for r in rows:
        cells = [f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in keys]
        print(f"| {r['epoch']} | " + " | ".join(cells) + " |")

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    x = [r["epoch"] for r in rows]
    for key, label, style in [("box", "box energy", "-"), ("insertion", "insertion AUC", "-"),
                              ("deletion", "deletion AUC", "-"),
                              ("p", "mean p(target)", ":"),
                              ("road", "ROAD combined", "--")]:
        ax.plot(x, [r[key] for r in rows], style, marker="o", markersize=3, label=label)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("epoch")
    ax.set_title("The demo run: where Grad-CAM looks, and whether it explains the network")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs("docs", exist_ok=True)
    fig.savefig("docs/trust-demo.png")


def main():
    camwatch, fixtures = sys.argv[1], sys.argv[2]
    what = sys.argv[3] if len(sys.argv) > 3 else "both"
    with tempfile.TemporaryDirectory() as tmp:
        if what in ("cost", "both"):
            cost(camwatch, fixtures, tmp)
        if what in ("ratio", "both"):
            ratio(camwatch, fixtures, tmp)
        if what in ("demo", "both"):
            demo(camwatch, tmp)


if __name__ == "__main__":
    main()
