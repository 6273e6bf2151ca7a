"""The journal process: one writer and one fdatasync for every worker's audit events.

With several worker processes, each making its own events durable would cost one
fdatasync per worker per batch, and block that worker's event loop while the disk
flushes. Instead the supervisor runs this process; workers send it their encoded events
over a Unix socket (journal_client.py) and go on serving while it writes. It reads
whatever every worker has sent, appends it all to its segment with one pwrite and one
fdatasync, and acknowledges each batch. What arrives during a sync waits for the next
one, so the busier the server, the more events share one flush.

Wire format, both directions over a SOCK_STREAM socket:
    worker -> journal:  u32 length, then the batch's bodies joined by LF
    journal -> worker:  one byte per batch, in order: 0 durable, 1 failed

Bodies never contain LF (they are JSON and TAB). If a write or sync fails the process
acknowledges 1 to everything and exits; the supervisor starts a new one, with a new
segment, and workers reconnect.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import struct
from pathlib import Path

from sealbox.audit.journal import JournalUnavailable, SegmentWriter

log = logging.getLogger("sealbox.audit.journal")

FRAME = struct.Struct("!I")
MAX_BATCH_BYTES = 64 * 1024 * 1024
DURABLE, FAILED = b"\x00", b"\x01"
_RECV = 1024 * 1024
_ACK_TIMEOUT = 5.0


class _Peer:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def frames(self) -> list[bytes]:
        """The complete batches received so far."""
        out: list[bytes] = []
        while len(self.buffer) >= FRAME.size:
            (length,) = FRAME.unpack_from(self.buffer)
            if length > MAX_BATCH_BYTES:
                raise ValueError("oversized journal batch")
            end = FRAME.size + length
            if len(self.buffer) < end:
                break
            out.append(bytes(self.buffer[FRAME.size : end]))
            del self.buffer[:end]
        return out


def listen(path: Path) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is only for this server's own processes
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(64)
    return sock


def serve(listener: socket.socket, directory: Path) -> int:
    """Run until SIGTERM; returns the exit status (1 after a failed sync)."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we go
    writer = SegmentWriter(directory)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    peers: dict[socket.socket, _Peer] = {}
    status = 0
    try:
        while not stopping or peers:
            ready = selector.select(timeout=0.5)
            batches: list[tuple[_Peer, list[bytes]]] = []
            for key, _ in ready:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is listener:
                    _accept(listener, selector, peers)
                    continue
                peer = peers[sock]
                if not _receive(peer):
                    _drop(peer, selector, peers)
                    continue
                try:
                    frames = peer.frames()
                except ValueError:
                    _drop(peer, selector, peers)
                    continue
                if frames:
                    batches.append((peer, frames))
            if batches and not _write(writer, batches):
                status = 1
                break

            if stopping and not batches:
                break
    finally:
        writer.close()
        for peer in list(peers.values()):
            _drop(peer, selector, peers)
        selector.close()
    return status


def _accept(
    listener: socket.socket, selector: selectors.BaseSelector, peers: dict[socket.socket, _Peer]
) -> None:
    with contextlib.suppress(BlockingIOError):
        sock, _ = listener.accept()
        sock.setblocking(False)
        peers[sock] = _Peer(sock)
        selector.register(sock, selectors.EVENT_READ)


def _receive(peer: _Peer) -> bool:
    while True:
        try:
            chunk = peer.sock.recv(_RECV)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        peer.buffer += chunk
        if len(chunk) < _RECV:
            return True


def _drop(peer: _Peer, selector: selectors.BaseSelector, peers: dict[socket.socket, _Peer]) -> None:
    with contextlib.suppress(KeyError, ValueError):
        selector.unregister(peer.sock)
    peers.pop(peer.sock, None)
    peer.sock.close()


def _write(writer: SegmentWriter, batches: list[tuple[_Peer, list[bytes]]]) -> bool:
    bodies = [body for _, frames in batches for frame in frames for body in frame.split(b"\n")]
    ok = True
    try:
        writer.append(bodies)
    except JournalUnavailable:
        ok = False
    for peer, frames in batches:
        with contextlib.suppress(OSError):
            peer.sock.settimeout(_ACK_TIMEOUT)  # acks are tiny; never half-send one
            peer.sock.sendall((DURABLE if ok else FAILED) * len(frames))
            peer.sock.setblocking(False)
    return ok


def main(directory: Path, socket_path: Path, log_level: str = "info") -> None:
    """The journal process's entry point (started by the supervisor, server/workers.py)."""
    from sealbox.server.workers import die_with_parent

    die_with_parent()
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    listener = listen(socket_path)
    listener.setblocking(False)
    raise SystemExit(serve(listener, directory))
