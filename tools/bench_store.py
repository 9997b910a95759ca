#!/usr/bin/env python3
"""Runs in object storage, on loopback, against s3s-fs (the server tests/store.rs uses):

1. listing: `camwatch check` of a prefix of 1,001 objects (one checkpoint), its
   checkpoint already in the cache, against the same check of the local folder: the
   difference is the listing (paged by object_store, 1,000 keys a page) and the HEAD;
2. a 95 MB checkpoint (tests/fixtures/generated/paddle_r50.p4.pdparams) PUT into a
   watched prefix: time from the PUT's completion to its JSON line (median of 3);
3. memory: 20 runs × 50 checkpoints (the demo's epochs, again and again) followed as
   one sweep (`--runs --headless`), the process's RSS sampled every second while the
   1,000 checkpoints are computed;
4. publish: the same 20 × 50 sweep computed by 4 writer processes (`--publish`, 5 runs
   each, as a writer beside each training job would), then a viewer of the whole sweep
   that computes nothing (`--runs --compute never`): the writers' time to all 1,000
   published results, and the viewer's time to its first and 1,000th line, its peak RSS,
   its CPU time and that it downloaded no checkpoint.

Usage: bench_store.py CAMWATCH S3S_FS [--only listing|latency|sweep|publish]...
(scripts/bench-store runs it, passing its own arguments on)
"""

import glob
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

KEY, SECRET = "bench-key", "bench-secret"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS, EPOCHS, WRITERS = 20, 50, 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def put(endpoint, key, path):
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    subprocess.run(["curl", "-sf", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user",
                    f"{KEY}:{SECRET}", "-H", f"x-amz-content-sha256: {sha}", "-T", path,
                    f"{endpoint}/bucket/{key}"], check=True)


def env(endpoint):
    return dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT=endpoint, AWS_ALLOW_HTTP="true")


def watch(camwatch, url, cache, endpoint, extra=(), stderr=subprocess.DEVNULL):
    return subprocess.Popen([camwatch, "watch", url, "--headless", "--device", "cpu",
                             "--metrics", "none", "--samples", os.path.join(ROOT, "samples"),
                             "--cache", cache, "--poll", "0.5", *extra],
                            stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env=env(endpoint))


def proc_status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    return proc_status_kib(pid, "VmRSS")


