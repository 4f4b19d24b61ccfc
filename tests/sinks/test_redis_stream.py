from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as redis

from tests.sinks import trace_record
from wardgate.sinks import RedisStreamSink, build_sink


@pytest.fixture
async def stream(redis_url: str) -> AsyncIterator[str]:
    key = f"wardgate:test:{uuid.uuid4().hex}"
    yield key
    client = redis.Redis.from_url(redis_url)
    await client.delete(key)
    await client.aclose()


async def _entries(url: str, key: str) -> list[dict]:
    client = redis.Redis.from_url(url)
    try:
        return [orjson.loads(fields[b"record"]) for _, fields in await client.xrange(key)]
    finally:
        await client.aclose()


async def test_roundtrip_one_entry_per_record_in_order(redis_url: str, stream: str) -> None:
    sink = build_sink({"type": "redis_stream", "url": redis_url, "stream": stream, "maxlen": 1000})
    await sink.open()
    await sink.write([trace_record(i) for i in range(5)])
    await sink.write([trace_record(5)])
    await sink.close()
    assert await _entries(redis_url, stream) == [trace_record(i) for i in range(6)]


async def test_maxlen_trims_the_stream_approximately(redis_url: str, stream: str) -> None:
    sink = RedisStreamSink(redis_url, stream=stream, maxlen=100)
    await sink.open()
    for start in range(0, 2000, 200):
        await sink.write([trace_record(i) for i in range(start, start + 200)])
    await sink.close()
    entries = await _entries(redis_url, stream)
    # "~" trims whole macro-nodes (100 entries each by default): at least maxlen stay, far fewer than 2000.
    assert 100 <= len(entries) <= 300
    assert entries[-1]["request_id"] == "r-001999"


async def test_open_raises_when_redis_is_unreachable() -> None:
    sink = RedisStreamSink("redis://127.0.0.1:1/0", timeout_s=0.5)
    with pytest.raises(redis.ConnectionError):
        await sink.open()
    await sink.close()
