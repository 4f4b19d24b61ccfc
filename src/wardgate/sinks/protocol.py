"""The seam every trace sink implements, and the record type that crosses it."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Record", "Sink"]

#: One trace or feedback record (SPEC §4): a JSON-ready ``dict`` (str/int/float/bool/None/list/dict).
Record = dict[str, Any]


@runtime_checkable
class Sink(Protocol):
    """A destination for records. The writer owns retries, spilling and batching.

    ``name`` is unique per writer (the writer suffixes duplicates) and names the spill file and the
    ``sink`` label of ``wardgate_sink_records_total``. ``open`` may raise when the destination is
    down: the writer retries it later. ``write`` delivers a whole batch or raises; a raise means
    "not delivered", so the writer spills the batch and delivers it again later. A sink that may
    receive a batch twice (a reply lost after the server applied it) should make that harmless where
    it can (PostgreSQL: ``ON CONFLICT DO NOTHING``). A sink may also carry ``batch_size: int | None``
    to cap the batches the writer hands it (the HTTP sink does).
    """

    name: str

    async def open(self) -> None: ...

    async def write(self, records: list[Record]) -> None: ...

    async def close(self) -> None: ...
