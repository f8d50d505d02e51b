"""``replay demo``: the main job on a bundled sample, with no key and no network.

Starts the bundled LLM emulator on loopback, runs the customer-support sample
agent (real openai SDK, tool calls, streamed answers) under the recorder a few
times, finds the run that went wrong (a refund a hundred times the order's
value), explains it from the recording (the ``lookup_order`` event read a stale
replica row), replays that run offline to show it happens again exactly, and
opens the TUI on the failing cassette at the first bad event, with a good run
beside it for the diff screen. Without a terminal it prints a summary and the
commands to explore instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from replay._analysis.diff import diff
from replay._cassette import read_cassette
from replay._cassette.events import Event
from replay._runs.api import play, record

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PINNED_REPLICAS = ("us-1", "eu-1", "eu-2", "us-2")
"""Which replica the load balancer hands each run: run 3 meets the stale one."""


@dataclass(frozen=True)
class RunOutcome:
    """One recorded run of the sample agent."""

    number: int
    cassette: str
    refunded: float
    ok: bool


@dataclass(frozen=True)
class DemoResult:
    """What the demo found."""

    runs: tuple[RunOutcome, ...]
    failing: RunOutcome
    good: RunOutcome
    first_bad_seq: int
    first_bad_summary: str
    first_divergence_seq: int | None
    replayed_refund: float


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _fixtures() -> Any:
    if not os.path.isdir(os.path.join(REPO, "fixtures", "emulator")):
        raise SystemExit("replay demo runs from a source checkout (it needs fixtures/); "
                         "see README.md")
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import fixtures.agents.support_agent as agent
    from fixtures import emulator
    return agent, emulator


def first_bad_event(events: tuple[Event, ...], true_total: float) -> Event | None:
    """The order lookup whose answer disagrees with the order's real value."""
    for ev in sorted(events, key=lambda e: e.seq):
        if ev.channel == "tool:lookup_order" and isinstance(ev.response, dict):
            total = ev.response.get("total")
            if isinstance(total, int | float) and abs(total - true_total) > 0.005:
                return ev
    return None


def run_demo(out_dir: str, *, runs: int = 4, out: TextIO = sys.stdout) -> DemoResult:
    """Record the sample agent ``runs`` times, find and explain the failing run."""
    agent, emulator = _fixtures()
    os.makedirs(out_dir, exist_ok=True)
    script = emulator.Script.load(os.path.join(REPO, "fixtures", "scripts", "support.json"))
    say = out.write
    say(f"agent-replay demo: {runs} runs of a customer-support agent (openai SDK, "
        "tools, streamed answers)\nagainst a local LLM emulator on 127.0.0.1; no key, "
        "no network.\n\n")
    outcomes: list[RunOutcome] = []
    with emulator.Emulator(script) as emu:
        base_url = emu.openai_base_url
        for n in range(1, runs + 1):
            emu.reset()
            path = os.path.join(out_dir, f"run-{n}.replay")
            with _env("PARCELLY_REPLICA", PINNED_REPLICAS[(n - 1) % len(PINNED_REPLICAS)]):
                with record(path, metadata={"demo_run": n}):
                    result = agent.run(agent.client_for(base_url))
            ok = abs(result.refunded - agent.ORDER_TOTAL) < 0.005
            outcomes.append(RunOutcome(n, path, result.refunded, ok))
            verdict = "ok" if ok else "WRONG: refund is not the order's value"
            say(f"  run {n}: refunded {result.refunded:8.2f} USD for an order worth "
                f"{agent.ORDER_TOTAL:.2f} USD  {verdict}\n")
    failing = next((o for o in outcomes if not o.ok), None)
    good = next((o for o in outcomes if o.ok), None)
    if failing is None or good is None:
        raise SystemExit("replay demo: expected one good and one failing run")
    bad_events = tuple(read_cassette(failing.cassette).events)
    bad = first_bad_event(bad_events, agent.ORDER_TOTAL)
    if bad is None:
        raise SystemExit("replay demo: the failing run has no stale order lookup")
    resp: dict[str, Any] = bad.response  # type: ignore[assignment]
    summary = (f"event #{bad.seq} {bad.channel}: replica {resp.get('replica')} returned "
               f"total {resp.get('total')} for {resp.get('order_id')} (really "
               f"{agent.ORDER_TOTAL:.2f})")
    run_diff = diff(good.cassette, failing.cassette)
    # Clock, random and uuid answers differ between any two live runs; the
    # divergence that explains behaviour is the first one in a tool or model call.
    first = next((p for p in run_diff.pairs if p.differs and p.channel.split(":")[0]
                  in ("tool", "capture", "http")), None)
    # The emulator is gone: the failing run happens again from the cassette alone.
    with play(failing.cassette, unused="fail"):
        again = agent.run(agent.client_for(base_url))
    say(f"\nRun {failing.number} went wrong. The recording explains it:\n"
        f"  first bad event: {summary}\n"
        f"  the model then approved a {failing.refunded:.2f} USD refund\n")
    if first is not None:
        say(f"  diff against run {good.number}: first tool/model divergence at event "
            f"#{first.right_seq if first.right_seq is not None else first.left_seq} "
            f"({first.channel}, {first.what()})\n")
    say(f"  replayed offline with the emulator stopped: refunded {again.refunded:.2f} USD "
        f"again, byte for byte\n")
    rel = os.path.relpath(failing.cassette)
    rel_good = os.path.relpath(good.cassette)
    say("\nExplore it:\n"
        f"  replay tui {rel} {rel_good} --at {bad.seq}   # step through, 'c' for the diff\n"
        f"  replay show {rel}\n"
        f"  replay diff {rel_good} {rel}\n"
        f"  replay report {rel_good} {rel} -o report.html   # one HTML file to share\n"
        f"  replay play {rel} -- python -m fixtures.agents.support_agent "
        f"--base-url {base_url}\n")
    return DemoResult(tuple(outcomes), failing, good, bad.seq, summary,
                      (first.right_seq if first is not None else None), again.refunded)


def register(sub: Any) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="record a sample agent, find its failure, open the TUI")
    p.add_argument("--dir", default=".demo", help="where the cassettes go (default .demo)")
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--no-tui", action="store_true", help="print the summary only")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: Any) -> int:
    """``replay demo``."""
    result = run_demo(args.dir, runs=max(3, args.runs))
    if args.no_tui or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return 0
    from tui.app import ReplayApp

    ReplayApp(result.failing.cassette, result.good.cassette,
              start_at=result.first_bad_seq).run()
    return 0
