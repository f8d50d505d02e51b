"""Pilot tests of the TUI's debugging views (issue 15): answers that were not streamed,
search hits in the panes, notices, 80x24, headers, pytest runs, drift diffs, damaged
second runs, and the noise-aware comparison on the demo's own runs."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from typing import Any

import openai
import pytest
from rich.console import Console
from textual.widgets import Static

import replay
from replay._cli import tui as _cli_tui
from tests import tui_samples as samples
from tests.tui_samples import press, running, seq
from tui.app import ReplayApp
from tui.conversation import ConversationPane
from tui.detail import DetailPane
from tui.diff_screen import DiffScreen
from tui.model import DIVERGENCE
from tui.rendered import RenderedView
from tui.stream import StreamPane

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fixtures.emulator import Emulator, Script, ToolCall, Turn  # noqa: E402

SIZE = (120, 36)
WEATHER_TOOL: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}


def text_of(widget: Static, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(widget.content)  # type: ignore[arg-type]
    return console.export_text()


def lines_of(view: RenderedView) -> str:
    return "\n".join(view.lines)


def flat(text: str) -> str:
    """``text`` with its wrapping undone (every run of white space one space)."""
    return " ".join(text.split())




def status(app: ReplayApp) -> str:
    return text_of(app.main.query_one("#status", Static))


# --- recordings ----------------------------------------------------------------------


@replay.tool
def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "sky": "light rain"}


def _plain_chat(url: str) -> None:
    with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
        msgs: Any = [{"role": "user", "content": "umbrella in Paris?"}]
        first = client.chat.completions.create(model="gpt-4o-mini", messages=msgs,
                                               tools=[WEATHER_TOOL])
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        msgs += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id,
                  "content": json.dumps(get_weather(**json.loads(call.function.arguments)))}]
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs,
                                       tools=[WEATHER_TOOL])


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Two plain (not streamed) chat.completions.create calls and a tool, recorded with
    the real openai SDK against the emulator."""
    path = tmp_path_factory.mktemp("plain") / "plain.replay"
    turns = [Turn(text="Let me check.", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
             Turn(text="Take an umbrella.")]
    with Emulator(Script(turns)) as emu:
        _plain_chat(emu.url)  # warm the SDK's lazy imports outside the recording
    with Emulator(Script(turns)) as emu, replay.record(path):
        _plain_chat(emu.url)
    return path


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, pathlib.Path]:
    """(the demo's run that refunded 4990.0, one that refunded 49.9)."""
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "replay._cli", "demo", "--dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr

    def total(p: pathlib.Path) -> Any:
        return next(e.response["total"] for e in replay.load(p).events  # type: ignore[index]
                    if e.channel == "tool:lookup_order")
    paths = sorted(out.glob("run-*.replay"))
    return (next(p for p in paths if total(p) == 4990.0),
            next(p for p in paths if total(p) == 49.9))


def _model_calls(app: ReplayApp) -> list[int]:
    assert app.model is not None
    return [e.seq for e in app.model.events if e.channel == "http"]


# --- answers that were not streamed ----------------------------------------------------


async def test_a_plain_answer_reads_as_text_labelled_not_streamed(
        plain_run: pathlib.Path) -> None:
    app = ReplayApp(plain_run)
    async with running(app) as pilot:
        first, second = _model_calls(app)
        assert app.model is not None and len(app.model.events[first].chunks) == 1
        app.main.timeline.select_index(app.model.index_of[second])
        await press(pilot, "2")
        conv = lines_of(app.main.query_one(ConversationPane))
        assert "Take an umbrella." in conv and "not streamed" in conv
        assert '"choices"' not in conv and "chatcmpl" not in conv  # not the raw JSON
        await press(pilot, "3")
        pane = app.main.query_one(StreamPane)
        shown = text_of(pane.query_one("#stream-status", Static))
        assert "not streamed" in shown and "chunk" not in shown and pane.count == 0
        await press(pilot, "space", "full_stop")
        assert pane.position == 0 and not pane.playing
        line = app.main.timeline.render_line(app.model.index_of[second]).text
        assert "-> 200" in line and "chunk" not in line
        await press(pilot, "1")
        detail = lines_of(app.main.query_one(DetailPane))
        assert "body (not streamed)" in detail and "Take an umbrella." in detail
        assert "press 3 to play" not in detail


# --- search --------------------------------------------------------------------------


