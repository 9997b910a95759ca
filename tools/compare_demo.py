#!/usr/bin/env python3
"""The shipped pair compared the way a user compares two training runs: one
`camwatch watch --headless` follows both copies (each gets its own history), then
`camwatch report` writes the comparison — the figures in the README's "Comparing
runs" (docs/compare/).

Usage: compare_demo.py CAMWATCH OUT_DIR
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

RUNS = [("plain", "checkpoints"), ("shortcut", "checkpoints-shortcut")]


def main():
    camwatch, out = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        dirs, expected = [], 0
        for name, source in RUNS:
            target = os.path.join(tmp, name)
            shutil.copytree(source, target)
            dirs.append(target)
            expected += sum(1 for f in os.listdir(source) if f.endswith(".pdparams"))
        watch = subprocess.Popen(
            [camwatch, "watch", *dirs, "--headless", "--device", "cpu", "--metrics", "none"],
            stdout=subprocess.PIPE, text=True)
        seen = 0
        for line in watch.stdout:
            if json.loads(line)["event"] == "checkpoint":
                seen += 1
            if seen == expected:
                break
        watch.send_signal(signal.SIGINT)
        watch.wait()
        subprocess.run([camwatch, "report", *dirs, "--out", out], check=True)
        print(open(os.path.join(out, "report.md")).read())


if __name__ == "__main__":
    main()
