"""Valid files never crash a reader (issue 12): every value the writer accepts,
recorded through the public API, is shown, diffed and drawn without an error.

A tool returning ``2**32000`` recorded fine, then ``replay show`` died
printing it (Python refuses to print an int of over 4300 digits) and
``replay diff`` hashing it. Values come from hypothesis: nested dicts, lists
and tuples of str, bytes, ints of any size the format holds (up to 32,767
bits), floats (nan and infinities too), None and bools; a tool's arguments
may also hold what the recorder turns into JSON-like values (datetimes, sets).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import pathlib
import sys
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from rich.console import Console, RenderableType

import replay
from replay._cassette.jsonable import int_text, jsonable, short_repr
from replay._cli import main
from tui.app import _shown
from tui.chat import conversation
from tui.conversation import render_conversation
from tui.detail import detail
from tui.diff_screen import pair_detail
from tui.model import RunModel
from tui.render import line_summary, one_line, pretty
from tui.stats import compute, render

BIG = 2**32767 - 1  # the largest magnitude a cassette holds (ext 3: 4096 bytes)

ints = st.one_of(  # (strategies built from huge ints could not even print themselves)
    st.integers(), st.integers(min_value=-BIG, max_value=BIG),
    st.builds(lambda bits, sign, low: sign * (2**bits - low), st.sampled_from([64, 32000, 32767]),
              st.sampled_from([1, -1]), st.integers(0, 1)))
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(), st.text(), st.binary())
results = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
"""What a tool may return."""
arguments = st.recursive(
    st.one_of(scalars, st.datetimes(), st.dates(), st.frozensets(st.integers(), max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
"""What a tool may be called with (the recorder makes it JSON-like)."""


@replay.tool
def answer(question: Any, value: Any) -> Any:
    return value


def record(path: pathlib.Path, question: Any, value: Any) -> None:
    with replay.record(path):
        answer(question, value)
        answer("again", [value, 1])


def run_cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    assert code in (0, 1), (argv, code, err.getvalue())
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return code, out.getvalue()


def strict_json(text: str) -> Any:
    """JSON as RFC 8259 has it: no NaN or Infinity tokens."""
    def refuse(token: str) -> Any:
        raise AssertionError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def text_of(renderable: RenderableType) -> str:
    console = Console(width=100, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def check_every_reader(left: pathlib.Path, right: pathlib.Path) -> None:
    """Show (text and JSON), diff (text and JSON, same and different runs), and
    the TUI's model and renderers, as ``replay tui`` builds them."""
    code, text = run_cli("show", str(left))
    assert code == 0 and text.count("\n") == 2, text
    strict_json(run_cli("show", "--json", str(left))[1])
    for other in (left, right):
        code, _ = run_cli("diff", str(left), str(other))
        strict_json(run_cli("diff", "--json", str(left), str(other))[1])
    shown = _shown(replay.read_cassette(left, strict=False))
    model = RunModel(shown.events)
    assert 1 in model.search("again")
    compute_and_render = render(compute(model))
    text_of(compute_and_render)
    for i, ev in enumerate(model.events):
        line_summary(ev, 60)
        one_line(ev.response)
        pretty(ev.request)
        text_of(detail(ev, model.flags_of(i), model.children[ev.seq]))
        conv = conversation(ev)
        if conv is not None:
            text_of(render_conversation(conv, ev))
    run_diff = replay.diff(shown, _shown(replay.read_cassette(right, strict=False)))
    for k, pair in enumerate(run_diff.pairs):
        text_of(pair_detail(pair, k == run_diff.first_index))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=arguments, value=results, other=results)
def test_every_recordable_value_is_read_by_every_command(question: Any, value: Any,
                                                         other: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        left, right = pathlib.Path(tmp, "a.replay"), pathlib.Path(tmp, "b.replay")
        try:
            record(left, question, value)
            record(right, question, other)
        except replay.UnrecordableValueError:
            reject()  # beyond what the format holds (tuples 9 deep): refused when recorded
        check_every_reader(left, right)


HUGE = [2**32000, -(2**32000), BIG, 10**5000 + 7]


@pytest.mark.parametrize(("question", "value"), [
    *(("q", v) for v in HUGE), ("q", [math.nan, math.inf, -math.inf]), ("q", {"n": HUGE}),
    ("q", (HUGE[0], (float("nan"),))), (HUGE[0], None),
    ({"when": datetime.datetime(2024, 1, 1), "ids": frozenset({2**100})}, "ok")],
    ids=["2^32000", "-2^32000", "2^32767-1", "10^5000+7", "nan-inf", "in a map",
         "in tuples", "as an argument", "datetime and set arguments"])
def test_values_that_crashed_readers(question: Any, value: Any, tmp_path: pathlib.Path) -> None:
    """The issue's cases, explicitly: huge ints in show and diff, NaN in --json."""
    record(tmp_path / "a.replay", question, value)
    record(tmp_path / "b.replay", question, [value])
    check_every_reader(tmp_path / "a.replay", tmp_path / "b.replay")


def test_huge_ints_print_in_full() -> None:
    doc = strict_json(run_json_of(2**32000))
    first, second = doc["events"]
    assert first["response"] == {"$int": str_of(2**32000)}
    assert second["response"] == [{"$int": str_of(2**32000)}, 1]


def run_json_of(value: Any) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp, "a.replay")
        with replay.record(path):
            answer("n", value)
            answer("m", [value, 1])
        return run_cli("show", "--json", str(path))[1]


def str_of(n: int) -> str:
    """The decimal digits of ``n``, past the interpreter's 4300-digit limit."""
    digits = []
    while n:
        n, r = divmod(n, 10**100)
        digits.append(f"{r:0100d}")
    return "".join(reversed(digits)).lstrip("0") or "0"


def unlimited_repr(value: Any) -> str:
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return repr(value)
    finally:
        sys.set_int_max_str_digits(old)


@settings(max_examples=200, deadline=None)
@given(value=results, limit=st.integers(0, 300))
def test_short_repr_is_repr_cut_short(value: Any, limit: int) -> None:
    """What ``replay show`` prints of a value is unchanged, and now ints of any size."""
    assert short_repr(value, limit) == unlimited_repr(value)[:limit]


def test_short_repr_quotes_a_long_string_as_repr_does() -> None:
    """repr picks its quotes from the whole string, not from the part shown."""
    for text in ["a'b" + "x" * 50 + '"', "x" * 50 + "'", "'" + "x" * 50 + '"', "x" * 60,
                 "'" * 60, "\n\\'" * 20]:
        for value in (text, text.encode(), [text], {"k": (text,)}):
            for limit in range(70):
                assert short_repr(value, limit) == repr(value)[:limit], (value, limit)


def test_int_text_and_json_of_huge_ints() -> None:
    for n in (0, -1, 10**4299, 10**4300, -(10**4300) - 1, 2**32767 - 1, -(2**32767) + 1):
        assert int_text(n) == unlimited_repr(n)
    assert jsonable([2**64, 2**32000, math.nan, -math.inf, {1: b"x", (1, 2): None}]) == [
        2**64, {"$int": int_text(2**32000)}, {"$float": "nan"}, {"$float": "-inf"},
        {"1": {"$text": "x"}, "(1, 2)": None}]
    text, _ = pretty({"n": 2**32000})
    assert int_text(2**32000) in text
