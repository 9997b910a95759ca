#!/usr/bin/env python3
"""Runs in object storage, on loopback, against s3s-fs (the server tests/store.rs uses):

1. listing: `camwatch check` of a prefix of 1,001 objects (one checkpoint), its
   checkpoint already in the cache, against the same check of the local folder: the
   difference is the listing (paged by object_store, 1,000 keys a page) and the HEAD;
2. a 95 MB checkpoint (tests/fixtures/generated/paddle_r50.p4.pdparams) PUT into a
   watched prefix: time from the PUT's completion to its JSON line (median of 3);
3. memory: 20 runs × 50 checkpoints (the demo's epochs, again and again) followed as
   one sweep (`--runs --headless`), the process's RSS sampled every second while the
   1,000 checkpoints are computed.

Usage: bench_store.py CAMWATCH S3S_FS    (scripts/bench-store runs it)
"""

import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

KEY, SECRET = "bench-key", "bench-secret"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def watch(camwatch, url, cache, endpoint, extra=()):
    return subprocess.Popen([camwatch, "watch", url, "--headless", "--device", "cpu",
                             "--metrics", "none", "--samples", os.path.join(ROOT, "samples"),
                             "--cache", cache, "--poll", "0.5", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env(endpoint))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    camwatch, s3s = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="camwatch-bench-store-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.makedirs(os.path.join(work, "s3", "bucket"))
    server = subprocess.Popen([s3s, "--host", "127.0.0.1", "--port", str(port), "--access-key",
                               KEY, "--secret-key", SECRET, os.path.join(work, "s3")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        demo = [os.path.join(ROOT, "checkpoints", f"epoch_{e}.pdparams") for e in range(1, 17)]

        # 1. Listing 1,000 objects: `check` of the prefix once everything is mirrored.
        for i in range(1000):
            # The objects themselves, straight into the server's folder (the listing is
            # what is timed, not the upload); one real checkpoint among them.
            name = os.path.join(work, "s3", "bucket", "many", f"notes_{i:04}.txt")
            os.makedirs(os.path.dirname(name), exist_ok=True)
            with open(name, "w") as f:
                f.write(str(i))
        put(endpoint, "many/epoch_1.pdparams", demo[0])
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
        folder = [camwatch, "check", os.path.join(work, "s3", "bucket", "many"), "--samples",
                  os.path.join(ROOT, "samples"), "--min-box-energy", "0", "--device", "cpu"]
        local = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(folder, check=True, capture_output=True)
            local.append((time.perf_counter() - start) * 1e3)
        print(f"| listing 1,001 objects (check of the prefix minus check of the folder) "
              f"| {statistics.median(times) - statistics.median(local):.0f} ms |", flush=True)

        # 2. A 95 MB checkpoint PUT → its line.
        big = os.path.join(ROOT, "tests", "fixtures", "generated", "paddle_r50.p4.pdparams")
        latencies = []
        for attempt in range(3):
            url = f"s3://bucket/big{attempt}/"
            proc = watch(camwatch, url, os.path.join(work, "cache-big"), endpoint)
            time.sleep(3)
            put(endpoint, f"big{attempt}/epoch_1.pdparams", big)
            done = time.perf_counter()
            line = proc.stdout.readline()
            latencies.append((time.perf_counter() - done) * 1e3)
            assert json.loads(line)["status"] == "ok", line
            proc.terminate()
            proc.wait()
        print(f"| 95 MB checkpoint PUT → its line (maps of 12 samples) "
              f"| {statistics.median(latencies):.0f} ms (median of 3) |", flush=True)

        # 3. 20 runs × 50 checkpoints as one sweep: RSS while they are computed.
        for run in range(20):
            for epoch in range(1, 51):
                path = os.path.join(work, "s3", "bucket", "sweep", f"run{run:02}",
                                    f"epoch_{epoch}.pdparams")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                shutil.copy(demo[(epoch - 1) % 16], path)
        proc = watch(camwatch, "s3://bucket/sweep/", os.path.join(work, "cache-sweep"),
                     endpoint, ["--runs"])
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
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
