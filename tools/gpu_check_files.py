#!/usr/bin/env python3
"""The GPU check's files: its checkpoint, made from a seed, and whether a bundle fits.

  gpu_check_files.py checkpoint OUT [--seed N]
      Writes OUT: timm's res2net50d (Res2Net50_vd_26w_4s) with 4 classes, initialised
      from the seed, its BatchNorm statistics and affine parameters and the classifier's
      bias drawn at random as tools/make_fixtures.py's perturb_torch draws them (so that
      none is the identity), in fp16 safetensors (47.5 MB). Needs torch, timm and NumPy
      (timm brings safetensors), nothing of this project: `scripts/gpu-check` runs it
      with the project's .venv, a bundle's `run` with the GPU machine's Python, so that
      the check is not carried a checkpoint. Prints the weights' SHA-256 (the tensors'
      bytes, what gpu_check.py records as `weights_sha256`).

  gpu_check_files.py fits BUNDLE [--limit BYTES]
      Whether BUNDLE and the working tree that travels with it (tracked and
      untracked-not-ignored files, BUNDLE's own left out) are at most BYTES together
      (64 MiB, what can be carried to a GPU machine); one line either way, exit status 1
      when they are over. Python's standard library and git only.
"""

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

SEED = 20261128  # make_fixtures.py's: the same convolutions as its timm_r50
LIMIT = 64 * 1024 * 1024


def make_checkpoint(out, seed=SEED):
    try:
        import numpy as np
        import timm
        import torch
        from safetensors.torch import save_file
    except ImportError as e:
        sys.exit(f"gpu-check: the checkpoint is made with torch, timm, NumPy and safetensors "
                 f"({sys.executable}: {e})")

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = timm.create_model("res2net50d", pretrained=False, num_classes=4)
    # As tools/make_fixtures.py's perturb_torch (not imported: that module needs paddle).
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, n).astype(np.float32)))
                module.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, n).astype(np.float32)))
                module.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.1, n).astype(np.float32)))
                module.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, n).astype(np.float32)))
        model.fc.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, model.fc.bias.shape).astype(np.float32)))
    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    save_file(state, str(partial))
    os.replace(partial, out)
    print(f"{out}: res2net50d, seed {seed}, {out.stat().st_size} bytes, weights "
          f"sha256 {weights_sha256(out)} (torch {torch.__version__}, timm {timm.__version__})",
          file=sys.stderr)


def weights_sha256(path):
    """SHA-256 of a safetensors file's tensors (the bytes after its header)."""
    with open(path, "rb") as f:
        f.seek(8 + struct.unpack("<Q", f.read(8))[0])
        digest = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def size(path):
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:  # tracked, deleted here: does not travel
        return 0


def fits(bundle, limit=LIMIT):
    bundle = Path(bundle).resolve()
    if not bundle.is_dir():
        sys.exit(f"gpu-check: {bundle} is not a folder")
    carried = sum(size(p) for p in bundle.rglob("*") if not p.is_dir() or p.is_symlink())
    try:
        here = Path(__file__).resolve().parent
        root = Path(subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"],
                                   check=True, capture_output=True, text=True)
                    .stdout.strip()).resolve()
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], cwd=root, check=True,
                                capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        print("gpu-check: not in a git checkout, so the bundle is counted alone",
              file=sys.stderr)
        root, listed = None, b""
    tree, folders = 0, {}
    for name in filter(None, listed.split(b"\0")):
        path = root / os.fsdecode(name)
        if path == bundle or bundle in path.parents:  # the bundle inside the tree, not ignored
            continue
        n = size(path)
        tree += n
        top = os.fsdecode(name).split("/")[0]
        folders[top] = folders.get(top, 0) + n
    total = carried + tree
    cap = "the 64 MiB" if limit == LIMIT else f"the {limit:,} bytes"
    both = f"the bundle ({carried:,} bytes) and the working tree ({tree:,} bytes)"
    if total <= limit:
        print(f"gpu-check: {both} make {total:,} bytes, {limit - total:,} bytes under "
              f"{cap} that can be carried")
        return 0
    largest = ", ".join(f"{k} {v:,}" for k, v in
                        sorted(folders.items(), key=lambda kv: -kv[1])[:3])
    alone = (f"; the working tree alone is {tree - limit:,} bytes over (largest: {largest})"
             if tree > limit else "")
    print(f"gpu-check: {both} are {total - limit:,} bytes over {cap} that can "
          f"be carried{alone}", file=sys.stderr)
    return 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("checkpoint", help="write the check's checkpoint")
    make.add_argument("out", type=Path)
    make.add_argument("--seed", type=int, default=SEED)
    check = commands.add_parser("fits", help="whether a bundle can be carried")
    check.add_argument("bundle", type=Path)
    check.add_argument("--limit", type=int, default=LIMIT, help="bytes (64 MiB)")
    args = parser.parse_args()
    if args.command == "checkpoint":
        make_checkpoint(args.out, args.seed)
        return 0
    return fits(args.bundle, args.limit)


if __name__ == "__main__":
    sys.exit(main())
