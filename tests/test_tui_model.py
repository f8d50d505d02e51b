"""The TUI's plain logic, without a terminal: run model, payload reading, chat, stats."""

from __future__ import annotations

import ast
import pathlib

import pytest
from rich.console import Console, RenderableType
from textual.binding import Binding

import replay
from tests import tui_samples as samples
from tui import chat, payloads, stats
from tui.detail import detail
from tui.diff_screen import around_difference
from tui.model import DIVERGENCE, DRIFT, ERROR, RunModel, fmt_duration, haystack
from tui.render import line_summary, pretty
from tui.stream import spark

TUI = pathlib.Path(__file__).resolve().parent.parent / "tui"


def text_of(renderable: RenderableType, width: int = 100) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_tui_imports_only_public_replay_names() -> None:
    public = set(replay.__all__)
    for path in sorted(TUI.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name == "replay" or not alias.name.startswith("replay"), \
                        f"{path.name} imports {alias.name}"
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                if node.module.startswith("replay"):
                    assert node.module == "replay", f"{path.name} imports {node.module}"
                    bad = {a.name for a in node.names} - public
                    assert not bad, f"{path.name} imports non-public {bad}"
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "replay"):
                assert node.attr in public, f"{path.name} uses replay.{node.attr}"


def test_model_sorts_by_seq_and_flags_errors_and_http_failures() -> None:
    evs = samples.agent_run()
    model = RunModel(reversed(evs), flags={5: {DRIFT}, 999: {DRIFT}})
    assert [e.seq for e in model.events] == list(range(len(evs)))
    assert model.flagged(ERROR) == [8, 10]  # a raised tool and an HTTP 429
    assert model.flagged(DRIFT) == [5]
    assert model.flag_counts() == {ERROR: 2, DRIFT: 1}
    assert model.children[4] == 2


@pytest.mark.parametrize("shuffle", [False, True])
def test_model_from_a_packed_index_answers_as_from_the_events(
        tmp_path: pathlib.Path, shuffle: bool) -> None:
    """A packed cassette's model is built from its index columns (channels and nested
    counts only when asked): it must say what the model of the decoded events says."""
    evs = samples.big_run(300)
    written = evs[40:] + evs[:40] if shuffle else evs  # file order != seq order
    log = replay.read_cassette(samples.write(tmp_path / "big.replay", written)).events
    assert isinstance(log, replay.EventLog)
    flags = {5: {DRIFT}, 250: {DRIFT}}
    packed, plain = RunModel(log, flags), RunModel(evs, flags)
    assert [e.seq for e in packed.events] == [e.seq for e in plain.events]
    assert packed.flagged(ERROR) == plain.flagged(ERROR) != []
    assert packed.flag_counts() == plain.flag_counts()
    assert packed.flags == plain.flags
    assert sorted(packed.channel_names) == sorted(plain.channel_names)
    assert packed.channels == plain.channels
    assert packed.children == plain.children and packed.children[4] == 2
    assert packed.last_start_ns == plain.last_start_ns
    assert all(packed.index_of[e.seq] == plain.index_of[e.seq] for e in evs)
    packed.set_filter({"http"}, ERROR)
    plain.set_filter({"http"}, ERROR)
    assert list(packed.rows) == list(plain.rows) != []


def test_model_filters_and_jumps_skip_hidden_rows() -> None:
    model = RunModel(samples.agent_run())
    model.set_filter({"http"})
    assert [model.events[i].seq for i in model.rows] == [3, 7, 10, 11, 12]
    assert model.row_of(8) is None
    assert model.next_flag(ERROR, 0) == 10  # #8 is a tool: filtered out
    assert model.next_flag(ERROR, 10, forward=False) is None
    assert model.nearest_row(8) == 2
    model.set_filter((), "any")
    assert list(model.rows) == [8, 10]
    model.set_filter()
    assert not model.filtered and len(model.rows) == len(model)


def test_search_reads_every_payload_string_and_chunk_text() -> None:
    model = RunModel(samples.agent_run())
    assert model.search("DECLINED") == [8, 11]  # error message; SSE chunk text
    assert model.search("tool_call_id") == [7]  # a key
    assert model.search("zzz-nowhere") == []
    assert "1767323045.125" in haystack(model.events[1])


def test_durations_read_well() -> None:
    assert [fmt_duration(n) for n in (850, 12_000, 3_400_000, 640_000_000, 1_250_000_000,
                                      125_000_000_000)] == ["850ns", "12µs", "3.4ms", "640ms",
                                                            "1.25s", "2m05s"]


