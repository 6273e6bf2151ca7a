"""NbdServer: accepts NBD connections and runs handshake then transmission on each.

Device ownership: the resolver is called once per connection (per export a connection
looks up) and must return a device object that belongs to that connection. The server
calls ``device.close()`` exactly once, from an executor thread, when that connection
ends (client NBD_CMD_DISC or hang-up, :meth:`NbdServer.disconnect`,
:meth:`NbdServer.close`), after every device call of the connection has returned.
A device resolved only for NBD_OPT_INFO is closed as soon as the handshake moves on
to another export or ends. Several connections may be exporting the same volume at
once, each with its own device object; the server serializes overlapping requests
across all connections of the same export name (:mod:`sealbox.nbd.ranges`).

Threads: all methods but :meth:`NbdServer.disconnect` must be called on the event
loop the server runs on; ``disconnect`` may be called from any thread. Blocking work
(resolver, ``list_exports``, every device call) runs in the executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

from sealbox.ebs.device import DeviceError, ExportResolver, VolumeDevice
from sealbox.nbd.handshake import Export, HandshakeError, Negotiation
from sealbox.nbd.ranges import RangeLock
from sealbox.nbd.transmission import DEFAULT_MAX_BYTES, DEFAULT_MAX_REQUESTS, Transmission

log = logging.getLogger(__name__)

#: Worker threads of the executor the server creates when it is given none.
DEFAULT_WORKERS = 16
#: Seconds a client may take from connecting to choosing an export.
DEFAULT_HANDSHAKE_TIMEOUT = 30.0
#: StreamReader buffer limit: reading pauses once twice this much is buffered.
_STREAM_LIMIT = 4 * 1024 * 1024
#: Transport write buffer above which a replying task waits for the socket to drain.
_WRITE_HIGH_WATER = 8 * 1024 * 1024
#: Seconds a connection the server ends may take to finish its in-flight requests
#: (and to receive a write payload it is in the middle of) before it is aborted.
DEFAULT_DRAIN_TIMEOUT = 30.0
#: Seconds to wait for a closed connection's TLS shutdown / socket close.
_CLOSE_TIMEOUT = 5.0


class NbdServer:
    """An NBD server (fixed newstyle, simple replies, optional TLS) over VolumeDevices.

    ``resolver(name)`` maps an export name (volume id) to a new device for one
    connection, or None (unknown / not attached); see the module docstring for who
    closes it. ``list_exports()`` answers NBD_OPT_LIST (refused without it). With
    ``tls`` every client must STARTTLS before anything else (FORCEDTLS). ``executor``
    runs the blocking calls; without one the server creates a thread pool of
    DEFAULT_WORKERS threads and shuts it down in :meth:`close`.

    Tuning: ``handshake_timeout`` (seconds from connect to choosing an export),
    ``drain_timeout`` (seconds a connection ended by the server may take to answer its
    in-flight requests before its socket is aborted; device calls still run to the end
    and the device is still closed after them), ``max_requests`` / ``max_bytes`` (what one
    connection may have in flight).
    """

    def __init__(
        self,
        resolver: ExportResolver,
        *,
        list_exports: Callable[[], list[str]] | None = None,
        tls: ssl.SSLContext | None = None,
        executor: concurrent.futures.Executor | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._resolver = resolver
        self._list_exports = list_exports
        self._tls = tls
        self._own_executor = executor is None
        self._executor: concurrent.futures.Executor = (
            executor
            if executor is not None
            else concurrent.futures.ThreadPoolExecutor(DEFAULT_WORKERS, thread_name_prefix="nbd-io")
        )
        self._handshake_timeout = handshake_timeout
        self._drain_timeout = drain_timeout
        self._max_requests = max_requests
        self._max_bytes = max_bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.Server] = []
        self._connections: set[_Connection] = set()
        self._ranges: dict[str, tuple[RangeLock, int]] = {}
        self._closing = False

    # --- public API ----------------------------------------------------------------------------

    async def serve(self, host: str, port: int) -> asyncio.Server:
        """Listen on host:port (port 0: any free port; see the returned server's sockets).

        May be called more than once (several addresses); :meth:`close` closes them all.
        """
        if self._closing:
            raise RuntimeError("the NBD server is closed")
        self._loop = asyncio.get_running_loop()
        server = await asyncio.start_server(self._on_client, host, port, limit=_STREAM_LIMIT)
        self._servers.append(server)
        log.info(
            "NBD server listening on %s",
            ", ".join(str(s.getsockname()) for s in server.sockets),
        )
        return server

    async def close(self) -> None:
        """Stop accepting, let every connection finish its in-flight requests, flush and
        close its device, then drop it. Idempotent."""
        self._closing = True
        for server in self._servers:
            server.close()
        # Let connections accepted just now start (they see _closing and hang up).
        await asyncio.sleep(0)
        connections = list(self._connections)
        for conn in connections:
            conn.stop()
        if connections:
            await asyncio.wait([conn.done for conn in connections])
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self._own_executor:
            self._executor.shutdown(wait=False)

    def disconnect(self, export_name: str) -> None:
        """End every connection to export_name (e.g. on detach). Thread-safe, returns at
        once: each connection stops reading, answers its in-flight requests, flushes and
        closes its device, then closes the socket. Connections still negotiating that
        looked the name up are dropped. See :meth:`disconnect_export` to wait for it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._disconnect(export_name)
        else:
            loop.call_soon_threadsafe(self._disconnect, export_name)

    async def disconnect_export(self, export_name: str) -> None:
        """:meth:`disconnect` that returns once those connections are gone (devices closed)."""
        connections = self._disconnect(export_name)
        if connections:
            await asyncio.wait([conn.done for conn in connections])

    def connected_exports(self) -> list[str]:
        """Export names of the current connections (one entry per connection)."""
        connections = list(self._connections)
        return [name for conn in connections if (name := conn.export_name) is not None]

    # --- internals -----------------------------------------------------------------------------

    def _disconnect(self, export_name: str) -> list[_Connection]:
        connections = [c for c in self._connections if c.export_name == export_name]
        for conn in connections:
            conn.stop()
        if connections:
            log.info("NBD: disconnecting %d connection(s) of %s", len(connections), export_name)
        return connections

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, reader, writer)
        self._connections.add(conn)
        try:
            await conn.handle()
        finally:
            self._connections.discard(conn)
            if not conn.done.done():
                conn.done.set_result(None)

    async def _resolve(self, name: str) -> VolumeDevice | None:
        """The resolver, run in the executor. If the caller is cancelled meanwhile, a
        device that arrives later is closed rather than leaked."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._resolver, name)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._close_late_device)
            raise
        except DeviceError:
            raise
        except Exception as exc:
            log.exception("NBD: resolving export %r failed", name)
            raise DeviceError("export unavailable (server error)") from exc

    def _close_late_device(self, future: asyncio.Future[VolumeDevice | None]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        device = future.result()
        if device is not None:
            try:
                self._executor.submit(_close_device, device, "?", False)
            except RuntimeError:  # executor already shut down
                _close_device(device, "?", False)

    async def _list(self) -> list[str]:
        list_exports = self._list_exports
        assert list_exports is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, list_exports)

    async def _release_device(self, device: VolumeDevice, name: str, flush: bool) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self._executor, _close_device, device, name, flush
        )

    def _acquire_ranges(self, name: str) -> RangeLock:
        lock, users = self._ranges.get(name, (RangeLock(), 0))
        self._ranges[name] = (lock, users + 1)
        return lock

    def _release_ranges(self, name: str) -> None:
        lock, users = self._ranges[name]
        if users <= 1:
            del self._ranges[name]
        else:
            self._ranges[name] = (lock, users - 1)


def _close_device(device: VolumeDevice, name: str, flush: bool) -> None:
    """Flush (when the server, not the client, ends the connection) and close a device."""
    if flush:
        try:
            device.flush()
        except Exception:
            log.exception("NBD %s: flush before close failed", name)
    try:
        device.close()
    except Exception:
        log.exception("NBD %s: closing the device failed", name)


class _Connection:
    """One client connection: handshake, then transmission, then cleanup."""

    def __init__(
        self, server: NbdServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._server = server
        self._reader = reader
        self._writer = writer
        self._peer = writer.get_extra_info("peername")
        self._negotiation: Negotiation | None = None
        self._transmission: Transmission | None = None
        self._export: Export | None = None
        self._stopped = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def export_name(self) -> str | None:
        """The export this connection serves, holds or is looking up, if any."""
        if self._export is not None:
            return self._export.name
        negotiation = self._negotiation
        if negotiation is not None:
            if negotiation.held is not None:
                return negotiation.held[0]
            return negotiation.resolving
        return None

    def stop(self) -> None:
        """Server-initiated end: drain a transmission, or drop a handshake."""
        if self._stopped:
            return
        self._stopped = True
        if self._transmission is not None:
            self._transmission.stop()
        elif self._export is None:
            self._writer.close()
        self._abort_timer = asyncio.get_running_loop().call_later(
            self._server._drain_timeout, self._abort
        )

    def _abort(self) -> None:
        if not self.done.done():
            log.warning(
                "NBD %s: still busy %.0fs after being ended: aborting",
                self._peer,
                self._server._drain_timeout,
            )
            self._writer.transport.abort()

    async def handle(self) -> None:
        server = self._server
        try:
            if server._closing:
                return
            self._tune_transport()
            export = await self._negotiate()
            if export is None:
                return
            if self._stopped:
                await server._release_device(export.device, export.name, True)
                return
            await self._transmit(export)
        finally:
            await self._close_stream()
            if self._abort_timer is not None:
                self._abort_timer.cancel()

    async def _close_stream(self) -> None:
        """Close the socket (with TLS: close_notify first); abort if the peer stalls that."""
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), _CLOSE_TIMEOUT)
        except TimeoutError:
            self._writer.transport.abort()
        except Exception as exc:
            log.debug("NBD %s: close: %s", self._peer, exc)

    async def _negotiate(self) -> Export | None:
        server = self._server
        negotiation = Negotiation(
            self._reader,
            self._writer,
            resolve=server._resolve,
            release_device=lambda device: server._release_device(device, "?", False),
            list_exports=server._list if server._list_exports is not None else None,
            tls=server._tls,
            shutting_down=lambda: server._closing,
            on_tls=self._tune_transport,
        )
        self._negotiation = negotiation
        try:
            async with asyncio.timeout(server._handshake_timeout):
                export = await negotiation.run()
            # Set before the negotiation is dropped: export_name never reads None between.
            self._export = export
            return export
        except (HandshakeError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.info("NBD %s: handshake ended: %s", self._peer, exc or type(exc).__name__)
        except (ConnectionError, OSError) as exc:
            log.info("NBD %s: connection lost during handshake: %s", self._peer, exc)
        except Exception:
            log.exception("NBD %s: handshake failed", self._peer)
        finally:
            await negotiation.release()
            self._negotiation = None
        return None

    async def _transmit(self, export: Export) -> None:
        server = self._server
        ranges = server._acquire_ranges(export.name)
        transmission = Transmission(
            self._reader,
            self._writer,
            export,
            executor=server._executor,
            ranges=ranges,
            max_requests=server._max_requests,
            max_bytes=server._max_bytes,
        )
        self._transmission = transmission
        log.info("NBD %s: serving %s (%d bytes)", self._peer, export.name, export.size)
        try:
            await transmission.run()
        finally:
            server._release_ranges(export.name)
            # The client asked to leave (DISC) or hung up: close() flushes. When the
            # server ends the connection, flush explicitly first (detach/shutdown).
            await server._release_device(
                export.device, export.name, transmission.end_reason == "stop"
            )
            log.info("NBD %s: %s closed (%s)", self._peer, export.name, transmission.end_reason)

    def _tune_transport(self) -> None:
        transport = self._writer.transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
