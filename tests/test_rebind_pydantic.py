"""Pydantic factories compiled before the session are recorded and replayed.

``Field(default_factory=datetime.now)`` on a model defined at import is held by
the model's compiled validator (pydantic-core), so patching ``datetime.now`` did
not reach it: those reads were live, and a replay printed other timestamps and
ids than the recording. Covered: a model, its subclass, a model nested in
another (whose validator embeds the inner schema), a list of them, a model made
by ``create_model`` inside a function, a pydantic dataclass, ``model_construct``
(which calls ``FieldInfo.default_factory`` in Python) and a model with forward
references. After the session every model has its very own validator back.
Fresh interpreters, real pydantic.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = str(pathlib.Path(__file__).resolve().parents[1])

AGENT = '''
from __future__ import annotations

import datetime, functools, sys, time, uuid
import pydantic
from pydantic import BaseModel, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass
import replay


class Message(BaseModel):
    at: datetime.datetime = Field(default_factory=datetime.datetime.now)
    t: float = Field(default_factory=time.time)
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    day: datetime.date = Field(default_factory=datetime.date.today)
    utc: datetime.datetime = Field(  # a partial of a patched original
        default_factory=functools.partial(datetime.datetime.now, datetime.timezone.utc))
    text: str = ""


class Tagged(Message):
    tag: str = "x"


class Thread(BaseModel):
    head: Message = Field(default_factory=Message)
    items: list[Message] = []
    parent: Thread | None = None  # a forward reference, resolved at class creation


@pydantic_dataclass
class Step:
    at: float = Field(default_factory=time.time)


def make_dynamic() -> type[BaseModel]:
    return pydantic.create_model("Dyn", u=(uuid.UUID, Field(default_factory=uuid.uuid4)))


Dyn = make_dynamic()
validators = {c: c.__pydantic_validator__ for c in (Message, Tagged, Thread, Step, Dyn)}

mode, path = sys.argv[1:]
with (replay.record(path) if mode == "record" else replay.play(path)):
    thread = Thread(items=[{"text": "a"}], parent={})
    print(Message(text="hi"), Tagged(), thread, Step(), Dyn(), Message.model_construct(),
          sep="\\n")
# after the session each class has its own validator back, factories the originals
print(all(c.__pydantic_validator__ is v for c, v in validators.items()),
      Message.model_fields["t"].default_factory is time.time,
      type(Message().at) is datetime.datetime, Thread(parent={}).parent.head.t > 1e9)
'''

# one read of each kind per factory call, by the model it belongs to
READS = {"datetime.now": 12, "time.time": 7, "uuid4": 7, "date.today": 6}


def _run(tmp: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(tmp / "agent.py"), *args], capture_output=True,
                          text=True, cwd=tmp, timeout=120,
                          env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"})


def test_pydantic_factories_compiled_before_the_session_are_recorded(
        tmp_path: pathlib.Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    cassette = tmp_path / "run.replay"
    rec = _run(tmp_path, "record", str(cassette))
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout.splitlines()[-1] == "True True True True"
    check = ("import collections, json, replay; print(json.dumps(collections.Counter("
             "str(e.request.get('fn')) for e in "
             f"replay.read_cassette({str(cassette)!r}).events)))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == READS
    for _ in range(2):
        play = _run(tmp_path, "play", str(cassette))
        assert play.returncode == 0, play.stderr
        assert play.stdout == rec.stdout  # the same timestamps and ids, to the microsecond
