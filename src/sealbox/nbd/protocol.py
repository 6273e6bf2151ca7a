"""NBD wire constants and fixed-size structures (the fixed newstyle protocol).

Everything on the wire is big-endian ("network byte order"). Names follow the NBD
protocol document (doc/proto.md of the NBD project) so they can be looked up there.
"""

from __future__ import annotations

import struct
from typing import Final

# --- Handshake -----------------------------------------------------------------------

NBDMAGIC: Final = 0x4E42444D41474943  # "NBDMAGIC"
IHAVEOPT: Final = 0x49484156454F5054  # "IHAVEOPT"
OPTION_REPLY_MAGIC: Final = 0x3E889045565A9

# Handshake flags (server -> client, 16 bits).
NBD_FLAG_FIXED_NEWSTYLE: Final = 1 << 0
NBD_FLAG_NO_ZEROES: Final = 1 << 1

# Client flags (client -> server, 32 bits).
NBD_FLAG_C_FIXED_NEWSTYLE: Final = 1 << 0
NBD_FLAG_C_NO_ZEROES: Final = 1 << 1
KNOWN_CLIENT_FLAGS: Final = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES

# Options.
NBD_OPT_EXPORT_NAME: Final = 1
NBD_OPT_ABORT: Final = 2
NBD_OPT_LIST: Final = 3
NBD_OPT_STARTTLS: Final = 5
NBD_OPT_INFO: Final = 6
NBD_OPT_GO: Final = 7
NBD_OPT_STRUCTURED_REPLY: Final = 8
NBD_OPT_LIST_META_CONTEXT: Final = 9
NBD_OPT_SET_META_CONTEXT: Final = 10
NBD_OPT_EXTENDED_HEADERS: Final = 11

# Option reply types; errors have bit 31 set.
NBD_REP_ACK: Final = 1
NBD_REP_SERVER: Final = 2
NBD_REP_INFO: Final = 3
_ERR: Final = 1 << 31
NBD_REP_ERR_UNSUP: Final = _ERR + 1
NBD_REP_ERR_POLICY: Final = _ERR + 2
NBD_REP_ERR_INVALID: Final = _ERR + 3
NBD_REP_ERR_PLATFORM: Final = _ERR + 4
NBD_REP_ERR_TLS_REQD: Final = _ERR + 5
NBD_REP_ERR_UNKNOWN: Final = _ERR + 6
NBD_REP_ERR_SHUTDOWN: Final = _ERR + 7
NBD_REP_ERR_BLOCK_SIZE_REQD: Final = _ERR + 8
NBD_REP_ERR_TOO_BIG: Final = _ERR + 9

# Information types (NBD_OPT_INFO / NBD_OPT_GO).
NBD_INFO_EXPORT: Final = 0
NBD_INFO_NAME: Final = 1
NBD_INFO_DESCRIPTION: Final = 2
NBD_INFO_BLOCK_SIZE: Final = 3

# Transmission flags (16 bits, sent with the export's size).
NBD_FLAG_HAS_FLAGS: Final = 1 << 0
NBD_FLAG_READ_ONLY: Final = 1 << 1
NBD_FLAG_SEND_FLUSH: Final = 1 << 2
NBD_FLAG_SEND_FUA: Final = 1 << 3
NBD_FLAG_ROTATIONAL: Final = 1 << 4
NBD_FLAG_SEND_TRIM: Final = 1 << 5
NBD_FLAG_SEND_WRITE_ZEROES: Final = 1 << 6
NBD_FLAG_SEND_DF: Final = 1 << 7
NBD_FLAG_CAN_MULTI_CONN: Final = 1 << 8

# --- Transmission ----------------------------------------------------------------------

NBD_REQUEST_MAGIC: Final = 0x25609513
NBD_SIMPLE_REPLY_MAGIC: Final = 0x67446698

NBD_CMD_READ: Final = 0
NBD_CMD_WRITE: Final = 1
NBD_CMD_DISC: Final = 2
NBD_CMD_FLUSH: Final = 3
NBD_CMD_TRIM: Final = 4
NBD_CMD_CACHE: Final = 5
NBD_CMD_WRITE_ZEROES: Final = 6
NBD_CMD_BLOCK_STATUS: Final = 7

