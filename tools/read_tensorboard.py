#!/usr/bin/env python3
"""Reads a TensorBoard log folder with TensorBoard's own reader and prints what it holds.

    .venv/bin/python tools/read_tensorboard.py LOGDIR

Prints one JSON object: {"scalars": {tag: [[step, value, wall_time], ...]},
"images": {tag: [[step, width, height, decoded_width, decoded_height], ...]},
"descriptions": {tag: text}}. The reader is TensorBoard's EventAccumulator (the one
`tensorboard --logdir` used before its Rust data server, and still its reference), and
every image is decoded with PIL, so a test can check camwatch's event files against
what TensorBoard sees.
"""

import io
import json
import sys

from PIL import Image
from tensorboard.backend.event_processing import event_accumulator


def main(logdir):
    acc = event_accumulator.EventAccumulator(
        logdir, size_guidance={"scalars": 0, "images": 0}
    )
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "images": {}, "descriptions": {}}
    for tag in tags["scalars"]:
        out["scalars"][tag] = [[e.step, e.value, e.wall_time] for e in acc.Scalars(tag)]
        description = acc.SummaryMetadata(tag).summary_description
        if description:
            out["descriptions"][tag] = description
    for tag in tags["images"]:
        rows = []
        for e in acc.Images(tag):
            decoded = Image.open(io.BytesIO(e.encoded_image_string))
            decoded.load()
            rows.append([e.step, e.width, e.height, decoded.width, decoded.height])
        out["images"][tag] = rows
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
