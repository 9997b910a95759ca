#!/usr/bin/env python3
"""A screenshot of the real terminal UI: runs camwatch in tmux on the shipped demo run
(halfblocks), presses keys, captures the pane with its colours and paints it to PNG
(DejaVu Sans Mono, one cell 9×18 pixels).

    screenshot.py CAMWATCH OUT.png [--size 120x36] [--keys "l l j"] [-- extra camwatch args]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TMUX = ["tmux", "-L", "camwatch-screenshot"]
CELL = (9, 18)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
PALETTE = [(0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16), (36, 114, 200),
           (188, 63, 188), (17, 168, 205), (229, 229, 229), (102, 102, 102), (241, 76, 76),
           (35, 209, 139), (245, 245, 67), (59, 142, 234), (214, 112, 214), (41, 184, 219),
           (255, 255, 255)]
FG, BG = (220, 220, 220), (24, 24, 28)


def xterm256(n):
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return steps[n // 36], steps[n // 6 % 6], steps[n % 6]
    v = 8 + 10 * (n - 232)
    return v, v, v


def parse(text, width, height):
    """The captured pane (with SGR escapes) as rows of (char, fg, bg)."""
    rows = []
    fg, bg, bold, reverse = FG, BG, False, False
    for line in text.split("\n")[:height]:
        row = []
        for token in re.findall(r"\x1b\[[0-9;]*m|.", line):
            if not token.startswith("\x1b["):
                f, b = (bg, fg) if reverse else (fg, bg)
                row.append((token, f, b, bold))
                continue
            codes = [int(c) if c else 0 for c in token[2:-1].split(";")]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c == 0:
                    fg, bg, bold, reverse = FG, BG, False, False
                elif c == 1:
                    bold = True
                elif c == 7:
                    reverse = True
                elif c == 27:
                    reverse = False
                elif c in (38, 48) and i + 1 < len(codes):
                    if codes[i + 1] == 2:
                        colour = tuple(codes[i + 2:i + 5])
                        i += 4
                    else:
                        colour = xterm256(codes[i + 2])
                        i += 2
                    if c == 38:
                        fg = colour
                    else:
                        bg = colour
                elif 30 <= c <= 37:
                    fg = PALETTE[c - 30]
                elif 90 <= c <= 97:
                    fg = PALETTE[c - 90 + 8]
                elif 40 <= c <= 47:
                    bg = PALETTE[c - 40]
                elif 100 <= c <= 107:
                    bg = PALETTE[c - 100 + 8]
                elif c == 39:
                    fg = FG
                elif c == 49:
                    bg = BG
                i += 1
        rows.append(row[:width])
    return rows


def paint(rows, width, height, path):
    image = Image.new("RGB", (width * CELL[0], height * CELL[1]), BG)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 15)
    for y, row in enumerate(rows):
        for x, (char, fg, bg, bold) in enumerate(row):
            x0, y0 = x * CELL[0], y * CELL[1]
            box = [x0, y0, x0 + CELL[0] - 1, y0 + CELL[1] - 1]
            half = CELL[1] // 2
            if char == "▀":
                draw.rectangle([x0, y0, box[2], y0 + half - 1], fill=fg)
                draw.rectangle([x0, y0 + half, box[2], box[3]], fill=bg)
            elif char == "▄":
                draw.rectangle([x0, y0, box[2], y0 + half - 1], fill=bg)
                draw.rectangle([x0, y0 + half, box[2], box[3]], fill=fg)
            else:
                draw.rectangle(box, fill=bg)
                if char.strip():
                    draw.text((x0, y0 + 1), char, font=font, fill=fg)
    image.save(path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("camwatch")
    parser.add_argument("out")
    parser.add_argument("--size", default="120x36")
    parser.add_argument("--keys", default="")
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    run = tempfile.mkdtemp(prefix="camwatch-screenshot-")
    for name in os.listdir(os.path.join(ROOT, "checkpoints")):
        shutil.copy(os.path.join(ROOT, "checkpoints", name), run)
    command = " ".join([args.camwatch, "watch", run, "--samples", os.path.join(ROOT, "samples"),
                        "--protocol", "halfblocks", *args.extra]) + "; sleep 60"
    subprocess.run(TMUX + ["kill-server"], capture_output=True)
    subprocess.run(TMUX + ["new-session", "-d", "-s", "shot", "-x", str(width), "-y", str(height),
                           command], check=True)

    def screen(escapes=False):
        flags = ["-p", "-e"] if escapes else ["-p"]
        return subprocess.run(TMUX + ["capture-pane", *flags, "-t", "shot"],
                              capture_output=True, text=True).stdout

    def settle():
        start = time.monotonic()
        while time.monotonic() - start < 60:
            text = screen()
            shown = re.search(r"\[(\d+)/(\d+)\]", text.splitlines()[0])
            busy = "…" in text or "computing" in text.splitlines()[-1]
            if not busy and shown and shown.group(1) == shown.group(2):
                time.sleep(0.5)
                return
            time.sleep(0.1)
        sys.exit("camwatch did not draw a full screen:\n" + screen())

    settle()
    for key in args.keys.split():
        subprocess.run(TMUX + ["send-keys", "-t", "shot", key], check=True)
        time.sleep(0.3)
        settle()
    paint(parse(screen(escapes=True), width, height), width, height, args.out)
    subprocess.run(TMUX + ["kill-server"], capture_output=True)
    shutil.rmtree(run, ignore_errors=True)
    print(args.out)


if __name__ == "__main__":
    main()
