#!/usr/bin/env python3
"""Runs in object storage, on loopback, against s3s-fs (the server tests/store.rs uses):

1. listing: `camwatch check` of a prefix of 1,001 objects (one checkpoint), its
   checkpoint already in the cache, against the same check of the local folder: the
   difference is the listing (paged by object_store, 1,000 keys a page) and the HEAD;
2. a 95 MB checkpoint (tests/fixtures/generated/paddle_r50.p4.pdparams) PUT into a
   watched prefix: time from the PUT's completion to its JSON line (median of 3);
3. memory: 20 runs × 50 checkpoints (the demo's epochs, again and again: 16 contents a
   run) followed as one sweep (`--runs --headless`), the process's RSS sampled every
   second while the 1,000 checkpoints are handled (320 computed, the rest repeats);
4. publish: 20 runs × 50 checkpoints, each of its own bytes, computed by 4 writer
   processes (`--publish`, 5 runs each, as one beside each training job would be), then a
   viewer of the whole sweep that computes nothing (`--runs --compute never`): the
   writers' time to all 1,000 published results, the viewer's time to its first and
   1,000th line, its peak RSS and CPU time, and that it downloaded no checkpoint;
   against the same viewer computing all 1,000 (`--compute always`).

Usage: bench_store.py CAMWATCH S3S_FS [--only listing|latency|sweep|publish]...
(scripts/bench-store runs it, passing its own arguments on)
"""

import glob
import hashlib
import json
import os
import pickletools
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

    def sweep(self, name, distinct=False):
        """20 runs × 50 checkpoints (the demo's 16 epochs, again and again) under `name/`,
        straight into the server's folder (following them is what is timed, not the
        upload). A run's 50 checkpoints are then 16 contents, and a content its history
        already holds is answered from there, not computed again; `distinct` makes each
        checkpoint's bytes its own (the lowest byte of two weights of the stem changed:
        maps the same to 1e-4), so that each is computed, and published, once."""
        for run in range(RUNS):
            for epoch in range(1, EPOCHS + 1):
                path = os.path.join(self.bucket, name, f"run{run:02}",
                                    f"epoch_{epoch}.pdparams")
                if os.path.exists(path):
                    continue
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(self.demo[(epoch - 1) % 16], "rb") as f:
                    data = bytearray(f.read())
                if distinct:
                    i, at = run * EPOCHS + epoch - 1, first_weights(data)
                    # Little-endian float32: the lowest byte of two mantissas.
                    data[at] ^= i & 0xFF
                    data[at + 4] ^= i >> 8
                with open(path, "wb") as f:
                    f.write(data)
        return f"s3://bucket/{name}/"


def first_weights(pickled):
    """Where the first tensor's bytes start in a pickled state dict (`.pdparams`)."""
    for op, arg, pos in pickletools.genops(bytes(pickled)):
        if isinstance(arg, bytes) and len(arg) >= 8:
            # The opcode, the length (1, 4 or 8 bytes), the bytes.
            return pos + 1 + {"SHORT_BINBYTES": 1, "BINBYTES": 4, "BINBYTES8": 8}[op.name]
    raise ValueError("no tensor in the checkpoint")


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
    proc = watch(b.camwatch, b.sweep("sweep"), os.path.join(b.work, "cache-sweep"),
                 b.endpoint, ["--runs"])
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

    def at(self, n):
        """When the line `n` came (an index: -1 the last), in seconds from the start."""
        return f"{self.times[n]:.1f} s" if self.times else "never"


def published_results(bucket, name):
    """Result objects published under the runs of the sweep `name` (s3s-fs keeps its own
    metadata beside the objects, in hidden files; trust figures are apart, and none are
    published with `--metrics none`)."""
    names = glob.glob(os.path.join(bucket, name, "*", ".camwatch", "results", "*", "*"))
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


def view(b, url, name, compute):
    """A viewer of the whole sweep (`--runs --compute COMPUTE`, a cache of its own), until
    its 1,000th line (or none for a minute): its lines, peak RSS (VmHWM, and VmRSS
    sampled every 0.2 s), CPU seconds, exit status on SIGTERM and the checkpoints it
    downloaded."""
    cache = os.path.join(b.work, f"cache-{name}")
    start = time.perf_counter()
    proc = watch(b.camwatch, url, cache, b.endpoint, ["--runs", "--compute", compute])
    lines, samples = Lines(proc, start), []
    while len(lines.times) < RUNS * EPOCHS and proc.poll() is None:
        now = time.perf_counter() - start
        if now - (lines.times[-1] if lines.times else 0) > 60 or now > 1800:
            break
        samples.append(rss_kib(proc.pid))
        time.sleep(0.2)
    hwm, cpu = proc_status_kib(proc.pid, "VmHWM"), cpu_s(proc.pid)
    code = stop(proc)
    downloaded = [os.path.join(d, f) for d, _, files in os.walk(cache) for f in files
                  if f.endswith(".pdparams")]
    return lines, hwm / 1024, max(samples, default=0) / 1024, cpu, code, downloaded


