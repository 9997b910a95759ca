#!/usr/bin/env python3
"""Writes `.pdparams` seeds as NumPy 1 pickles them (`numpy.core.multiarray`), the way
paddle.save writes a state dict (a pickle of name → ndarray plus the name table), under
protocols 2 and 4, and adds their values to expected.json. Run with a NumPy 1
interpreter (Paddle 2.x era): python -m venv np1 && np1/bin/pip install "numpy<2" &&
np1/bin/python make_numpy1_seeds.py OUT_DIR"""

import json
import os
import pickle
import sys

import numpy as np

assert np.__version__.startswith("1."), "needs NumPy 1"
out = sys.argv[1]
state = {
    "np1.conv.weight": (np.arange(24, dtype=np.float32) / 7).reshape(4, 3, 2, 1),
    "np1.bn.mean": np.linspace(-1, 1, 4, dtype=np.float32),
    "np1.half": np.arange(6, dtype=np.float16).reshape(2, 3) / 4,
    "np1.double": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(3, 2) / 3),
}
saved = dict(state)
saved["StructuredToParameterName@@"] = {k: f"generated_tensor_{i}" for i, k in enumerate(state)}
for protocol in (2, 4):
    with open(os.path.join(out, f"np1_state.p{protocol}.pdparams"), "wb") as f:
        pickle.dump(saved, f, protocol=protocol)
path = os.path.join(out, "expected.json")
with open(path) as f:
    expected = json.load(f)
expected.update({k: {"shape": list(v.shape), "values": v.astype("float32").ravel().tolist()}
                 for k, v in state.items()})
with open(path, "w") as f:
    json.dump(expected, f)