async def test_search_hits_are_highlighted_in_the_pane_and_wrapping_is_said() -> None:
    app = ReplayApp(samples.agent_cassette())
    async with running(app) as pilot:
        await press(pilot, "slash", *"declined", "enter")
        main = app.main
        assert main.matches and seq(app) == main.timeline.model.events[main.matches[0]].seq
        pane = main.query_one(DetailPane)
        assert pane.find == "declined" and pane.hits
        top = round(pane.scroll_y)
        assert top <= pane.hits[0] < top + pane.scrollable_content_region.height
        strip = pane._strips[pane.hits[0]]
        styled = [seg for seg in strip if "declined" in seg.text.lower()]
        assert styled and styled[0].style is not None and styled[0].style.bgcolor is not None
        for _ in main.matches[1:]:
            await press(pilot, "n")
        assert "wrapped" not in status(app)
        await press(pilot, "n")
        assert seq(app) == main.timeline.model.events[main.matches[0]].seq
        assert "search wrapped to the top" in status(app)
        await press(pilot, "N")
        assert "search wrapped to the bottom" in status(app)
        await press(pilot, "2")  # the conversation pane marks the hit too
        conv = main.query_one(ConversationPane)
        assert conv.find == "declined" and conv.hits


async def test_a_notice_is_cleared_by_the_next_key() -> None:
    app = ReplayApp(samples.agent_cassette())
    async with running(app) as pilot:
        await press(pilot, "G", "e")
        assert "no next error" in status(app)
        await press(pilot, "1")  # any key, even one that does not move the cursor
        assert app.main.message == "" and "no next error" not in status(app)
        await press(pilot, "G", "e", "e")
        assert status(app).count("no next error") == 1


# --- layout ----------------------------------------------------------------------------


async def test_usable_at_80x24_and_the_split_moves_with_keys() -> None:
    app = ReplayApp(samples.agent_cassette(), start_at=3)
    async with running(app, (80, 24)) as pilot:
        tl = app.main.timeline
        assert tl.outer_size.width == 44
        line = tl.render_line(3).text
        assert "+0.00" not in line and "gpt-4o-mini -> 200" in line  # no time column
        assert "#3" in status(app)
        await press(pilot, "greater_than_sign", "greater_than_sign")
        assert tl.styles.width is not None and tl.styles.width.value == 65
        assert tl.outer_size.width == 52
        await press(pilot, *["less_than_sign"] * 10)
        assert tl.styles.width is not None and tl.styles.width.value == 25
    app = ReplayApp(samples.agent_cassette(), start_at=3)
    async with running(app, (120, 36)):
        assert "+0.005s" in app.main.timeline.render_line(3).text  # wide: the time is back


async def test_status_numbers_the_event_by_seq() -> None:
    app = ReplayApp(samples.agent_cassette())
    async with running(app) as pilot:
        await press(pilot, "x", "F")  # a filter: the row is no longer the seq
        assert seq(app) == 8 and status(app).startswith("#8  1/")


async def test_headers_come_after_the_body_and_boilerplate_is_collapsed(
        plain_run: pathlib.Path) -> None:
    app = ReplayApp(plain_run)
    async with running(app) as pilot:
        first = _model_calls(app)[0]
        assert app.model is not None
        app.main.timeline.select_index(app.model.index_of[first])
        await press(pilot, "1")
        text = lines_of(app.main.query_one(DetailPane))
        assert "x-stainless-arch" not in text and "x-stainless-*" in text
        assert text.index('"messages"') < text.index("content-type:")
        await press(pilot, "h")
        assert "x-stainless-arch:" in lines_of(app.main.query_one(DetailPane))
        await press(pilot, "h")
        assert "x-stainless-arch:" not in lines_of(app.main.query_one(DetailPane))


# --- header, findings, damage ----------------------------------------------------------


async def test_a_pytest_run_is_named_by_its_node_id() -> None:
    header = replay.Header(created="2026-01-02T03:04:05Z", argv=("-c",), python="3.11",
                           platform="Linux",
                           meta={**samples.HEADER.meta,
                                 "pytest.nodeid": "tests/test_trip.py::test_books[oslo]"})
    app = ReplayApp(replay.Cassette("/srv/t.replay", header, tuple(samples.agent_run())))
    async with running(app):
        title = text_of(app.main.query_one("#title", Static))
        assert "pytest tests/test_trip.py::test_books[oslo]" in title and " -c" not in title


