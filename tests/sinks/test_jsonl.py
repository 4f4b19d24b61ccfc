from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from tests.sinks import trace_record
from wardgate.sinks import JsonlSink, build_sink


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_appends_one_line_per_record_and_creates_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "traces.jsonl"
    sink = build_sink({"type": "jsonl", "path": str(path)})
    await sink.open()
    await sink.write([trace_record(0), trace_record(1)])
    await sink.close()
    reopened = JsonlSink(path)
    await reopened.open()
    await reopened.write([trace_record(2)])
    await reopened.close()
    assert [r["request_id"] for r in _lines(path)] == ["r-000000", "r-000001", "r-000002"]
    assert _lines(path)[0] == trace_record(0)


async def test_a_batch_of_megabytes_lets_the_loop_run_and_lands_whole_and_in_order(tmp_path: Path) -> None:
    """A batch of long conversations is written off the loop: other tasks run meanwhile."""
    path = tmp_path / "traces.jsonl"
    sink = JsonlSink(path)
    await sink.open()
    records = [{**trace_record(i), "request": {"messages": [{"role": "user", "content": "x" * 100_000}]}}
               for i in range(40)]  # ~4 MB
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    await sink.write(records)
    task.cancel()
    await sink.close()
    assert ticks - before >= 3
    assert [r["request_id"] for r in _lines(path)] == [f"r-{i:06d}" for i in range(40)]
    assert _lines(path)[7] == records[7]


async def test_rotates_by_size_without_losing_or_splitting_records(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    line_bytes = len(orjson.dumps(trace_record(0))) + 1
    clock = Clock(datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC))
    sink = JsonlSink(path, max_bytes=line_bytes * 5, clock=clock)
    await sink.open()
    for i in range(0, 12, 2):
        await sink.write([trace_record(i), trace_record(i + 1)])
    await sink.close()

    rotated = sink.rotated_files()
    assert [p.name for p in rotated] == ["traces-20261124-100000-1.jsonl", "traces-20261124-100000.jsonl"]
    for part in rotated:
        assert part.stat().st_size <= line_bytes * 5
    ids = sorted(r["request_id"] for p in [*rotated, path] for r in _lines(p))
    assert ids == [f"r-{i:06d}" for i in range(12)]


async def test_rotates_when_the_utc_day_changes(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    clock = Clock(datetime(2026, 11, 24, 23, 59, 58, tzinfo=UTC))
    sink = JsonlSink(path, clock=clock)
    await sink.open()
    await sink.write([trace_record(0)])
    clock.now += timedelta(seconds=1)
    await sink.write([trace_record(1)])
    clock.now += timedelta(seconds=3)  # 00:00:02 the next day
    await sink.write([trace_record(2)])
    await sink.close()

    (yesterday,) = sink.rotated_files()
    assert yesterday.name == "traces-20261124-235958.jsonl"
    assert [r["request_id"] for r in _lines(yesterday)] == ["r-000000", "r-000001"]
    assert [r["request_id"] for r in _lines(path)] == ["r-000002"]


async def test_no_day_rotation_when_disabled(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC))
    sink = JsonlSink(tmp_path / "t.jsonl", rotate_daily=False, clock=clock)
    await sink.open()
    await sink.write([trace_record(0)])
    clock.now += timedelta(days=2)
    await sink.write([trace_record(1)])
    await sink.close()
    assert sink.rotated_files() == []


async def test_retention_removes_only_old_rotated_siblings(tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    old = tmp_path / "traces-20261110-000000.jsonl"
    recent = tmp_path / "traces-20261122-000000.jsonl"
    unrelated = tmp_path / "notes-20261101-000000.jsonl"
    for path, age in ((old, timedelta(days=10)), (recent, timedelta(days=2)), (unrelated, timedelta(days=30))):
        path.write_text("{}\n")
        stamp = (now - age).timestamp()
        os.utime(path, (stamp, stamp))

    sink = JsonlSink(tmp_path / "traces.jsonl", retention_days=7, clock=Clock(now))
    await sink.open()
    await sink.close()
    assert not old.exists()
    assert recent.exists() and unrelated.exists()


async def test_retention_also_runs_after_a_rotation(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC))
    sink = JsonlSink(tmp_path / "traces.jsonl", max_bytes=1, retention_days=1, clock=clock)
    await sink.open()
    await sink.write([trace_record(0)])
    await sink.write([trace_record(1)])  # rotates the first file out
    (first,) = sink.rotated_files()
    stamp = (clock.now - timedelta(days=3)).timestamp()
    os.utime(first, (stamp, stamp))
    await sink.write([trace_record(2)])  # rotates again, and the 3-day-old file goes
    await sink.close()
    assert first not in sink.rotated_files()
    assert len(sink.rotated_files()) == 1
