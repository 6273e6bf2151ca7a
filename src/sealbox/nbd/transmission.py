"""The transmission phase of one connection: requests in, simple replies out.

Requests are pipelined. The reader reads one request header (and a write's payload)
at a time and hands the request to its own task, which waits for overlapping earlier
requests (:mod:`sealbox.nbd.ranges`), calls the device in the executor and writes the
reply (header and data in one transport write). Replies therefore go out in
completion order, matched by cookie (handle).

Bounds: at most ``max_requests`` requests and ``max_bytes`` of READ/WRITE payload are
in flight per connection; past that the reader stops reading, so the client's socket
fills up (TCP flow control). One request alone may always proceed.

Errors answered (simple reply error field):

* DeviceError -> its errno_name (EIO, EPERM, EINVAL, ENOSPC, ...); other exceptions -> EIO
* unknown command, unknown or inapplicable command flag -> EINVAL
* READ or WRITE longer than 32 MiB -> EINVAL; a too-long WRITE's payload is read and
  discarded, so the connection stays usable (the spec allows that or a disconnect)
* READ or TRIM past the end -> EINVAL; WRITE or WRITE_ZEROES past the end -> ENOSPC
  (what the NBD spec asks for writes beyond the size)
* WRITE, TRIM or WRITE_ZEROES on a read-only export -> EPERM

Command semantics: FUA on WRITE and WRITE_ZEROES is passed to the device; FUA on TRIM
is a trim followed by a flush; WRITE_ZEROES with NO_HOLE writes explicit zeroes with
device.write (the device's write_zeroes may deallocate); FLUSH waits for all requests
received before it (and everything after waits for it), then calls device.flush.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

from sealbox.ebs.device import DeviceError, VolumeDevice
from sealbox.nbd import protocol as p
from sealbox.nbd.handshake import Export
from sealbox.nbd.ranges import WHOLE_DEVICE_END, Range, RangeLock

log = logging.getLogger(__name__)

#: Default bounds of what one connection has in flight.
DEFAULT_MAX_REQUESTS = 64
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

#: Size of the explicit zero writes of WRITE_ZEROES with NO_HOLE.
_ZERO_CHUNK = 1024 * 1024
_ZEROES = bytes(_ZERO_CHUNK)
#: Chunk in which a too-long WRITE's payload is read and thrown away.
_DISCARD_CHUNK = 1024 * 1024

_FUA = p.NBD_CMD_FLAG_FUA
#: Command flags each command accepts (FUA is valid on every command once advertised).
_ALLOWED_FLAGS: dict[int, int] = {
    p.NBD_CMD_READ: _FUA,
    p.NBD_CMD_WRITE: _FUA,
    p.NBD_CMD_FLUSH: _FUA,
    p.NBD_CMD_TRIM: _FUA,
    p.NBD_CMD_WRITE_ZEROES: _FUA | p.NBD_CMD_FLAG_NO_HOLE,
}
_WRITES = frozenset((p.NBD_CMD_WRITE, p.NBD_CMD_TRIM, p.NBD_CMD_WRITE_ZEROES))


class _Budget:
    """Requests and payload bytes in flight; only the reader waits on it."""

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self._max_requests = max_requests
        self._max_bytes = max_bytes
        self.requests = 0
        self.bytes = 0
        self._waiter: asyncio.Future[None] | None = None

    def _fits(self, nbytes: int) -> bool:
        if self.requests == 0:
            return True
        return self.requests < self._max_requests and self.bytes + nbytes <= self._max_bytes

    async def acquire(self, nbytes: int) -> None:
        while not self._fits(nbytes):
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        self.requests += 1
        self.bytes += nbytes

    def release(self, nbytes: int) -> None:
        self.requests -= 1
        self.bytes -= nbytes
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Transmission:
    """Serves requests for one export on one connection until the client leaves."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        export: Export,
        *,
        executor: concurrent.futures.Executor,
        ranges: RangeLock,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._export = export
        self._device: VolumeDevice = export.device
        self._size = export.size
        self._read_only = bool(export.flags & p.NBD_FLAG_READ_ONLY)
        self._executor = executor
        self._ranges = ranges
        self._budget = _Budget(max_requests, max_bytes)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._at_header = False
        self._reader_task: asyncio.Task[None] | None = None
        #: Why the reader stopped: "disc", "eof", "stop", "error".
        self.end_reason = ""

    def stop(self) -> None:
        """Read no further requests; run() returns once in-flight requests are answered.

        A reader waiting for the next request header is cancelled; one in the middle of
        a write payload finishes reading it, and that write is still served.
        """
        self._stopping = True
        if self._at_header and self._reader_task is not None:
            self._reader_task.cancel()

    async def run(self) -> None:
        """Serve until NBD_CMD_DISC, end of stream, an error or stop(); then wait for every
        in-flight request to be answered (or dropped, if the connection is gone)."""
        self._reader_task = asyncio.create_task(self._read_loop())
        try:
            await asyncio.wait([self._reader_task])
        finally:
            if not self._reader_task.done():
                self._reader_task.cancel()
                await asyncio.wait([self._reader_task])
            if self._reader_task.cancelled():
                self.end_reason = self.end_reason or "stop"
            elif (exc := self._reader_task.exception()) is not None:
                log.error("NBD %s: reader failed", self._export.name, exc_info=exc)
                self.end_reason = "error"
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    # --- reading ---------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reader = self._reader
        try:
            while not self._stopping:
                self._at_header = True
                try:
                    header = await reader.readexactly(p.REQUEST.size)
                finally:
                    self._at_header = False
                magic, flags, cmd, cookie, offset, length = p.REQUEST.unpack(header)
                if magic != p.NBD_REQUEST_MAGIC:
                    log.warning("NBD %s: bad request magic %#x", self._export.name, magic)
                    self.end_reason = "error"
                    return
                if cmd == p.NBD_CMD_DISC:
                    self.end_reason = "disc"
                    return
                await self._request(cmd, flags, cookie, offset, length)
            self.end_reason = "stop"
        except asyncio.IncompleteReadError:
            self.end_reason = "eof"
        except (ConnectionError, OSError) as exc:
            log.info("NBD %s: connection lost: %s", self._export.name, exc)
            self.end_reason = "error"

    async def _request(self, cmd: int, flags: int, cookie: int, offset: int, length: int) -> None:
        payload_bytes = length if cmd in (p.NBD_CMD_READ, p.NBD_CMD_WRITE) else 0
        if payload_bytes > p.MAX_PAYLOAD:
            if cmd == p.NBD_CMD_WRITE:
                await self._discard(length)
            await self._send_error(cookie, p.NBD_EINVAL)
            return
        await self._budget.acquire(payload_bytes)
        data = b""
        if cmd == p.NBD_CMD_WRITE and length:
            try:
                data = await self._reader.readexactly(length)
            except BaseException:
                self._budget.release(payload_bytes)
                raise
        error = self._check(cmd, flags, offset, length)
        if error or (length == 0 and cmd != p.NBD_CMD_FLUSH):
            # Rejected, or nothing to do: answer at once.
            self._budget.release(payload_bytes)
            await self._send_error(cookie, error)
            return
        if cmd == p.NBD_CMD_FLUSH:
            entry, waits = self._ranges.register(0, WHOLE_DEVICE_END)
        else:
            entry, waits = self._ranges.register(offset, offset + length)
        task = asyncio.create_task(
            self._serve(cmd, flags, cookie, offset, length, data, entry, waits, payload_bytes)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _discard(self, length: int) -> None:
        while length:
            chunk = await self._reader.readexactly(min(length, _DISCARD_CHUNK))
            length -= len(chunk)

    def _check(self, cmd: int, flags: int, offset: int, length: int) -> int:
        """0 if the request may go to the device, else the error to answer with."""
        allowed = _ALLOWED_FLAGS.get(cmd)
        if allowed is None or flags & ~allowed:
            return p.NBD_EINVAL
        if cmd in _WRITES and self._read_only:
            return p.NBD_EPERM
        if cmd != p.NBD_CMD_FLUSH and offset + length > self._size:
            return (
                p.NBD_ENOSPC if cmd in (p.NBD_CMD_WRITE, p.NBD_CMD_WRITE_ZEROES) else p.NBD_EINVAL
            )
        return 0

    # --- serving ---------------------------------------------------------------------------

    async def _serve(
        self,
        cmd: int,
        flags: int,
        cookie: int,
        offset: int,
        length: int,
        data: bytes,
        entry: Range,
        waits: list[asyncio.Future[None]],
        payload_bytes: int,
    ) -> None:
        error = 0
        result: bytes | None = None
        try:
            try:
                for waiter in waits:
                    await waiter
                result = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._call, cmd, flags, offset, length, data
                )
            finally:
                self._ranges.release(entry)
            if cmd == p.NBD_CMD_READ and (result is None or len(result) != length):
                log.error(
                    "NBD %s: device read(%d, %d) returned %s bytes",
                    self._export.name,
                    offset,
                    length,
                    None if result is None else len(result),
                )
                error = p.NBD_EIO
        except DeviceError as exc:
            error = p.errno_value(exc.errno_name)
            log.info("NBD %s: %s", self._export.name, exc)
        except Exception:
            log.exception("NBD %s: device call failed", self._export.name)
            error = p.NBD_EIO
        try:
            header = p.SIMPLE_REPLY.pack(p.NBD_SIMPLE_REPLY_MAGIC, error, cookie)
            writer = self._writer
            if not writer.transport.is_closing():
                writer.write(header + result if not error and result else header)
                await writer.drain()
        except Exception as exc:  # the connection is gone; the reply is moot
            log.debug("NBD %s: reply not sent: %s", self._export.name, exc)
        finally:
            self._budget.release(payload_bytes)

    def _call(self, cmd: int, flags: int, offset: int, length: int, data: bytes) -> bytes | None:
        """The device call of one request (runs in an executor thread)."""
        device = self._device
        fua = bool(flags & _FUA)
        if cmd == p.NBD_CMD_READ:
            return device.read(offset, length)
        if cmd == p.NBD_CMD_WRITE:
            device.write(offset, data, fua=fua)
        elif cmd == p.NBD_CMD_FLUSH:
            device.flush()
        elif cmd == p.NBD_CMD_TRIM:
            device.trim(offset, length)
            if fua:
                device.flush()
        elif cmd == p.NBD_CMD_WRITE_ZEROES:
            if flags & p.NBD_CMD_FLAG_NO_HOLE:
                end = offset + length
                while offset < end:
                    n = min(end - offset, _ZERO_CHUNK)
                    device.write(offset, _ZEROES if n == _ZERO_CHUNK else bytes(n), fua=fua)
                    offset += n
            else:
                device.write_zeroes(offset, length, fua=fua)
        return None

    async def _send_error(self, cookie: int, error: int) -> None:
        """Answer a request that never reaches the device (rejected or empty)."""
        if not self._writer.transport.is_closing():
            self._writer.write(p.SIMPLE_REPLY.pack(p.NBD_SIMPLE_REPLY_MAGIC, error, cookie))
            await self._writer.drain()
