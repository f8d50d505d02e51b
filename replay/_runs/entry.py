"""Entry points: how a recorded run says what ran, and how it is run again.

A run recorded by ``@replay.recorded`` or the ASGI middleware carries
``meta["entry"]`` in its cassette header, enough to call the same code with
the same input again, with no command line:

* ``{"kind": "function", "ref": "pkg.mod:Class.method", "file": "/abs/mod.py",
  "async": bool, "args": [...], "kwargs": {...}}`` (arguments redacted like
  every header value);
* ``{"kind": "asgi", "app": "pkg.mod:app", "scope": {...}, "body": b"..."}``:
  one HTTP request, sent again to the application object;
* ``{"kind": "wsgi", ...}``: the same for a WSGI app (:mod:`replay._runs.wsgi`).

An entry that could not be stored (arguments that are not JSON-like, an app
that could not be found by name) has ``"unreplayable": "why"`` instead, and
:func:`entry_of` raises :class:`EntryError` with that reason.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from replay._capture import tasks as _tasks
from replay._capture.values import strict
from replay._cassette.errors import SessionError, UnrecordableValueError
from replay._cassette.events import Value
from replay._runs.lifespan import serving
from replay._runs.response import Response as Response  # re-exported: its old home
from replay._runs.wsgi import send_wsgi_request

ENTRY = "entry"
"""The header meta key."""

MAX_BODY = 256 * 1024
"""Largest request body an ASGI entry keeps (the header holds it)."""


class EntryError(SessionError):
    """A run cannot be re-invoked: it has no entry point, or not a usable one."""


@dataclass(frozen=True)
class Entry:
    """What a run's header says to call."""

    kind: str
    """``function``, ``asgi`` or ``wsgi``."""
    ref: str
    """``module:qualname`` of the function or the ASGI app object."""
    file: str | None = None
    """The module's file, used when ``module`` is ``__main__`` (a script)."""
    is_async: bool = False
    """The function is a coroutine function (``asgi``: always)."""
    args: tuple[Any, ...] = ()
    """Positional arguments (``function``)."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments (``function``)."""
    scope: Mapping[str, Any] = field(default_factory=dict)
    """The HTTP request's ASGI scope, JSON-like (``asgi``); its CGI variables and
    headers (``wsgi``)."""
    body: bytes = b""
    """The request body (``asgi``, ``wsgi``)."""


def ref_of(obj: Any) -> tuple[str, str | None]:
    """(``module:qualname``, source file) of a function."""
    module = getattr(obj, "__module__", None) or "__main__"
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "?")
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    return f"{module}:{qualname}", os.path.abspath(file) if file else None


def function_entry(func: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: Mapping[str, Any]) -> dict[str, Value]:
    """The header entry of a call ``func(*args, **kwargs)``."""
    ref, file = ref_of(func)
    doc: dict[str, Value] = {"kind": "function", "ref": ref, "file": file,
                             "async": inspect.iscoroutinefunction(func)}
    if "<locals>" in ref:
        doc["unreplayable"] = f"{ref} is defined inside a function: it cannot be imported"
        return doc
    try:
        doc["args"] = [strict(a, f"argument {i} of {ref}") for i, a in enumerate(args)]
        doc["kwargs"] = {str(k): strict(v, f"argument {k} of {ref}") for k, v in kwargs.items()}
    except UnrecordableValueError as exc:
        doc["unreplayable"] = str(exc).split(":", 1)[0]
    return doc


def asgi_entry(app_ref: str | None, scope: Mapping[str, Any], body: bytes) -> dict[str, Value]:
    """The header entry of one HTTP request to the app named ``app_ref``."""
    headers = [[bytes(k).decode("latin-1"), bytes(v).decode("latin-1")]
               for k, v in scope.get("headers") or ()]
    kept: dict[str, Value] = {
        "type": "http", "http_version": str(scope.get("http_version", "1.1")),
        "method": str(scope.get("method", "GET")), "scheme": str(scope.get("scheme", "http")),
        "path": str(scope.get("path", "/")), "root_path": str(scope.get("root_path", "")),
        "query_string": bytes(scope.get("query_string") or b"").decode("latin-1"),
        "headers": headers}  # type: ignore[dict-item]
    doc: dict[str, Value] = {"kind": "asgi", "ref": app_ref or "", "scope": kept, "body": body}
    if app_ref is None:
        doc["unreplayable"] = ("the ASGI app was not found by name in any module; pass "
                               "app_ref='module:attr' to the middleware")
    elif len(body) > MAX_BODY:
        doc["body"] = b""
        doc["unreplayable"] = f"the request body ({len(body)} bytes) is over {MAX_BODY}"
    return doc


