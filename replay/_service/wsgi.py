"""The WSGI middleware: each HTTP request's handling recorded as a run.

    app = Flask(__name__)
    app.wsgi_app = replay.WSGIRecordingMiddleware(app.wsgi_app, keep="failed")

    application = replay.WSGIRecordingMiddleware(get_wsgi_application())  # Django

Pure WSGI (PEP 3333, no framework import), so it wraps any WSGI app on any
server (werkzeug, waitress, gunicorn's sync and gthread workers, mod_wsgi). Per
request it reads the body first (the run's header keeps it with the CGI
variables and the redacted headers, so the request can be sent again), records
the handling under a :class:`~replay._service.recorder.Recorder`, and stores the
run with the method, path, HTTP status, request id (the ``X-Request-Id``
header, else the run id) and route template (Flask's ``url_rule``, read from
the werkzeug request the app left in the environ, or ``environ["replay.route"]``
set by the app). A 5xx answer, an exception (from the app or while its answer
is iterated) or ``replay.flag()`` make the run failed.

A WSGI answer is an iterable the server iterates after the app returned, and
closes when it is done: a streamed answer (a generator, Flask's
``stream_with_context``) runs then. So the run lasts until the server calls
``close()``: the app and every step of its answer run in one
:class:`contextvars.Context` of the request's own (the server's thread and its
context are left as they were), and the run ends in ``close()``. A kept run
is packed and stored by a worker thread, after the answer was sent.

WSGI has no shutdown event: the patches installed at the first run stay until
:meth:`WSGIRecordingMiddleware.close` (or the process exits).
"""

from __future__ import annotations

