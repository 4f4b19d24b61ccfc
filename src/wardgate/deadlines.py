"""Per-request deadlines without one event-loop timer each.

``asyncio.timeout_at`` arms a loop timer on entry and disarms it on exit: on uvloop that is ~2.3 µs a
timer and ~6 µs with a ``reschedule``, paid by every upstream call although almost none times out.
A ``Deadlines`` wheel files each deadline in a bucket of ``tick`` seconds (a set add and discard,
~0.3 µs) and keeps one loop timer, for its earliest bucket. Deadlines fire up to one tick late: the
timeouts it serves are seconds to minutes long.

``Deadlines.at(when)`` is a drop-in for ``asyncio.timeout_at(when)``: the task is cancelled when the
deadline passes and the ``CancelledError`` leaves the block as ``TimeoutError``; a cancellation from
elsewhere passes through untouched (the same ``cancelling()``/``uncancel()`` bookkeeping as asyncio's).
"""

from __future__ import annotations

import asyncio
import heapq
from types import TracebackType
from typing import Self

__all__ = ["Deadline", "Deadlines"]


class Deadline:
    """One armed deadline; an async context manager (``async with wheel.at(when) as d:``)."""

    __slots__ = ("_bucket", "_cancelling", "_task", "_wheel", "_when", "expired")

    def __init__(self, wheel: Deadlines, when: float) -> None:
        self._wheel = wheel
        self._when = when
        self._bucket: int | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self.expired = False

    def reschedule(self, when: float) -> None:
        """Move the deadline (later or sooner), as ``asyncio.Timeout.reschedule`` does."""
        if self.expired:
            raise RuntimeError("the deadline has already passed")
        self._wheel._remove(self)
        self._when = when
        self._wheel._add(self)

    async def __aenter__(self) -> Self:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._wheel._add(self)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._wheel._remove(self)
        if self.expired and self._task is not None and self._task.uncancel() <= self._cancelling \
                and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def _expire(self) -> None:
        self.expired = True
        self._bucket = None
        if self._task is not None:
            self._task.cancel()


class Deadlines:
    """A timer wheel for one event loop (bound on first use)."""

    def __init__(self, tick: float = 0.01) -> None:
        self._tick = tick
        self._buckets: dict[int, set[Deadline]] = {}
        self._order: list[int] = []  # bucket numbers, a heap; numbers of emptied buckets are skipped
        self._armed: int | None = None  # the bucket the loop timer is set for
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def at(self, when: float) -> Deadline:
        """A deadline at ``when`` (the running loop's ``time()``), armed when its block is entered."""
        return Deadline(self, when)

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def _add(self, d: Deadline) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        number = int(d._when / self._tick) + 1  # fires at the end of its tick: never early
        if number * self._tick <= loop.time():
            d._bucket = None
            d._expire()
            return
        d._bucket = number
        bucket = self._buckets.get(number)
        if bucket is None:
            bucket = self._buckets[number] = set()
            heapq.heappush(self._order, number)
            if self._armed is None or number < self._armed:
                self._arm(number)
        bucket.add(d)

    def _remove(self, d: Deadline) -> None:
        number = d._bucket
        if number is None:
            return
        d._bucket = None
        bucket = self._buckets.get(number)
        if bucket is not None:
            bucket.discard(d)
            if not bucket:
                del self._buckets[number]

    def _arm(self, number: int) -> None:
        assert self._loop is not None
        if self._handle is not None:
            self._handle.cancel()
        self._armed = number
        self._handle = self._loop.call_at(number * self._tick, self._fire)

    def _fire(self) -> None:
        assert self._loop is not None
        self._handle = self._armed = None
        now = self._loop.time()
        order, buckets = self._order, self._buckets
        while order:
            number = order[0]
            if number not in buckets:
                heapq.heappop(order)  # emptied before its time
                continue
            if number * self._tick > now:
                self._arm(number)
                return
            heapq.heappop(order)
            for d in buckets.pop(number):
                d._expire()
