"""The async trace writer: one bounded queue and one delivery task per sink, spilling to disk.

``submit`` is called on the request path: it only appends to each sink's in-memory queue (or, when
that queue is full, appends one line to the sink's spill file) and never awaits. Each sink's own
task batches its queue, writes, and on failure spills the batch and retries every
``retry_interval_s``. While a sink's spill file holds anything, the file *is* that sink's queue:
new records are moved behind the spilled ones and the file is drained head first, so records reach
the sink in submission order (except those that overflowed a full queue, which land in the spill
file ahead of the older records still queued).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from pathlib import Path

import structlog

from wardgate.sinks.protocol import Record, Sink
from wardgate.sinks.spill import SpillFile

__all__ = ["SinkWriter"]

_log = structlog.get_logger("wardgate.sinks")


class _Lane:
    """One sink with its queue, spill file, counters and delivery task."""

    def __init__(self, sink: Sink, name: str, spill: SpillFile, *, queue_size: int, batch_size: int,
                 flush_interval_s: float, retry_interval_s: float, write_timeout_s: float) -> None:
        self.sink = sink
        self.name = name
        self.spill = spill
        self.queue: deque[Record] = deque()
        self.delivered = self.spilled = self.dropped = 0
        self.closing = self.closed = False
        self._queue_size = queue_size
        cap = getattr(sink, "batch_size", None)
        self._batch_size = min(batch_size, cap) if isinstance(cap, int) and cap > 0 else batch_size
        self._flush_interval = flush_interval_s
        self._retry_interval = retry_interval_s
        self._write_timeout = write_timeout_s
        self._wake = asyncio.Event()
        self._opened = False
        self._down = False
        self._in_flight: list[Record] = []

    def offer(self, record: Record) -> None:
        if self.closed or len(self.queue) >= self._queue_size:
            self.to_spill([record])  # slow or closed: spill rather than drop
            return
        self.queue.append(record)
        depth = len(self.queue)
        if depth == 1 or depth >= self._batch_size:
            self._wake.set()

    def to_spill(self, records: list[Record]) -> None:
        lost = self.spill.append(records)
        self.spilled += len(records) - lost
        self.dropped += lost

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            while not (self.closing and not self.queue and not self.spill.pending):
                try:
                    await self._step()
                except Exception as exc:  # noqa: BLE001 - a disk error must not end delivery for good
                    _log.error("sink_lane_error", sink=self.name, error=repr(exc))
                    self._rescue_in_flight()
                    await asyncio.sleep(self._retry_interval)
        except asyncio.CancelledError:
            self._rescue_in_flight()  # close() timed out mid-write: keep the batch for the next start
            raise

    async def _step(self) -> None:
        if not self._opened and not await self._open():
            self._spill_queue()
            await asyncio.sleep(self._retry_interval)
        elif self.spill.pending:
            self._spill_queue()
            await self._drain_spill_head()
        elif self.queue:
            await self._deliver_queue()
        else:
            await self._wait_for_batch()

    def _rescue_in_flight(self) -> None:
        if self._in_flight:
            batch, self._in_flight = self._in_flight, []
            self.to_spill(batch)

    async def finish(self, timeout_s: float) -> None:
        """After the task ended: persist what is left, close the spill file and the sink."""
        self.closed = True
        self._spill_queue()
        self.spill.close()
        if self._opened:
            try:
                await asyncio.wait_for(self.sink.close(), max(timeout_s, 0.5))
            except Exception as exc:  # noqa: BLE001 - a failing close must not stop the others
                _log.warning("sink_close_failed", sink=self.name, error=repr(exc))

    async def _open(self) -> bool:
        try:
            await asyncio.wait_for(self.sink.open(), self._write_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means "down, retry later"
            self._mark_down(exc)
            return False
        self._opened = True
        return True

    async def _wait_for_batch(self) -> None:
        self._wake.clear()
        await self._wake.wait()
        if len(self.queue) < self._batch_size and not self.closing:
            # Give the batch up to flush_interval_s to fill: fewer, larger writes.
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)

    async def _deliver_queue(self) -> None:
        count = min(len(self.queue), self._batch_size)
        self._in_flight = [self.queue.popleft() for _ in range(count)]
        delivered = await self._write(self._in_flight)
        batch, self._in_flight = self._in_flight, []
        if not delivered:
            self.to_spill(batch)
            await asyncio.sleep(self._retry_interval)

    async def _drain_spill_head(self) -> None:
        head = await self.spill.read(self._batch_size)
        self.dropped += head.corrupt
        if not head.records and head.end <= self.spill.offset:
            await asyncio.sleep(self._retry_interval)  # nothing readable yet; do not spin
            return
        if head.records and not await self._write(head.records):
            await asyncio.sleep(self._retry_interval)
            return
        self.spill.commit(head.end)

    async def _write(self, records: list[Record]) -> bool:
        try:
            await asyncio.wait_for(self.sink.write(records), self._write_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means "not delivered"
            self._mark_down(exc)
            return False
        if self._down:
            self._down = False
            _log.info("sink_recovered", sink=self.name)
        self.delivered += len(records)
        return True

    def _spill_queue(self) -> None:
        if self.queue:
            records = list(self.queue)
            self.queue.clear()
            self.to_spill(records)

    def _mark_down(self, exc: BaseException) -> None:
        if not self._down:  # log transitions, not every retry
            self._down = True
            _log.warning("sink_down", sink=self.name, error=repr(exc))


class SinkWriter:
    """Fans records out to sinks without ever slowing the caller; see the module docstring.

    Counters are read with :meth:`stats` (the app mirrors them into
    ``wardgate_sink_records_total{sink,state}`` at scrape time, e.g. from a custom collector).
    ``submit`` must be called from the event loop thread.
    """

    def __init__(self, sinks: list[Sink], *, spill_dir: str | Path, queue_size: int = 10000,
                 batch_size: int = 256, flush_interval_s: float = 0.2, retry_interval_s: float = 1.0,
                 write_timeout_s: float = 10.0) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be >= 1")
        self._lanes: list[_Lane] = []
        taken: set[str] = set()
        for sink in sinks:
            name = _unique(sink.name, taken)
            taken.add(name)
            self._lanes.append(_Lane(
                sink, name, SpillFile(spill_dir, name), queue_size=queue_size,
                batch_size=batch_size, flush_interval_s=flush_interval_s,
                retry_interval_s=retry_interval_s, write_timeout_s=write_timeout_s))
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    @property
    def has_sinks(self) -> bool:
        return bool(self._lanes)

    @property
    def names(self) -> list[str]:
        """The sinks' unique names, in configuration order (the keys of :meth:`stats`)."""
        return [lane.name for lane in self._lanes]

    def submit(self, record: Record) -> None:
        """Hand one record to every sink. Never blocks, never awaits, never raises on a full queue."""
        for lane in self._lanes:
            lane.offer(record)

    async def start(self) -> None:
        """Open spill files (an earlier run's leftovers are drained first) and start delivering."""
        if self._started:
            return
        self._started = True
        for lane in self._lanes:
            try:
                lane.spill.open()
            except OSError as exc:
                # Keep serving: records that must spill will count as dropped.
                _log.error("spill_unavailable", sink=lane.name, path=str(lane.spill.path), error=repr(exc))
            self._tasks.append(asyncio.create_task(lane.run(), name=f"wardgate-sink-{lane.name}"))

    async def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued and spilled within ``timeout_s``; leave the rest in spill files."""
        deadline = time.monotonic() + timeout_s
        for lane in self._lanes:
            lane.closing = True
            lane.wake()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        remaining = deadline - time.monotonic()
        await asyncio.gather(*(lane.finish(remaining) for lane in self._lanes))

    def stats(self) -> dict[str, dict[str, int]]:
        """Per sink: ``queued`` (current depth) and cumulative ``delivered``, ``spilled``, ``dropped``."""
        return {
            lane.name: {"queued": len(lane.queue), "delivered": lane.delivered,
                        "spilled": lane.spilled, "dropped": lane.dropped}
            for lane in self._lanes
        }


def _unique(base: str, taken: set[str]) -> str:
    name, suffix = base, 2
    while name in taken:
        name, suffix = f"{base}-{suffix}", suffix + 1
    return name
