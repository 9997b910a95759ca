#!/usr/bin/env python3
"""Writes a corpus of hostile files for camwatch's readers and watcher into a folder.

    .venv/bin/python tools/make_hostile.py OUT [--good CHECKPOINT]

Every file is something a shared machine's watched folder may hold: made by an attacker
(deep nesting, memory amplification, super-linear parsing, views past their data),
by accident (a cut file, NaN weights, a FIFO, a link to /dev/zero), or by a foreign
program. Each is listed in OUT/hostile.json with what it attacks; camwatch must answer
every one with a one-line error (or, for the few marked "ok", read it), in bounded
time and memory, and never crash. `tests/hostile.rs` runs them through `info`,
`render` and `watch`.

Needs NumPy and torch (scripts/setup --reference puts both in .venv); the good
checkpoint to mutate defaults to the shipped demo's first epoch.
"""

import argparse
import io
import json
import os
import pickle
import struct
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy 1
    from numpy.core.multiarray import _reconstruct

ROOT = Path(__file__).resolve().parent.parent
P2 = b"\x80\x02"
P4 = b"\x80\x04"
STOP = b"."


def short_unicode(s: bytes) -> bytes:
    return b"\x8c" + bytes([len(s)]) + s


def global_(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


class Corpus:
    def __init__(self, out: Path):
        self.out = out
        self.entries = []

    def add(self, name, data: bytes, attack: str, expect: str = "error"):
        (self.out / name).write_bytes(data)
        self.note(name, attack, expect)

    def note(self, name, attack, expect="error", special=None):
        raw = os.fsencode(name)
        # `file` is for people (U+FFFD where the name is not UTF-8), `hex` is the name.
        entry = {"file": raw.decode("utf-8", "replace"), "hex": raw.hex(),
                 "attack": attack, "expect": expect}
        if special:
            entry["special"] = special
        self.entries.append(entry)


# --- The pickle machine: recursion, memory and time ---------------------------------


def pickles(c: Corpus):
    n = 100_000
    # TUPLE1 around TUPLE1 around …: 100 000 levels in 100 KB.
    c.add("deep-tuple1.pdparams", P2 + b")" + b"\x85" * n + STOP, "nesting: TUPLE1 chain")
    # MARK … TUPLE, nested.
    c.add("deep-mark-tuple.pdparams", P2 + b"(" * n + b")" + b"t" * n + STOP,
          "nesting: MARK/TUPLE chain")
    # Persistent ids of persistent ids.
    c.add("deep-persid.pth.pdparams", P2 + b"N" + b"Q" * n + STOP, "nesting: BINPERSID chain")
    # Objects built by calling objects built by calling …: deep and, naively, quadratic.
    c.add("object-chain.pdparams",
          P2 + global_("collections", "OrderedDict") + b")R" * n + STOP,
          "time and nesting: objects built from objects")
    # Lists in lists, dicts in dicts: containers, emptied without recursion.
    c.add("deep-lists.pdparams", P2 + b"]" * n + b"a" * (n - 1) + STOP, "nesting: lists")
    c.add("deep-dicts.pdparams", P2 + b"}" + (short_unicode(b"k") + b"}") * n
          + b"s" * n + STOP, "nesting: dicts")
    # 5 M memo entries from 16 MB (each value memoised, then popped).
    c.add("memo-flood.pdparams", P4 + b"N\x940" * (5 << 20) + b"N" + STOP,
          "memory: a memo of millions of entries")
    # A million live tuples (each appended to one list).
    c.add("tuple-flood.pdparams", P2 + b"]" + b"N\x85a" * (4 << 20) + STOP,
          "time: millions of tuples")
    # 4 M values on the stack.
    c.add("stack-flood.pdparams", P4 + b"N" * (4 << 20) + STOP, "memory: millions of values on the stack")
    # One 1 MB protocol-2 latin1 text decoded 1000 times.
    text = bytes(range(0x20, 0x7f)) * ((1 << 20) // 95)
    body = global_("_codecs", "encode") + b"q\x00" + b"X" + struct.pack("<I", len(text)) + text \
        + b"q\x01" + short_unicode(b"latin1") + b"q\x02" + b"]q\x03"
    body += (b"h\x03h\x00h\x01h\x02\x86Ra") * 1000
    c.add("latin1-amplify.pdparams", P2 + body + STOP, "memory: one text decoded 1000 times")
    # tuple(list of 200 000 elements), 200 times.
    body = global_("__builtin__", "tuple") + b"q\x00" + b"](" + b"N" * 200_000 + b"eq\x01]q\x02"
    body += b"h\x02h\x00h\x01\x85Ra" * 200
    c.add("tuple-repeat.pdparams", P2 + body + STOP, "memory: tuple() of a big list, repeated")
    # Integers and lengths that claim more than the file holds.
    c.add("long4-huge.pdparams", P2 + b"\x8b" + struct.pack("<I", 0x7fffffff) + STOP,
          "length: LONG4 of 2 GB")
    c.add("binunicode8-huge.pdparams", P4 + b"\x8d" + struct.pack("<Q", 1 << 62) + STOP,
          "length: BINUNICODE8 of 4 EB")
    c.add("memo-missing.pdparams", P2 + b"h\x07" + STOP, "memo key never stored")
    c.add("stack-underflow.pdparams", P2 + b"t" + STOP, "stack underflow")
    c.add("latin1-wide.pdparams",
          P2 + global_("_codecs", "encode") + b"X\x02\x00\x00\x00\xc4\x80" + short_unicode(b"latin1")
          + b"\x86R" + STOP, "latin1 text with a character above U+00FF")
    c.add("no-stop.pdparams", P2 + b"}" * 1000, "a pickle that never stops (cut short)")
    c.add("self-reference.pdparams", P2 + b"]q\x00h\x00a" + STOP, "a list inside itself")


# --- Arrays and tensors: views past their data ---------------------------------------


class FakeArray:
    """Pickles as a NumPy array of any claimed shape over any data."""

    def __init__(self, shape, data: bytes):
        self.shape, self.data = tuple(shape), data

    def __reduce__(self):
        return (_reconstruct, (np.ndarray, (0,), b"b"),
                (1, self.shape, np.dtype("<f4"), False, self.data))


class Wrapped:
    """Pickles as `torch._utils._rebuild_parameter(inner, True, OrderedDict())`."""

    def __init__(self, inner):
        self.inner = inner

    def __reduce__(self):
        return (torch._utils._rebuild_parameter, (self.inner, True, OrderedDict()))


def arrays(c: Corpus):
    c.add("shape-huge.pdparams", pickle.dumps({"w": FakeArray([1 << 31, 1 << 31], b"\0" * 16)}, 2),
          "an array whose shape needs 16 EB from 16 bytes")
    c.add("shape-overflow.pdparams",
          pickle.dumps({"w": FakeArray([1 << 40, 1 << 40, 1 << 40], b"\0" * 4)}, 2),
          "an array whose element count overflows")
    c.add("rank-100.pdparams", pickle.dumps({"w": FakeArray([1] * 100, b"\0" * 4)}, 2),
          "an array of 100 dimensions")
    # One 4 MB array under 20 000 names: 80 GB if each were decoded.
    one = np.zeros(1 << 20, dtype=np.float32)
    c.add("one-array-many-names.pdparams", pickle.dumps({f"w{i}": one for i in range(20_000)}, 2),
          "memory: one array under 20 000 names")

    # torch: a stride-0 view, 2^32 elements of one stored float (16 GB as f32).
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(1).expand(1 << 32)}, buffer)
    c.add("stride0.pth", buffer.getvalue(), "a stride-0 view of 4 G elements over 4 bytes")
    # torch: an empty view whose offset lies past an empty storage.
    buffer = io.BytesIO()
    torch.save({"w": torch.empty(0).set_(torch.zeros(0).untyped_storage(), 10_000, (0,), (1,))},
               buffer)
    c.add("offset-past-empty.pth", buffer.getvalue(),
          "an empty view whose offset lies past an empty storage", expect="error")
    # torch: 5000 views of one storage.
    base = torch.zeros(1 << 18)
    buffer = io.BytesIO()
    torch.save({f"w{i}": base[1:] for i in range(5000)}, buffer)
    c.add("shared-storage.pth", buffer.getvalue(), "5000 views of one 1 MB storage")
    # torch: a tensor wrapped in _rebuild_parameter 500 times.
    value = torch.zeros(4)
    for _ in range(500):
        value = Wrapped(value)
    buffer = io.BytesIO()
    sys.setrecursionlimit(20_000)
    torch.save({"w": value}, buffer)
    c.add("wrapped-parameter.pth", buffer.getvalue(), "a tensor wrapped 500 times")

    # safetensors: 20 000 names over one 1 MB range, a header claiming 2^60 bytes,
    # JSON nested 100 000 deep, a 20 MB header.
    def safetensors(header: dict, data: bytes) -> bytes:
        text = json.dumps(header).encode()
        return struct.pack("<Q", len(text)) + text + data

    shared = {f"w{i}": {"dtype": "F32", "shape": [1 << 18], "data_offsets": [0, 1 << 20]}
              for i in range(20_000)}
    c.add("overlapping.safetensors", safetensors(shared, b"\0" * (1 << 20)),
          "20 000 tensors over the same 1 MB")
    c.add("header-huge.safetensors", struct.pack("<Q", 1 << 60) + b"{}", "a 1 EB header length")
    nested = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    c.add("deep-json.safetensors", struct.pack("<Q", len(nested)) + nested, "JSON nested 100 000 deep")
    big = b'{"a":[' + b"0," * (10 << 20) + b'0]}'
    c.add("header-20mb.safetensors", struct.pack("<Q", len(big)) + big, "a 20 MB header")
    # ZIP: an end record whose directory lies elsewhere.
    c.add("zip-lies.pth", b"PK\x03\x04" + b"\0" * 100
          + b"PK\x05\x06" + b"\0" * 4 + struct.pack("<HHII", 65535, 65535, 1 << 30, 1 << 31) + b"\0\0",
          "a ZIP directory that points outside the file")


