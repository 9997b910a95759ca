#!/usr/bin/env python3
"""Key-to-screen latency of the real terminal UI, in tmux, with 64 samples and 100
epochs in the history (halfblocks, 160×45).

    bench_tui.py CAMWATCH WORK_DIR

Builds the run with bench_watch.py's generator and fills the history with
`camwatch watch --headless`, then opens the TUI in a tmux session, presses keys and polls
`tmux capture-pane` every 2 ms: the time until the header shows the new sample or epoch,
and until the large overlay is drawn (no placeholder left).
"""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_watch  # noqa: E402

SOCKET = ["tmux", "-L", "camwatch-bench"]


def screen(session):
    return subprocess.run(SOCKET + ["capture-pane", "-p", "-t", session],
                          capture_output=True, text=True).stdout


def wait(session, test, timeout=60):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        text = screen(session)
        if test(text):
            return time.monotonic()
        time.sleep(0.002)
    raise SystemExit("timed out; screen:\n" + screen(session))


def main():
    camwatch, work = sys.argv[1], sys.argv[2]
    samples = os.path.join(work, "tui-samples")
    checkpoints = bench_watch.make_scale_run(os.path.join(work, "tui"), 100, samples, 64)
    watch = bench_watch.Watch(camwatch, checkpoints, samples)
    watch.wait_for(100)
    watch.stop()

    session = "bench"
    subprocess.run(SOCKET + ["kill-server"], capture_output=True)
    subprocess.run(SOCKET + ["new-session", "-d", "-s", session, "-x", "160", "-y", "45",
                             f"{camwatch} watch {checkpoints} --samples {samples} "
                             "--protocol halfblocks --device cpu; sleep 60"], check=True)
    start = time.monotonic()
    wait(session, lambda s: "[100/100]" in s.splitlines()[0] and "…" not in s)
    print(f"64 samples × 100 epochs in history, tmux 160×45, halfblocks")
    print(f"  start to a full screen: {time.monotonic() - start:.2f} s")

    for name, key, expect in [
        ("next sample", "l", lambda i: f"sample {i + 2}/64 "),
        ("previous epoch", "j", lambda i: f"[{99 - i}/100]"),
    ]:
        header, images = [], []
        for i in range(20):
            sent = time.monotonic()
            subprocess.run(SOCKET + ["send-keys", "-t", session, key], check=True)
            shown = wait(session, lambda s: expect(i) in s.splitlines()[0])
            drawn = wait(session, lambda s: "…" not in s)
            header.append((shown - sent) * 1e3)
            images.append((drawn - sent) * 1e3)
        print(f"  key ({name:<14}) → header: median {statistics.median(header):5.0f} ms, "
              f"max {max(header):4.0f}; → every image drawn: median "
              f"{statistics.median(images):5.0f} ms, max {max(images):4.0f}")
    subprocess.run(SOCKET + ["send-keys", "-t", session, "q"])
    subprocess.run(SOCKET + ["kill-server"], capture_output=True)


if __name__ == "__main__":
    main()
