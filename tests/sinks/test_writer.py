"""SinkWriter against an in-memory sink (the process boundary) that can be switched down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.sinks import trace_record
from wardgate.sinks import SinkWriter


class MemorySink:
    """Keeps what it receives; raises while ``down``; waits for ``gate`` (if given) to be set."""

    def __init__(self, name: str = "mem", *, down: bool = False, gate: asyncio.Event | None = None,
                 batch_size: int | None = None) -> None:
        self.name = name
        self.down = down
        self.gate = gate
        self.batch_size = batch_size
        self.received: list[dict] = []
        self.batches: list[int] = []
        self.opened = self.closed = False

    async def open(self) -> None:
        self.opened = True

    async def write(self, records: list[dict]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise ConnectionError("sink is down")
        self.received.extend(records)
        self.batches.append(len(records))

    async def close(self) -> None:
        self.closed = True

    def ids(self) -> list[str]:
        return [r["request_id"] for r in self.received]


def _writer(sinks: list, tmp_path: Path, **kw: float) -> SinkWriter:
    options = {"batch_size": 50, "flush_interval_s": 0.01, "retry_interval_s": 0.02, **kw}
    return SinkWriter(sinks, spill_dir=tmp_path / "spill", **options)


async def _until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_delivers_in_batches_in_order(tmp_path: Path) -> None:
    sink = MemorySink()
    writer = _writer([sink], tmp_path)
    await writer.start()
    for i in range(120):
        writer.submit(trace_record(i))
    await _until(lambda: len(sink.received) == 120)
    assert sink.ids() == [f"r-{i:06d}" for i in range(120)]
    assert max(sink.batches) <= 50
    await writer.close()
    assert sink.closed
    assert writer.stats() == {"mem": {"queued": 0, "delivered": 120, "spilled": 0, "dropped": 0}}


async def test_outage_spills_then_drains_in_order_exactly_once(tmp_path: Path) -> None:
    sink = MemorySink()
    writer = _writer([sink], tmp_path)
    await writer.start()
    for i in range(100):
        writer.submit(trace_record(i))
    await _until(lambda: len(sink.received) == 100)
    sink.down = True
    for i in range(100, 400):
        writer.submit(trace_record(i))
    await _until(lambda: writer.stats()["mem"]["spilled"] == 300)
    sink.down = False
    for i in range(400, 500):
        writer.submit(trace_record(i))
    await writer.close()
    assert sink.ids() == [f"r-{i:06d}" for i in range(500)]
    stats = writer.stats()["mem"]
    assert (stats["queued"], stats["delivered"], stats["dropped"]) == (0, 500, 0)
    assert stats["spilled"] >= 300  # records that arrive while a backlog drains queue behind it on disk
    assert (tmp_path / "spill" / "mem.spill.jsonl").stat().st_size == 0


async def test_submit_never_blocks_on_a_down_sink_with_a_tiny_queue(tmp_path: Path) -> None:
    sink = MemorySink(down=True)
    writer = _writer([sink], tmp_path, queue_size=8)
    await writer.start()
    for i in range(10_000):
        writer.submit(trace_record(i))  # no await in between: every call returned on its own
    stats = writer.stats()["mem"]
    assert stats["queued"] <= 8
    assert stats["spilled"] >= 10_000 - 8
    assert stats["dropped"] == 0
    sink.down = False
    await writer.close()
    assert sorted(sink.ids()) == [f"r-{i:06d}" for i in range(10_000)]
    assert writer.stats()["mem"]["delivered"] == 10_000


async def test_a_slow_sink_does_not_delay_a_fast_one(tmp_path: Path) -> None:
    gate = asyncio.Event()
    slow, fast = MemorySink("slow", gate=gate), MemorySink("fast")
    writer = _writer([slow, fast], tmp_path, queue_size=20)
    await writer.start()
    for i in range(200):
        writer.submit(trace_record(i))
    await _until(lambda: len(fast.received) == 200)
    assert slow.received == []  # still stuck in its first write
    assert writer.stats()["slow"]["spilled"] > 0  # its full queue overflowed to disk, nothing dropped
    gate.set()
    await writer.close()
    assert sorted(slow.ids()) == sorted(fast.ids())
    assert writer.stats()["slow"]["dropped"] == 0


async def test_close_flushes_the_queue(tmp_path: Path) -> None:
    sink = MemorySink()
    writer = _writer([sink], tmp_path, flush_interval_s=60.0, batch_size=1000)
    await writer.start()
    for i in range(10):
        writer.submit(trace_record(i))
    await writer.close()
    assert len(sink.received) == 10


async def test_leftovers_stay_on_disk_and_the_next_start_delivers_them(tmp_path: Path) -> None:
    down = MemorySink("pg", down=True)
    first = _writer([down], tmp_path)
    await first.start()
    for i in range(30):
        first.submit(trace_record(i))
    await first.close(timeout_s=0.2)
    assert first.stats()["pg"]["delivered"] == 0
    assert first.stats()["pg"]["dropped"] == 0

    up = MemorySink("pg")
    second = _writer([up], tmp_path)
    await second.start()
    await second.close()
    assert up.ids() == [f"r-{i:06d}" for i in range(30)]


async def test_a_sink_that_cannot_open_is_retried(tmp_path: Path) -> None:
    class LateSink(MemorySink):
        attempts = 0

        async def open(self) -> None:
            self.attempts += 1
            if self.attempts < 3:
                raise ConnectionRefusedError("not yet")
            await super().open()

    sink = LateSink()
    writer = _writer([sink], tmp_path)
    await writer.start()
    for i in range(10):
        writer.submit(trace_record(i))
    await writer.close()
    assert sink.attempts == 3
    assert sink.ids() == [f"r-{i:06d}" for i in range(10)]


async def test_dropped_counts_records_the_disk_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    sink = MemorySink(down=True)
    writer = SinkWriter([sink], spill_dir=blocker / "spill", queue_size=5, retry_interval_s=0.02)
    await writer.start()
    for i in range(20):
        writer.submit(trace_record(i))
    assert writer.stats()["mem"]["dropped"] == 15
    await writer.close(timeout_s=0.1)
    assert writer.stats()["mem"]["dropped"] == 20


async def test_duplicate_names_get_suffixes_and_sink_batch_size_caps_batches(tmp_path: Path) -> None:
    a, b = MemorySink("http", batch_size=7), MemorySink("http")
    writer = _writer([a, b], tmp_path)
    assert writer.names == ["http", "http-2"]
    await writer.start()
    for i in range(30):
        writer.submit(trace_record(i))
    await writer.close()
    assert max(a.batches) <= 7 and len(a.received) == 30
    assert (len(b.received), set(writer.stats())) == (30, {"http", "http-2"})


def test_rejects_nonsense_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SinkWriter([], spill_dir=tmp_path, queue_size=0)