import contextvars
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from replay._capture.callsite import add_boundary
from replay._capture.session import current
from replay._cassette.redact import Redactor
from replay._runs.store import Store
from replay._runs.wsgi import wsgi_entry
from replay._service.asgi import find_ref
from replay._service.recorder import Active, Keep, Recorder

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class WSGIRecordingMiddleware:
    """Records each HTTP request a WSGI app handles as a run in a store.

    Options as :class:`replay.RecordingMiddleware`: ``store``, ``keep``,
    ``sample``, ``tags``, ``redact``, ``max_runs``, ``max_bytes``, ``app_ref``
    (the importable name of what the server calls; found by looking when not
    given, including a Flask app whose ``wsgi_app`` is this middleware) and
    ``request_id_header``.
    """

    def __init__(self, app: WSGIApp, *, store: str | Store | None = None,
                 keep: Keep | str = Keep.ALL, sample: float | None = None,
                 tags: Iterable[str] = (), redact: bool | Redactor = True,
                 max_runs: int | None = None, max_bytes: int | None = None,
                 app_ref: str | None = None, request_id_header: str = "x-request-id") -> None:
        self.app = app
        self.recorder = Recorder(store, keep=keep, sample=sample, tags=tags, redact=redact,
                                 max_runs=max_runs, max_bytes=max_bytes, service=True)
        """Begins and ends the runs."""
        self.app_ref = app_ref
        self._looked = app_ref is not None
        self._id_key = "HTTP_" + request_id_header.upper().replace("-", "_")
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _ref(self) -> str | None:
        if not self._looked:
            with self._lock:  # the first requests come in at once, on several threads
                if not self._looked:
                    self.app_ref = find_ref(self, via="wsgi_app")
                    self._looked = True
        return self.app_ref

    def _store(self, commit: Callable[[], object]) -> None:
        """Pack and store a kept run in the middleware's worker thread (the pool's
        threads are joined at interpreter exit, so a run ended is not lost)."""
        pool = self._pool
        if pool is None:
            with self._lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = ThreadPoolExecutor(
                        1, thread_name_prefix="agent-replay-store")
        pool.submit(commit)

    def close(self) -> None:
        """Wait for the runs being stored, then give the patches back (see
        :meth:`Recorder.close`); the middleware stays usable."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.recorder.close()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if current() is not None:  # a replay (or a run) is open here: the app just runs
            return _Passed(self.app(environ, start_response))
        body = _read_body(environ)
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "/"))
        ctx = contextvars.copy_context()
        active = ctx.run(self.recorder.begin, f"{method} {path}",
                         wsgi_entry(self._ref(), environ, body),
                         {"method": method, "path": path})
        if active is None:
            return self.app(environ, start_response)
        request = _Request(self, ctx, active, environ, start_response)
        try:
            result = ctx.run(self.app, environ, request.start_response)
        except BaseException as exc:
            request.end(exc)
            raise
        if isinstance(result, (list, tuple)):  # the answer is complete: the run too
            request.end(None)
            return result
        return _Body(request, result)


class _Request:
    """One recorded request: its context, its status, and how it ends."""

    def __init__(self, mw: WSGIRecordingMiddleware, ctx: contextvars.Context, active: Active,
                 environ: Environ, start_response: StartResponse) -> None:
        self.mw, self.ctx, self.active, self.environ = mw, ctx, active, environ
        self._start_response = start_response
        self.status: int | None = None
        """The HTTP status the app answered (None until it called start_response)."""
        self.route: str | None = None
        """The route template, as the app left it when it answered."""
        self.error: BaseException | None = None
        """What iterating the answer raised."""
        self.ended = False

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], object]:
        code = status[:3]
        self.status = int(code) if code.isdigit() else None
        self.route = _route(self.environ) or self.route  # Flask clears its request after
        if exc_info is None:
            return self._start_response(status, headers)
        return self._start_response(status, headers, exc_info)

    def end(self, error: BaseException | None) -> None:
        if self.ended:
            return
        self.ended = True
        error = error or self.error
        status = self.status if self.status is not None else (500 if error else None)
        self.ctx.run(self._end, error, status)

    def _end(self, error: BaseException | None, status: int | None) -> None:
        recorder, active = self.mw.recorder, self.active
        done = {"request_id": str(self.environ.get(self.mw._id_key) or active.state.run_id)}
        route = _route(self.environ) or self.route
        if route is not None:
            done["route"] = route
        commit = recorder.end(active, error, http_status=status, attrs=done,
                              entry=f"{active.attrs['method']} {route}" if route else None)
        if commit is not None:
            self.mw._store(commit)


class _Body:
    """The app's answer, iterated by the server in the request's context; the run
    ends when the server closes it."""

    def __init__(self, request: _Request, result: Iterable[bytes]) -> None:
        self.request = request
        self.result = result
        self.it: Iterator[bytes] | None = None

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        request = self.request
        try:
            if self.it is None:
                self.it = request.ctx.run(iter, self.result)
            return request.ctx.run(next, self.it)
        except StopIteration:
            raise
        except BaseException as exc:
            request.error = exc
            raise

    def close(self) -> None:
        request = self.request
        error: BaseException | None = None
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                request.ctx.run(close)
        except BaseException as exc:
            error = exc
            raise
        finally:
            request.end(error)


class _Passed:
    """The app's answer when the middleware records nothing (under a replay): passed
    through, its steps taken by the same code as when it was recorded, so what
    runs in them has the same call sites and task ids."""

    def __init__(self, result: Iterable[bytes]) -> None:
        self.result = result
        self.it: Iterator[bytes] | None = None

    def __iter__(self) -> _Passed:
        return self

    def __next__(self) -> bytes:
        if self.it is None:
            self.it = iter(self.result)
        return next(self.it)

    def close(self) -> None:
        close = getattr(self.result, "close", None)
        if close is not None:
            close()


def _route(environ: Environ) -> str | None:
    """The route template: ``environ["replay.route"]`` when the app set one, else the
    ``url_rule`` of the werkzeug (Flask) request the app left in the environ."""
    route = environ.get("replay.route")
    if isinstance(route, str):
        return route
    rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
    text = getattr(rule, "rule", None)
    return text if isinstance(text, str) else None


def _read_body(environ: Environ) -> bytes:
    """The request body, read whole before the app sees it; the app reads it again
    from a fresh ``wsgi.input``."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        body = bytes(stream.read(length))
    elif environ.get("wsgi.input_terminated"):
        body = bytes(stream.read())
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


# the server above them is not the run's: call sites and task ids stop here
for _code in (WSGIRecordingMiddleware.__call__.__code__, _Body.__next__.__code__,
              _Body.close.__code__, _Passed.__next__.__code__, _Passed.close.__code__):
    add_boundary(_code)