async def test_a_drift_finding_shows_its_diff(tmp_path: pathlib.Path) -> None:
    report = tmp_path / "drift.json"
    finding = replay.Finding("system_prompt", replay.Severity.WARNING, 3, "old", "new",
                             "the system prompt of #3 changed",
                             "--- recorded\n+++ live\n-Use the tools.\n+Never use tools.",
                             "http")
    tool = replay.Finding("tool_result", replay.Severity.WARNING, 4, {"price": 99},
                          {"price": 149}, "search_flights answers otherwise")
    report.write_text(json.dumps({"schema": "agent-replay/drift/1",
                                  "findings": [finding.as_dict(), tool.as_dict()]}))
    flags, notes = _cli_tui.read_findings(str(report))
    app = ReplayApp(samples.agent_cassette(), flags=flags, notes=notes, start_at="drift")
    async with running(app) as pilot:
        text = lines_of(app.main.query_one(DetailPane))
        assert "the system prompt of #3 changed" in flat(text)
        assert "-Use the tools." in text and "+Never use tools." in text
        await press(pilot, "d")
        text = lines_of(app.main.query_one(DetailPane))
        assert '- recorded: {"price": 99}' in text and '+ live: {"price": 149}' in flat(text)


async def test_a_damaged_second_run_gets_the_same_banner(tmp_path: pathlib.Path) -> None:
    good = samples.write(tmp_path / "good.replay", samples.agent_run())
    other = samples.damaged(tmp_path / "killed.replay", samples.diverged_run())
    app = ReplayApp(good, other)
    async with running(app) as pilot:
        banner = app.main.query_one("#banner", Static)
        assert not banner.has_class("hidden")
        text = text_of(banner)
        assert "⚠ damaged cassette killed.replay (the other run)" in text
        assert "good.replay" not in text
        await press(pilot, "c")
        assert isinstance(app.screen, DiffScreen)
        assert "⚠ damaged cassette killed.replay" in text_of(app.screen.query_one("#banner",
                                                                                 Static))
    app = ReplayApp(other, good)  # damaged first: the same banner, named the same way
    async with running(app):
        assert "⚠ damaged cassette killed.replay:" in text_of(
            app.main.query_one("#banner", Static))


# --- the comparison model on the demo's runs ---------------------------------------------


async def test_v_lands_first_on_lookup_order_and_noise_is_one_line(
        demo_runs: tuple[pathlib.Path, pathlib.Path]) -> None:
    bad, good = demo_runs
    app = ReplayApp(bad, good)
    async with running(app, (80, 24)) as pilot:
        title = text_of(app.main.query_one("#title", Static))
        assert ("first divergence at #4 tool:lookup_order: response.total 4990.0 → 49.9"
                in title.replace("\n", " ").replace("  ", " "))
        await press(pilot, "g", "v")
        assert seq(app) == 4
        detail = lines_of(app.main.query_one(DetailPane))
        assert "vs " in detail and "4990.0" in detail and "49.9" in detail
        assert app.run_diff is not None
        noise = len(app.run_diff.noise)
        assert noise >= 8
        line = app.noise_line()
        assert line.startswith(f"≈ {noise} noise (") and "z shows" in line
        assert line in status(app).replace("\n", "") or "≈" in status(app)
        flagged = app.model.flagged(DIVERGENCE) if app.model else []
        await press(pilot, "z")  # noise counts now: v walks it too
        assert app.show_noise and app.model is not None
        assert len(app.model.flagged(DIVERGENCE)) > len(flagged)
        await press(pilot, "g", "v")
        here = app.pair_of(seq(app) or 0)
        assert seq(app) in (1, 2) and here is not None and here.is_noise  # clock, uuid
        await press(pilot, "z", "g", "v")
        assert seq(app) == 4 and not app.show_noise
        await press(pilot, "c")
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        pair = screen.diff.pairs[screen.table.cursor]
        assert pair.left is not None and pair.left.seq == 4
        assert f"≈ {noise} noise" in text_of(screen.query_one("#noise-line", Static))
        await press(pilot, "g", "n")
        nxt = screen.diff.pairs[screen.table.cursor]
        assert nxt.differs and not nxt.is_noise
        await press(pilot, "z", "g", "n")
        assert screen.diff.pairs[screen.table.cursor].is_noise
        assert app.show_noise  # one setting for both screens
