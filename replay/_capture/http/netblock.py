"""Strict replay never touches the network: raw socket connections are refused.

Code that belongs to a strict replay, and code that belongs to no run while a
strict replay is open (a thread the replayed run did not start, a library's
worker), is refused; other runs of the process, recording or replaying, keep
their own rules: ``socket.socket.connect``,
``socket.socket.connect_ex`` and ``socket.create_connection`` raise
:class:`~replay.NetworkBlockedError` naming the host and port, for any
internet (IPv4/IPv6) address not in ``Run.options["allow_hosts"]``. Loopback
is blocked too unless listed: a replayed run that still reaches a local
server is not reproducible. Unix domain sockets are local IPC, not network,
and are left alone. Recording never blocks anything.

Recording warns instead: a connection a recorded run opens outside every
exchange agent-replay captures (an httpx transport, vcrpy's urllib3 and aiohttp
stubs, ``http.client`` and so ``urllib.request``, lm15's transports) and outside
a recorded tool's body is traffic the cassette does not hold, and that replay
will refuse. A library that speaks HTTP over sockets of its own (as lm15 does;
it has a capture point) would otherwise record a cassette without its model
calls, silently, and fail only on replay. :class:`UncapturedConnectionWarning`
names the host, the port and the code that connected, once per run and address;
hosts the run allows (``allow_hosts``) are not reported.

The patches come from :func:`patches`, registered with ``replay._capture.patch`` so
they are installed and removed with every other patch, as one unit.
"""

from __future__ import annotations

import os
import socket
import sys
import sysconfig
import threading
import warnings
import weakref
from typing import Any

from replay._capture.http.common import config_of
from replay._capture.session import BUSY, PARENT, Session, current, open_sessions
from replay._cassette.errors import NetworkBlockedError


class UncapturedConnectionWarning(UserWarning):
    """A recorded run connected to a host outside every exchange agent-replay records
    (httpx, requests/urllib3, aiohttp, ``http.client``/``urllib.request``, lm15) and
    outside a recorded tool: the cassette lacks that traffic, and strict replay will
    refuse the connection. Raw sockets, websockets and HTTP clients with sockets of
    their own are what is left."""

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_create_connection = socket.create_connection
_INET = (socket.AF_INET, socket.AF_INET6)
_WARNED: weakref.WeakKeyDictionary[Session, set[tuple[str, int | None]]] = (
    weakref.WeakKeyDictionary())
_WARNED_LOCK = threading.Lock()
_SKIP = tuple(os.path.normcase(os.path.realpath(p)) + os.sep for p in {
    sysconfig.get_paths()["stdlib"],
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))})


def _address(host: Any, port: Any) -> tuple[str, int | None]:
    host_s = host.decode("idna") if isinstance(host, bytes) else str(host)
    port_i = int(port) if isinstance(port, int | str) and str(port).isdigit() else None
    return host_s, port_i


def _connector() -> str:
    """The innermost frame outside the standard library and agent-replay: the code that
    opened the connection (``file:line in function``)."""
    frame = sys._getframe(2)
    while frame is not None:
        path = os.path.normcase(os.path.realpath(frame.f_code.co_filename))
        if not path.startswith(_SKIP) and not frame.f_code.co_filename.startswith("<"):
            return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"


def _recording(s: Session, host: Any, port: Any) -> None:
    """A recorded run's connection: warn when no capture point or tool holds it."""
    if not s.recording or BUSY.get() or PARENT.get() is not None:
        return
    address = _address(host, port)
    if config_of(s).allows(*address):
        return
    with _WARNED_LOCK:
        seen = _WARNED.setdefault(s, set())
        if address in seen:
            return
        seen.add(address)
    where = "{}:{}".format(*address) if address[1] is not None else address[0]
    warnings.warn(
        f"agent-replay: the recorded run connected to {where} outside every HTTP client "
        f"it captures (httpx, requests/urllib3, aiohttp, http.client/urllib, lm15), from "
        f"{_connector()}: the cassette lacks that traffic and replay will refuse the "
        "connection (docs/http.md: What is captured)",
        UncapturedConnectionWarning, stacklevel=4)


def _check(host: Any, port: Any) -> None:
    s = current()
    if s is not None:
        if not s.replaying:
            _recording(s, host, port)
            return
        judges: tuple[Session, ...] = (s,)
    else:  # outside every run: refused while any strict replay is open
        judges = tuple(o for o in open_sessions() if o.replaying)
        if not judges:
            return
    host_s, port_i = _address(host, port)
    if not all(config_of(j).allows(host_s, port_i) for j in judges):
        raise NetworkBlockedError(host_s, port_i)


def _check_sock(sock: socket.socket, address: Any) -> None:
    if sock.family in _INET and isinstance(address, tuple) and len(address) >= 2:
        _check(address[0], address[1])


def connect(self: socket.socket, address: Any) -> None:
    """``socket.connect``: refused during strict replay unless the host is allowed."""
    _check_sock(self, address)
    return _connect(self, address)


def connect_ex(self: socket.socket, address: Any) -> int:
    """``socket.connect_ex``: refused during strict replay unless the host is allowed."""
    _check_sock(self, address)
    return _connect_ex(self, address)


def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    """``socket.create_connection``: refused before any DNS lookup or connect."""
    if isinstance(address, tuple) and len(address) >= 2:
        _check(address[0], address[1])
    return _create_connection(address, *args, **kwargs)


def patches() -> list[tuple[object, str, object]]:
    """Socket patches (a ``_patch`` provider): they refuse only what code of a strict
    replay asks for; recording runs (warned about uncaptured connections) and code
    outside every run pass through."""
    return [(socket.socket, "connect", connect), (socket.socket, "connect_ex", connect_ex),
            (socket, "create_connection", create_connection)]