def test_model_calls_are_told_apart_cheaply() -> None:
    evs = {e.seq: e for e in samples.agent_run()}
    assert payloads.provider(evs[3]) == "openai-chat"
    assert payloads.provider(evs[11]) == "anthropic"
    assert payloads.provider(evs[12]) == "openai-responses"
    assert payloads.provider(evs[4]) is None
    # and they agree with the library's own reading, which the detail and stats use
    for seq, ev in evs.items():
        assert (payloads.provider(ev) is not None) == (replay.model_call(ev) is not None), seq


def test_stream_pieces_are_text_deltas_per_chunk() -> None:
    ev = samples.agent_run()[11]
    pieces = payloads.stream_pieces(ev)
    assert len(pieces) == len(ev.chunks)
    assert "".join(pieces) == ("The booking failed: the card was declined. Try another card "
                               "or a later flight.")
    assert pieces[0] == "" and pieces[2] == "The booking "
    assert payloads.chunk_gaps_ms(ev)[:3] == [310.0, 2.0, 40.0]


def test_sse_events_split_across_chunks_belong_to_the_chunk_that_ends_them() -> None:
    whole = b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'
    chunks = [whole[:20], whole[20:] + b'data: {"choices": [{"delta": {"content": "lo"}}]}\n\n',
              b"data: [DONE]\n\n"]
    ev = replay.Event(0, "http", {"method": "POST", "url": "https://x/v1/chat/completions",
                                  "body": {"model": "m", "messages": []}},
                      {"status": 200, "headers": {"content-type": "text/event-stream"}},
                      chunks=tuple(replay.Chunk(c, k) for k, c in enumerate(chunks)))
    assert payloads.stream_pieces(ev) == ["", "Hello", ""]


def test_raw_chunks_without_sse_show_as_text() -> None:
    ev = replay.Event(0, "http", {"method": "GET", "url": "https://x/file"},
                      {"status": 200, "headers": {"content-type": "text/plain"}},
                      chunks=(replay.Chunk(b"abc", 1), replay.Chunk(b"def", 2)))
    assert payloads.stream_pieces(ev) == ["abc", "def"]


def test_conversation_openai_chat_with_tool_calls_and_answer() -> None:
    conv = chat.conversation(samples.agent_run()[7])
    assert conv is not None and conv.provider == "openai-chat"
    roles = [t.role for t in conv.turns]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert conv.turns[2].calls[0].name == "search_flights"
    assert conv.turns[3].name == "search_flights" and conv.turns[3].call_id == "call_1"
    answer = conv.turns[-1]
    assert answer.answer and answer.text == "Booking the 99 EUR flight."
    assert answer.calls[0].name == "book"


def test_conversation_anthropic_and_responses_shapes() -> None:
    evs = samples.agent_run()
    conv = chat.conversation(evs[11])
    assert conv is not None
    assert [(t.role, t.error) for t in conv.turns] == [
        ("system", False), ("user", False), ("assistant", False), ("tool", True),
        ("assistant", False)]
    assert conv.turns[3].name == "book"
    assert conv.turns[-1].text.startswith("The booking failed")
    conv = chat.conversation(evs[12])
    assert conv is not None
    assert [t.role for t in conv.turns] == ["system", "user", "assistant", "tool", "assistant"]
    assert conv.turns[2].calls[0].name == "notify" and conv.turns[3].name == "notify"
    assert conv.turns[-1].text == "Le voyage a échoué."
    err = chat.conversation(evs[10])
    assert err is not None and err.turns[-1].role == "error"
    assert chat.conversation(evs[0]) is None


def test_responses_input_as_plain_string() -> None:
    ev = replay.Event(0, "http", {"method": "POST", "url": "https://api.openai.com/v1/responses",
                                  "body": {"model": "gpt-5", "input": "hi"}})
    conv = chat.conversation(ev)
    assert conv is not None and [(t.role, t.text) for t in conv.turns] == [("user", "hi")]


