"""A minimal keep-alive HTTP/1.1 server that answers every request with ``200 {}``.

Used by ``bench/kms.py --calibrate`` to measure how many requests per second the load
generator itself can drive on this machine, and at what client CPU cost. ``--work-us``
burns that much CPU per request and ``--workers`` forks that many accept processes
(sharing one listening socket), to stand in for a multi-worker server of a given cost. Listens on
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import time
from typing import cast

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{}"
)
MAX_BUFFER = 1 << 20
WORK_S = 0.0  # CPU burnt per request (set from --work-us)


def burn(seconds: float) -> None:
    """Spin for ``seconds`` of this thread's CPU time."""
    if seconds <= 0:
        return
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class NullProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        if len(self.buf) > MAX_BUFFER:
            self.transport.close()
            return
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            pos = head.find(b"\r\ncontent-length:")
            if pos >= 0:
                stop = head.find(b"\r\n", pos + 2)
                length = int(head[pos + 17 : stop if stop >= 0 else len(head)].strip())
            total = end + 4 + length
            if len(self.buf) < total:
                return
            self.buf = self.buf[total:]
            burn(WORK_S)
            self.transport.write(RESPONSE)


async def serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NullProtocol, sock=sock)
    async with server:
        await server.serve_forever()


def run_worker(sock: socket.socket) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(sock))


def main() -> None:
    global WORK_S
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--work-us", type=float, default=0.0, help="CPU to burn per request")
    parser.add_argument("--workers", type=int, default=1, choices=range(1, 17))
    args = parser.parse_args()
    WORK_S = args.work_us / 1e6
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(256)
    sock.setblocking(False)
    if args.workers == 1:
        run_worker(sock)
        return
    children = []
    for _ in range(args.workers):  # all accept on the one shared listening socket
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            run_worker(sock)
            os._exit(0)
        children.append(pid)
    try:
        for pid in children:
            os.waitpid(pid, 0)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