def entry_of(meta: Mapping[str, Value], where: str = "this run") -> Entry:
    """The entry a header's meta describes; EntryError when there is none or it is unusable."""
    doc = meta.get(ENTRY)
    if not isinstance(doc, dict):
        raise EntryError(f"{where} has no entry point (it was not recorded by "
                         "@replay.recorded or the ASGI middleware): give the program, "
                         "e.g. replay play RUN -- python agent.py")
    why = doc.get("unreplayable")
    if why:
        raise EntryError(f"{where} cannot be re-invoked: {why if isinstance(why, str) else '?'}")
    kind, ref = doc.get("kind"), doc.get("ref")
    file = doc.get("file")
    if kind not in ("function", "asgi", "wsgi") or not isinstance(ref, str) or ":" not in ref:
        raise EntryError(f"{where} has a malformed entry point ({kind!r}, {ref!r})")
    file = file if isinstance(file, str) else None
    if kind in ("asgi", "wsgi"):
        scope, body = doc.get("scope"), doc.get("body")
        if not isinstance(scope, dict) or not isinstance(body, bytes):
            raise EntryError(f"{where} has a malformed {kind.upper()} request")
        return Entry(kind, ref, file, kind == "asgi", scope=scope, body=body)
    args, kwargs = doc.get("args"), doc.get("kwargs")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise EntryError(f"{where} has malformed entry arguments")
    return Entry("function", ref, file, bool(doc.get("async")), tuple(args), kwargs)


def load(entry: Entry) -> Any:
    """Import the object ``entry.ref`` names (a script's ``__main__`` from its file)."""
    module_name, _, qualname = entry.ref.partition(":")
    try:
        if module_name == "__main__":
            module = _load_script(entry.file)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, OSError) as exc:
        raise EntryError(f"cannot load the entry point {entry.ref}: {exc}") from None
    return obj


_LOADING: list[str] = []
"""The scripts being imported to replay an entry point of theirs (innermost last)."""


def loading_script() -> str | None:
    """The script being imported (outside any session) to replay an entry point of
    its ``__main__``, else None. A recorded entry point called meanwhile is the
    script's own top-level code running the agent live: ``@replay.recorded``
    refuses it (:class:`EntryError`)."""
    return _LOADING[-1] if _LOADING else None


def _load_script(file: str | None) -> Any:
    if not file or not os.path.isfile(file):
        raise ImportError(f"the script {file} is not there")
    name = "__replay_main__"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _LOADING.append(file)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        _LOADING.pop()
    return module


def no_running_loop() -> None:
    """EntryError when an event loop runs in this thread (an async entry needs its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise EntryError("this entry point is async and an event loop is running here: "
                     "await run.ainvoke() instead")


def call(entry: Entry, target: Any = None) -> Any:
    """Call the entry under the session active here. A coroutine runs to completion
    in a new event loop whose root task is the session's ``main`` task, as it was
    when the entry was recorded (the session began inside it). ``target``: the
    entry's object, loaded beforehand (as it was, outside the session)."""
    target = load(entry) if target is None else target
    if entry.is_async:
        no_running_loop()

        async def root() -> Any:
            state = _tasks.CURRENT.get()
            if state is not None:
                _tasks.CURRENT.set(_tasks.TaskState("main", state.session))
            async with serving(entry.kind, target) as app_state:
                return await acall(entry, target, app_state)
        return asyncio.run(root())
    if entry.kind == "wsgi":
        return send_wsgi_request(target, entry.scope, entry.body)
    return target(*entry.args, **dict(entry.kwargs))


async def acall(entry: Entry, target: Any = None,
                app_state: Mapping[str, Any] | None = None) -> Any:
    """Call the entry from async code (a sync function is called directly).
    ``app_state``: what the ASGI app's lifespan startup left for its requests
    (:func:`replay._runs.lifespan.serving`, run before the session opens)."""
    target = load(entry) if target is None else target
    if entry.kind == "asgi":
        return await send_request(target, entry.scope, entry.body, app_state)
    if entry.kind == "wsgi":  # a sync app: called here, as a server's thread would
        return send_wsgi_request(target, entry.scope, entry.body)
    result = target(*entry.args, **dict(entry.kwargs))
    if inspect.isawaitable(result):
        return await result
    return result


async def send_request(app: Any, scope: Mapping[str, Any], body: bytes,
                       app_state: Mapping[str, Any] | None = None) -> Response:
    """Send one HTTP request to an ASGI app and collect its answer (no server); the
    request's ``scope["state"]`` is a shallow copy of ``app_state``, as a server
    gives each request a copy of what the lifespan startup left."""
    full: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": scope.get("http_version", "1.1"), "method": scope.get("method", "GET"),
        "scheme": scope.get("scheme", "http"), "path": scope.get("path", "/"),
        "raw_path": str(scope.get("path", "/")).encode(), "root_path": scope.get("root_path", ""),
        "query_string": str(scope.get("query_string", "")).encode("latin-1"),
        "headers": [(str(k).encode("latin-1"), str(v).encode("latin-1"))
                    for k, v in scope.get("headers") or ()],
        "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 80),
        "state": dict(app_state or {})}
    sent = False
    status = 0
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers.extend((bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                           for k, v in message.get("headers") or ())
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body") or b""))
            if not message.get("more_body"):
                done.set()

    await app(full, receive, send)
    done.set()
    return Response(status, tuple(headers), b"".join(chunks))

