"""The Redis Streams sink: ``XADD <stream> MAXLEN ~ <maxlen> * record <json>``, one pipeline per batch.

Approximate trimming (``~``) lets Redis drop whole macro-nodes, so the stream holds at least
``maxlen`` entries and a little more (https://redis.io/docs/latest/commands/xadd/). The client's own
retries are switched off: the writer retries, spills meanwhile, and a retried pipeline inside the
client would only delay that and risk a second copy of the batch.
"""

from __future__ import annotations

import orjson
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from wardgate.sinks.protocol import Record

__all__ = ["RedisStreamSink"]


class RedisStreamSink:
    """Appends each record as one stream entry with a single field, ``record`` (the JSON)."""

    def __init__(self, url: str, *, stream: str = "wardgate:traces", maxlen: int | None = 100_000,
                 name: str = "redis_stream", timeout_s: float = 5.0) -> None:
        self.name = name
        self.stream = stream
        self._url = url
        self._maxlen = maxlen if maxlen and maxlen > 0 else None
        self._timeout = timeout_s
        self._client: redis.Redis | None = None

    async def open(self) -> None:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._url, socket_connect_timeout=self._timeout, socket_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0))
        await self._client.ping()  # raise now if Redis is down, so the writer knows

    async def write(self, records: list[Record]) -> None:
        if self._client is None:
            raise RuntimeError("redis_stream sink is not open")
        pipe = self._client.pipeline(transaction=False)
        for record in records:
            pipe.xadd(self.stream, {"record": orjson.dumps(record)}, maxlen=self._maxlen,
                      approximate=True)
        await pipe.execute()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
