"""A worker's side of the journal process (journal_process.py).

Events queued during one event-loop iteration are sent as one batch; the batch's
requests are answered when the journal process acknowledges it durable. Nothing here
blocks the loop: sends that don't fit the socket buffer wait for it to drain, and
acknowledgements arrive as loop callbacks. If the journal process is gone or fails,
the waiting requests fail, and the next event reconnects (the supervisor restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from pathlib import Path

from sealbox.audit.journal import JournalUnavailable, LoopBatcher, settle
from sealbox.audit.journal_process import DURABLE, FRAME

_CONNECT_TIMEOUT = 1.0


class RemoteJournal(LoopBatcher):
    def __init__(self, socket_path: Path) -> None:
        super().__init__()
        self._path = socket_path
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sent: deque[list[asyncio.Future[None]]] = deque()  # awaiting their ack
        self._out = bytearray()  # what the socket buffer has not taken yet
        self._writing = False

    def _dispatch(self, bodies: list[bytes], waiters: list[asyncio.Future[None]]) -> None:
        try:
            sock = self._connected()
        except OSError:
            settle(waiters, JournalUnavailable("the audit journal process is unavailable"))
            return
        payload = b"\n".join(bodies)
        self._sent.append(waiters)
        self._out += FRAME.pack(len(payload))
        self._out += payload
        self._drain(sock)

    def _connected(self) -> socket.socket:
        if self._sock is None:
            loop = asyncio.get_running_loop()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_CONNECT_TIMEOUT)
                sock.connect(str(self._path))
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            loop.add_reader(sock, self._on_acks, sock)
            self._sock, self._loop = sock, loop
        return self._sock

    def _drain(self, sock: socket.socket) -> None:
        try:
            sent = sock.send(self._out)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._broken()
            return
        del self._out[:sent]
        assert self._loop is not None
        if self._out and not self._writing:
            self._loop.add_writer(sock, self._drain, sock)
            self._writing = True
        elif not self._out and self._writing:
            self._loop.remove_writer(sock)
            self._writing = False

    def _on_acks(self, sock: socket.socket) -> None:
        try:
            acks = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            acks = b""
        if not acks:
            self._broken()
            return
        for ack in acks:
            if not self._sent:
                break
            waiters = self._sent.popleft()
            ok = ack == DURABLE[0]
            settle(waiters, None if ok else JournalUnavailable("the audit journal failed"))

    def _broken(self) -> None:
        """The journal process went away: fail what it had not acknowledged."""
        sock, self._sock = self._sock, None
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock)
            if self._writing:
                self._loop.remove_writer(sock)
            sock.close()
        self._writing = False
        self._out.clear()
        failure = JournalUnavailable("the audit journal process went away")
        while self._sent:
            settle(self._sent.popleft(), failure)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self._broken()
