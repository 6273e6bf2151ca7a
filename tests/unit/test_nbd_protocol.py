"""The NBD server against a minimal struct-based NBD client and an in-memory device.

Handshake variants (GO, INFO, LIST, EXPORT_NAME, ABORT, STARTTLS, unknown options and
exports), every transmission command with its flags, pipelined requests answered out
of order, ordering of overlapping requests and flushes, error replies, TLS, and the
server ending connections (disconnect, close, handshake timeout).
"""

from __future__ import annotations

import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sealbox.crypto.tls import write_self_signed
from sealbox.ebs.device import DeviceError
from sealbox.nbd import BackgroundNbdServer, NbdServer
from sealbox.nbd import protocol as p

MIB = 1024 * 1024
VOLUME_SIZE = 8 * MIB

# --- an in-memory device -------------------------------------------------------------------


class MemoryVolume:
    """The storage behind MemoryDevices: a bytearray, and a log of device calls.

    ``hook(op, offset, length)`` runs at the start of every call (outside the lock), so
    a test can slow a call down or make it fail.
    """

    def __init__(self, size: int = VOLUME_SIZE, *, read_only: bool = False) -> None:
        self.data = bytearray(size)
        self.read_only = read_only
        self.lock = threading.Lock()
        self.events: list[tuple[str, ...]] = []
        self.hook: Callable[[str, int, int], None] | None = None
        self.devices: list[MemoryDevice] = []

    def log(self, *event: object) -> None:
        with self.lock:
            self.events.append(tuple(str(e) for e in event))

    def ops(self, name: str) -> list[tuple[str, ...]]:
        with self.lock:
            return [e for e in self.events if e[0] == name]


class MemoryDevice:
    """A VolumeDevice over a MemoryVolume; one per connection (what the resolver returns)."""

    def __init__(self, volume: MemoryVolume) -> None:
        self.volume = volume
        self.closed = 0
        self.flushed = 0

    @property
    def size(self) -> int:
        return len(self.volume.data)

    @property
    def read_only(self) -> bool:
        return self.volume.read_only

    def _enter(self, op: str, offset: int, length: int) -> None:
        if self.closed:
            raise AssertionError(f"{op} on a closed device")
        if self.volume.hook is not None:
            self.volume.hook(op, offset, length)

    def read(self, offset: int, length: int) -> bytes:
        self._enter("read", offset, length)
        self.volume.log("read", offset, length)
        with self.volume.lock:
            return bytes(self.volume.data[offset : offset + length])

    def write(self, offset: int, data: bytes, *, fua: bool = False) -> None:
        self._enter("write", offset, len(data))
        self.volume.log("write-start", offset, len(data), fua)
        with self.volume.lock:
            self.volume.data[offset : offset + len(data)] = data
        self.volume.log("write", offset, len(data), fua)

    def flush(self) -> None:
        self._enter("flush", 0, 0)
        self.flushed += 1
        self.volume.log("flush")

    def trim(self, offset: int, length: int) -> None:
        self._enter("trim", offset, length)
        with self.volume.lock:
            self.volume.data[offset : offset + length] = bytes(length)
        self.volume.log("trim", offset, length)

    def write_zeroes(self, offset: int, length: int, *, fua: bool = False) -> None:
        self._enter("write_zeroes", offset, length)
        with self.volume.lock:
            self.volume.data[offset : offset + length] = bytes(length)
        self.volume.log("write_zeroes", offset, length, fua)

    def close(self) -> None:
        self.closed += 1
        self.volume.log("close")


@dataclass
class Exports:
    """Volumes by export name, and a resolver handing out one device per call."""

    volumes: dict[str, MemoryVolume] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)

    def __call__(self, export_name: str) -> MemoryDevice | None:
        self.resolved.append(export_name)
        volume = self.volumes.get(export_name)
        if volume is None:
            return None
        device = MemoryDevice(volume)
        volume.devices.append(device)
        return device

    def names(self) -> list[str]:
        return sorted(self.volumes)


# --- a minimal NBD client ---------------------------------------------------------------------


class ConnectionClosed(Exception):
    pass


