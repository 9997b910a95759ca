#!/usr/bin/env python3
"""camwatch on an NVIDIA GPU, checked in one run of a few minutes, results in a folder.

Needs only Python's standard library, a camwatch binary, `nvidia-smi`, and a Res2Net50
checkpoint in safetensors with a sample folder (`gpu_check_files.py checkpoint` makes
the one `scripts/gpu-check` and a bundle's `run` give it, from a seed, with timm).
pytorch-grad-cam is timed beside camwatch when it (with timm and torch) imports here.

  1. parity: `camwatch render` on the CPU (fp32) and on CUDA (fp32, bf16), six methods
     at stage 4: per image and method the Pearson correlation of the maps and whether the
     predicted class is the same; CUDA fp32 against CPU fp32 also as the largest
     relative difference.
  2. time per checkpoint: `camwatch watch --headless` on 4 checkpoints of the same
     weights (distinct files: only their safetensors metadata differs), 6 and 64
     samples, fp32 and bf16; the warm checkpoints' `ms` (job taken → maps recorded).
  3. memory: `nvidia-smi` sampled every 0.1 s during that watch: the GPU's memory in use
     before camwatch starts, its peak, and 1 s after each checkpoint (camwatch hands its
     cached memory back after every checkpoint; its CUDA context stays).
  4. pytorch-grad-cam (GradCAM, timm res2net50d, same weights, same GPU), if present.
  5. the user's wait: a watcher running, a checkpoint renamed into its folder, time to
     its JSON line (6 one at a time, then 32 at once), 6 and 64 samples, fp32 and bf16,
     `--gpu-memory release` and `keep`.
  6. PyTorch's own floor: the network kept on the device, each checkpoint's tensors
     copied in, Grad-CAM by hand; and Grad-CAM alone with the weights in place.

Writes RESULTS/summary.json and RESULTS/summary.md, and everything it ran under
RESULTS/raw/. `--cpu-only` runs the same steps with the CPU in place of CUDA, to check
the check itself on a machine without a GPU.

Usage: gpu_check.py --camwatch BIN --checkpoint R50.safetensors --samples DIR
                    --out RESULTS [--cpu-only] [--only latency]
"""

import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from gpu_check_files import weights_sha256  # beside this file, here and in a bundle

METHODS = ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "eigencam"]


