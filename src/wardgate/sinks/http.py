"""The HTTP sink: POST each batch as one JSON array; anything but 2xx means "not delivered".

It owns its ``ClientSession`` (a collector is not the upstream pool, and must not borrow from it).
``batch_size`` caps the records per POST: the writer reads it and never hands over a bigger batch,
so one failed POST never leaves half a batch delivered and the other half retried.
"""

from __future__ import annotations

import aiohttp
import orjson

from wardgate.sinks.protocol import Record

__all__ = ["HttpSink", "HttpSinkError"]


class HttpSinkError(Exception):
    """The collector answered with a non-2xx status."""

    def __init__(self, url: str, status: int, body: str) -> None:
        super().__init__(f"POST {url} -> {status}: {body[:200]}")
        self.status = status


class HttpSink:
    """POSTs ``[record, ...]`` to ``url`` with the configured headers."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, batch_size: int | None = None,
                 timeout_s: float = 10.0, name: str = "http") -> None:
        self.name = name
        self.url = url
        self.batch_size = batch_size if batch_size and batch_size > 0 else None
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)

    async def write(self, records: list[Record]) -> None:
        if self._session is None:
            raise RuntimeError("http sink is not open")
        async with self._session.post(self.url, data=orjson.dumps(records)) as response:
            body = await response.text(errors="replace")
            if not 200 <= response.status < 300:
                raise HttpSinkError(self.url, response.status, body)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
