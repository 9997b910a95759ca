#!/usr/bin/env python3
"""camwatch in real terminals over a real SSH session: the bytes it writes per key
press, and screenshots of what the terminals show.

The UI runs over `ssh -t -p PORT localhost` inside real terminals under Xvfb (xterm
-ti vt340 for sixel, kitty for kitty, plain xterm for halfblocks; iTerm2's bytes are
measured in xterm with --protocol iterm2, which xterm ignores but camwatch still
sends). Keys go in with xdotool; the bytes of each frame come from camwatch's frame
log (CAMWATCH_FRAME_LOG), written on the far side of the SSH link: what crosses it,
before SSH's own framing.

Needs Xvfb, xterm, kitty, xdotool, ImageMagick, the DejaVu fonts and an sshd on
localhost:PORT that takes your key.

    tools/real_terminals.py [--port 2222] [--size 160x48] [--screenshots docs]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "camwatch"
KEYS = [
    ("start", None),
    ("→ new sample", "Right"),
    ("→ new sample", "Right"),
    ("← drawn sample", "Left"),
    ("↓ previous epoch", "Down"),
    ("↓ previous epoch", "Down"),
    ("? help open", "question"),
    ("? help closed", "question"),
    ("g grid open", "g"),
    ("g grid closed", "g"),
]


def frames(log):
    """The log's whole lines (the last may be half written)."""
    try:
        text = log.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(l) for l in text.split("\n")[:-1] if l.strip()]


def settle(log, since, quiet=1.5, timeout=120):
    """Frames after index `since`, once none has come for `quiet` seconds."""
    start = time.time()
    count, changed = len(frames(log)), time.time()
    while time.time() - start < timeout:
        time.sleep(0.2)
        now = frames(log)
        if len(now) != count:
            count, changed = len(now), time.time()
        elif now and time.time() - changed > quiet and len(now) > since and not now[-1]["working"]:
            return now[since:]
    sys.exit(f"no settled frame in {log}")


FONT = "DejaVu Sans Mono"


def screenshot(window, env, path):
    subprocess.run(["import", "-window", window, str(path)], env=env, check=True)


def run(protocol, terminal, display, port, size, history_run, work, shots):
    log = work / f"{protocol}.jsonl"
    columns, rows = size
    remote = (
        f"cd {ROOT} && CAMWATCH_FRAME_LOG={log} {BINARY} {history_run} "
        f"--samples {ROOT / 'samples'} --device cpu"
        + ("" if protocol in ("sixel", "kitty") else f" --protocol {protocol}")
    )
    ssh = ["ssh", "-t", "-p", str(port), "-o", "StrictHostKeyChecking=no", "localhost", remote]
    if terminal == "kitty":
        command = ["kitty", "-o", f"initial_window_width={columns}c",
                   "-o", f"initial_window_height={rows}c", "-o", f"font_family={FONT}",
                   "-o", "font_size=10", "-o", "remember_window_size=no",
                   "--class", "camwatch-wire", *ssh]
    else:
        command = ["xterm", *(["-ti", "vt340"] if protocol == "sixel" else []),
                   "-geometry", f"{columns}x{rows}", "-fa", FONT, "-fs", "10",
                   "-name", "camwatch-wire", "-e", *ssh]
    env = dict(os.environ, DISPLAY=display)
    term = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        window = subprocess.run(["xdotool", "search", "--class" if terminal == "kitty" else "--classname",
                                 "camwatch-wire"], env=env, capture_output=True, text=True).stdout.split()
        subprocess.run(["xdotool", "mousemove", "--window", window[0], "20", "20"], env=env)
        results = []
        for name, key in KEYS:
            since = len(frames(log)) if key else 0
            if key:
                subprocess.run(["xdotool", "key", key], env=env)
            drawn = settle(log, since)
            results.append((name, sum(f["bytes"] for f in drawn), drawn[-1]))
            # xterm does not draw iTerm2 images; one grid (sixel's) is enough.
            wanted = ["start"] + (["g grid open"] if protocol == "sixel" else [])
            if shots and protocol != "iterm2" and name in wanted:
                suffix = "-grid" if key else ""
                screenshot(window[0], env, shots / f"tui-{protocol}-{terminal}{suffix}.png")
        subprocess.run(["xdotool", "key", "q"], env=env)
        time.sleep(1)
        return results
    finally:
        term.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument("--size", default="160x48")
    parser.add_argument("--screenshots", type=Path, help="write PNGs of each terminal here")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.screenshots:
        args.screenshots = args.screenshots.resolve()
        args.screenshots.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="camwatch-wire-"))
    # The demo run with its history computed first, so that every key meets maps.
    history_run = work / "run"
    shutil.copytree(ROOT / "checkpoints", history_run,
                    ignore=shutil.ignore_patterns(".camwatch"))
    watch = subprocess.Popen([BINARY, "watch", history_run, "--samples", ROOT / "samples",
                              "--headless", "--device", "cpu"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for _ in range(len(list(history_run.glob("*.pdparams")))):
        watch.stdout.readline()
    watch.terminate()
    watch.wait()

    display = ":77"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1920x1200x24"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        table = {}
        for protocol, terminal in [("sixel", "xterm"), ("kitty", "kitty"),
                                   ("iterm2", "xterm"), ("halfblocks", "xterm")]:
            results = run(protocol, terminal, display, args.port, size, history_run, work,
                          args.screenshots)
            chosen = results[0][2]["protocol"]
            if chosen != protocol:
                sys.exit(f"{terminal}: camwatch chose {chosen}, not {protocol}")
            table[protocol] = results
            cell = results[0][2]["cell"]
            print(f"{protocol} in {terminal}, cells of {cell[0]}×{cell[1]} pixels: "
                  + ", ".join(f"{n} {b}" for n, b, _ in results), file=sys.stderr)
    finally:
        xvfb.kill()
    names = [n for n, _ in KEYS]
    print(f"| key ({size[0]}×{size[1]}, over ssh) | " + " | ".join(table) + " |")
    print("|---|" + "---:|" * len(table))
    for i, name in enumerate(names):
        cells = []
        for protocol in table:
            b = table[protocol][i][1]
            cells.append(f"{b / 1000:,.1f} kB" if b >= 1000 else f"{b} B")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
