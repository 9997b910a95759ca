#!/usr/bin/env python3
"""A second real trainer, in PyTorch with timm: the same small Res2Net-vd and shapes as
train_demo.py (timm's `res2net50d` definition), saved the way timm's train.py does
through `timm.utils.CheckpointSaver`: `tmp.pth.tar` written, renamed to `last.pth.tar`,
and hard-linked as `checkpoint-N.pth.tar`.

    train_timm.py CHECKPOINT_DIR [--epochs N] [--train-images N] [--delay SECONDS]
"""

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as rm  # noqa: E402
import train_demo as demo  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=256)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F
    from timm.utils import CheckpointSaver

    torch.manual_seed(7)
    torch.set_num_threads(1)
    rng = np.random.default_rng(7)
    data = [demo.draw_example(rng) for _ in range(args.train_images)]
    x_all = demo.to_input([d[0] for d in data])
    y_all = np.array([d[1] for d in data], dtype=np.int64)

    a = demo.ARCH
    model = rm.timm_model(a["depths"], a["width"], a["scales"], a["classes"], a["stem_width"],
                          a["base"])
    batch = 32
    steps = args.epochs * math.ceil(len(data) / batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    os.makedirs(args.checkpoints, exist_ok=True)
    saver = CheckpointSaver(model, optimizer, checkpoint_dir=args.checkpoints,
                            recovery_dir=args.checkpoints, max_history=args.epochs)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.permutation(len(data))
        correct = 0
        start = time.time()
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            logits = model(torch.from_numpy(x_all[idx]))
            target = torch.from_numpy(y_all[idx])
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            correct += int((logits.argmax(1) == target).sum())
        accuracy = correct / len(data)
        # Writes tmp.pth.tar, renames it to last.pth.tar, hard-links checkpoint-<epoch>.
        saver.save_checkpoint(epoch, metric=accuracy + epoch)
        print(f"epoch {epoch}: train accuracy {accuracy:.2f}, {time.time() - start:.1f} s",
              flush=True)
        if args.delay and epoch < args.epochs:
            time.sleep(args.delay)


if __name__ == "__main__":
    main()
