"""RangeLock: overlapping requests wait for earlier ones, in registration order."""

from __future__ import annotations

import asyncio

from sealbox.nbd.ranges import WHOLE_DEVICE_END, RangeLock


def test_disjoint_ranges_do_not_wait() -> None:
    async def scenario() -> None:
        lock = RangeLock()
        _, waits_a = lock.register(0, 4096)
        _, waits_b = lock.register(4096, 8192)
        _, waits_c = lock.register(10, 10)  # empty: overlaps nothing
        assert waits_a == waits_b == waits_c == []
        assert len(lock) == 3

    asyncio.run(scenario())


def test_overlaps_wait_for_every_earlier_overlapping_range() -> None:
    async def scenario() -> None:
        lock = RangeLock()
        first, _ = lock.register(0, 100)
        second, _ = lock.register(200, 300)
        third, waits = lock.register(50, 250)
        assert len(waits) == 2
        lock.release(first)
        assert waits[0].done() and not waits[1].done()
        lock.release(second)
        assert waits[1].done()
        lock.release(third)
        assert len(lock) == 0

    asyncio.run(scenario())


def test_whole_device_range_is_a_barrier() -> None:
    async def scenario() -> None:
        lock = RangeLock()
        write, _ = lock.register(1 << 40, (1 << 40) + 1)
        flush, flush_waits = lock.register(0, WHOLE_DEVICE_END)
        later, later_waits = lock.register(0, 1)
        assert len(flush_waits) == 1
        assert len(later_waits) == 1  # only the flush overlaps it
        lock.release(write)
        await asyncio.wait_for(flush_waits[0], 1)
        assert not later_waits[0].done()
        lock.release(flush)
        await asyncio.wait_for(later_waits[0], 1)
        lock.release(later)

    asyncio.run(scenario())


def test_release_without_waiters_creates_no_future() -> None:
    async def scenario() -> None:
        lock = RangeLock()
        entry, _ = lock.register(0, 10)
        lock.release(entry)
        assert entry._done is None

    asyncio.run(scenario())
