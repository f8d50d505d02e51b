"""The child process of ``replay play RUN`` with no program: the run's entry point
called again under a replay (see :mod:`replay._runs.entry`)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from replay._cassette import read_header
from replay._cassette.errors import DivergenceError
from replay._cassette.jsonable import jsonable
from replay._cassette.redact import DEFAULT
from replay._runs.api import Run
from replay._runs.bootstrap import write_result
from replay._runs.entry import Response, acall, call, entry_of, load
from replay._runs.lifespan import serving

CHILD_CODE = "from replay._runs.entry_child import main; main()"
"""``python -c`` code of the child ``replay play RUN`` starts: ``main``."""


def main(argv: list[str] | None = None) -> None:
    """Child side of ``replay play RUN`` with no program: load the entry point (its
    imports run before the session, as they did when it was recorded), replay the
    call under the run the JSON spec in ``argv[0]`` describes, print what it
    returned as JSON (redacted), and write the outcome to the spec's result file.
    An exception the entry raises ends the process as it would have (exit 1)."""
    spec = json.loads((sys.argv[1:] if argv is None else argv)[0])
    path = spec["cassette"]
    entry = entry_of(read_header(path).meta, path)
    target = load(entry)
    run = Run(path, spec.get("mode", "replay"), unused=spec.get("unused", "warn"),
              allow_damaged=spec.get("allow_damaged", False),
              output=spec.get("output"))
    run.options.update(spec.get("options") or {})
    error: str | None = None
    try:
        if entry.is_async:
            async def root() -> Any:
                async with serving(entry.kind, target) as app_state, run:
                    return await acall(entry, target, app_state)
            value = asyncio.run(root())
        else:
            with run:
                value = call(entry, target)
    except DivergenceError as exc:
        error = str(exc)
        value = None
    finally:
        write_result(run, spec.get("result"), error)
    if error is not None:
        sys.exit(1)
    if isinstance(value, Response):
        sys.stderr.write(f"HTTP {value.status}\n")
        value = value.body.decode("utf-8", "replace")
    sys.stdout.write(json.dumps(jsonable(DEFAULT.value(value)), indent=1) + "\n")
