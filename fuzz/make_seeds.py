#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus: tiny but real `paddle.save` files in every layout the
reader knows (protocols 2 to 4, split arrays, Tensor values), plus NumPy's protocol-5,
Fortran-order and big-endian arrays. Usage: make_seeds.py OUT_DIR, then
make_numpy1_seeds.py OUT_DIR under NumPy 1 (it adds to expected.json)."""

import builtins
import os
import pickle
import sys

import numpy as np
import paddle
from paddle.framework import io_utils

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
state = {
    "conv1_1._conv.weight": paddle.to_tensor(rng.normal(size=(2, 3, 1, 1)).astype("float32")),
    "conv1_1._batch_norm._mean": paddle.to_tensor(rng.normal(size=(2,)).astype("float32")),
    "out.weight": paddle.to_tensor(rng.normal(size=(4, 3)).astype("float16")),
    "bb_0_0.conv0._conv.weight": paddle.to_tensor(rng.normal(size=(3, 2, 1, 1))),
}
for protocol in (2, 3, 4):
    paddle.save(state, os.path.join(out, f"state.p{protocol}.pdparams"), protocol=protocol)
io_utils.int = lambda v: 5 if v > 2**27 else builtins.int(v)
paddle.save(state, os.path.join(out, "split.p2.pdparams"), protocol=2)
del io_utils.int
# Not recognised as a state dict: Tensors are pickled as `(name, ndarray)` tuples.
paddle.save({"epoch": 3, "model": state}, os.path.join(out, "nested.pdparams"))
arrays = {
    "f": np.asfortranarray(rng.normal(size=(2, 3)).astype("float32")),
    "b": rng.normal(size=(3,)).astype(">f4"),
    "i": np.arange(3, dtype=np.int64),
}
with open(os.path.join(out, "numpy.p5.pdparams"), "wb") as f:
    pickle.dump(arrays, f, protocol=5)
with open(os.path.join(out, "numpy.p2.pdparams"), "wb") as f:
    pickle.dump(arrays, f, protocol=2)

# What the reader must make of them, row-major float32, for tests/pdparams_layouts.rs.
import json  # noqa: E402

expected = {k: {"shape": list(v.shape), "values": v.numpy().astype("float32").ravel().tolist()}
            for k, v in state.items()}
expected.update({k: {"shape": list(v.shape), "values": v.astype("float32").ravel().tolist()}
                 for k, v in arrays.items() if v.dtype.kind == "f"})
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f)
