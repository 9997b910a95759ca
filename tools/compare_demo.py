#!/usr/bin/env python3
"""The shipped pair compared the way a user compares two training runs: one
`camwatch watch --headless` follows both copies (each gets its own history), then
`camwatch report` writes the comparison — the figures of docs/comparing.md. With
--screenshot, also the comparing UI on both in kitty under Xvfb at epoch 12 (needs Xvfb,
kitty, xdotool, ImageMagick and the DejaVu fonts).

Usage: compare_demo.py CAMWATCH OUT_DIR [--screenshot PNG]
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

RUNS = [("plain", "checkpoints"), ("shortcut", "checkpoints-shortcut")]
# The sample of the screenshot (its index): the plain run right, the shortcut run wrong.
SAMPLE = int(os.environ.get("COMPARE_SAMPLE", "2"))


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
        if "--screenshot" in sys.argv:
            shot = os.path.abspath(sys.argv[sys.argv.index("--screenshot") + 1])
            screenshot(os.path.abspath(camwatch), dirs, tmp, shot)


def frames(log):
    try:
        with open(log) as f:
            return [json.loads(l) for l in f.read().split("\n")[:-1] if l.strip()]
    except FileNotFoundError:
        return []


def screenshot(camwatch, dirs, tmp, path, display=":78"):
    """The comparing UI in kitty at epoch 12 (both runs there), once its images are drawn."""
    log = os.path.join(tmp, "frames.jsonl")
    env = dict(os.environ, DISPLAY=display)
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1920x1200x24"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    shell = (f"CAMWATCH_FRAME_LOG={log} {camwatch} watch {dirs[0]} {dirs[1]} "
             f"--samples samples --device cpu")
    kitty = subprocess.Popen(
        ["kitty", "-o", "initial_window_width=150c", "-o", "initial_window_height=42c",
         "-o", "font_family=DejaVu Sans Mono", "-o", "font_size=10",
         "-o", "remember_window_size=no", "--class", "camwatch-compare", "sh", "-c", shell],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def settled(test, what):
            """Waits for a last frame that passes `test`, with nothing drawn for 1.5 s."""
            start = time.time()
            while time.time() - start < 120:
                time.sleep(0.5)
                last = frames(log)[-1:]
                if last and test(last[0]) and time.time() - os.path.getmtime(log) > 1.5:
                    return
            sys.exit(f"no frame with {what} in {log}")
        settled(lambda f: f.get("epoch") == "16", "epoch 16")
        window = subprocess.run(["xdotool", "search", "--class", "camwatch-compare"], env=env,
                                capture_output=True, text=True).stdout.split()[0]
        keys = ["Down"] * 4 + ["Right"] * SAMPLE
        for key in keys:
            subprocess.run(["xdotool", "key", "--window", window, key], env=env)
            time.sleep(0.3)
        settled(lambda f: f.get("epoch") == "12" and len(f.get("images", [])) == 4,
                "epoch 12's four images")
        subprocess.run(["import", "-window", window, path], env=env, check=True)
        subprocess.run(["xdotool", "key", "--window", window, "q"], env=env)
        time.sleep(1)
    finally:
        kitty.kill()
        xvfb.kill()


if __name__ == "__main__":
    main()