# --- Well-formed files with bad contents ----------------------------------------------


def mutants(c: Corpus, good: Path):
    with open(good, "rb") as f:
        state = pickle.load(f)
    def save(name, mutated, attack):
        c.add(name, pickle.dumps(mutated, protocol=4), attack)
    bad = dict(state)
    bad["conv1_1._conv.weight"] = np.zeros((0, 3, 3, 3), dtype=np.float32)
    save("zero-channels.pdparams", bad, "a stem with zero channels")
    bad = dict(state)
    key = next(k for k in bad if k.endswith("._conv.weight") and "bb_3" in k)
    bad[key] = bad[key].copy()
    bad[key].flat[0] = np.nan
    save("nan-weights.pdparams", bad, "NaN weights (a diverged run)")
    bad = dict(state)
    bad["conv1_1._conv.weight"] = np.zeros((4096, 3, 3, 3), dtype=np.float32)
    save("stem-4096.pdparams", bad, "names and shapes claiming a network far larger than the file")
    bad = {k: v for k, v in state.items() if "bb_2" not in k}
    save("missing-stage.pdparams", bad, "a stage missing")
    data = good.read_bytes()
    c.add("cut-in-half.pdparams", data[: len(data) // 2], "a checkpoint cut in half")
    c.add("flipped-byte.pdparams", data[:100] + bytes([data[100] ^ 0xFF]) + data[101:],
          "one flipped byte (in a name or in the data: an error or a different network)",
          expect="any")
    c.add("good.pdparams", data, "a good checkpoint among the hostile ones", expect="ok")


def layouts(c: Corpus):
    """Names of the three schemes camwatch reads (PaddleClas model zoo, PaddleClas
    ResNet, timm) arranged to mislead its architecture inference."""
    tiny = np.zeros((4, 4, 1, 1), dtype=np.float32)
    save = lambda name, state, attack: c.add(name, pickle.dumps(state, protocol=4), attack)
    # PaddleClas ResNet numbers its blocks in one sequence and starts a stage where a
    # block projects: 100 000 projecting blocks, 100 000 stages.
    state = {"stem.0.conv.weight": tiny, "fc.weight": tiny}
    for k in range(100_000):
        state[f"blocks.{k}.conv0.conv.weight"] = tiny
        state[f"blocks.{k}.short.conv.weight"] = tiny
    save("paddle-resnet-100000-stages.pdparams", state,
         "PaddleClas ResNet names claiming 100 000 stages (one array under every name)")
    # timm names whose grouped convolution does not divide the block's width.
    state = {"conv1.weight": np.zeros((8, 3, 7, 7), np.float32),
             "layer1.0.conv1.weight": np.zeros((12, 8, 1, 1), np.float32),
             "layer1.0.conv2.weight": np.zeros((12, 5, 3, 3), np.float32),
             "layer1.0.conv3.weight": np.zeros((32, 12, 1, 1), np.float32),
             "fc.weight": np.zeros((3, 256), np.float32)}
    for stage in (2, 3, 4):
        state[f"layer{stage}.0.conv1.weight"] = tiny
    save("timm-groups-do-not-divide.pth", state,
         "a ResNeXt whose 3×3 convolution's groups do not divide its width")
    # PaddleClas model zoo names whose squeeze-excitation widens to 4 000 channels.
    state = {"conv1_1._conv.weight": np.zeros((8, 3, 3, 3), np.float32),
             "bb_0_0.conv0._conv.weight": np.zeros((4, 16, 1, 1), np.float32),
             "bb_0_0.conv1._conv.weight": np.zeros((4, 4, 3, 3), np.float32),
             "bb_0_0.conv2._conv.weight": np.zeros((16, 4, 1, 1), np.float32),
             "bb_3_0.scale.squeeze.weight": np.zeros((128, 4_000), np.float32),
             "out.weight": np.zeros((128, 3), np.float32)}
    for stage in (1, 2, 3):
        state[f"bb_{stage}_0.conv0._conv.weight"] = tiny
    save("paddle-se-wider-than-its-block.pdparams", state,
         "a squeeze-excitation that widens instead of reducing")


# --- Things that are not regular files, and odd names --------------------------------


def oddities(c: Corpus, good: Path):
    os.mkfifo(c.out / "fifo.pdparams")
    c.note("fifo.pdparams", "a FIFO: opening it would wait for a writer", special="fifo")
    os.symlink("/dev/zero", c.out / "zero.pth")
    c.note("zero.pth", "a link to /dev/zero: never ends", special="device")
    with open(c.out / "sparse.safetensors", "wb") as f:
        f.truncate(3 << 30)
    c.note("sparse.safetensors", "a 3 GB sparse file with nothing on disk", special="sparse")
    (c.out / "folder.pdparams").mkdir()
    c.note("folder.pdparams", "a folder named like a checkpoint", special="folder")
    c.add("empty.pdparams", b"", "an empty file")
    c.add("text.pth", b"this is not a checkpoint\n" * 10, "a text file")
    c.add("random.safetensors", os.urandom(4096), "random bytes")
    c.add("legacy.pth", b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19" + b"\0" * 64,
          "the pre-1.6 torch.save format")
    escape = b"\x1b]0;owned\x07\x1b[2J.pdparams"
    with open(os.path.join(os.fsencode(c.out), escape), "wb") as f:
        f.write(b"\x80\x02}" + b"garbage")
    c.note(os.fsdecode(escape), "a name with terminal escape sequences", special="escape")
    odd = b"epoch_90-\xff\xfe.pdparams"
    with open(os.path.join(os.fsencode(c.out), odd), "wb") as f:
        f.write(good.read_bytes())
    c.note(os.fsdecode(odd), "a good checkpoint whose name is not UTF-8", expect="ok",
           special="bytes")
    folder = os.path.join(os.fsencode(c.out), b"run-\xfe")
    os.mkdir(folder)
    with open(os.path.join(folder, b"epoch_91.pdparams"), "wb") as f:
        f.write(good.read_bytes())
    c.note(os.fsdecode(b"run-\xfe/epoch_91.pdparams"),
           "a good checkpoint in a folder whose name is not UTF-8", expect="ok", special="bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--good", type=Path, default=ROOT / "checkpoints" / "epoch_1.pdparams")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    c = Corpus(args.out)
    pickles(c)
    arrays(c)
    mutants(c, args.good)
    layouts(c)
    oddities(c, args.good)
    (args.out / "hostile.json").write_text(json.dumps(c.entries, indent=1, ensure_ascii=True))
    print(f"{len(c.entries)} hostile files in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
