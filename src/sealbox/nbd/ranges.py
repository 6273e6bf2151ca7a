"""Ordering of concurrent device calls: overlapping requests run one after another.

A VolumeDevice is only safe to call concurrently for non-overlapping ranges. Each
request registers its byte range (on the event loop thread, in the order requests
arrive) and, before calling the device, waits for every earlier registered range
that overlaps it. A flush registers the whole device, so it waits for every earlier
request and every later one waits for it. Nothing waits for a later registration, so
there is no deadlock, and overlapping requests run in arrival order.

One RangeLock is shared by all connections to the same export name.
"""

from __future__ import annotations

import asyncio

#: End of a range that covers the whole device (offsets are < 2**64).
WHOLE_DEVICE_END = 1 << 64


class Range:
    """A registered byte range [start, end)."""

    __slots__ = ("_done", "end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self._done: asyncio.Future[None] | None = None

    def done_future(self) -> asyncio.Future[None]:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        return self._done

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)


class RangeLock:
    """Registered ranges of requests that have not finished their device call yet."""

    def __init__(self) -> None:
        self._active: list[Range] = []

    def __len__(self) -> int:
        return len(self._active)

    def register(self, start: int, end: int) -> tuple[Range, list[asyncio.Future[None]]]:
        """Register [start, end); returns it and what to await before using the device.

        An empty range (start == end) overlaps nothing.
        """
        waits = [
            r.done_future() for r in self._active if r.start < end and start < r.end and start < end
        ]
        entry = Range(start, end)
        self._active.append(entry)
        return entry, waits

    def release(self, entry: Range) -> None:
        """The device call of entry has finished (successfully or not)."""
        self._active.remove(entry)
        entry._finish()