def cpu_s(pid):
    """User and system CPU time of a running process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    """The server, its folder and what the sections share."""

    def __init__(self, camwatch, work, endpoint):
        self.camwatch, self.work, self.endpoint = camwatch, work, endpoint
        self.bucket = os.path.join(work, "s3", "bucket")
        self.demo = [os.path.join(ROOT, "checkpoints", f"epoch_{e}.pdparams")
                     for e in range(1, 17)]

    def sweep(self):
        """20 runs × 50 checkpoints (the demo's epochs, again and again) under `sweep/`,
        straight into the server's folder (following them is what is timed, not the
        upload); made once for the sections that follow it."""
        for run in range(RUNS):
            for epoch in range(1, EPOCHS + 1):
                path = os.path.join(self.bucket, "sweep", f"run{run:02}",
                                    f"epoch_{epoch}.pdparams")
                if not os.path.exists(path):
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    shutil.copy(self.demo[(epoch - 1) % 16], path)
        return "s3://bucket/sweep/"


def listing(b):
    """1. Listing 1,000 objects: `check` of the prefix once everything is mirrored."""
    camwatch, work, endpoint = b.camwatch, b.work, b.endpoint
    for i in range(1000):
        # The objects themselves, straight into the server's folder (the listing is
        # what is timed, not the upload); one real checkpoint among them.
        name = os.path.join(b.bucket, "many", f"notes_{i:04}.txt")
        os.makedirs(os.path.dirname(name), exist_ok=True)
        with open(name, "w") as f:
            f.write(str(i))
    put(endpoint, "many/epoch_1.pdparams", b.demo[0])
    cache = os.path.join(work, "cache")
    check = [camwatch, "check", "s3://bucket/many/", "--samples",
             os.path.join(ROOT, "samples"), "--min-box-energy", "0", "--device", "cpu",
             "--cache", cache]
    subprocess.run(check, check=True, capture_output=True, env=env(endpoint))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(check, check=True, capture_output=True, env=env(endpoint))
        times.append((time.perf_counter() - start) * 1e3)
    folder = [camwatch, "check", os.path.join(b.bucket, "many"), "--samples",
              os.path.join(ROOT, "samples"), "--min-box-energy", "0", "--device", "cpu"]
    local = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(folder, check=True, capture_output=True)
        local.append((time.perf_counter() - start) * 1e3)
    print(f"| listing 1,001 objects (check of the prefix minus check of the folder) "
          f"| {statistics.median(times) - statistics.median(local):.0f} ms |", flush=True)


def latency(b):
    """2. A 95 MB checkpoint PUT → its line."""
    big = os.path.join(ROOT, "tests", "fixtures", "generated", "paddle_r50.p4.pdparams")
    latencies = []
    for attempt in range(3):
        url = f"s3://bucket/big{attempt}/"
        proc = watch(b.camwatch, url, os.path.join(b.work, "cache-big"), b.endpoint)
        time.sleep(3)
        put(b.endpoint, f"big{attempt}/epoch_1.pdparams", big)
        done = time.perf_counter()
        line = proc.stdout.readline()
        latencies.append((time.perf_counter() - done) * 1e3)
        assert json.loads(line)["status"] == "ok", line
        proc.terminate()
        proc.wait()
    print(f"| 95 MB checkpoint PUT → its line (maps of 12 samples) "
          f"| {statistics.median(latencies):.0f} ms (median of 3) |", flush=True)


def sweep_memory(b):
    """3. 20 runs × 50 checkpoints as one sweep: RSS while they are computed."""
    proc = watch(b.camwatch, b.sweep(), os.path.join(b.work, "cache-sweep"), b.endpoint,
                 ["--runs"])
    samples, lines = [], [0]

    def read():
        for _ in proc.stdout:
            lines[0] += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    start = time.perf_counter()
    while lines[0] < 1000 and time.perf_counter() - start < 1800:
        samples.append((time.perf_counter() - start, lines[0], rss_kib(proc.pid)))
        time.sleep(1)
    elapsed = time.perf_counter() - start
    last = rss_kib(proc.pid) / 1024
    proc.terminate()
    proc.wait()
    after = [s[2] / 1024 for s in samples if s[1] >= 250] or [last]
    at = " / ".join(f"{next((s[2] / 1024 for s in samples if s[1] >= n), last):.0f}"
                    for n in (250, 500, 750))
    print(f"| 20 runs × 50 checkpoints (`--runs`): {lines[0]} lines in {elapsed:.0f} s "
          f"| RSS from the 250th line on: {min(after):.0f}–{max(after):.0f} MiB; at the "
          f"250th / 500th / 750th line and the last: {at} / {last:.0f} MiB |", flush=True)


class Lines:
    """A watch's checkpoint lines as they come, read on a thread of their own (the pipe
    never fills): when each came and the sources and statuses seen."""

    def __init__(self, proc, start):
        self.times, self.sources, self.statuses = [], {}, {}
        self.start = start
        self.thread = threading.Thread(target=self.read, args=(proc,), daemon=True)
        self.thread.start()

    def read(self, proc):
        for text in proc.stdout:
            line = json.loads(text)
            if line.get("event") != "checkpoint":
                continue
            self.times.append(time.perf_counter() - self.start)
            for field, seen in (("source", self.sources), ("status", self.statuses)):
                seen[line.get(field)] = seen.get(line.get(field), 0) + 1


def published_results(bucket):
    """Result objects published under the sweep's runs (s3s-fs keeps its own metadata
    beside the objects, in hidden files; trust figures are apart, and none are published
    with `--metrics none`)."""
    names = glob.glob(os.path.join(bucket, "sweep", "*", ".camwatch", "results", "*", "*"))
    return [n for n in names
            if not os.path.basename(n).startswith(".") and not n.endswith(".trust.json")]


def stop(proc):
    """SIGTERM, and the exit status (None: still running 30 s later, then killed)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def publish(b):
    """4. The sweep published by 4 writers (5 runs each), then a viewer that computes
    nothing: what a sweep costs where it is looked at once it is computed where it trains."""
    url = b.sweep()
    runs = [f"{url}run{run:02}/" for run in range(RUNS)]
    per = RUNS // WRITERS
    start = time.perf_counter()
    writers, stderrs = [], []
    for w in range(WRITERS):
        mine = runs[w * per:(w + 1) * per]
        stderr = open(os.path.join(b.work, f"writer{w}.stderr"), "w")
        stderrs.append(stderr)
        writers.append(watch(b.camwatch, mine[0], os.path.join(b.work, f"cache-writer{w}"),
                             b.endpoint, [*mine[1:], "--publish"], stderr=stderr))
    readers = [Lines(w, start) for w in writers]
    writers_rss = 0
    while len(published_results(b.bucket)) < RUNS * EPOCHS:
        if time.perf_counter() - start > 1800 or any(w.poll() is not None for w in writers):
            break
        writers_rss = max(writers_rss, sum(rss_kib(w.pid) for w in writers))
        time.sleep(0.2)
    written = time.perf_counter() - start
    results = len(published_results(b.bucket))
    codes = [stop(w) for w in writers]
    for stderr in stderrs:
        stderr.close()
    statuses = {}
    for r in readers:
        for status, n in r.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    warnings = [line.rstrip() for w in range(WRITERS)
                for line in open(os.path.join(b.work, f"writer{w}.stderr"))
                if "not published" in line or "kept here only" in line]

    cache = os.path.join(b.work, "cache-viewer")
    start = time.perf_counter()
    viewer = watch(b.camwatch, url, cache, b.endpoint, ["--runs", "--compute", "never"])
    lines = Lines(viewer, start)
    samples = []
    while len(lines.times) < RUNS * EPOCHS and time.perf_counter() - start < 900:
        if viewer.poll() is not None:
            break
        samples.append(rss_kib(viewer.pid))
        time.sleep(0.2)
    hwm, cpu = proc_status_kib(viewer.pid, "VmHWM"), cpu_s(viewer.pid)
    viewer_code = stop(viewer)
    downloaded = [os.path.join(d, f) for d, _, files in os.walk(cache) for f in files
                  if f.endswith(".pdparams")]

    first = f"{lines.times[0]:.1f} s" if lines.times else "none"
    last = f"{lines.times[-1]:.1f} s" if lines.times else "none"
    print(f"| {RUNS} runs × {EPOCHS} checkpoints published by {WRITERS} writers "
          f"(`--publish`, {per} runs each), then a `--runs --compute never` viewer "
          f"| writers: {results} results published in {written:.0f} s "
          f"(their RSS together at most {writers_rss / 1024:.0f} MiB); viewer: "
          f"{len(lines.times)} lines, the first at {first}, the last at {last}, "
          f"peak RSS {hwm / 1024:.0f} MiB (sampled every 0.2 s: at most "
          f"{max(samples, default=0) / 1024:.0f} MiB), {cpu:.1f} s of CPU, "
          f"{len(downloaded)} checkpoints downloaded |", flush=True)
    problems = []
    if results != RUNS * EPOCHS:
        problems.append(f"{results} of {RUNS * EPOCHS} results published")
    if set(statuses) != {"ok"}:
        problems.append(f"writers' line statuses: {statuses}")
    if any(code != 0 for code in codes):
        problems.append(f"writers' exit statuses on SIGTERM: {codes}")
    if warnings:
        problems.append(f"writers said: {warnings[:5]}")
    if viewer_code != 0:
        problems.append(f"viewer's exit status on SIGTERM: {viewer_code}")
    if set(lines.sources) != {"published"}:
        problems.append(f"viewer's line sources: {lines.sources}")
    if set(lines.statuses) != {"ok"}:
        problems.append(f"viewer's line statuses: {lines.statuses}")
    if downloaded:
        problems.append(f"viewer downloaded {downloaded[:3]}")
    for problem in problems:
        print(f"publish: {problem}", file=sys.stderr, flush=True)


# The sections, in the order they run; `--only NAME` (repeatable) runs some of them.
SECTIONS = {"listing": listing, "latency": latency, "sweep": sweep_memory,
            "publish": publish}


def main():
    camwatch, s3s, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    only = [rest[i + 1] for i, arg in enumerate(rest) if arg == "--only" and i + 1 < len(rest)]
    unknown = [name for name in only if name not in SECTIONS]
    if unknown or len(rest) != 2 * len(only):
        sys.exit(f"usage: bench_store.py CAMWATCH S3S_FS [--only {'|'.join(SECTIONS)}]...")
    work = tempfile.mkdtemp(prefix="camwatch-bench-store-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.makedirs(os.path.join(work, "s3", "bucket"))
    server = subprocess.Popen([s3s, "--host", "127.0.0.1", "--port", str(port), "--access-key",
                               KEY, "--secret-key", SECRET, os.path.join(work, "s3")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        bench = Bench(camwatch, work, endpoint)
        for name, section in SECTIONS.items():
            if not only or name in only:
                section(bench)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