def run(cmd, log, env=None, check=True):
    """Runs a command, its output into `log`; returns the completed process."""
    with open(log, "w") as out:
        done = subprocess.run([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT,
                              env=env)
    if check and done.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({done.returncode}); see {log}")
    return done


def read_npy(path):
    """A float32 .npy file (what `render` writes) as a flat list, without NumPy."""
    data = Path(path).read_bytes()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{path}: not an .npy file")
    major = data[6]
    header_len = struct.unpack("<H" if major == 1 else "<I",
                               data[8:10] if major == 1 else data[8:12])[0]
    start = (10 if major == 1 else 12) + header_len
    header = data[start - header_len:start].decode("latin1")
    if "'<f4'" not in header:
        raise ValueError(f"{path}: not little-endian float32 ({header.strip()})")
    count = (len(data) - start) // 4
    return list(struct.unpack(f"<{count}f", data[start:start + 4 * count]))


def pearson(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    da = [x - ma for x in a]
    db = [y - mb for y in b]
    num = sum(x * y for x, y in zip(da, db))
    den = math.sqrt(sum(x * x for x in da) * sum(y * y for y in db))
    return num / den if den > 0 else (1.0 if da == db else 0.0)


def relative_difference(a, b):
    scale = max(max(abs(x) for x in a), 1e-12)
    return max(abs(x - y) for x, y in zip(a, b)) / scale


def render(camwatch, checkpoint, samples, out, device, precision, raw):
    out.mkdir(parents=True, exist_ok=True)
    run([camwatch, "render", "--checkpoint", checkpoint, "--samples", samples, "--out", out,
         "--device", device, "--precision", precision, "--method", ",".join(METHODS)],
        raw / f"render-{device}-{precision}.log")
    return json.loads((out / "summary.json").read_text())


def parity(camwatch, checkpoint, samples, gpu, raw):
    cpu = render(camwatch, checkpoint, samples, raw / "cpu-fp32", "cpu", "fp32", raw)
    results = {}
    for precision in ["fp32", "bf16"]:
        summary = render(camwatch, checkpoint, samples, raw / f"{gpu}-{precision}", gpu,
                         precision, raw)
        rows = []
        for ours, theirs in zip(summary["samples"], cpu["samples"]):
            stem = Path(ours["file"]).stem
            for method in METHODS:
                a = read_npy(raw / "cpu-fp32" / f"{stem}.{method}.npy")
                b = read_npy(raw / f"{gpu}-{precision}" / f"{stem}.{method}.npy")
                rows.append({
                    "image": stem, "method": method, "pearson": pearson(a, b),
                    "relative_difference": relative_difference(a, b),
                    "same_class": ours["predicted"] == theirs["predicted"],
                })
        results[precision] = {
            "device": summary.get("device"),
            "precision": summary.get("precision"),
            "lowest_pearson": min(r["pearson"] for r in rows),
            "largest_relative_difference": max(r["relative_difference"] for r in rows),
            "same_class": sum(r["same_class"] for r in rows) / len(rows),
            "maps": rows,
        }
    return results


def distinct_copies(checkpoint, folder, count):
    """`count` safetensors files with the same tensors, differing only in their header's
    metadata, so that camwatch (which knows files by content) computes each."""
    data = Path(checkpoint).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        header["__metadata__"] = {"gpu_check_copy": str(i)}
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        (folder / f"epoch_{i}.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + body)


class MemorySampler(threading.Thread):
    """nvidia-smi's memory.used of GPU 0 (MiB) every 0.1 s, with timestamps."""

    def __init__(self, enabled):
        super().__init__(daemon=True)
        self.enabled = enabled
        self.samples = []
        self.stop = threading.Event()

    @staticmethod
    def used():
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used",
                              "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True)
        return int(out.stdout.strip().splitlines()[0]) if out.returncode == 0 else None

    def run(self):
        while self.enabled and not self.stop.is_set():
            self.samples.append((time.time(), self.used()))
            time.sleep(0.1)

    def at(self, moment):
        later = [m for t, m in self.samples if t >= moment and m is not None]
        return later[0] if later else None


def headless_watch(camwatch, folder, samples, device, precision, memory, err, *extra):
    """`camwatch watch --headless` on `folder` as every step times it (metrics off), its
    lines on a pipe and its stderr to `err`."""
    return subprocess.Popen(
        [str(camwatch), "watch", str(folder), "--headless", "--samples", str(samples),
         "--device", device, "--precision", precision, "--metrics", "none",
         "--gpu-memory", memory, *extra],
        stdout=subprocess.PIPE, stderr=err, text=True)


def watch_times(camwatch, checkpoint, samples, device, precision, raw, sampler_on,
                memory="release"):
    """Per-checkpoint `ms` of a headless watch over 4 distinct copies, and the GPU's
    memory around it, with `--gpu-memory MEMORY`."""
    name = f"watch-{Path(samples).name}-{device}-{precision}-{memory}"
    folder = raw / name
    if folder.exists():
        shutil.rmtree(folder)
    distinct_copies(checkpoint, folder, 4)
    sampler = MemorySampler(sampler_on)
    before = MemorySampler.used() if sampler_on else None
    sampler.start()
    lines, after = [], []
    with open(raw / f"{name}.stderr", "w") as err:
        watch = headless_watch(camwatch, folder, samples, device, precision, memory, err,
                               "--settle", "0.2")
        for line in watch.stdout:
            event = json.loads(line)
            if event.get("event") != "checkpoint":
                continue
            lines.append(event)
            seen = time.time()
            time.sleep(1.0)
            after.append(sampler.at(seen + 0.9))
            if len(lines) == 4:
                break
        watch.terminate()
        watch.wait(timeout=60)
    sampler.stop.set()
    sampler.join()
    (raw / f"{name}.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    used = [m for _, m in sampler.samples if m is not None]
    return {
        "samples": len(lines[0]["samples"]) if lines else 0,
        "ms": [round(l["ms"], 1) for l in lines],
        "status": [l["status"] for l in lines],
        "memory_mib": {
            "before": before,
            "peak": max(used) if used else None,
            "after_each_checkpoint": after,
        },
    }


class Lines(threading.Thread):
    """A headless watch's checkpoint lines, each with the monotonic time it arrived."""

    def __init__(self, stdout):
        super().__init__(daemon=True)
        self.stdout = stdout
        self.lines = []
        self.cond = threading.Condition()

    def run(self):
        for line in self.stdout:
            event = json.loads(line)
            if event.get("event") == "checkpoint":
                with self.cond:
                    self.lines.append((time.monotonic(), event))
                    self.cond.notify_all()

    def wait_for(self, count, timeout=600):
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.lines) >= count, timeout):
                sys.exit(f"latency: {len(self.lines)} of {count} lines in {timeout} s")
            return self.lines[count - 1][0]


def latency(camwatch, checkpoint, samples, device, precision, raw, renames=6, burst=32,
            memory="release"):
    """What a user waits for: a watcher already running on the run folder, a checkpoint
    written beside it and renamed in (as trainers save), time from the rename to its
    JSON line. One untimed file first (start-up, CUDA context), then `renames` one at a
    time (median), then a burst of `burst` renamed in at once (a sweep's runs saving
    together: time to the last line over `burst`)."""
    count = len([p for p in Path(samples).iterdir() if p.suffix == ".png"])
    name = f"latency-{count}-{device}-{precision}-{memory}"
    folder, staging = raw / name, raw / f"{name}-staging"
    for f in (folder, staging):
        if f.exists():
            shutil.rmtree(f)
    folder.mkdir(parents=True)
    distinct_copies(checkpoint, staging, 1 + renames + burst)
    files = sorted(staging.iterdir(), key=lambda p: int(p.stem.split("_")[1]))
    with open(raw / f"{name}.stderr", "w") as err:
        watch = headless_watch(camwatch, folder, samples, device, precision, memory, err)
        lines = Lines(watch.stdout)
        lines.start()
        time.sleep(2)  # the watcher's start (its first scan of the empty folder)
        os.rename(files[0], folder / files[0].name)
        lines.wait_for(1)
        single = []
        for i, f in enumerate(files[1:1 + renames]):
            time.sleep(0.5)
            start = time.monotonic()
            os.rename(f, folder / f.name)
            single.append((lines.wait_for(2 + i) - start) * 1e3)
        time.sleep(0.5)
        start = time.monotonic()
        for f in files[1 + renames:]:
            os.rename(f, folder / f.name)
        last = lines.wait_for(1 + renames + burst)
        watch.terminate()
        watch.wait(timeout=60)
    shutil.rmtree(staging, ignore_errors=True)
    statuses = {e["status"] for _, e in lines.lines}
    return {
        "samples": count,
        "rename_to_line_ms": [round(ms, 1) for ms in single],
        "median_ms": round(sorted(single)[len(single) // 2], 1),
        "burst": burst,
        "burst_ms_per_checkpoint": round((last - start) * 1e3 / burst, 1),
        "status": sorted(statuses),
    }


def torch_resident(checkpoint, samples, device, raw, repeats=6):
    """PyTorch's own floor beside camwatch: timm res2net50d built once and kept on the
    device; per checkpoint the file read and its tensors copied in (load_state_dict),
    then Grad-CAM at layer4 by hand (hooks, no pytorch-grad-cam); and Grad-CAM alone with
    the weights in place. Median of `repeats` after one untimed; None where torch or
    timm is missing."""
    code = r'''
import json, os, sys, time, statistics
import torch, timm
from safetensors.torch import load_file
from PIL import Image
import numpy as np
ckpt, folder, device, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
xs = []
for n in names:
    img = Image.open(f"{folder}/{n}").convert("RGB").resize((224, 224), Image.BILINEAR)
    x = (np.asarray(img, dtype=np.float32) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    xs.append(x.transpose(2, 0, 1))
x = torch.from_numpy(np.stack(xs).astype(np.float32)).to(device)
state = load_file(ckpt)
net = timm.create_model("res2net50d", num_classes=state["fc.weight"].shape[0]).eval().to(device)
def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()
def grad_cam():
    kept = {}
    hook = net.layer4.register_forward_hook(lambda m, i, o: kept.__setitem__("a", o))
    logits = net(x)
    hook.remove()
    a = kept["a"]
    score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
    g, = torch.autograd.grad(score, a)
    cam = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
    return cam.detach().cpu()
def copied_in():
    net.load_state_dict(load_file(ckpt))
    return grad_cam()
def timed(f):
    f(); sync()
    times = []
    for _ in range(repeats):
        sync(); start = time.perf_counter(); f(); sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
print(json.dumps({"copied_in_ms": timed(copied_in), "in_place_ms": timed(grad_cam)}))
'''
    result = {}
    for folder in [samples, samples_64(samples, raw)]:
        count = len([p for p in Path(folder).iterdir() if p.suffix == ".png"])
        done = subprocess.run([sys.executable, "-c", code, str(checkpoint), str(folder),
                               "cuda" if device != "cpu" else "cpu", str(repeats)],
                              capture_output=True, text=True)
        (raw / f"torch-resident-{count}.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            return {"skipped": (done.stderr.strip().splitlines() or ["failed"])[-1]}
        times = json.loads(done.stdout.strip().splitlines()[-1])
        result[str(count)] = {k: round(v, 1) for k, v in times.items()}
    return result


def samples_64(samples, raw):
    """The six images copied to 64 (names kept apart), labels and classes with them."""
    folder = raw / "samples_64"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    images = sorted(p for p in Path(samples).iterdir() if p.suffix == ".png")
    for i in range(64):
        src = images[i % len(images)]
        shutil.copy(src, folder / f"{i:02d}_{src.name}")
    classes = Path(samples) / "classes.txt"
    if classes.exists():
        shutil.copy(classes, folder / "classes.txt")
    return folder


def grad_cam_times(checkpoint, samples, gpu, raw):
    """pytorch-grad-cam's GradCAM on timm res2net50d with the same weights on the same
    device, warm: median of 3 after one untimed run; None when it cannot run here."""
    code = r'''
import json, sys, time, statistics
import torch, timm
from safetensors.torch import load_file
from pytorch_grad_cam import GradCAM
from PIL import Image
import numpy as np
ckpt, folder, device, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
names = sorted(n for n in __import__("os").listdir(folder) if n.endswith(".png"))
def once():
    torch.cuda.synchronize() if device.startswith("cuda") else None
    start = time.perf_counter()
    state = {k: v.float() for k, v in load_file(ckpt).items()}
    net = timm.create_model("res2net50d", num_classes=state["fc.weight"].shape[0])
    net.load_state_dict(state); net.eval().to(device)
    xs = []
    for n in names:
        img = Image.open(f"{folder}/{n}").convert("RGB").resize((224, 224), Image.BILINEAR)
        x = (np.asarray(img, dtype=np.float32) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
        xs.append(x.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(xs).astype(np.float32)).to(device)
    with GradCAM(model=net, target_layers=[net.layer4]) as cam:
        cam(input_tensor=x, targets=None)
    torch.cuda.synchronize() if device.startswith("cuda") else None
    return (time.perf_counter() - start) * 1e3
once()
print(json.dumps(statistics.median(once() for _ in range(3))))
'''
    result = {}
    for folder, count in [(samples, 6), (samples_64(samples, raw), 64)]:
        done = subprocess.run([sys.executable, "-c", code, str(checkpoint), str(folder),
                               "cuda" if gpu != "cpu" else "cpu", str(count)],
                              capture_output=True, text=True)
        (raw / f"grad-cam-{count}.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            return {"skipped": (done.stderr.strip().splitlines() or ["failed"])[-1]}
        result[str(count)] = round(json.loads(done.stdout.strip().splitlines()[-1]), 1)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camwatch", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cpu-only", action="store_true",
                        help="the CPU in place of CUDA: checks the check without a GPU")
    parser.add_argument("--only", choices=["latency"],
                        help="latency: only the user's wait and PyTorch's floor (steps 5, 6)")
    parser.add_argument("--renames", type=int, default=6, help="step 5: files renamed in one at a time")
    parser.add_argument("--burst", type=int, default=32, help="step 5: files renamed in at once")
    parser.add_argument("--precisions", default="fp32,bf16", help="step 5: precisions to time")
    parser.add_argument("--memory", default="release,keep", help="step 5: --gpu-memory modes to time")
    args = parser.parse_args()
    started = time.time()
    raw = args.out.resolve() / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    camwatch, checkpoint, samples = (p.resolve() for p in (args.camwatch, args.checkpoint,
                                                           args.samples))
    gpu = "cpu" if args.cpu_only else "cuda"
    summary = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
               "cpu_only": args.cpu_only}
    if not args.cpu_only:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True)
        summary["gpu"] = smi.stdout.strip() or smi.stderr.strip()
    else:
        summary["cpu"] = cpu_name()
    # Made from a seed by timm where the check runs: the same weights wherever torch's and
    # timm's initialisation draw the same numbers.
    summary["checkpoint"] = {"file": checkpoint.name, "bytes": checkpoint.stat().st_size,
                             "weights_sha256": weights_sha256(checkpoint)}
    info = run([camwatch, "info", "--json", "--device", gpu, checkpoint], raw / "info.log")
    summary["info"] = json.loads((raw / "info.log").read_text().strip().splitlines()[-1])
    if args.only != "latency":
        print("parity…", file=sys.stderr)
        summary["parity"] = parity(camwatch, checkpoint, samples, gpu, raw)
        print("time per checkpoint and memory…", file=sys.stderr)
        summary["watch"] = {}
        for folder in [samples, samples_64(samples, raw)]:
            for precision in ["fp32", "bf16"]:
                key = f"{len([p for p in Path(folder).iterdir() if p.suffix == '.png'])} samples {precision}"
                summary["watch"][key] = watch_times(camwatch, checkpoint, folder, gpu,
                                                    precision, raw, not args.cpu_only)
        # What --gpu-memory keep holds on the GPU between checkpoints, and what it saves.
        key = f"{len([p for p in Path(samples).iterdir() if p.suffix == '.png'])} samples fp32 keep"
        summary["watch"][key] = watch_times(camwatch, checkpoint, samples, gpu, "fp32", raw,
                                            not args.cpu_only, memory="keep")
        print("pytorch-grad-cam…", file=sys.stderr)
        summary["pytorch_grad_cam_ms"] = grad_cam_times(checkpoint, samples, gpu, raw)
    print("rename → line…", file=sys.stderr)
    summary["latency"] = {}
    for folder in [samples, samples_64(samples, raw)]:
        for precision in args.precisions.split(","):
            for memory in args.memory.split(","):
                result = latency(camwatch, checkpoint, folder, gpu, precision, raw,
                                 renames=args.renames, burst=args.burst, memory=memory)
                summary["latency"][f"{result['samples']} samples {precision} {memory}"] = result
    print("PyTorch's resident floor…", file=sys.stderr)
    summary["torch_resident_ms"] = torch_resident(checkpoint, samples, gpu, raw)
    summary["seconds"] = round(time.time() - started, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    (args.out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def markdown(s):
    lines = [f"# camwatch GPU check, {s['started']}", ""]
    lines.append(f"GPU: {s.get('gpu', 'none (--cpu-only): ' + s.get('cpu', ''))}; "
                 f"camwatch: {s['info'].get('device')}; "
                 f"network {s['info']['arch']['name']}; {s['seconds']} s in all.")
    if "checkpoint" in s:
        lines.append(f"Checkpoint {s['checkpoint']['file']} ({s['checkpoint']['bytes']} bytes), "
                     f"weights SHA-256 {s['checkpoint']['weights_sha256']}.")
    if "parity" in s:
        lines += ["", "| maps against CPU fp32 | lowest Pearson | largest relative difference | same class |",
                  "|---|---|---|---|"]
        for precision, p in s["parity"].items():
            lines.append(f"| {p['device']} {precision} | {p['lowest_pearson']:.5f} | "
                         f"{p['largest_relative_difference']:.2e} | {100 * p['same_class']:.0f} % |")
        lines += ["", "| watch | ms per checkpoint (4 files) | GPU MiB before / peak / after each |",
                  "|---|---|---|"]
        for key, w in s["watch"].items():
            m = w["memory_mib"]
            lines.append(f"| {key} | {' '.join(map(str, w['ms']))} | {m['before']} / {m['peak']} / "
                         f"{' '.join(map(str, m['after_each_checkpoint']))} |")
        lines += ["", f"pytorch-grad-cam (GradCAM, warm, ms): {json.dumps(s['pytorch_grad_cam_ms'])}"]
    lines += ["", "| rename → JSON line | median ms (each) | burst: ms per checkpoint |",
              "|---|---|---|"]
    for key, l in s["latency"].items():
        lines.append(f"| {key} | {l['median_ms']} ({' '.join(map(str, l['rename_to_line_ms']))}) "
                     f"| {l['burst_ms_per_checkpoint']} ({l['burst']} at once) |")
    lines += ["", f"PyTorch, network kept on the device (ms): {json.dumps(s['torch_resident_ms'])}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
