"""The JSON-lines file sink: one orjson line per record, rotated by size and by UTC day.

A rotated file is renamed beside the live one as ``<stem>-YYYYMMDD-HHMMSS<suffix>`` where the time is
when that file was started (the first record it holds), so ``traces-20261124-000000.jsonl`` reads as
"the traces from then on". Retention removes rotated siblings whose last write is older than
``retention_days``; the live file and unrelated files are never touched. Each batch is serialized,
written and flushed in a worker thread so the event loop only waits on the thread's future. No
fsync: a platform log collector reads the page cache, and durability across a host crash is not
this sink's promise (PostgreSQL's is).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import orjson

from wardgate.sinks.protocol import Record

__all__ = ["JsonlSink"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class JsonlSink:
    """Appends records to ``path``; see the module docstring for rotation and retention."""

    def __init__(self, path: str | Path, *, max_bytes: int | None = None, rotate_daily: bool = True,
                 retention_days: float | None = None, name: str = "jsonl",
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.name = name
        self.path = Path(path)
        self._max_bytes = max_bytes if max_bytes and max_bytes > 0 else None
        self._rotate_daily = rotate_daily
        self._retention = timedelta(days=retention_days) if retention_days else None
        self._clock = clock
        self._rotated = re.compile(
            re.escape(self.path.stem) + r"-\d{8}-\d{6}(?:-\d+)?" + re.escape(self.path.suffix) + r"\Z")
        self._fh: BinaryIO | None = None
        self._size = 0
        self._started: datetime | None = None

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    async def write(self, records: list[Record]) -> None:
        await asyncio.to_thread(self._write_sync, records)

    async def close(self) -> None:
        await asyncio.to_thread(self._close_sync)

    def rotated_files(self) -> list[Path]:
        """The rotated siblings of the live file, oldest name first."""
        if not self.path.parent.is_dir():
            return []
        return sorted(p for p in self.path.parent.iterdir() if self._rotated.match(p.name))

    def _open_sync(self) -> None:
        if self._fh is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")  # noqa: SIM115 - lives until close()
        self._size = self._fh.tell()
        # An existing file was last written at its mtime: a restart on a later day rotates it first.
        self._started = (datetime.fromtimestamp(self.path.stat().st_mtime, UTC) if self._size else None)
        self._apply_retention(self._clock())

    def _write_sync(self, records: list[Record]) -> None:
        if self._fh is None:
            raise RuntimeError(f"jsonl sink {self.path} is not open")
        payload = b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)
        now = self._clock()
        if self._size and self._must_rotate(now, len(payload)):
            self._rotate(now)
        if self._started is None:
            self._started = now
        self._fh.write(payload)
        self._fh.flush()
        self._size += len(payload)

    def _must_rotate(self, now: datetime, incoming: int) -> bool:
        if self._max_bytes is not None and self._size + incoming > self._max_bytes:
            return True
        return bool(self._rotate_daily and self._started and self._started.date() != now.date())

    def _rotate(self, now: datetime) -> None:
        assert self._fh is not None
        self._fh.close()
        started = self._started or now
        stamp = started.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")
        counter = 1
        while target.exists():  # several size rotations within one second
            target = self.path.with_name(f"{self.path.stem}-{stamp}-{counter}{self.path.suffix}")
            counter += 1
        try:
            os.replace(self.path, target)
        finally:
            # Reopen even if the rename failed: the next batch then goes on the same file.
            self._fh = open(self.path, "ab")  # noqa: SIM115 - lives until close()
            self._size = self._fh.tell()
            self._started = None if not self._size else self._started
        self._apply_retention(now)

    def _apply_retention(self, now: datetime) -> None:
        if self._retention is None:
            return
        cutoff = (now - self._retention).timestamp()
        for rotated in self.rotated_files():
            try:
                if rotated.stat().st_mtime < cutoff:
                    rotated.unlink()
            except FileNotFoundError:
                pass  # another process's retention got there first

    def _close_sync(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
