"""The short path of a recorded tool call (replay/_capture/toolpath.py).

It must write what the long path writes (the same record bytes), redact what
redaction would change (it declines, and the long path does it), have the
event on file when the call returns, and replay the same results.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

import replay
from replay._capture.session import current
from replay._capture.tasks import get_current
from replay._capture.values import checker, leaf_checker, strict
from replay._cassette import index as ix
from replay._cassette.codec import CALL_INLINE_SIZE
from replay._cassette.errors import UnrecordableValueError
from replay._cassette.events import CallSite, Event
from replay._cassette.layout import Header
from replay._cassette.reader import read_cassette
from replay._cassette.redact import DEFAULT, Redactor
from replay._cassette.writer import CallShape, CassetteWriter
from tests._secret_samples import shape_samples

SITE = CallSite("/src/agent.py", 12, "run")


class _Sub(dict):  # type: ignore[type-arg]
    """A dict subclass: strict() takes only plain dicts."""
TEXT = "The order shipped on Tuesday; tracking says it is out for delivery. " * 7


def _pack(*values: Any) -> bytes:
    return b"".join(msgpack.packb(v, use_bin_type=True) for v in values)


# -- redaction's shortcut ----------------------------------------------------------------

def _dirty_values() -> list[Any]:
    """Values redaction changes: a secret of every shape in every place one can be."""
    out: list[Any] = []
    for secret in shape_samples().values():
        out += [secret, {"text": f"see {secret} here"}, [1, {"a": [secret]}],
                secret.encode(), {"b": secret.encode()}, ("x", secret), {secret: 1}]
    out += [{"password": "hunter22"}, {"nested": {"api_key": "abcdefgh"}}, ["Authorization", "x"],
            [["X-Custom-Auth-Token", "abc"]], {"url": "https://h/x?token=abcdef1234"},
            {"Cookie": ["a=1", "b=2"]}, {"cfg": {"client_secret": ["zzzzzzzz"]}},
            "client_secret=abcdefgh", {"t": "password: abcdefgh"},
            {"args": {"h": ["Authorization", "Basic abcdefgh"]}},
            {"args": {"deep": {"password": "abcdefgh"}}}, {"args": {"x": {"Cookie": "a"}}}]
    return out


def _clean_values() -> list[Any]:
    return [{"args": {"i": 5}}, {"order": 5, "status": "shipped", "text": TEXT},
            ["a", 1, 2.5, None, True, b"bytes"], ("tuple", [1, 2]), "plain text", 42, None,
            {"usage": {"count": 3}, "id": "x", "name": ["a", "b"]}]


@pytest.mark.parametrize("value", _dirty_values())
def test_clean_says_no_wherever_redaction_changes_something(value: Any) -> None:
    assert DEFAULT.value(value) != value
    assert not DEFAULT.clean(_pack(value), value)


@pytest.mark.parametrize("value", _clean_values())
def test_clean_says_yes_for_values_redaction_leaves_alone(value: Any) -> None:
    assert DEFAULT.value(value) == value
    assert DEFAULT.clean(_pack(value), value)


def test_clean_says_no_at_an_anchor_even_where_redaction_finds_nothing() -> None:
    value = {"max_tokens": 10, "author": "x"}  # "ken", "uth": anchors of sensitive names
    assert DEFAULT.value(value) is value
    assert not DEFAULT.clean(_pack(value), value)  # then the writer asks value()


def test_clean_declines_with_user_patterns_and_odd_types() -> None:
    mine = Redactor.with_patterns([r"order-\d+"])
    assert not mine.clean(_pack("nothing"), "nothing")
    assert not DEFAULT.clean(_pack({"a": 1}), {1: "a"})  # a key that is not a str
    assert not DEFAULT.clean(b"", {"a": {1, 2}})  # a type value() treats otherwise


# -- the result check -------------------------------------------------------------------

@pytest.mark.parametrize("value", [{"a": 1, "b": [1, (2, "x")], "c": {"d": None}}, "s", 1.5,
                                   [b"x", True], (1, 2), {"n": {"m": [{}]}}])
def test_checker_gives_back_what_strict_accepts_without_copying(value: Any) -> None:
    assert checker("the result")(value) is value
    assert strict(value, "the result") == value


@pytest.mark.parametrize("value", [{1: "a"}, {"a": {1, 2}}, [object()], {"a": [{"b": {2: 3}}]},
                                   _Sub(), {"a": _Sub()}])
def test_checker_refuses_what_strict_refuses(value: Any) -> None:
    with pytest.raises(UnrecordableValueError):
        strict(value, "the result")
    with pytest.raises(UnrecordableValueError):
        checker("the result")(value)
    with pytest.raises(UnrecordableValueError):
        leaf_checker("the result")(value)


@pytest.mark.parametrize(("value", "leafy"), [
    ("s", True), (1, True), (1.5, True), (None, True), (b"x", True), (True, True), ({}, True),
    ({"a": 1, "b": "x", "c": None, "d": 2.5, "e": b"y", "f": False}, True),
    ({"a": [1]}, False), ({"a": {"b": 1}}, False), ({"a": (1,)}, False), ([1, 2], False),
    ((1, "x"), False), ([{"a": 1}], False)])
def test_leaf_checker_says_leaf_or_flat_map_and_accepts_what_strict_does(
        value: Any, leafy: bool) -> None:
    """What the wrapper tells write_call (its ``leafy``): exactly the leaves and the maps
    of str keys to leaves; every other value strict takes is accepted, and False."""
    assert leaf_checker("the result")(value) is leafy
    assert checker("the result")(value) is value


# -- the writer: the same record as write() ----------------------------------------------

CALLS: list[tuple[Any, Any, int | None, dict[str, Any]]] = [
    ({"args": {"i": 1}}, {"order": 1, "text": TEXT}, None, {"safe": False}),
    ({"args": {"q": "x"}}, None, None, {"safe": True}),
    ({"args": {}}, [1, (2, 3), {"k": [b"\x00\x01", 2.5]}], 7, {"safe": False}),
    ({"args": {"n": 2**70}}, "é" * 300, None, {}),
    ({"args": {"big": -(2**63)}}, {"nested": [[[[]]]]}, 0, {"safe": True}),
    ({"args": {"max_tokens": 5}}, {"author": "x", "usage": {"total_tokens": 9}}, None, {}),
    ({"args": {"password": "hunter22"}}, {"text": "key " + shape_samples()["openai-key"]},
     None, {"safe": True}),
    ({"args": {}}, ["Authorization", "Basic abcdefgh"], 3, {"safe": False}),
]


def test_write_call_writes_the_bytes_write_would(tmp_path: Path) -> None:
    header = Header.new()
    short = CassetteWriter(tmp_path / "short.replay", header, transform=DEFAULT)
    long = CassetteWriter(tmp_path / "long.replay", header, transform=DEFAULT)
    for seq, (request, response, parent, meta) in enumerate(CALLS):
        shape = short.call_shape("tool:look", "main/1", SITE, meta)
        assert shape is not None
        assert short.write_call(shape, seq, 1000 * seq, 50 + seq, parent, request, response)
        long.write(Event(seq, "tool:look", request, response, None, 1000 * seq, 50 + seq,
                         "main/1", SITE, (), parent, meta))
    assert short.calls_written == len(CALLS)
    short.close()
    long.close()
    assert (tmp_path / "short.replay").read_bytes() == (tmp_path / "long.replay").read_bytes()
    events = read_cassette(tmp_path / "short.replay").events
    assert [(e.request, e.response, e.parent) for e in events] == \
        [(DEFAULT.value(r), DEFAULT.value(v), p) for r, v, p, _ in CALLS]
    assert events[-2].request == {"args": {"password": "[REDACTED]"}}


def _flat_calls() -> list[tuple[dict[str, Any], Any]]:
    """Flat requests (the wrapper's binding shortcut) and responses, a secret of every
    shape in every place one can be, sensitive names as parameters and result keys."""
    out: list[tuple[dict[str, Any], Any]] = [
        ({"args": {"i": 1}}, {"order": 1, "text": TEXT}), ({"args": {"q": "x"}}, None),
        ({"args": {"password": "hunter22"}}, 1), ({"args": {"Cookie": "a=1"}}, "x"),
        ({"args": {"i": 2}}, {"api_key": "abcdefgh"}), ({"args": {"i": 3}}, {"n": {"token": "x"}}),
        ({"args": {"u": "https://admin:pw123456@db.example/x"}}, None),
        ({"args": {"u": "https://h/x?token=abcdef1234"}}, None)]
    for secret in shape_samples().values():
        out += [({"args": {"s": secret}}, None), ({"args": {"s": b"b " + secret.encode()}}, 1),
                ({"args": {"i": 4}}, secret), ({"args": {"i": 5}}, {"t": f"see {secret}"}),
                ({"args": {"i": 6}}, {secret: 1}), ({"args": {"i": 7}}, [{"a": secret}])]
    return out


def test_write_call_of_a_flat_request_writes_the_bytes_write_would(tmp_path: Path) -> None:
    header = Header.new()
    short = CassetteWriter(tmp_path / "short.replay", header, transform=DEFAULT)
    long = CassetteWriter(tmp_path / "long.replay", header, transform=DEFAULT)
    shape = short.call_shape("tool:look", "main/1", SITE, {"safe": False})
    assert shape is not None
    calls = _flat_calls() * 2  # the second time round, the key verdicts are cached
    for seq, (request, response) in enumerate(calls):
        leafy = leaf_checker("r")(response)  # as the wrapper says it
        assert short.write_call(shape, seq, seq, 5, None, request, response, True, leafy)
        long.write(Event(seq, "tool:look", request, response, None, seq, 5, "main/1", SITE, (),
                         None, {"safe": False}))
    short.close()
    long.close()
    raw = (tmp_path / "short.replay").read_bytes()
    assert raw == (tmp_path / "long.replay").read_bytes()
    for secret in [*shape_samples().values(), "hunter22", "abcdefgh", "pw123456", "abcdef1234"]:
        assert secret.encode() not in raw, secret


def test_write_call_through_the_map_and_past_index_batches_writes_what_write_would(
        tmp_path: Path) -> None:
    """Thousands of calls: the journal gets mapped and grows, ``ix`` records are cut
    after full batches, values vary in size, parents and redaction come and go."""
    header = Header.new()
    short = CassetteWriter(tmp_path / "short.replay", header, transform=DEFAULT)
    long = CassetteWriter(tmp_path / "long.replay", header, transform=DEFAULT)
    secret = shape_samples()["github-token"]
    shapes = [short.call_shape(f"tool:t{k}", f"main/{k}", SITE, {"safe": k == 1})
              for k in range(3)]
    n = ix.BATCH + 700
    for seq in range(n):
        k = seq % 3
        request = {"args": {"i": seq, "q": "x" * (seq % 40)}}
        response: Any = (None if seq % 11 == 0 else f"token {secret}" if seq % 97 == 0
                         else {"n": seq, "text": TEXT[: seq % 400]})
        parent = seq - 1 if seq % 5 == 0 and seq else None
        shape = shapes[k]
        assert shape is not None
        assert short.write_call(shape, seq, 1000 * seq, 7 + seq, parent, request, response)
        long.write(Event(seq, f"tool:t{k}", request, response, None, 1000 * seq, 7 + seq,
                         f"main/{k}", SITE, (), parent, {"safe": k == 1}))
    assert short.mapped and short.calls_written == n
    short.close()
    long.close()
    raw = (tmp_path / "short.replay").read_bytes()
    assert raw == (tmp_path / "long.replay").read_bytes()
    assert secret.encode() not in raw
    assert len(read_cassette(tmp_path / "short.replay").events) == n


def test_write_call_declines_what_needs_blobs(tmp_path: Path) -> None:
    w = CassetteWriter(tmp_path / "c.replay", Header.new(), transform=DEFAULT)
    shape = w.call_shape("tool:look", "main", SITE, {"safe": False})
    assert shape is not None
    assert not w.write_call(shape, 0, 0, 1, None, {"args": {}}, "x" * CALL_INLINE_SIZE)
    assert not w.write_call(shape, 0, 0, 1, None, {"args": {}}, {1, 2})  # not packable
    assert w.calls_written == 0
    assert w.call_shape("http", "main", SITE, {}) is None  # only tool and capture channels
    w.close()
    plain = CassetteWriter(tmp_path / "p.replay", Header.new(), transform=lambda e: e)
    assert plain.call_shape("tool:look", "main", SITE, {}) is None  # a transform it cannot see
    plain.close()


# -- the tool path, end to end -------------------------------------------------------------

@replay.tool
def lookup(i: int, suffix: str = "") -> dict[str, Any]:
    """Reads the clock inside (a nested event) and returns ~500 bytes."""
    return {"order": i, "at": time.time() > 0, "text": f"{i}: {TEXT}{suffix}"[:500]}


@replay.tool
def leak(i: int) -> dict[str, Any]:
    return {"i": i, "note": f"key {shape_samples()['anthropic-key']}"}


@replay.tool
def explode(i: int) -> None:
    raise ValueError(f"refused {i}")


@replay.tool
async def alookup(i: int) -> list[Any]:
    await asyncio.sleep(0)
    return [i, (i, "x"), TEXT]


def _agent() -> list[Any]:
    out: list[Any] = [lookup(i) for i in range(3)]
    out.append(lookup(3, suffix="!"))
    out.append(lookup(i=4))
    out.append(leak(1))
    try:
        explode(2)
    except ValueError as exc:
        out.append(str(exc))
    out.append(asyncio.run(_async_agent()))
    return out


async def _async_agent() -> list[Any]:
    return [await alookup(i) for i in range(2)]


def test_tool_calls_take_the_short_path_and_replay_the_same(tmp_path: Path) -> None:
    path = tmp_path / "run.replay"
    with replay.record(path):
        session = current()
        assert session is not None
        writer = session._values
        assert writer is not None
        live = _agent()
        assert writer.calls_written == 8  # lookup x5, leak, alookup x2 (explode: long path)
        journal = Path(writer.partial_path).read_bytes()
        assert b"3: The order shipped" in journal  # on file before the call returned
        written, live_events = session.events_written, session.live_events
    events = replay.load(path).events
    assert written == live_events == len(events)
    tools = [e for e in events if e.channel.startswith("tool:")]
    assert len(tools) == 9
    looked = [e for e in tools if e.channel == "tool:lookup"]
    assert [e.request for e in looked] == [
        {"args": {"i": 0}}, {"args": {"i": 1}}, {"args": {"i": 2}},
        {"args": {"i": 3, "suffix": "!"}}, {"args": {"i": 4}}]
    clocks = [e for e in events if e.channel == "clock"]
    assert {e.parent for e in clocks} == {e.seq for e in looked}  # nested in their tool
    assert {(e.site.file, e.site.function) for e in looked if e.site} == {
        (__file__, "<listcomp>"), (__file__, "_agent")}
    leaked = next(e for e in tools if e.channel == "tool:leak")
    assert shape_samples()["anthropic-key"] not in str(leaked.response)
    assert next(e for e in tools if e.channel == "tool:explode").error is not None
    raw = path.read_bytes()
    assert shape_samples()["anthropic-key"].encode() not in raw
    for _ in range(2):
        with replay.play(path):
            again = _agent()
        assert repr(again) == repr([_redacted(x) for x in live])


def _redacted(x: Any) -> Any:
    return DEFAULT.value(x) if isinstance(x, dict) and "note" in x else x


@replay.tool
def two(a: Any, b: Any = 2) -> int:
    return 1


@replay.tool
def star(*a: Any) -> int:
    return 1


ARGS: list[tuple[Any, ...]] = [(1,), (1, "x"), (True, None), (b"x", 2), (1.5,),
                               (float("nan"), 1), ([1, (2,)],), ({"k": {3}},), (2**70, -1)]


def test_the_wrappers_binding_shortcut_records_what_bind_gives(tmp_path: Path) -> None:
    from replay._capture.tools import _binder
    path = tmp_path / "run.replay"
    with replay.record(path):
        for args in ARGS:
            two(*args)
            star(*args)
        session = current()
        assert session is not None and session._values is not None
        assert session._values.calls_written == 2 * len(ARGS)  # all by the short path
    got = [e.request for e in replay.load(path).events]
    want = [bind(*args) for args in ARGS
            for bind in (_binder(two.__wrapped__)[0], _binder(star.__wrapped__)[0])]
    assert got == want
    assert got[:4] == [{"args": {"a": 1}}, {"args": {"a": [1]}}, {"args": {"a": 1, "b": "x"}},
                       {"args": {"a": [1, "x"]}}]


_KEY = shape_samples()["openai-key"]
ANSWERS: list[Any] = [{"order": 1, "text": TEXT}, {"api_key": "abcdefgh", "n": 1},
                      {_KEY: 1}, {"order": 2, "text": f"see {_KEY}"}, f"key {_KEY}", "plain",
                      {"order": 3, "password": None}, 7, {"order": 4, "text": "x=1?y"}]


@replay.tool
def answer(i: int) -> Any:
    return ANSWERS[i % len(ANSWERS)]


@replay.tool
def secretive(password: int) -> Any:
    return {"order": password}


def test_results_whose_keys_redaction_knows_still_redact_by_the_scan(tmp_path: Path) -> None:
    """The wrapper skips the key checks of a flat result map whose keys the redactor has
    cleared (CallShape.clear, given only when the tool's parameter names are clear too);
    every secret in a value or a key, every sensitive key, is still redacted, twice
    round (the keys' verdicts cached the second time)."""
    path = tmp_path / "run.replay"
    calls = [(answer, i) for i in range(2 * len(ANSWERS))] + [(secretive, 5), (secretive, 6)]
    with replay.record(path):
        session = current()
        assert session is not None and session._values is not None
        for tool, i in calls:
            tool(i)
        state = get_current()
        assert state is not None
        shapes = {hit[1].chan: hit[1].clear for hit in state.reads.values()
                  if isinstance(hit[1], CallShape)}
    events = [e for e in replay.load(path).events if e.channel.startswith("tool:")]
    assert [(e.request, e.response) for e in events] == [
        (DEFAULT.value({"args": {tool.__wrapped__.__code__.co_varnames[0]: i}}),
         DEFAULT.value(tool.__wrapped__(i))) for tool, i in calls]
    raw = path.read_bytes()
    assert _KEY.encode() not in raw and b"abcdefgh" not in raw
    assert sorted(clear is None for clear in shapes.values()) == [False, True]


CHILD = """
import sys, time
sys.path.insert(0, sys.argv[2])
import replay
from tests.test_toolpath import lookup
with replay.record(sys.argv[1]):
    lookup(41)
    print("called", flush=True)
    time.sleep(60)
"""


def test_sigkill_after_a_tool_call_returns_keeps_its_event(tmp_path: Path) -> None:
    path = tmp_path / "run.replay"
    root = str(Path(__file__).resolve().parent.parent)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), root],
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"called\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    partial = path.with_name(path.name + ".partial")
    cassette = read_cassette(partial, strict=False)
    assert cassette.damage is not None  # no end record: reported as a torn run
    assert [e.request for e in cassette.events if e.channel == "tool:lookup"] == \
        [{"args": {"i": 41}}]
