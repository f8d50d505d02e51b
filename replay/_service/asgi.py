"""The ASGI middleware: each HTTP request's handling recorded as a run.

    app = FastAPI()
    app.add_middleware(replay.RecordingMiddleware, keep="failed")

Pure ASGI (no Starlette import), so it wraps any ASGI 3 app. Per request it
reads the body first (the run's header keeps it, with the redacted headers,
so the request can be sent again), records the handling under a
:class:`~replay._service.recorder.Recorder`, and stores the run with the
route template (Starlette/FastAPI set ``scope["route"]``, Litestar
``scope["path_template"]``, any app ``scope["replay.route"]``), method, HTTP
status and request id (the ``x-request-id`` header, else the run id). A 5xx
answer, an exception, ``replay.flag()`` or an answer the app left unfinished
(a cut-off body, the client still connected) make the run failed. Lifespan and
websocket traffic pass through unrecorded; the app's lifespan shutdown closes
the recorder (the patches it held since its first run are put back).

To be replayed, the app must be importable by name: give ``app_ref="module:attr"``
or let the middleware find the object among loaded modules once (the app, or
the object whose ``asgi_app`` it wraps, as Quart's ``app.asgi_app =
RecordingMiddleware(app.asgi_app)``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from replay._capture.callsite import add_boundary
from replay._capture.rebind import is_class
from replay._capture.session import current
from replay._cassette.redact import Redactor
from replay._runs.entry import asgi_entry
from replay._runs.store import Store
from replay._service.recorder import Keep, Recorder

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SKIP = frozenset({"replay", "starlette", "fastapi", "uvicorn", "anyio", "asyncio", "pydantic",
                   "httpx", "openai", "anthropic", "flask", "werkzeug", "waitress", "gunicorn",
                   "django"})
"""Packages never searched for the app (whole top-level names: the user's own
``fastapi_app`` or ``flask_app`` module is searched); private modules neither."""


def find_ref(target: Any, via: str | None = None) -> str | None:
    """``module:attr`` of a loaded module's global that is ``target`` (an importable
    module first, a script's ``__main__`` last), or with ``via``, one whose attribute
    ``via`` is ``target`` (Flask's ``app.wsgi_app = Middleware(app.wsgi_app)``: the
    app is what a server calls); None when there is none."""
    found: str | None = None
    for name, module in list(sys.modules.items()):
        if module is None or name.startswith("_") or name.partition(".")[0] in _SKIP:
            continue
        try:
            items = list(vars(module).items())
        except TypeError:
            continue
        for attr, value in items:
            if value is target or (via is not None and _holds(value, via, target)):
                if name != "__main__":
                    return f"{name}:{attr}"
                found = f"{name}:{attr}"
    return found


def _holds(value: Any, attr: str, target: Any) -> bool:
    """``value``'s own instance attribute ``attr`` is ``target`` (no descriptor or
    ``__getattr__`` of the value's class runs)."""
    if is_class(value):
        return False
    try:
        own = vars(value)
    except Exception:  # a proxy (werkzeug's LocalProxy) may raise anything
        return False
    return own.get(attr) is target


