#!/usr/bin/env python3
"""Load time of a Res2Net50 checkpoint: camwatch against the framework that wrote it.

For each file: the median over N runs of (a) `torch.load` + `load_state_dict` into
timm's res2net50d, or `paddle.load` + `set_state_dict` into the PaddleClas network, in
this process with the file in the page cache, and (b) camwatch's load (open file →
network on the libtorch CPU device), also in a warm process: `examples/bench_load.rs`.

Usage: bench_load.py BENCH_LOAD_BINARY FIXTURE_DIR [N]
       (scripts/bench-load builds the binary and runs this)
"""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as rm  # noqa: E402


def median_ms(f, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def camwatch_ms(bench_load, path, n):
    out = subprocess.run([bench_load, path, str(n)], check=True, capture_output=True,
                         text=True).stdout
    return float(out)


def main():
    camwatch, fixtures = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    import paddle
    import timm
    import torch
    torch.set_num_threads(os.cpu_count())
    paddle.set_device("cpu")

    model = timm.create_model("res2net50d", num_classes=4).eval()
    pmodel = rm.paddle_model(rm.PADDLE_DEPTHS[50], classes=4, layers=50)
    cases = [
        ("timm_r50.pth", "torch.load + load_state_dict",
         lambda p: model.load_state_dict(torch.load(p, map_location="cpu"))),
        ("timm_r50.safetensors", "safetensors.torch.load_file + load_state_dict",
         lambda p: model.load_state_dict(__import__("safetensors.torch").torch.load_file(p))),
        ("paddle_r50.p4.pdparams", "paddle.load + set_state_dict",
         lambda p: pmodel.set_state_dict(paddle.load(p))),
        ("paddle_r50.p2.pdparams", "paddle.load + set_state_dict",
         lambda p: pmodel.set_state_dict(paddle.load(p))),
    ]
    print(f"| file | size | framework | framework ms | camwatch ms |")
    print(f"|---|---|---|---|---|")
    for file, what, load in cases:
        path = os.path.join(fixtures, file)
        load(path)  # warm the page cache and the framework
        framework = median_ms(lambda: load(path), n)
        ours = camwatch_ms(camwatch, path, n)
        size = os.path.getsize(path) / 1e6
        print(f"| {file} | {size:.0f} MB | {what} | {framework:.0f} | {ours:.0f} |", flush=True)


if __name__ == "__main__":
    main()
