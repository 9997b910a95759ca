#!/usr/bin/env python3
"""PyTorch's own no_grad forward of timm's res2net50d on 6 images at 224×224, NCHW
against channels-last (input only, and input and weights), fp32 and bf16: the reason
camwatch runs channels-last (docs/performance.md, "Where the time goes"). Best of 5 after
one warm-up.

    .venv/bin/python tools/bench_torch_layout.py
"""

import time

import timm
import torch


def best_ms(model, x, n=5):
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 224, 224)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| dtype | NCHW ms | channels-last input ms | channels-last input and weights ms |")
    print("|---|---|---|---|")
    for dtype in (torch.float32, torch.bfloat16):
        model = timm.create_model("res2net50d", pretrained=False).eval().to(dtype)
        xx = x.to(dtype)
        nchw = best_ms(model, xx)
        last = xx.to(memory_format=torch.channels_last)
        input_only = best_ms(model, last)
        both = best_ms(model.to(memory_format=torch.channels_last), last)
        print(f"| {str(dtype).removeprefix('torch.')} | {nchw:.0f} | {input_only:.0f} | {both:.0f} |")


if __name__ == "__main__":
    main()
