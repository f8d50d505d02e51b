"""A WSGI request as a run's entry point: kept in the header, sent to the app again.

The WSGI middleware (:mod:`replay._service.wsgi`) keeps what the server gave
the app, in the header's ``entry``: ``{"kind": "wsgi", "ref": "pkg.mod:app",
"scope": {"environ": {...}, "headers": [[name, value], ...]}, "body": b"..."}``.
``environ`` holds the CGI variables (``REQUEST_METHOD``, ``PATH_INFO``,
``QUERY_STRING``, ``SERVER_NAME``, ..., and ``wsgi.url_scheme``); the request
headers are kept apart, as ``name: value`` pairs, so they are redacted as
every other header map is (``Authorization``, ``Cookie``...).

:func:`send_wsgi_request` builds the environ again (no server), calls the app,
iterates its answer and closes it, as a server does, and returns the
:class:`~replay._runs.response.Response`.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from replay._cassette.events import Value
from replay._runs.response import Response

MAX_BODY = 256 * 1024
"""Largest request body a WSGI entry keeps (the header holds it)."""

_CGI_SKIP = frozenset({"CONTENT_LENGTH"})  # rebuilt from the body


def header_pairs(environ: Mapping[str, Any]) -> list[list[str]]:
    """The request headers of a WSGI environ, as ``[name, value]`` pairs
    (``HTTP_X_REQUEST_ID`` is ``x-request-id``; ``CONTENT_TYPE`` is ``content-type``)."""
    pairs: list[list[str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            pairs.append([key[5:].replace("_", "-").lower(), value])
    ctype = environ.get("CONTENT_TYPE")
    if isinstance(ctype, str) and ctype:
        pairs.append(["content-type", ctype])
    return pairs


def wsgi_entry(app_ref: str | None, environ: Mapping[str, Any],
               body: bytes) -> dict[str, Value]:
    """The header entry of one WSGI request to the app named ``app_ref``."""
    cgi: dict[str, Value] = {}
    for key, value in environ.items():
        if (isinstance(value, str) and key.isupper() and not key.startswith("HTTP_")
                and key not in _CGI_SKIP and key != "CONTENT_TYPE"):
            cgi[key] = value
    cgi["wsgi.url_scheme"] = str(environ.get("wsgi.url_scheme", "http"))
    scope: dict[str, Value] = {"environ": cgi,
                               "headers": header_pairs(environ)}  # type: ignore[dict-item]
    doc: dict[str, Value] = {"kind": "wsgi", "ref": app_ref or "", "scope": scope,
                             "body": body}
    if app_ref is None:
        doc["unreplayable"] = ("the WSGI app was not found by name in any module; pass "
                               "app_ref='module:attr' to the middleware")
    elif len(body) > MAX_BODY:
        doc["body"] = b""
        doc["unreplayable"] = f"the request body ({len(body)} bytes) is over {MAX_BODY}"
    return doc


def environ_of(scope: Mapping[str, Any], body: bytes) -> dict[str, Any]:
    """A WSGI environ for the recorded request ``scope`` with ``body``."""
    cgi = scope.get("environ")
    environ: dict[str, Any] = (
        {str(k): str(v) for k, v in cgi.items()} if isinstance(cgi, Mapping) else {})
    for pair in scope.get("headers") or ():
        name, value = str(pair[0]), str(pair[1])
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ.setdefault("REQUEST_METHOD", "GET")
    environ.setdefault("SCRIPT_NAME", "")
    environ.setdefault("PATH_INFO", "/")
    environ.setdefault("QUERY_STRING", "")
    environ.setdefault("SERVER_NAME", "127.0.0.1")
    environ.setdefault("SERVER_PORT", "80")
    environ.setdefault("SERVER_PROTOCOL", "HTTP/1.1")
    environ["CONTENT_LENGTH"] = str(len(body)) if body else ""
    environ.update({
        "wsgi.version": (1, 0), "wsgi.url_scheme": environ.pop("wsgi.url_scheme", "http"),
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "wsgi.input_terminated": True})
    return environ


def send_wsgi_request(app: Callable[..., Iterable[bytes]], scope: Mapping[str, Any],
                      body: bytes) -> Response:
    """Send one recorded request to a WSGI app, as a server would (the answer is
    iterated whole, then closed), and return its ``Response``."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], object]:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [(status, list(headers))]
        return chunks.append  # the legacy write() callable

    result = app(environ_of(scope, body), start_response)
    try:
        for chunk in result:
            chunks.append(bytes(chunk))
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started[0] if started else ("500 Internal Server Error", [])
    code = int(status.split(" ", 1)[0]) if status[:3].isdigit() else 0
    return Response(code, tuple((str(k), str(v)) for k, v in headers), b"".join(chunks))