def test_detail_shows_site_headers_usage_traceback_and_notes(tmp_path: pathlib.Path) -> None:
    evs = samples.agent_run()
    text = text_of(detail(evs[3], set()))
    for part in ("#3 http", "travel_agent.py:44", "not readable", "content-type:",
                 "gpt-4o-mini-2024-07-18", "asked for gpt-4o-mini", "812 in", "cost ≈ $0.00015",
                 '"role": "system"', "status 200", "not streamed"):
        assert part in text, part
    # the request body comes before its headers; boilerplate headers are collapsed
    assert text.index('"role": "system"') < text.index("content-type:")
    assert "x-request-id:" not in text and "1 SDK/server boilerplate header" in text
    assert "x-request-id:" in text_of(detail(evs[3], set(), all_headers=True))
    text = text_of(detail(evs[8], {ERROR}, notes=["tool result drifted"]))
    assert "Traceback (most recent call last)" in text and "! error" in text
    assert "RuntimeError: payment declined" in text and "tool result drifted" in text
    src = tmp_path / "agent.py"
    src.write_text("import os\nanswer = ask_model(prompt)  # the call\n")
    ev = replay.Event(0, "clock", {"fn": "time.time"}, 1.5,
                      site=replay.CallSite(str(src), 2, "main"))
    assert "answer = ask_model(prompt)" in text_of(detail(ev, set()))
    assert "13 chunks" in text_of(detail(evs[11], set()))


def test_pretty_cuts_long_payloads_and_shows_bytes() -> None:
    text, cut = pretty(list(range(1000)), max_lines=10)
    assert cut == 992 and text.count("\n") == 9
    assert pretty({"b": b"\xff\x00"})[0] == '{\n  "b": "<2 bytes: ff00>"\n}'
    assert pretty('{"a": 1}')[0] == '{\n  "a": 1\n}'


def test_http_lines_name_the_model_and_keep_the_status() -> None:
    evs = samples.agent_run()
    assert line_summary(evs[3], 80) == "gpt-4o-mini completions -> 200"
    assert line_summary(evs[3], 20) == "gpt-4o-mini -> 200"  # narrow: the model alone
    assert line_summary(evs[11], 80) == "claude-sonnet-4-5 messages -> 200, 13 chunks"
    assert line_summary(evs[11], 30) == "claude-sonnet-4-5 -> 200"  # chunk count goes first
    plain = replay.Event(0, "http", {"method": "GET", "url": "https://example.com/a?b=1"},
                         {"status": 404})
    assert line_summary(plain, 80) == "GET example.com/a?b=1 -> 404"


def test_diff_strings_are_cut_around_the_first_difference() -> None:
    old, new = around_difference("x" * 100 + "price 99" + "y" * 100,
                                 "x" * 100 + "price 149" + "y" * 100, 30)
    assert "price 99" in old and "price 149" in new and old.startswith("…")


def test_sparkline_marks_played_chunks() -> None:
    line = spark([10.0, 20.0, 40.0], width=3, position=2, height=1)
    assert line.plain == "▂▄█"
    assert "bold" in str(line.spans[1].style)
    assert spark([], 10, 0).plain == ""
    assert len(spark([1.0] * 100, width=10, position=0, height=2).plain.split("\n")[0]) == 10


def test_stats_count_channels_models_tokens_and_latency() -> None:
    st = stats.compute(RunModel(samples.agent_run(), flags={4: {DIVERGENCE}}))
    assert st.events == 21 and st.errors == 1
    assert st.channels["clock"] == 7 and st.channels["http"] == 5
    gpt = st.models["gpt-4o-mini-2024-07-18"]
    assert gpt.calls == 2
    assert (gpt.usage.input_tokens, gpt.usage.output_tokens) == (1713, 76)
    assert st.models["claude-sonnet-4-5"].errors == 1  # the 429
    assert stats.percentile(st.latencies["http"], 50) == 640_000_000
    assert stats.histogram(st.latencies["http"]) == [0, 0, 1, 4, 0, 0]
    assert st.flags == {ERROR: 2, DIVERGENCE: 1}
    text = text_of(stats.render(st), 140)
    assert "Events per channel" in text and "claude-sonnet-4-5-20250929" in text


def test_docs_list_every_key() -> None:
    from tui.diff_screen import DiffScreen
    from tui.main_screen import MainScreen
    from tui.modals import key_label
    from tui.stats import StatsScreen

    docs = (TUI.parent / "docs" / "tui.md").read_text()
    for binding in [*MainScreen.BINDINGS, *DiffScreen.BINDINGS, *StatsScreen.BINDINGS]:
        assert isinstance(binding, Binding)
        for key in binding.key.split(","):
            assert f"`{key_label(key)}`" in docs, (key, binding.description)