NBD_CMD_FLAG_FUA: Final = 1 << 0
NBD_CMD_FLAG_NO_HOLE: Final = 1 << 1
NBD_CMD_FLAG_DF: Final = 1 << 2
NBD_CMD_FLAG_REQ_ONE: Final = 1 << 3
NBD_CMD_FLAG_FAST_ZERO: Final = 1 << 4

# Error values of simple replies (the protocol fixes them; they match Linux errno).
NBD_EPERM: Final = 1
NBD_EIO: Final = 5
NBD_ENOMEM: Final = 12
NBD_EINVAL: Final = 22
NBD_ENOSPC: Final = 28
NBD_EOVERFLOW: Final = 75
NBD_ENOTSUP: Final = 95
NBD_ESHUTDOWN: Final = 108

#: DeviceError.errno_name -> wire value; anything else is answered with EIO.
ERRNO_BY_NAME: Final[dict[str, int]] = {
    "EPERM": NBD_EPERM,
    "EIO": NBD_EIO,
    "ENOMEM": NBD_ENOMEM,
    "EINVAL": NBD_EINVAL,
    "ENOSPC": NBD_ENOSPC,
    "EOVERFLOW": NBD_EOVERFLOW,
    "ENOTSUP": NBD_ENOTSUP,
    "ESHUTDOWN": NBD_ESHUTDOWN,
}


def errno_value(errno_name: str) -> int:
    """The wire error for a DeviceError's errno_name (unknown names map to EIO)."""
    return ERRNO_BY_NAME.get(errno_name, NBD_EIO)


# --- Limits this server advertises and enforces -----------------------------------------

#: Block size constraints sent as NBD_INFO_BLOCK_SIZE.
MIN_BLOCK_SIZE: Final = 1
PREFERRED_BLOCK_SIZE: Final = 4096
#: Largest READ/WRITE payload accepted; bigger ones are answered with EINVAL.
MAX_PAYLOAD: Final = 32 * 1024 * 1024
#: Largest option data accepted during the handshake (export names are <= 4096 bytes).
MAX_OPTION_LENGTH: Final = 64 * 1024
#: Longest export name the protocol allows.
MAX_STRING: Final = 4096

# --- Structures ---------------------------------------------------------------------------

#: Server greeting: NBDMAGIC, IHAVEOPT, handshake flags.
GREETING: Final = struct.Struct(">QQH")
#: Client flags.
CLIENT_FLAGS: Final = struct.Struct(">I")
#: Option request header: IHAVEOPT, option, data length.
OPTION_HEADER: Final = struct.Struct(">QII")
#: Option reply header: magic, option, reply type, data length.
OPTION_REPLY: Final = struct.Struct(">QIII")
#: Reply to NBD_OPT_EXPORT_NAME: export size, transmission flags.
EXPORT_NAME_REPLY: Final = struct.Struct(">QH")
#: NBD_INFO_EXPORT payload: info type, size, transmission flags.
INFO_EXPORT: Final = struct.Struct(">HQH")
#: NBD_INFO_BLOCK_SIZE payload: info type, minimum, preferred, maximum.
INFO_BLOCK_SIZE: Final = struct.Struct(">HIII")
#: Transmission request: magic, command flags, type, cookie (handle), offset, length.
REQUEST: Final = struct.Struct(">IHHQQI")
#: Simple reply: magic, error, cookie (handle).
SIMPLE_REPLY: Final = struct.Struct(">IIQ")

ZERO_PAD: Final = bytes(124)

OPTION_NAMES: Final[dict[int, str]] = {
    NBD_OPT_EXPORT_NAME: "EXPORT_NAME",
    NBD_OPT_ABORT: "ABORT",
    NBD_OPT_LIST: "LIST",
    NBD_OPT_STARTTLS: "STARTTLS",
    NBD_OPT_INFO: "INFO",
    NBD_OPT_GO: "GO",
    NBD_OPT_STRUCTURED_REPLY: "STRUCTURED_REPLY",
    NBD_OPT_LIST_META_CONTEXT: "LIST_META_CONTEXT",
    NBD_OPT_SET_META_CONTEXT: "SET_META_CONTEXT",
    NBD_OPT_EXTENDED_HEADERS: "EXTENDED_HEADERS",
}