class Client:
    """Just enough of an NBD client to drive the server byte by byte."""

    def __init__(self, port: int, *, client_flags: int | None = None) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
            ("127.0.0.1", port), timeout=10
        )
        magic, opt_magic, self.handshake_flags = p.GREETING.unpack(self.recv(p.GREETING.size))
        assert magic == p.NBDMAGIC and opt_magic == p.IHAVEOPT
        if client_flags is None:
            client_flags = p.NBD_FLAG_C_FIXED_NEWSTYLE | p.NBD_FLAG_C_NO_ZEROES
        self.sock.sendall(struct.pack(">I", client_flags))
        self.size = 0
        self.flags = 0
        self._next_cookie = 1

    def close(self) -> None:
        self.sock.close()

    def recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionClosed(f"closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True once the server closed the connection (EOF or reset); unread data and TLS
        alerts before that are skipped."""
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                if self.sock.recv(65536) == b"":
                    return True
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(10)

    # handshake

    def send_option(self, option: int, data: bytes = b"") -> None:
        self.sock.sendall(p.OPTION_HEADER.pack(p.IHAVEOPT, option, len(data)) + data)

    def reply(self, option: int) -> tuple[int, bytes]:
        magic, opt, rtype, length = p.OPTION_REPLY.unpack(self.recv(p.OPTION_REPLY.size))
        assert magic == p.OPTION_REPLY_MAGIC
        assert opt == option
        return rtype, self.recv(length) if length else b""

    def option(self, option: int, data: bytes = b"") -> list[tuple[int, bytes]]:
        """Send an option; all its replies up to the final one (ACK or an error)."""
        self.send_option(option, data)
        replies = []
        while True:
            rtype, payload = self.reply(option)
            replies.append((rtype, payload))
            if rtype == p.NBD_REP_ACK or rtype & (1 << 31):
                return replies

    @staticmethod
    def info_data(name: str, *requests: int) -> bytes:
        raw = name.encode()
        return (
            struct.pack(">I", len(raw))
            + raw
            + struct.pack(f">H{len(requests)}H", len(requests), *requests)
        )

    def go(self, name: str, *requests: int, option: int = p.NBD_OPT_GO) -> dict[int, bytes]:
        """NBD_OPT_GO (or INFO); the NBD_REP_INFO payloads by info type."""
        replies = self.option(option, self.info_data(name, *requests))
        rtype, payload = replies[-1]
        if rtype != p.NBD_REP_ACK:
            raise OptionError(rtype, payload.decode())
        infos = {}
        for rtype, payload in replies[:-1]:
            assert rtype == p.NBD_REP_INFO
            (info,) = struct.unpack_from(">H", payload)
            infos[info] = payload
        _, self.size, self.flags = p.INFO_EXPORT.unpack(infos[p.NBD_INFO_EXPORT])
        return infos

    def starttls(self, context: ssl.SSLContext) -> None:
        assert self.option(p.NBD_OPT_STARTTLS) == [(p.NBD_REP_ACK, b"")]
        self.sock = context.wrap_socket(self.sock, server_hostname="127.0.0.1")

    # transmission

    def send(
        self, cmd: int, offset: int = 0, length: int = 0, data: bytes = b"", flags: int = 0
    ) -> int:
        cookie = self._next_cookie
        self._next_cookie += 1
        if cmd == p.NBD_CMD_WRITE:
            length = len(data)
        self.sock.sendall(
            p.REQUEST.pack(p.NBD_REQUEST_MAGIC, flags, cmd, cookie, offset, length) + data
        )
        return cookie

    def receive(self, read_lengths: dict[int, int] | None = None) -> tuple[int, int, bytes]:
        """(cookie, error, data) of the next reply; read_lengths: cookie -> READ length."""
        magic, error, cookie = p.SIMPLE_REPLY.unpack(self.recv(p.SIMPLE_REPLY.size))
        assert magic == p.NBD_SIMPLE_REPLY_MAGIC
        length = (read_lengths or {}).get(cookie, 0)
        return cookie, error, self.recv(length) if length and not error else b""

    def request(
        self, cmd: int, offset: int = 0, length: int = 0, data: bytes = b"", flags: int = 0
    ) -> tuple[int, bytes]:
        """One request, its (error, data)."""
        cookie = self.send(cmd, offset, length, data, flags)
        got, error, payload = self.receive({cookie: length} if cmd == p.NBD_CMD_READ else {})
        assert got == cookie
        return error, payload

    def read(self, offset: int, length: int) -> bytes:
        error, data = self.request(p.NBD_CMD_READ, offset, length)
        assert error == 0, error
        return data

    def write(self, offset: int, data: bytes, flags: int = 0) -> None:
        error, _ = self.request(p.NBD_CMD_WRITE, offset, data=data, flags=flags)
        assert error == 0, error

    def disc(self) -> None:
        self.send(p.NBD_CMD_DISC)


class OptionError(Exception):
    def __init__(self, reply: int, message: str) -> None:
        super().__init__(f"{reply:#x}: {message}")
        self.reply = reply
        self.message = message


# --- fixtures ---------------------------------------------------------------------------------


@dataclass
class Running:
    runner: BackgroundNbdServer
    exports: Exports
    port: int
    clients: list[Client] = field(default_factory=list)

    def client(self, **kwargs: int) -> Client:
        client = Client(self.port, **kwargs)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        """Close every client socket the test opened, then stop the server."""
        for client in self.clients:
            client.close()
        self.runner.stop()

    def volume(self, name: str = "vol-123") -> MemoryVolume:
        return self.exports.volumes[name]


def start(exports: Exports | None = None, *, listing: bool = True, **kwargs: object) -> Running:
    if exports is None:
        exports = Exports({"vol-123": MemoryVolume(), "vol-ro": MemoryVolume(read_only=True)})
    server = NbdServer(
        exports,
        list_exports=exports.names if listing else None,
        **kwargs,  # type: ignore[arg-type]
    )
    runner = BackgroundNbdServer(server, "127.0.0.1", 0)
    return Running(runner, exports, runner.start())


@pytest.fixture
def nbd() -> Iterator[Running]:
    running = start()
    yield running
    running.stop()


def attached(running: Running, name: str = "vol-123") -> Client:
    client = running.client()
    client.go(name)
    return client


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


# --- handshake ------------------------------------------------------------------------------


def test_greeting_offers_fixed_newstyle_and_no_zeroes(nbd: Running) -> None:
    client = nbd.client()
    assert client.handshake_flags == p.NBD_FLAG_FIXED_NEWSTYLE | p.NBD_FLAG_NO_ZEROES
    client.close()


def test_go_reports_size_flags_and_block_sizes(nbd: Running) -> None:
    client = nbd.client()
    infos = client.go("vol-123", p.NBD_INFO_BLOCK_SIZE, p.NBD_INFO_NAME)
    assert client.size == VOLUME_SIZE
    assert client.flags == (
        p.NBD_FLAG_HAS_FLAGS
        | p.NBD_FLAG_SEND_FLUSH
        | p.NBD_FLAG_SEND_FUA
        | p.NBD_FLAG_SEND_TRIM
        | p.NBD_FLAG_SEND_WRITE_ZEROES
    )
    assert not client.flags & p.NBD_FLAG_CAN_MULTI_CONN
    _, minimum, preferred, maximum = p.INFO_BLOCK_SIZE.unpack(infos[p.NBD_INFO_BLOCK_SIZE])
    assert (minimum, preferred, maximum) == (1, 4096, 32 * MIB)
    assert infos[p.NBD_INFO_NAME][2:] == b"vol-123"
    client.write(0, b"hello")
    assert client.read(0, 5) == b"hello"
    client.close()


def test_read_only_export_flags(nbd: Running) -> None:
    client = nbd.client()
    client.go("vol-ro")
    assert client.flags & p.NBD_FLAG_READ_ONLY
    assert not client.flags & (p.NBD_FLAG_SEND_TRIM | p.NBD_FLAG_SEND_WRITE_ZEROES)
    client.close()


def test_info_then_go_reuses_the_device(nbd: Running) -> None:
    client = nbd.client()
    client.go("vol-123", option=p.NBD_OPT_INFO)
    assert client.size == VOLUME_SIZE
    client.go("vol-123")
    client.write(4096, b"x" * 10)
    assert nbd.exports.resolved == ["vol-123"]
    assert len(nbd.volume().devices) == 1
    client.close()


def test_info_for_another_export_closes_the_first_device(nbd: Running) -> None:
    client = nbd.client()
    client.go("vol-123", option=p.NBD_OPT_INFO)
    client.go("vol-ro", option=p.NBD_OPT_INFO)
    assert nbd.volume().devices[0].closed == 1
    client.send_option(p.NBD_OPT_ABORT)
    assert client.reply(p.NBD_OPT_ABORT) == (p.NBD_REP_ACK, b"")
    assert client.is_closed()
    wait_for(lambda: nbd.volume("vol-ro").devices[0].closed == 1)


def test_go_unknown_export_then_a_known_one(nbd: Running) -> None:
    client = nbd.client()
    with pytest.raises(OptionError) as err:
        client.go("vol-missing")
    assert err.value.reply == p.NBD_REP_ERR_UNKNOWN
    assert "vol-missing" in err.value.message
    client.go("vol-123")
    assert client.size == VOLUME_SIZE
    client.close()


def test_go_malformed_data_is_invalid(nbd: Running) -> None:
    client = nbd.client()
    bad = client.info_data("vol-123", p.NBD_INFO_NAME)[:-1]
    assert client.option(p.NBD_OPT_GO, bad)[-1][0] == p.NBD_REP_ERR_INVALID
    client.go("vol-123")
    client.close()


def test_list_exports(nbd: Running) -> None:
    client = nbd.client()
    replies = client.option(p.NBD_OPT_LIST)
    assert replies[-1] == (p.NBD_REP_ACK, b"")
    names = []
    for rtype, payload in replies[:-1]:
        assert rtype == p.NBD_REP_SERVER
        (length,) = struct.unpack_from(">I", payload)
        names.append(payload[4 : 4 + length].decode())
    assert names == ["vol-123", "vol-ro"]
    assert client.option(p.NBD_OPT_LIST, b"x")[-1][0] == p.NBD_REP_ERR_INVALID
    client.close()


def test_list_without_a_lister_is_refused() -> None:
    running = start(listing=False)
    try:
        client = running.client()
        assert client.option(p.NBD_OPT_LIST)[-1][0] == p.NBD_REP_ERR_POLICY
    finally:
        running.stop()


@pytest.mark.parametrize(
    "flags",
    [
        p.NBD_FLAG_C_FIXED_NEWSTYLE | p.NBD_FLAG_C_NO_ZEROES,
        p.NBD_FLAG_C_FIXED_NEWSTYLE,
        0,  # plain (non-fixed) newstyle client
    ],
)
def test_export_name(nbd: Running, flags: int) -> None:
    no_zeroes = bool(flags & p.NBD_FLAG_C_NO_ZEROES)
    client = nbd.client(client_flags=flags)
    client.send_option(p.NBD_OPT_EXPORT_NAME, b"vol-123")
    size, tflags = p.EXPORT_NAME_REPLY.unpack(client.recv(p.EXPORT_NAME_REPLY.size))
    assert size == VOLUME_SIZE and tflags & p.NBD_FLAG_SEND_FLUSH
    if not no_zeroes:
        assert client.recv(124) == bytes(124)
    client.write(0, b"abc")
    assert client.read(0, 3) == b"abc"
    client.close()


def test_export_name_unknown_drops_the_connection(nbd: Running) -> None:
    client = nbd.client()
    client.send_option(p.NBD_OPT_EXPORT_NAME, b"vol-missing")
    assert client.is_closed()


def test_abort(nbd: Running) -> None:
    client = nbd.client()
    assert client.option(p.NBD_OPT_ABORT) == [(p.NBD_REP_ACK, b"")]
    assert client.is_closed()


@pytest.mark.parametrize(
    "option",
    [p.NBD_OPT_STRUCTURED_REPLY, p.NBD_OPT_SET_META_CONTEXT, p.NBD_OPT_EXTENDED_HEADERS, 99],
)
def test_unsupported_options(nbd: Running, option: int) -> None:
    client = nbd.client()
    assert client.option(option, b"\0\0\0\0")[-1][0] == p.NBD_REP_ERR_UNSUP
    client.go("vol-123")
    client.close()


def test_starttls_without_tls_is_unsupported(nbd: Running) -> None:
    client = nbd.client()
    assert client.option(p.NBD_OPT_STARTTLS)[-1][0] == p.NBD_REP_ERR_UNSUP
    client.go("vol-123")
    client.close()


def test_unknown_client_flags_drop_the_connection(nbd: Running) -> None:
    client = nbd.client(client_flags=1 << 7)
    assert client.is_closed()


def test_bad_option_magic_drops_the_connection(nbd: Running) -> None:
    client = nbd.client()
    client.sock.sendall(struct.pack(">QII", 0x1234, p.NBD_OPT_GO, 0))
    assert client.is_closed()


def test_handshake_timeout() -> None:
    running = start(handshake_timeout=0.3)
    try:
        client = running.client()
        assert client.is_closed(timeout=5)
    finally:
        running.stop()


def test_resolver_errors_are_reported() -> None:
    def resolver(export_name: str) -> MemoryDevice | None:
        if export_name == "broken":
            raise RuntimeError("database is down")
        raise DeviceError("key disabled", "EIO")

    server = NbdServer(resolver)
    runner = BackgroundNbdServer(server, "127.0.0.1", 0)
    port = runner.start()
    client = Client(port)
    try:
        with pytest.raises(OptionError) as err:
            client.go("vol-1")
        assert err.value.reply == p.NBD_REP_ERR_UNKNOWN and "key disabled" in err.value.message
        with pytest.raises(OptionError) as err:
            client.go("broken")
        assert "database is down" not in err.value.message
    finally:
        client.close()
        runner.stop()


# --- transmission -----------------------------------------------------------------------------


def test_write_read_flush_trim_zeroes(nbd: Running) -> None:
    client = attached(nbd)
    volume = nbd.volume()
    payload = bytes(range(256)) * 64
    client.write(8192, payload)
    assert client.read(8192, len(payload)) == payload
    assert volume.data[8192 : 8192 + len(payload)] == payload

    client.write(0, b"fua", flags=p.NBD_CMD_FLAG_FUA)
    assert volume.ops("write")[-1] == ("write", "0", "3", "True")

    assert client.request(p.NBD_CMD_FLUSH) == (0, b"")
    assert volume.ops("flush")

    assert client.request(p.NBD_CMD_TRIM, 8192, 4096) == (0, b"")
    assert client.read(8192, 4096) == bytes(4096)
    flushes = len(volume.ops("flush"))
    assert client.request(p.NBD_CMD_TRIM, 12288, 512, flags=p.NBD_CMD_FLAG_FUA) == (0, b"")
    assert len(volume.ops("flush")) == flushes + 1

    assert client.request(p.NBD_CMD_WRITE_ZEROES, 12800, 1000) == (0, b"")
    assert client.read(12800, 1000) == bytes(1000)
    assert volume.ops("write_zeroes")[-1] == ("write_zeroes", "12800", "1000", "False")

    client.write(0, b"\xff" * (3 * MIB))
    flags = p.NBD_CMD_FLAG_NO_HOLE | p.NBD_CMD_FLAG_FUA
    assert client.request(p.NBD_CMD_WRITE_ZEROES, 100, 2 * MIB + 5, flags=flags) == (0, b"")
    assert client.read(0, 3 * MIB) == b"\xff" * 100 + bytes(2 * MIB + 5) + b"\xff" * (MIB - 105)
    # NO_HOLE: explicit zero writes (with FUA), never write_zeroes.
    assert volume.ops("write")[-3:] == [
        ("write", "100", str(MIB), "True"),
        ("write", str(100 + MIB), str(MIB), "True"),
        ("write", str(100 + 2 * MIB), "5", "True"),
    ]
    assert len(volume.ops("write_zeroes")) == 1

    client.disc()
    assert client.is_closed()
    wait_for(lambda: volume.devices[0].closed == 1)


def test_zero_length_requests(nbd: Running) -> None:
    client = attached(nbd)
    for cmd in (p.NBD_CMD_READ, p.NBD_CMD_WRITE, p.NBD_CMD_TRIM, p.NBD_CMD_WRITE_ZEROES):
        assert client.request(cmd, VOLUME_SIZE, 0) == (0, b"")
    client.close()


def test_pipelined_requests_are_answered_out_of_order(nbd: Running) -> None:
    volume = nbd.volume()
    release = threading.Event()

    def hook(op: str, offset: int, length: int) -> None:
        if op == "read" and offset == 0:
            assert release.wait(10)

    volume.hook = hook
    volume.data[MIB : MIB + 4] = b"fast"
    client = attached(nbd)
    slow = client.send(p.NBD_CMD_READ, 0, 4096)
    fast = client.send(p.NBD_CMD_READ, MIB, 4)
    write = client.send(p.NBD_CMD_WRITE, 2 * MIB, data=b"w" * 100)
    lengths = {slow: 4096, fast: 4}
    first = {client.receive(lengths)[0] for _ in range(2)}
    assert first == {fast, write}
    release.set()
    cookie, error, data = client.receive(lengths)
    assert (cookie, error, data) == (slow, 0, bytes(4096))
    client.close()


def test_many_pipelined_requests(nbd: Running) -> None:
    client = attached(nbd)
    blocks = {i: bytes([i]) * 4096 for i in range(64)}
    cookies = {client.send(p.NBD_CMD_WRITE, i * 8192, data=d): i for i, d in blocks.items()}
    for _ in cookies:
        assert client.receive()[1] == 0
    reads = {client.send(p.NBD_CMD_READ, i * 8192, 4096): i for i in blocks}
    lengths = dict.fromkeys(reads, 4096)
    for _ in reads:
        cookie, error, data = client.receive(lengths)
        assert error == 0 and data == blocks[reads[cookie]]
    client.close()


def test_overlapping_requests_run_in_arrival_order(nbd: Running) -> None:
    volume = nbd.volume()
    running, release = threading.Event(), threading.Event()

    def hook(op: str, offset: int, length: int) -> None:
        if op == "write" and length == 4096:
            running.set()
            assert release.wait(10)

    volume.hook = hook
    client = attached(nbd)
    write = client.send(p.NBD_CMD_WRITE, 0, data=b"A" * 4096)
    assert running.wait(5)
    read = client.send(p.NBD_CMD_READ, 2048, 4096)  # overlaps the blocked write
    elsewhere = client.send(p.NBD_CMD_READ, MIB, 16)  # does not: answered meanwhile
    lengths = {read: 4096, elsewhere: 16}
    assert client.receive(lengths)[0] == elsewhere
    release.set()
    assert client.receive(lengths)[0] == write
    assert client.receive(lengths) == (read, 0, b"A" * 2048 + bytes(2048))
    client.close()


def test_flush_waits_for_earlier_writes(nbd: Running) -> None:
    volume = nbd.volume()

    def hook(op: str, offset: int, length: int) -> None:
        if op == "write":
            time.sleep(max(0, 0.05 * (8 - offset // 4096)))

    volume.hook = hook
    client = attached(nbd)
    writes = [client.send(p.NBD_CMD_WRITE, i * 4096, data=b"z" * 4096) for i in range(8)]
    flush = client.send(p.NBD_CMD_FLUSH)
    after = client.send(p.NBD_CMD_WRITE, 9 * 4096, data=b"y" * 10)
    replies = [client.receive()[0] for _ in range(10)]
    assert set(replies) == {*writes, flush, after}
    events = [e[0] for e in volume.events if e[0] in ("write", "write-start", "flush")]
    assert events.index("flush") == 16  # after all 8 earlier writes ended
    assert events[17:] == ["write-start", "write"]  # the later write after the flush
    client.close()


# --- errors -----------------------------------------------------------------------------------


def test_out_of_range(nbd: Running) -> None:
    client = attached(nbd)
    assert client.request(p.NBD_CMD_READ, VOLUME_SIZE - 10, 11)[0] == p.NBD_EINVAL
    assert client.request(p.NBD_CMD_TRIM, VOLUME_SIZE, 1)[0] == p.NBD_EINVAL
    assert client.request(p.NBD_CMD_WRITE, VOLUME_SIZE - 1, data=b"ab")[0] == p.NBD_ENOSPC
    assert client.request(p.NBD_CMD_WRITE_ZEROES, 2**63, 4096)[0] == p.NBD_ENOSPC
    assert client.read(VOLUME_SIZE - 2, 2) == bytes(2)  # still usable
    client.close()


def test_read_only_rejects_writes(nbd: Running) -> None:
    client = attached(nbd, "vol-ro")
    assert client.request(p.NBD_CMD_WRITE, 0, data=b"no")[0] == p.NBD_EPERM
    assert client.request(p.NBD_CMD_TRIM, 0, 4096)[0] == p.NBD_EPERM
    assert client.request(p.NBD_CMD_WRITE_ZEROES, 0, 4096)[0] == p.NBD_EPERM
    assert client.request(p.NBD_CMD_FLUSH)[0] == 0
    assert client.read(0, 4) == bytes(4)
    assert not nbd.volume("vol-ro").ops("write")
    client.close()


def test_unknown_commands_and_flags(nbd: Running) -> None:
    client = attached(nbd)
    assert client.request(p.NBD_CMD_CACHE, 0, 4096)[0] == p.NBD_EINVAL
    assert client.request(p.NBD_CMD_BLOCK_STATUS, 0, 4096)[0] == p.NBD_EINVAL
    assert client.request(42, 0, 0)[0] == p.NBD_EINVAL
    assert client.request(p.NBD_CMD_READ, 0, 16, flags=p.NBD_CMD_FLAG_DF)[0] == p.NBD_EINVAL
    flags = p.NBD_CMD_FLAG_NO_HOLE
    assert client.request(p.NBD_CMD_WRITE, 0, data=b"abc", flags=flags)[0] == p.NBD_EINVAL
    assert client.request(p.NBD_CMD_READ, 0, 16, flags=p.NBD_CMD_FLAG_FUA) == (0, bytes(16))
    client.close()


def test_requests_above_32_mib_are_rejected(nbd: Running) -> None:
    big = 32 * MIB + 1
    volume = MemoryVolume(64 * MIB)
    nbd.exports.volumes["vol-big"] = volume
    client = attached(nbd, "vol-big")
    assert client.request(p.NBD_CMD_READ, 0, big)[0] == p.NBD_EINVAL
    # The payload of a too-big write is read and discarded; the connection goes on.
    assert client.request(p.NBD_CMD_WRITE, 0, data=b"q" * big)[0] == p.NBD_EINVAL
    assert not volume.ops("write")
    assert client.request(p.NBD_CMD_WRITE_ZEROES, 0, 40 * MIB)[0] == 0  # no payload: fine
    client.write(0, b"q" * (32 * MIB))
    assert client.read(32 * MIB - 3, 4) == b"qqq\0"
    client.close()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (DeviceError("bad sector", "EIO"), p.NBD_EIO),
        (DeviceError("volume full", "ENOSPC"), p.NBD_ENOSPC),
        (DeviceError("nope", "EPERM"), p.NBD_EPERM),
        (DeviceError("bad", "EINVAL"), p.NBD_EINVAL),
        (DeviceError("odd", "EWHATEVER"), p.NBD_EIO),
        (RuntimeError("bug"), p.NBD_EIO),
    ],
)
def test_device_errors(nbd: Running, raised: Exception, expected: int) -> None:
    def hook(op: str, offset: int, length: int) -> None:
        if offset == 4096:
            raise raised

    nbd.volume().hook = hook
    client = attached(nbd)
    assert client.request(p.NBD_CMD_READ, 4096, 512) == (expected, b"")
    assert client.request(p.NBD_CMD_WRITE, 4096, data=b"x")[0] == expected
    assert client.read(0, 8) == bytes(8)
    client.close()


def test_short_device_read_is_an_io_error(nbd: Running) -> None:
    client = attached(nbd)
    device = nbd.volume().devices[0]
    device.read = lambda offset, length: b"short"  # type: ignore[method-assign]
    assert client.request(p.NBD_CMD_READ, 0, 4096) == (p.NBD_EIO, b"")
    client.close()


def test_bad_request_magic_drops_the_connection(nbd: Running) -> None:
    client = attached(nbd)
    client.sock.sendall(p.REQUEST.pack(0xDEADBEEF, 0, p.NBD_CMD_READ, 1, 0, 1))
    assert client.is_closed()
    wait_for(lambda: nbd.volume().devices[0].closed == 1)


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("nbd-tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    write_self_signed(cert, key, ["localhost"])
    return cert, key


@pytest.fixture
def tls_nbd(certificate: tuple[Path, Path]) -> Iterator[Running]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    running = start(tls=context)
    yield running
    running.stop()


def client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def test_tls_is_required_before_anything_else(tls_nbd: Running) -> None:
    client = tls_nbd.client()
    for option in (p.NBD_OPT_GO, p.NBD_OPT_INFO, p.NBD_OPT_LIST, p.NBD_OPT_STRUCTURED_REPLY):
        data = client.info_data("vol-123") if option in (p.NBD_OPT_GO, p.NBD_OPT_INFO) else b""
        assert client.option(option, data)[-1][0] == p.NBD_REP_ERR_TLS_REQD
    assert tls_nbd.exports.resolved == []
    assert client.option(p.NBD_OPT_ABORT) == [(p.NBD_REP_ACK, b"")]
    client.close()


def test_tls_export_name_before_starttls_drops_the_connection(tls_nbd: Running) -> None:
    client = tls_nbd.client()
    client.send_option(p.NBD_OPT_EXPORT_NAME, b"vol-123")
    assert client.is_closed()
    assert tls_nbd.exports.resolved == []


def test_tls_needs_fixed_newstyle(tls_nbd: Running) -> None:
    client = tls_nbd.client(client_flags=0)
    assert client.is_closed()


def test_starttls_then_go(tls_nbd: Running, certificate: tuple[Path, Path]) -> None:
    client = tls_nbd.client()
    client.starttls(client_context(certificate))
    assert isinstance(client.sock, ssl.SSLSocket)
    assert client.option(p.NBD_OPT_STARTTLS)[-1][0] == p.NBD_REP_ERR_INVALID
    assert len(client.option(p.NBD_OPT_LIST)) == 3
    client.go("vol-123")
    data = bytes(range(256)) * 4096
    client.write(MIB, data)
    assert client.read(MIB, len(data)) == data
    assert tls_nbd.volume().data[MIB : MIB + len(data)] == data
    client.disc()
    assert client.is_closed()


def test_starttls_with_an_untrusted_client_drops_the_connection(tls_nbd: Running) -> None:
    client = tls_nbd.client()
    assert client.option(p.NBD_OPT_STARTTLS) == [(p.NBD_REP_ACK, b"")]
    client.sock.sendall(b"this is not a TLS client hello" * 10)
    assert client.is_closed()


# --- the server ending connections ------------------------------------------------------------


def test_disconnect_answers_in_flight_requests_then_closes(nbd: Running) -> None:
    volume = nbd.volume()
    started = threading.Event()

    def hook(op: str, offset: int, length: int) -> None:
        if op == "write" and offset == MIB:
            started.set()
            time.sleep(0.3)

    volume.hook = hook
    client = attached(nbd)
    other = attached(nbd, "vol-ro")
    cookie = client.send(p.NBD_CMD_WRITE, MIB, data=b"late" * 1024)
    assert started.wait(5)
    nbd.runner.disconnect("vol-123")
    assert client.receive() == (cookie, 0, b"")
    assert client.is_closed()
    device = volume.devices[0]
    assert device.closed == 1 and device.flushed == 1
    assert volume.events[-2:] == [("flush",), ("close",)]
    assert volume.data[MIB : MIB + 4] == b"late"
    # Other exports are untouched.
    assert other.read(0, 4) == bytes(4)
    other.close()


def test_disconnect_from_another_thread_without_waiting(nbd: Running) -> None:
    client = attached(nbd)
    nbd.runner.server.disconnect("vol-123")
    assert client.is_closed()
    wait_for(lambda: nbd.volume().devices[0].closed == 1)


def test_disconnect_drops_a_negotiating_client(nbd: Running) -> None:
    client = nbd.client()
    client.go("vol-123", option=p.NBD_OPT_INFO)
    nbd.runner.disconnect("vol-123")
    assert client.is_closed()
    assert nbd.volume().devices[0].closed == 1


def test_several_connections_to_one_export(nbd: Running) -> None:
    first, second = attached(nbd), attached(nbd)
    first.write(0, b"shared")
    assert second.read(0, 6) == b"shared"
    devices = nbd.volume().devices
    assert len(devices) == 2 and devices[0] is not devices[1]
    assert sorted(nbd.runner.server.connected_exports()) == ["vol-123", "vol-123"]
    first.disc()
    wait_for(lambda: devices[0].closed == 1)
    assert devices[1].closed == 0
    assert second.read(0, 6) == b"shared"
    second.close()
    wait_for(lambda: devices[1].closed == 1)


def test_close_finishes_in_flight_requests() -> None:
    running = start()
    volume = running.volume()
    started = threading.Event()

    def hook(op: str, offset: int, length: int) -> None:
        if op == "read":
            started.set()
            time.sleep(0.3)

    volume.hook = hook
    volume.data[:4] = b"data"
    try:
        client = attached(running)
        negotiating = running.client()
        cookie = client.send(p.NBD_CMD_READ, 0, 4)
        assert started.wait(5)
        running.runner.stop()
        assert client.receive({cookie: 4}) == (cookie, 0, b"data")
        assert client.is_closed()
        assert negotiating.is_closed()
        assert volume.devices[0].closed == 1
        with pytest.raises(OSError):
            running.client()
    finally:
        running.stop()


def test_client_hangup_closes_the_device(nbd: Running) -> None:
    client = attached(nbd)
    client.write(0, b"bye")
    client.close()
    wait_for(lambda: nbd.volume().devices[0].closed == 1)
    wait_for(lambda: nbd.runner.server.connected_exports() == [])


def test_a_stalled_write_payload_is_aborted_after_the_drain_timeout() -> None:
    running = start(drain_timeout=0.3)
    try:
        client = attached(running)
        client.sock.sendall(
            p.REQUEST.pack(p.NBD_REQUEST_MAGIC, 0, p.NBD_CMD_WRITE, 7, 0, 4096) + b"x" * 100
        )
        time.sleep(0.1)
        started = time.monotonic()
        running.runner.disconnect("vol-123")
        assert 0.25 <= time.monotonic() - started < 5
        assert client.is_closed()
        assert running.volume().devices[0].closed == 1
        assert not running.volume().ops("write")
    finally:
        running.stop()


def test_list_exports_failure_is_reported() -> None:
    def broken() -> list[str]:
        raise RuntimeError("database is down")

    server = NbdServer(Exports(), list_exports=broken)
    runner = BackgroundNbdServer(server, "127.0.0.1", 0)
    client = Client(runner.start())
    try:
        rtype, message = client.option(p.NBD_OPT_LIST)[-1]
        assert rtype == p.NBD_REP_ERR_POLICY and b"database" not in message
    finally:
        client.close()
        runner.stop()


@pytest.mark.parametrize("seed", range(5))
def test_pipelined_overlapping_writes_apply_in_arrival_order(nbd: Running, seed: int) -> None:
    """Random overlapping writes, zeroes and trims sent back to back without waiting:
    the result is what applying them one by one in order gives."""
    rng = random.Random(seed)
    span = 64 * 1024
    model = bytearray(span)
    client = attached(nbd)
    sent = []
    for _ in range(200):
        offset = rng.randrange(span - 1)
        length = rng.randrange(1, min(8192, span - offset) + 1)
        kind = rng.choice([p.NBD_CMD_WRITE] * 4 + [p.NBD_CMD_WRITE_ZEROES, p.NBD_CMD_TRIM])
        if kind == p.NBD_CMD_WRITE:
            data = rng.randbytes(length)
            sent.append(client.send(kind, offset, data=data))
            model[offset : offset + length] = data
        else:
            sent.append(client.send(kind, offset, length))
            model[offset : offset + length] = bytes(length)
        if rng.random() < 0.05:
            sent.append(client.send(p.NBD_CMD_FLUSH))
    replies = {client.receive()[0:2] for _ in sent}
    assert replies == {(cookie, 0) for cookie in sent}
    assert client.read(0, span) == bytes(model)
    client.close()
