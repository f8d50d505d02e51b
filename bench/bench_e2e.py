"""End to end: the sample agents unrecorded, recorded and replayed.

For each agent in fixtures/agents, ``--rounds`` interleaved rounds of: a plain
run (no recording), a recorded run (``replay.record`` entered and left inside
the timing: patch install, cassette header, every event, the close), then
every cassette is replayed (``replay.play``, strict, unused events fail) and
its output checked against the recorded run's. Medians of wall time:

* overhead: recorded / unrecorded (1.00 = free);
* replay: replayed / recorded (sleeps are skipped and the network is not
  touched, so a replay takes a fraction of the recorded run).

The agents: core_agent (clock, random, uuid, secrets, sleeps of --core-sleep
seconds in all, three tools, one raising), support_agent (openai SDK, streamed
tool calls, against the emulator with fixtures/scripts/support.json and
PARCELLY_REPLICA=us-1), anthropic_agent (anthropic SDK streaming, tool use,
fixtures/scripts/travel.json), parallel_agent (asyncio.gather, threads and two
streamed model calls at once). The emulator runs in this process (a thread),
as in the tests; each SDK client is made once, outside the timing, as an agent
process would.

    python bench/bench_e2e.py [--rounds 7] [--core-sleep 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import anthropic  # noqa: E402

import replay  # noqa: E402
from fixtures.agents import anthropic_agent, core_agent, parallel_agent, support_agent  # noqa: E402
from fixtures.emulator import Emulator, Script, Turn, When  # noqa: E402

SCRIPTS = os.path.join(ROOT, "fixtures", "scripts")
PARALLEL_SCRIPT = Script([  # as tests/test_concurrency.py: either order of the two questions
    Turn(text="Alpha: three independent sources agree on the figure.",
         when=When(last_user_contains="alpha"), repeat=True),
    Turn(text="Beta: results are mixed; two runs disagree.",
         when=When(last_user_contains="beta"), repeat=True),
    Turn(text="Alpha: three independent sources agree on the figure.",
         when=When(last_user_contains="alpha"), repeat=True),
], chunk_size=4, latency_ms=1)


@dataclass
class Agent:
    """One sample agent: ``run()`` does a whole run and returns what it printed or did."""

    name: str
    what: str
    run: Callable[[], Any]
    reset: Callable[[], None] = lambda: None


@contextlib.contextmanager
def agents(core_sleep: float) -> Iterator[list[Agent]]:
    """The four agents, their emulators started."""
    old = os.environ.get("PARCELLY_REPLICA")
    os.environ["PARCELLY_REPLICA"] = "us-1"
    try:
        with Emulator(Script.load(os.path.join(SCRIPTS, "support.json"))) as support_emu, \
                Emulator(Script.load(os.path.join(SCRIPTS, "travel.json"))) as travel_emu, \
                Emulator(PARALLEL_SCRIPT) as parallel_emu:
            support_client = support_agent.client_for(support_emu.openai_base_url)
            travel_client = anthropic.Anthropic(base_url=travel_emu.url,
                                                api_key="sk-ant-bench-" + "k" * 24)
            yield [
                Agent("core_agent", "clock, random, uuid, sleeps, tools",
                      lambda: core_agent.run("Paris", core_sleep)),
                Agent("support_agent", "openai SDK, streamed tool calls",
                      lambda: support_agent.run(support_client).transcript,
                      support_emu.reset),
                Agent("anthropic_agent", "anthropic SDK streaming, tool use",
                      lambda: anthropic_agent.run(travel_client), travel_emu.reset),
                Agent("parallel_agent", "gather, threads, 2 streams at once",
                      lambda: asyncio.run(parallel_agent.run_agent(
                          parallel_emu.openai_base_url)), parallel_emu.reset),
            ]
    finally:
        if old is None:
            os.environ.pop("PARCELLY_REPLICA", None)
        else:
            os.environ["PARCELLY_REPLICA"] = old


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure(agent: Agent, rounds: int, tmp: str) -> dict[str, Any]:
    """Medians of plain, recorded and replayed wall time; events and size of a cassette."""
    agent.reset()
    agent.run()  # warm up: imports, TLS context, the emulator's first connection
    with replay.record(os.path.join(tmp, f"{agent.name}-warm.replay")):
        agent.reset()
        agent.run()
    plain: list[float] = []
    rec: list[float] = []
    recorded: list[tuple[str, Any]] = []
    for i in range(rounds):
        agent.reset()
        plain.append(timed(agent.run)[0])
        path = os.path.join(tmp, f"{agent.name}-{i}.replay")
        agent.reset()

        def record(path: str = path) -> Any:
            with replay.record(path):
                return agent.run()

        took, out = timed(record)
        rec.append(took)
        recorded.append((path, out))
    play: list[float] = []
    for path, out in recorded:
        def replayed(path: str = path) -> Any:
            with replay.play(path, unused="fail"):
                return agent.run()

        took, again = timed(replayed)
        if again != out:
            raise AssertionError(f"{agent.name}: the replay printed another transcript")
        play.append(took)
    events = replay.load(recorded[-1][0]).events
    return {"plain": statistics.median(plain), "rec": statistics.median(rec),
            "play": statistics.median(play), "events": len(events),
            "http": sum(1 for e in events if e.channel == "http"),
            "size": os.path.getsize(recorded[-1][0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--core-sleep", type=float, default=0.2,
                    help="seconds core_agent sleeps in all (real when live, skipped on replay)")
    args = ap.parse_args()
    print(f"medians of {args.rounds} interleaved rounds; every replay checked against "
          "its recorded run\n")
    print(f"{'agent':<17}{'events':>7}{'http':>5}{'size':>8}{'unrecorded':>12}"
          f"{'recorded':>10}{'overhead':>10}{'replayed':>10}{'of recorded':>13}")
    with tempfile.TemporaryDirectory() as tmp, agents(args.core_sleep) as all_agents:
        for agent in all_agents:
            r = measure(agent, args.rounds, tmp)
            print(f"{agent.name:<17}{r['events']:>7}{r['http']:>5}{r['size'] / 1024:>6.1f}KB"
                  f"{r['plain'] * 1e3:>10.1f}ms{r['rec'] * 1e3:>8.1f}ms"
                  f"{r['rec'] / r['plain']:>9.2f}x{r['play'] * 1e3:>8.1f}ms"
                  f"{r['play'] / r['rec']:>12.1%}", flush=True)
    print("\noverhead: recorded / unrecorded wall time; of recorded: replayed / recorded.")
    print(f"core_agent sleeps {args.core_sleep} s in all when live; a replay skips sleeps.")


if __name__ == "__main__":
    main()
