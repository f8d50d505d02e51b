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

The patches come from :func:`patches`, registered with ``replay._capture.patch`` so
they are installed and removed with every other patch, as one unit.
"""

from __future__ import annotations

import socket
from typing import Any

from replay._capture.http.common import config_of
from replay._capture.session import Session, current, open_sessions
from replay._cassette.errors import NetworkBlockedError

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_create_connection = socket.create_connection
_INET = (socket.AF_INET, socket.AF_INET6)


def _check(host: Any, port: Any) -> None:
    s = current()
    if s is not None:
        if not s.replaying:
            return
        judges: tuple[Session, ...] = (s,)
    else:  # outside every run: refused while any strict replay is open
        judges = tuple(o for o in open_sessions() if o.replaying)
        if not judges:
            return
    host_s = host.decode("idna") if isinstance(host, bytes) else str(host)
    port_i = int(port) if isinstance(port, int | str) and str(port).isdigit() else None
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
    replay asks for; recording runs, and code outside every run, pass through."""
    return [(socket.socket, "connect", connect), (socket.socket, "connect_ex", connect_ex),
            (socket, "create_connection", create_connection)]