def publish(b):
    """4. A sweep of 1,000 distinct checkpoints published by 4 writers (5 runs each, as
    one beside each training job would be), then a viewer that computes nothing, against
    the same viewer computing everything."""
    url = b.sweep("published", distinct=True)
    runs = [f"{url}run{run:02}/" for run in range(RUNS)]
    per = RUNS // WRITERS
    start = time.perf_counter()
    writers = []
    for w in range(WRITERS):
        mine = runs[w * per:(w + 1) * per]
        with open(os.path.join(b.work, f"writer{w}.stderr"), "w") as stderr:
            writers.append(watch(b.camwatch, mine[0], os.path.join(b.work, f"cache-writer{w}"),
                                 b.endpoint, [*mine[1:], "--publish"], stderr=stderr))
    readers = [Lines(w, start) for w in writers]
    writers_rss, count, grew = 0, 0, start
    while count < RUNS * EPOCHS and all(w.poll() is None for w in writers):
        now = time.perf_counter()
        # Every checkpoint handled and nothing published for a minute: what is missing
        # will not come.
        handled = sum(len(r.times) for r in readers) >= RUNS * EPOCHS
        if (handled and now - grew > 60) or now - start > 1800:
            break
        writers_rss = max(writers_rss, sum(rss_kib(w.pid) for w in writers))
        time.sleep(0.2)
        if len(published_results(b.bucket, "published")) > count:
            count, grew = len(published_results(b.bucket, "published")), time.perf_counter()
    written = time.perf_counter() - start
    codes = [stop(w) for w in writers]
    statuses, sources = {}, {}
    for r in readers:
        for seen, mine in ((statuses, r.statuses), (sources, r.sources)):
            for value, n in mine.items():
                seen[value] = seen.get(value, 0) + n
    warnings = [line.rstrip() for w in range(WRITERS)
                for line in open(os.path.join(b.work, f"writer{w}.stderr"))
                if "not published" in line or "kept here only" in line]

    lines, hwm, sampled, cpu, code, downloaded = view(b, url, "viewer", "never")
    print(f"| {RUNS} runs × {EPOCHS} distinct checkpoints published by {WRITERS} writers "
          f"(`--publish`, {per} runs each), then a `--runs --compute never` viewer "
          f"| writers: {count} results published in {written:.0f} s (their RSS together at "
          f"most {writers_rss / 1024:.0f} MiB); viewer: {len(lines.times)} lines, the first "
          f"at {lines.at(0)}, the last at {lines.at(-1)}, peak RSS {hwm:.0f} MiB (sampled: "
          f"{sampled:.0f} MiB), {cpu:.1f} s of CPU, {len(downloaded)} checkpoints "
          f"downloaded |", flush=True)
    problems = []
    if count != RUNS * EPOCHS:
        problems.append(f"{count} of {RUNS * EPOCHS} results published")
    if set(statuses) != {"ok"} or set(sources) != {"computed"}:
        problems.append(f"writers' lines: {statuses}, {sources}")
    if any(c != 0 for c in codes):
        problems.append(f"writers' exit statuses on SIGTERM: {codes}")
    if warnings:
        problems.append(f"writers said: {warnings[:5]}")
    if code != 0:
        problems.append(f"the viewer's exit status on SIGTERM: {code}")
    if set(lines.sources) != {"published"} or set(lines.statuses) != {"ok"}:
        problems.append(f"the viewer's lines: {lines.statuses}, {lines.sources}")
    if downloaded:
        problems.append(f"the viewer downloaded {len(downloaded)}: {downloaded[:3]}")

    # The same viewer computing everything itself, published or not.
    lines, hwm, sampled, cpu, code, downloaded = view(b, url, "computing", "always")
    print(f"| the same viewer computing them (`--compute always`) | {len(lines.times)} lines, "
          f"the first at {lines.at(0)}, the last at {lines.at(-1)}, peak RSS {hwm:.0f} MiB "
          f"(sampled: {sampled:.0f} MiB), {cpu:.1f} s of CPU |", flush=True)
    if set(lines.sources) != {"computed"} or set(lines.statuses) != {"ok"}:
        problems.append(f"the computing viewer's lines: {lines.statuses}, {lines.sources}")
    if code != 0:
        problems.append(f"the computing viewer's exit status on SIGTERM: {code}")
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
