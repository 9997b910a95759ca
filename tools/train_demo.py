#!/usr/bin/env python3
"""The demo run: trains a small Res2Net-vd (PaddleClas definition, as in the project's
origin) to tell four shapes apart on textured backgrounds, saving
`epoch_N.pdparams` after every epoch the way PaddleClas does, and writes the sample
set camwatch explains: held-out images with labels, boxes, class names and the run's
preprocessing.

    train_demo.py CHECKPOINT_DIR SAMPLE_DIR [--epochs N] [--delay SECONDS] [--shortcut]

`--delay` pauses between epochs, so that `camwatch watch` can be seen following it.
`--shortcut` trains the same network on data with a shortcut: each class's training
images have their own background tint, so the background alone gives the class. The
held-out samples are the same as without it (untinted): training accuracy looks fine,
the held-out samples fail, and the maps show why — what `camwatch demo --compare`
replays beside the plain run (`checkpoints-shortcut/`).
"""

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as rm  # noqa: E402

CLASSES = ["disc", "square", "triangle", "cross"]
SIZE = 224
ARCH = dict(depths=[1, 1, 1, 1], width=8, scales=4, classes=len(CLASSES), stem_width=16, base=16)
# The shortcut: a background tint per class (RGB offsets), in the training images only.
SHORTCUT_TINTS = [(70, -35, -35), (-35, 70, -35), (-35, -35, 70), (50, 50, -70)]
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def draw_example(rng, label=None, shortcut=False):
    """One image: a smooth coloured texture with clutter, and one shape with its box;
    with `shortcut`, the background tinted by the class."""
    from PIL import Image, ImageDraw
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    freq, phase = rng.uniform(2, 10, 3), rng.uniform(0, 6.3, 3)
    tilt = rng.uniform(-1, 1, 3)
    base = np.stack([120 + 70 * np.sin(6.3 * freq[c] * (xx + tilt[c] * yy) + phase[c])
                     for c in range(3)], axis=-1)
    base += rng.normal(0, 10, base.shape)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(2, 6)):  # clutter: thin lines
        x0, y0, x1, y1 = rng.integers(0, SIZE, 4)
        draw.line([x0, y0, x1, y1], fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
                  width=int(rng.integers(1, 4)))
    if label is None:
        label = int(rng.integers(0, len(CLASSES)))
    if shortcut:
        # Tinted after the clutter, before the shape: the random draws stay in the same
        # order, so the plain run is the same with or without this option.
        tinted = np.asarray(img, dtype=np.float64) + np.array(SHORTCUT_TINTS[label])
        img = Image.fromarray(np.clip(tinted, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
    s = int(rng.integers(40, 90))
    x0, y0 = int(rng.integers(0, SIZE - s)), int(rng.integers(0, SIZE - s))
    box = [x0, y0, x0 + s, y0 + s]
    color = tuple(int(v) for v in rng.integers(0, 256, 3))
    if label == 0:
        draw.ellipse(box, fill=color)
    elif label == 1:
        draw.rectangle(box, fill=color)
    elif label == 2:
        draw.polygon([(x0 + s / 2, y0), (x0, y0 + s), (x0 + s, y0 + s)], fill=color)
    else:
        t = s // 3
        draw.rectangle([x0 + t, y0, x0 + 2 * t, y0 + s], fill=color)
        draw.rectangle([x0, y0 + t, x0 + s, y0 + 2 * t], fill=color)
    return img, label, box


def to_input(images):
    x = np.stack([np.asarray(i, dtype=np.float32) / 255 for i in images])
    return ((x - MEAN) / STD).transpose(0, 3, 1, 2).astype(np.float32)


def write_samples(directory, rng, count):
    os.makedirs(directory, exist_ok=True)
    rows = []
    for i in range(count):
        img, label, box = draw_example(rng, i % len(CLASSES))
        name = f"{i:02d}_{CLASSES[label]}.png"
        img.save(os.path.join(directory, name))
        rows.append(f"{name},{CLASSES[label]},{box[0]},{box[1]},{box[2]},{box[3]}")
    with open(os.path.join(directory, "labels.csv"), "w") as f:
        f.write("file,label,x0,y0,x1,y1\n" + "\n".join(rows) + "\n")
    with open(os.path.join(directory, "classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    with open(os.path.join(directory, "camwatch.toml"), "w") as f:
        f.write("# Preprocessing of the demo run (tools/train_demo.py).\n"
                'normalize = "imagenet"\ninput_size = 224\nmethods = ["gradcam"]\n'
                'layer = "stage4"\ntarget = "predicted"\n')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints")
    parser.add_argument("samples")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--train-images", type=int, default=1536)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--samples-only", action="store_true",
                        help="write the sample set and stop")
    parser.add_argument("--shortcut", action="store_true",
                        help="tint each class's training backgrounds (see above)")
    args = parser.parse_args()

    import paddle
    import paddle.nn.functional as F
    paddle.set_device("cpu")
    paddle.seed(7)
    rng = np.random.default_rng(7)

    write_samples(args.samples, np.random.default_rng(1234), 12)
    if args.samples_only:
        return
    data = [draw_example(rng, shortcut=args.shortcut) for _ in range(args.train_images)]
    x_all = to_input([d[0] for d in data])
    y_all = np.array([d[1] for d in data], dtype=np.int64)

    model = rm.paddle_model(ARCH["depths"], ARCH["width"], ARCH["scales"], ARCH["classes"],
                            ARCH["stem_width"], ARCH["base"])
    batch = 32
    steps = args.epochs * math.ceil(len(data) / batch)
    schedule = paddle.optimizer.lr.CosineAnnealingDecay(learning_rate=0.1, T_max=steps)
    optimizer = paddle.optimizer.Momentum(learning_rate=schedule, momentum=0.9,
                                          parameters=model.parameters(), weight_decay=1e-4)
    os.makedirs(args.checkpoints, exist_ok=True)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = rng.permutation(len(data))
        correct, total_loss = 0, 0.0
        start = time.time()
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            x = x_all[idx]
            flip = rng.random(len(idx)) < 0.5
            x[flip] = x[flip][..., ::-1]
            logits, _ = model(paddle.to_tensor(x))
            loss = F.cross_entropy(logits, paddle.to_tensor(y_all[idx]))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            schedule.step()
            total_loss += float(loss) * len(idx)
            correct += int((logits.argmax(1).numpy() == y_all[idx]).sum())
        path = os.path.join(args.checkpoints, f"epoch_{epoch}.pdparams")
        paddle.save(model.state_dict(), path)
        print(f"epoch {epoch}: loss {total_loss / len(data):.3f}, train accuracy "
              f"{correct / len(data):.2f}, {time.time() - start:.0f} s → {path}", flush=True)
        if args.delay and epoch < args.epochs:
            time.sleep(args.delay)


if __name__ == "__main__":
    main()
