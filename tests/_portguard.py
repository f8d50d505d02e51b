"""A listener that holds a port while replays run and counts every connection to it:
the proof that a replay reached nothing (tests/test_frameworks.py, test_capture_mcp.py)."""

from __future__ import annotations

import socket
import threading


class PortGuard:
    """Holds the emulator's port while replays run and counts every connection."""

    def __init__(self, port: int) -> None:
        self.connections = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
