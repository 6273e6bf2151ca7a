"""The fixed newstyle handshake: greeting, client flags and option haggling.

One :class:`Negotiation` per connection. It answers options until the client enters
the transmission phase (``NBD_OPT_GO`` or ``NBD_OPT_EXPORT_NAME``) or leaves
(``NBD_OPT_ABORT``, end of stream). Options understood:

* ``NBD_OPT_GO`` / ``NBD_OPT_INFO``: ``NBD_INFO_EXPORT`` (always), ``NBD_INFO_BLOCK_SIZE``
  (always: min 1, preferred 4096, max 32 MiB), ``NBD_INFO_NAME`` when asked for.
  Unknown export: ``NBD_REP_ERR_UNKNOWN``.
* ``NBD_OPT_LIST``: one ``NBD_REP_SERVER`` per name from ``list_exports``;
  ``NBD_REP_ERR_POLICY`` when the server was given no ``list_exports``.
* ``NBD_OPT_EXPORT_NAME``: the old way in; an unknown export ends the connection (the
  option has no way to report an error).
* ``NBD_OPT_ABORT``: ``NBD_REP_ACK``, then the connection ends.
* ``NBD_OPT_STARTTLS``: with a TLS context, ``NBD_REP_ACK`` and the same connection
  continues in TLS. The server then runs in FORCEDTLS mode: before TLS, every other
  option but ``NBD_OPT_ABORT`` is refused with ``NBD_REP_ERR_TLS_REQD`` and
  ``NBD_OPT_EXPORT_NAME`` ends the connection. Without a context: ``NBD_REP_ERR_UNSUP``.
* anything else, ``NBD_OPT_STRUCTURED_REPLY`` included: ``NBD_REP_ERR_UNSUP`` (only simple
  replies are used in transmission).

A device resolved for ``NBD_OPT_INFO`` is kept (``held``) so that a following
``NBD_OPT_GO`` for the same name reuses it; whoever runs the negotiation must close a
held device that did not make it into transmission (:meth:`Negotiation.release`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sealbox.ebs.device import DeviceError, VolumeDevice
from sealbox.nbd import protocol as p

log = logging.getLogger(__name__)

#: Options a client may send on one connection before it is considered abusive
#: (`nbdinfo --list` sends one NBD_OPT_INFO per export after NBD_OPT_LIST).
MAX_OPTIONS = 4096

Resolve = Callable[[str], Awaitable[VolumeDevice | None]]
ListExports = Callable[[], Awaitable[list[str]]]


class HandshakeError(Exception):
    """The handshake cannot go on: the connection must be dropped (hard disconnect)."""


@dataclass(frozen=True)
class Export:
    """What the client chose: the export's name, its device, size and transmission flags."""

    name: str
    device: VolumeDevice
    size: int
    flags: int


def transmission_flags(device: VolumeDevice) -> int:
    """Transmission flags for a device.

    NBD_FLAG_CAN_MULTI_CONN is never set: the resolver hands out one device object per
    connection and the VolumeDevice contract does not promise that a flush on one of
    them makes writes done through another durable (or visible), which is what the
    flag would claim.
    """
    flags = p.NBD_FLAG_HAS_FLAGS | p.NBD_FLAG_SEND_FLUSH | p.NBD_FLAG_SEND_FUA
    if device.read_only:
        flags |= p.NBD_FLAG_READ_ONLY
    else:
        flags |= p.NBD_FLAG_SEND_TRIM | p.NBD_FLAG_SEND_WRITE_ZEROES
    return flags


class _Outcome(enum.Enum):
    CONTINUE = enum.auto()
    ABORT = enum.auto()


