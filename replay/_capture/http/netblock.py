"""Strict replay never touches the network: raw socket connections are refused.

While a replay session is installed, ``socket.socket.connect``,
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
from replay._capture.session import current
from replay._cassette.errors import NetworkBlockedError

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_create_connection = socket.create_connection
_INET = (socket.AF_INET, socket.AF_INET6)


def _check(host: Any, port: Any) -> None:
    s = current()
    if s is None or not s.replaying:
        return
    host_s = host.decode("idna") if isinstance(host, bytes) else str(host)
    port_i = int(port) if isinstance(port, int | str) and str(port).isdigit() else None
    if not config_of(s).allows(host_s, port_i):
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
    """Socket patches, for replay sessions only (a ``_patch`` provider)."""
    s = current()
    if s is None or not s.replaying:
        return []
    return [(socket.socket, "connect", connect), (socket.socket, "connect_ex", connect_ex),
            (socket, "create_connection", create_connection)]
