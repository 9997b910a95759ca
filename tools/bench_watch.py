#!/usr/bin/env python3
"""How `camwatch watch --headless` behaves at scale and how fast it follows.

    bench_watch.py CAMWATCH WORK_DIR [--checkpoints 300] [--samples 64]

1. Scale: WORK_DIR/scale gets CHECKPOINTS checkpoints of the demo network (the shipped
   epoch_12 with seeded noise, so every file differs) and a set of SAMPLES images; camwatch
   follows them all while its resident memory is sampled. Prints memory after warm-up
   and at the end, the history's size on disk, and the time a restart takes to report
   the whole history.
2. Delay: three Res2Net50 files (the Paddle p4/p2 and timm fixtures) are written, one at
   a time, into an empty watched folder with 8 samples; prints the time from each file's
   last byte to its line on camwatch's stdout.
"""

import argparse
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import train_demo  # noqa: E402


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Watch:
    """camwatch watch --headless, its lines collected with their arrival times."""

    def __init__(self, camwatch, directory, samples, extra=()):
        self.proc = subprocess.Popen(
            [camwatch, "watch", directory, "--headless", "--samples", samples,
             "--device", "cpu", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), json.loads(line)))
                self.cond.notify_all()

    def wait_for(self, count, timeout=3600):
        with self.cond:
            self.cond.wait_for(lambda: len(self.lines) >= count, timeout)
            return len(self.lines) >= count

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


def make_scale_run(directory, count, samples_dir, sample_count):
    shutil.rmtree(directory, ignore_errors=True)
    checkpoints = os.path.join(directory, "checkpoints")
    os.makedirs(checkpoints)
    with open(os.path.join(ROOT, "checkpoints", "epoch_12.pdparams"), "rb") as f:
        state = pickle.load(f)
    rng = np.random.default_rng(0)
    for epoch in range(1, count + 1):
        noisy = {k: (v + rng.normal(0, 1e-3, v.shape).astype(v.dtype)
                     if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
                 for k, v in state.items()}
        with open(os.path.join(checkpoints, f"epoch_{epoch}.pdparams"), "wb") as f:
            pickle.dump(noisy, f, protocol=4)
    train_demo.write_samples(samples_dir, np.random.default_rng(99), sample_count)
    return checkpoints


def scale(camwatch, work, count, sample_count):
    samples = os.path.join(work, "scale-samples")
    checkpoints = make_scale_run(os.path.join(work, "scale"), count, samples, sample_count)
    size_mb = sum(os.path.getsize(os.path.join(checkpoints, n))
                  for n in os.listdir(checkpoints)) / 2**20
    print(f"scale: {count} checkpoints ({size_mb:.0f} MB) × {sample_count} samples, "
          "Grad-CAM at stage 4, libtorch CPU")
    start = time.monotonic()
    watch = Watch(camwatch, checkpoints, samples)
    memory = []
    while not watch.wait_for(count, timeout=0.5):
        memory.append((len(watch.lines), rss_mib(watch.proc.pid)))
    memory.append((len(watch.lines), rss_mib(watch.proc.pid)))
    elapsed = time.monotonic() - start
    watch.stop()
    warm = [m for n, m in memory if n >= 20]
    print(f"  all {count} computed in {elapsed:.0f} s ({elapsed / count * 1e3:.0f} ms each)")
    print(f"  resident memory: {warm[0]:.0f} MiB after 20 checkpoints, max {max(warm):.0f} "
          f"MiB, {warm[-1]:.0f} MiB after {count}")
    for n in (50, 100, 150, 200, 250, count):
        at = [m for k, m in memory if k >= n]
        if at:
            print(f"    after {n:>3}: {at[0]:.0f} MiB")
    history = os.path.join(checkpoints, ".camwatch")
    size = sum(os.path.getsize(os.path.join(history, n)) for n in os.listdir(history))
    print(f"  history on disk: {size / 2**20:.1f} MiB "
          f"({size / count / 1024:.0f} KiB per checkpoint)")

    start = time.monotonic()
    watch = Watch(camwatch, checkpoints, samples)
    watch.wait_for(count)
    restart = watch.lines[-1][0] - start
    sources = {line["source"] for _, line in watch.lines}
    watch.stop()
    print(f"  restart: the whole history reported in {restart:.2f} s (sources: {sources})")


def delay(camwatch, work, precision):
    fixtures = os.path.join(ROOT, "tests", "fixtures", "generated")
    directory = os.path.join(work, "delay")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    samples = os.path.join(work, "delay-samples")
    shutil.rmtree(samples, ignore_errors=True)
    os.makedirs(samples)
    names = sorted(n for n in os.listdir(os.path.join(ROOT, "samples")) if n.endswith(".png"))
    for name in names[:8]:
        shutil.copy(os.path.join(ROOT, "samples", name), samples)
    print("delay: Res2Net50 (26w_4s, 4 classes), 8 samples 224², Grad-CAM stage 4, "
          f"libtorch CPU, default --settle 0.5 s, --precision {precision}")
    watch = Watch(camwatch, directory, samples, ["--precision", precision])
    time.sleep(3)
    for i, name in enumerate(["paddle_r50.p4.pdparams", "paddle_r50.p2.pdparams",
                              "timm_r50.pth"]):
        with open(os.path.join(fixtures, name), "rb") as f:
            data = f.read()
        target = os.path.join(directory, name.replace("paddle_r50", f"epoch_{i + 1}"))
        with open(target, "wb") as f:
            f.write(data)
        last_byte = time.monotonic()
        watch.wait_for(i + 1)
        arrived, line = watch.lines[i]
        print(f"  {os.path.basename(target):<24} {len(data) / 2**20:5.0f} MB: "
              f"{(arrived - last_byte) * 1e3:6.0f} ms from last byte to maps "
              f"(worker {line['ms']:.0f} ms)")
    watch.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("camwatch")
    parser.add_argument("work")
    parser.add_argument("--checkpoints", type=int, default=300)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or auto")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    delay(args.camwatch, args.work, args.precision)
    if not args.skip_scale:
        scale(args.camwatch, args.work, args.checkpoints, args.samples)


if __name__ == "__main__":
    main()
