"""A writer process for tests/test_store_s3.py and bench/bench_s3.py.

    python tests/_s3_writer.py URL N MODE EMULATOR_URL

records ``N`` runs into the run store at ``URL`` (an ``s3://`` store: AWS_* and
REPLAY_SPOOL / REPLAY_CACHE come from the environment), each an HTTP call to
the emulator with an API key, a clock read and a random number, and stores
each closed run. ``MODE`` ``crash``: the last run stops mid-recording (after
its HTTP event) and prints ``RECORDING ID`` for the parent to SIGKILL it.
Prints ``STORED ID`` per stored run, then ``DONE``.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import time

import httpx

import replay
from replay._runs.store import RunRow, RunStatus, new_run_id, open_store

API_KEY = "sk-" + "proj-" + "".join(random.Random("s3-writer").choices("abcdefXYZ0123", k=40))
"""An OpenAI-shaped key the agent sends (assembled here: no key-shaped literal)."""


def main() -> None:
    url, n, mode, emulator = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    store = open_store(url)
    for i in range(n):
        run_id = new_run_id()
        path = store.new_run(run_id)
        start = time.time()
        with replay.record(path, metadata={"writer": str(os.getpid()), "n": i}):
            with httpx.Client() as client:
                client.post(f"{emulator}/v1/chat/completions",
                            headers={"Authorization": f"Bearer {API_KEY}"},
                            json={"model": "gpt-4o-mini",
                                  "messages": [{"role": "user", "content": f"run {i}"}]})
            random.random()
            time.time()
            if mode == "crash" and i == n - 1:
                print("RECORDING", run_id, flush=True)
                time.sleep(600)
        store.put(path, RunRow(id=run_id, entry="tests._s3_writer:main", start=start,
                               duration=time.time() - start, status=RunStatus.OK,
                               models=("gpt-4o-mini",),
                               attrs={"host": socket.gethostname(), "pid": str(os.getpid())}))
        print("STORED", run_id, flush=True)
    store.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