class Negotiation:
    """Runs the handshake of one connection (see the module docstring)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        resolve: Resolve,
        release_device: Callable[[VolumeDevice], Awaitable[None]],
        list_exports: ListExports | None,
        tls: ssl.SSLContext | None,
        shutting_down: Callable[[], bool],
        on_tls: Callable[[], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._resolve = resolve
        self._release_device = release_device
        self._list_exports = list_exports
        self._tls = tls
        self._shutting_down = shutting_down
        self._on_tls = on_tls
        self.tls_active = False
        self.no_zeroes = False
        #: (name, device) resolved for NBD_OPT_INFO and not released yet.
        self.held: tuple[str, VolumeDevice] | None = None
        #: Export name being resolved right now (for disconnect(name) during a lookup).
        self.resolving: str | None = None

    async def run(self) -> Export | None:
        """Negotiate; the chosen export, or None when the client aborted.

        Raises HandshakeError (or the stream's errors) when the connection must be dropped.
        """
        self._writer.write(
            p.GREETING.pack(
                p.NBDMAGIC, p.IHAVEOPT, p.NBD_FLAG_FIXED_NEWSTYLE | p.NBD_FLAG_NO_ZEROES
            )
        )
        await self._writer.drain()
        (client_flags,) = p.CLIENT_FLAGS.unpack(await self._reader.readexactly(4))
        if client_flags & ~p.KNOWN_CLIENT_FLAGS:
            raise HandshakeError(f"unknown client flags {client_flags:#x}")
        self.no_zeroes = bool(client_flags & p.NBD_FLAG_C_NO_ZEROES)
        if self._tls is not None and not client_flags & p.NBD_FLAG_C_FIXED_NEWSTYLE:
            # TLS needs fixed newstyle; such a client can only send EXPORT_NAME, which
            # would have to be refused by dropping the connection anyway.
            raise HandshakeError("TLS is required and the client is not fixed newstyle")
        for _ in range(MAX_OPTIONS):
            magic, option, length = p.OPTION_HEADER.unpack(await self._reader.readexactly(16))
            if magic != p.IHAVEOPT:
                raise HandshakeError(f"bad option magic {magic:#x}")
            if length > p.MAX_OPTION_LENGTH:
                raise HandshakeError(f"option {option} carries {length} bytes")
            data = await self._reader.readexactly(length) if length else b""
            outcome = await self._option(option, data)
            if isinstance(outcome, Export):
                return outcome
            if outcome is _Outcome.ABORT:
                return None
        raise HandshakeError(f"more than {MAX_OPTIONS} options")

    async def release(self) -> None:
        """Close a device held for NBD_OPT_INFO that no GO claimed."""
        held, self.held = self.held, None
        if held is not None:
            await self._release_device(held[1])

    # --- options ---------------------------------------------------------------------------

    async def _option(self, option: int, data: bytes) -> Export | _Outcome:
        if self._tls is not None and not self.tls_active:
            if option == p.NBD_OPT_EXPORT_NAME:
                raise HandshakeError("NBD_OPT_EXPORT_NAME before STARTTLS")
            if option not in (p.NBD_OPT_STARTTLS, p.NBD_OPT_ABORT):
                await self._error(option, p.NBD_REP_ERR_TLS_REQD, "TLS is required (STARTTLS)")
                return _Outcome.CONTINUE
        if option == p.NBD_OPT_ABORT:
            await self._reply(option, p.NBD_REP_ACK)
            return _Outcome.ABORT
        if self._shutting_down():
            if option == p.NBD_OPT_EXPORT_NAME:
                raise HandshakeError("server is shutting down")
            await self._error(option, p.NBD_REP_ERR_SHUTDOWN, "server is shutting down")
            return _Outcome.CONTINUE
        if option in (p.NBD_OPT_GO, p.NBD_OPT_INFO):
            return await self._info_or_go(option, data)
        if option == p.NBD_OPT_EXPORT_NAME:
            return await self._export_name(data)
        if option == p.NBD_OPT_LIST:
            await self._list(data)
        elif option == p.NBD_OPT_STARTTLS:
            await self._starttls(data)
        else:
            name = p.OPTION_NAMES.get(option, str(option))
            await self._error(option, p.NBD_REP_ERR_UNSUP, f"option {name} is not supported")
        return _Outcome.CONTINUE

    async def _export_name(self, data: bytes) -> Export:
        name = _decode_name(data)
        if name is None:
            raise HandshakeError("invalid export name")
        try:
            device = await self._device_for(name)
        except DeviceError as exc:
            raise HandshakeError(f"export {name!r}: {exc}") from exc
        if device is None:
            raise HandshakeError(f"no export {name!r}")
        self.held = None
        export = _export(name, device)
        reply = p.EXPORT_NAME_REPLY.pack(export.size, export.flags)
        self._writer.write(reply if self.no_zeroes else reply + p.ZERO_PAD)
        await self._writer.drain()
        return export

    async def _info_or_go(self, option: int, data: bytes) -> Export | _Outcome:
        parsed = _parse_info_request(data)
        if parsed is None:
            await self._error(option, p.NBD_REP_ERR_INVALID, "malformed request")
            return _Outcome.CONTINUE
        name, requests = parsed
        try:
            device = await self._device_for(name)
        except DeviceError as exc:
            await self._error(option, p.NBD_REP_ERR_UNKNOWN, f"export {name!r}: {exc}")
            return _Outcome.CONTINUE
        if device is None:
            await self._error(option, p.NBD_REP_ERR_UNKNOWN, f"no export {name!r}")
            return _Outcome.CONTINUE
        export = _export(name, device)
        self._info(option, p.INFO_EXPORT.pack(p.NBD_INFO_EXPORT, export.size, export.flags))
        self._info(
            option,
            p.INFO_BLOCK_SIZE.pack(
                p.NBD_INFO_BLOCK_SIZE, p.MIN_BLOCK_SIZE, p.PREFERRED_BLOCK_SIZE, p.MAX_PAYLOAD
            ),
        )
        if p.NBD_INFO_NAME in requests:
            self._info(option, struct.pack(">H", p.NBD_INFO_NAME) + name.encode())
        await self._reply(option, p.NBD_REP_ACK)
        if option == p.NBD_OPT_GO:
            self.held = None
            return export
        self.held = (name, device)
        return _Outcome.CONTINUE

    async def _list(self, data: bytes) -> None:
        option = p.NBD_OPT_LIST
        if data:
            await self._error(option, p.NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data")
            return
        if self._list_exports is None:
            await self._error(option, p.NBD_REP_ERR_POLICY, "listing exports is disabled")
            return
        try:
            names = await self._list_exports()
        except Exception:
            log.exception("listing NBD exports failed")
            await self._error(option, p.NBD_REP_ERR_POLICY, "the export list is unavailable")
            return
        for name in names:
            raw = name.encode()
            self._writer.write(
                p.OPTION_REPLY.pack(p.OPTION_REPLY_MAGIC, option, p.NBD_REP_SERVER, 4 + len(raw))
                + struct.pack(">I", len(raw))
                + raw
            )
        await self._reply(option, p.NBD_REP_ACK)

    async def _starttls(self, data: bytes) -> None:
        option = p.NBD_OPT_STARTTLS
        if self._tls is None:
            await self._error(option, p.NBD_REP_ERR_UNSUP, "TLS is not configured")
            return
        if self.tls_active:
            await self._error(option, p.NBD_REP_ERR_INVALID, "TLS is already active")
            return
        if data:
            await self._error(option, p.NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data")
            return
        await self._reply(option, p.NBD_REP_ACK)
        # Nothing may be read between the ACK and the switch: the client's next bytes are
        # its TLS ClientHello. start_tls swaps the protocol before the loop reads again.
        try:
            await self._writer.start_tls(self._tls)
        except (ssl.SSLError, OSError) as exc:
            raise HandshakeError(f"TLS handshake failed: {exc}") from exc
        self.tls_active = True
        if self._on_tls is not None:
            self._on_tls()

    # --- helpers ------------------------------------------------------------------------------

    async def _device_for(self, name: str) -> VolumeDevice | None:
        """The device for name: the held one when it matches, else a fresh resolve."""
        if self.held is not None:
            if self.held[0] == name:
                return self.held[1]
            await self.release()
        self.resolving = name
        try:
            device = await self._resolve(name)
        finally:
            self.resolving = None
        if device is not None:
            self.held = (name, device)
        return device

    def _info(self, option: int, payload: bytes) -> None:
        self._writer.write(
            p.OPTION_REPLY.pack(p.OPTION_REPLY_MAGIC, option, p.NBD_REP_INFO, len(payload))
            + payload
        )

    async def _reply(self, option: int, reply: int, payload: bytes = b"") -> None:
        self._writer.write(
            p.OPTION_REPLY.pack(p.OPTION_REPLY_MAGIC, option, reply, len(payload)) + payload
        )
        await self._writer.drain()

    async def _error(self, option: int, reply: int, message: str) -> None:
        await self._reply(option, reply, message.encode()[: p.MAX_STRING])


def _export(name: str, device: VolumeDevice) -> Export:
    return Export(name=name, device=device, size=device.size, flags=transmission_flags(device))


def _decode_name(raw: bytes) -> str | None:
    """An export name, or None when it is not a valid protocol string."""
    if len(raw) > p.MAX_STRING or b"\0" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _parse_info_request(data: bytes) -> tuple[str, set[int]] | None:
    """(export name, requested info types) of NBD_OPT_INFO/GO data; None if malformed."""
    if len(data) < 6:
        return None
    (name_length,) = struct.unpack_from(">I", data, 0)
    end = 4 + name_length
    if end + 2 > len(data):
        return None
    name = _decode_name(data[4:end])
    (count,) = struct.unpack_from(">H", data, end)
    if name is None or len(data) != end + 2 + 2 * count:
        return None
    return name, set(struct.unpack_from(f">{count}H", data, end + 2))
