"""A per-sink append-only spill file: where records wait while their sink is down or slow.

Layout: ``<dir>/<sink>.spill.jsonl`` holds one orjson line per record, oldest first;
``<dir>/<sink>.spill.offset`` holds the byte offset of the first line not yet delivered, so a
restart after a partial drain does not deliver the drained head again. The file is truncated only
once everything in it has been delivered (offset == size).

Threading: appends and commits run on the event loop thread (they are single ``os.write`` calls on
an ``O_APPEND`` descriptor, microseconds each); reads run in a worker thread and consume only
complete lines, so a line being appended concurrently is never half-read.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from wardgate.sinks.protocol import Record

__all__ = ["SpillBatch", "SpillFile", "spill_stem"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def spill_stem(sink_name: str) -> str:
    """The file-name stem for a sink: its name with anything path-hostile replaced."""
    return _UNSAFE.sub("_", sink_name) or "sink"


@dataclass(frozen=True, slots=True)
class SpillBatch:
    """Records read from the head of a spill file; ``end`` is the offset to commit once delivered."""

    records: list[Record]
    end: int
    corrupt: int


class SpillFile:
    """One sink's spill file. Every method but :meth:`read` is synchronous and cheap."""

    def __init__(self, directory: str | Path, sink_name: str) -> None:
        stem = spill_stem(sink_name)
        self._dir = Path(directory)
        self.path = self._dir / f"{stem}.spill.jsonl"
        self._offset_path = self._dir / f"{stem}.spill.offset"
        self._fd: int | None = None
        self._size = 0
        self._offset = 0

    def open(self) -> None:
        """Open for appending, recovering the size and the committed offset of an earlier run."""
        self._dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._offset = self._read_offset()
        if self._size and not self._ends_with_newline():
            # A crash tore the last line; terminate it so it reads as one corrupt line, not as the
            # start of the next record.
            self._size += os.write(self._fd, b"\n")

    @property
    def offset(self) -> int:
        """Byte offset of the first undelivered line."""
        return self._offset

    @property
    def pending(self) -> bool:
        """True while some spilled record has not been delivered."""
        return self._offset < self._size

    def append(self, records: list[Record]) -> int:
        """Append records; return how many could not be written (unserializable or disk error)."""
        lines: list[bytes] = []
        bad = 0
        for record in records:
            try:
                lines.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            except TypeError:
                bad += 1
        if not lines:
            return bad
        payload = b"".join(lines)
        try:
            if self._fd is None:
                # Closed (a submit after the writer closed): append once, the next start drains it.
                self._dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    _write_all(fd, payload)
                finally:
                    os.close(fd)
            else:
                _write_all(self._fd, payload)
                self._size += len(payload)
        except OSError:
            return bad + len(lines)
        return bad

    async def read(self, limit: int) -> SpillBatch:
        """Read up to ``limit`` complete records from the head, in a worker thread."""
        return await asyncio.to_thread(self._read_sync, self._offset, self._size, limit)

    def commit(self, end: int) -> None:
        """Mark everything before ``end`` delivered; truncate the file once all of it is."""
        self._offset = end
        if self._fd is not None and self._offset >= self._size:
            os.ftruncate(self._fd, 0)
            self._size = self._offset = 0
        self._write_offset()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _read_sync(self, start: int, stop: int, limit: int) -> SpillBatch:
        records: list[Record] = []
        corrupt = 0
        position = start
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed below; FileNotFoundError handled
        except FileNotFoundError:
            return SpillBatch([], stop, 0)  # removed by hand: nothing left to deliver
        with fh:
            fh.seek(start)
            while len(records) < limit and position < stop:
                line = fh.readline()
                if not line:
                    position = stop  # the file shrank under us (removed by hand): nothing to read
                    break
                if not line.endswith(b"\n"):
                    break  # an append in progress: leave it for the next read
                position += len(line)
                if not line.strip():
                    continue
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    corrupt += 1
        return SpillBatch(records, position, corrupt)

    def _read_offset(self) -> int:
        try:
            offset = int(self._offset_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0
        return offset if 0 <= offset <= self._size else 0

    def _write_offset(self) -> None:
        try:
            if self._offset:
                self._offset_path.write_text(f"{self._offset}\n")
            else:
                self._offset_path.unlink(missing_ok=True)
        except OSError:
            pass  # losing the offset only means a redelivery of the drained head after a crash

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]