class RecordingMiddleware:
    """Records each HTTP request an ASGI app handles as a run in a store.

    Options as :func:`replay.recorded`: ``store``, ``keep``, ``sample``,
    ``tags``, ``redact``, ``max_runs``, ``max_bytes``; ``app``: the importable
    name of the application (found by looking when not given);
    ``request_id_header``: where the request id comes from.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *,
                 store: str | Store | None = None, keep: Keep | str = Keep.ALL,
                 sample: float | None = None, tags: Iterable[str] = (),
                 redact: bool | Redactor = True, max_runs: int | None = None,
                 max_bytes: int | None = None, app_ref: str | None = None,
                 request_id_header: str = "x-request-id") -> None:
        self.app = app
        self.recorder = Recorder(store, keep=keep, sample=sample, tags=tags, redact=redact,
                                 max_runs=max_runs, max_bytes=max_bytes, service=True)
        """Begins and ends the runs."""
        self.app_ref = app_ref
        self._looked = app_ref is not None
        self._id_header = request_id_header.lower().encode("latin-1")

    def _ref(self, scope: Scope) -> str | None:
        if not self._looked:
            self._looked = True
            # Quart's way is ``app.asgi_app = RecordingMiddleware(app.asgi_app)``: the
            # app holding the middleware is what a server calls
            self.app_ref = (find_ref(scope.get("app", self)) or find_ref(self)
                            or find_ref(self, via="asgi_app"))
        return self.app_ref

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind != "http" or current() is not None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        replayed = False
        gone = False  # the client disconnected

        async def receive_again() -> Message:
            nonlocal replayed, gone
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message = await receive()
            if message.get("type") == "http.disconnect":
                gone = True
            return message

        method = str(scope.get("method", "GET"))
        path = str(scope.get("path", "/"))
        request_id: str | None = None
        wanted = self._id_header
        for k, v in scope.get("headers") or ():
            if len(k) == len(wanted) and k.lower() == wanted:
                request_id = bytes(v).decode("latin-1")
                break
        attrs = {"method": method, "path": path}
        active = self.recorder.begin(f"{method} {path}",
                                     asgi_entry(self._ref(scope), scope, body), attrs)
        if active is None:
            await self.app(scope, receive_again, send)
            return
        status: int | None = None
        complete = False

        async def send_status(message: Message) -> None:
            nonlocal status, complete
            kind = message.get("type")
            if kind == "http.response.start":
                status = int(message.get("status", 0))
            elif (kind in ("http.response.body", "http.response.zerocopysend")
                  and not message.get("more_body")) or kind == "http.response.pathsend":
                complete = True
            await send(message)

        error: BaseException | None = None
        try:
            await self.app(scope, receive_again, send_status)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if error is None and status is not None and not complete and not gone:
                # the app returned with its answer unfinished, the client still there
                # (Sanic, when a streamed body raised: it logs the error and
                # returns): the client got a cut-off body, a failure the app swallowed
                active.state.flags.append(CUT_OFF)
            route = route_of(scope)
            done = {"request_id": request_id or active.state.run_id}
            if route is not None:
                done["route"] = route
            commit = self.recorder.end(
                active, error, http_status=status if status is not None else
                (500 if error is not None else None),
                entry=f"{method} {route}" if route is not None else None, attrs=done)
            if commit is not None:
                await asyncio.get_running_loop().run_in_executor(None, commit)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the lifespan through; once the server is shutting down, close the
        recorder (its runs have ended: servers finish requests before shutdown)."""
        async def send_closing(message: Message) -> None:
            if str(message.get("type", "")).startswith("lifespan.shutdown."):
                self.recorder.close()
            await send(message)
        await self.app(scope, receive, send_closing)


CUT_OFF = "the answer was cut off: the app returned before its body was complete"
"""The flag of a run whose app started an answer and returned without finishing it."""


def route_of(scope: Scope) -> str | None:
    """The route template the app matched, as its framework or the app left it in
    the scope: ``scope["replay.route"]`` set by the app (Django's
    ``request.resolver_match.route``, Falcon's ``req.uri_template``), Starlette's
    and FastAPI's ``scope["route"].path``, Litestar's ``scope["path_template"]``;
    None when there is none (no route matched, or a framework that says nothing)."""
    named = scope.get("replay.route")
    if isinstance(named, str):
        return named
    route = getattr(scope.get("route"), "path", None)
    if isinstance(route, str):
        return route
    template = scope.get("path_template")
    return template if isinstance(template, str) else None


add_boundary(RecordingMiddleware.__call__.__code__)  # the server above it is not the run's


async def _read_body(receive: Receive) -> bytes:
    """The request body, read whole before the app sees it (up to a disconnect)."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return b"".join(parts)
        parts.append(bytes(message.get("body") or b""))
        if not message.get("more_body"):
            return b"".join(parts)
