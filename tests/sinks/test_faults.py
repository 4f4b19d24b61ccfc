"""The point of the writer: real sinks go down mid-run, come back, and lose or repeat nothing.

Redis and PostgreSQL are shared machine services, so each test puts a TCP forwarder on a loopback
port in front of the real server and stops it (closing live connections, refusing new ones) to
take the sink down; the HTTP collector answers 503 for a while instead.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import orjson
import pytest
import redis.asyncio as redis
from aiohttp import web

from tests.forwarder import Forwarder
from tests.sinks import trace_record
from wardgate.sinks import HttpSink, PostgresSink, RedisStreamSink, Sink, SinkWriter

TOTAL = 1000


async def _until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def _run_through_outage(sink: Sink, down: Callable, up: Callable, spill_dir: Path) -> dict[str, int]:
    """300 records up, 400 while down, 300 after recovery; return the sink's stats after close()."""
    writer = SinkWriter([sink], spill_dir=spill_dir, batch_size=50, flush_interval_s=0.01,
                        retry_interval_s=0.05, write_timeout_s=3.0)
    await writer.start()
    stats = lambda: writer.stats()[sink.name]  # noqa: E731
    for i in range(300):
        writer.submit(trace_record(i))
    await _until(lambda: stats()["delivered"] == 300)
    await down()
    for i in range(300, 700):
        writer.submit(trace_record(i))
    await _until(lambda: stats()["spilled"] >= 400 and stats()["queued"] == 0)
    await asyncio.sleep(0.15)  # a few failed retries while down
    assert stats()["delivered"] == 300
    await up()
    for i in range(700, TOTAL):
        writer.submit(trace_record(i))
    await writer.close(timeout_s=10)
    assert not (spill_dir / f"{sink.name}.spill.jsonl").read_bytes()  # fully drained
    return stats()


EXPECTED_IDS = [f"r-{i:06d}" for i in range(TOTAL)]


@pytest.fixture
async def pg_forwarder(postgres_dsn: str) -> AsyncIterator[Forwarder]:
    parts = urlsplit(postgres_dsn)
    forwarder = Forwarder(parts.hostname, parts.port)
    await forwarder.start()
    yield forwarder
    if forwarder._server is not None:
        await forwarder.stop()


@pytest.fixture
async def pg_table(postgres_dsn: str) -> AsyncIterator[str]:
    name = f"wardgate_fault_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(postgres_dsn)
    await conn.execute(f"DROP TABLE IF EXISTS {name}, {name}_feedback")
    await conn.close()


async def _pg_ids(dsn: str, table: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["request_id"] for r in await conn.fetch(f"SELECT request_id FROM {table} ORDER BY 1")]
    finally:
        await conn.close()


async def test_postgres_outage_loses_and_repeats_nothing(
        postgres_dsn: str, pg_forwarder: Forwarder, pg_table: str, tmp_path: Path) -> None:
    sink = PostgresSink(pg_forwarder.url(postgres_dsn), table=pg_table, timeout_s=2.0)
    stats = await _run_through_outage(sink, pg_forwarder.stop, pg_forwarder.start, tmp_path)
    assert (stats["delivered"], stats["dropped"]) == (TOTAL, 0)
    assert await _pg_ids(postgres_dsn, pg_table) == EXPECTED_IDS


async def test_postgres_down_at_startup_is_opened_later(
        postgres_dsn: str, pg_forwarder: Forwarder, pg_table: str, tmp_path: Path) -> None:
    sink = PostgresSink(pg_forwarder.url(postgres_dsn), table=pg_table, timeout_s=2.0)
    await pg_forwarder.stop()
    writer = SinkWriter([sink], spill_dir=tmp_path, batch_size=50, flush_interval_s=0.01,
                        retry_interval_s=0.05)
    await writer.start()
    for i in range(200):
        writer.submit(trace_record(i))
    await _until(lambda: writer.stats()["postgres"]["spilled"] == 200)
    await pg_forwarder.start()
    await writer.close()
    assert writer.stats()["postgres"]["delivered"] == 200
    assert await _pg_ids(postgres_dsn, pg_table) == EXPECTED_IDS[:200]


async def test_redis_outage_loses_and_repeats_nothing(redis_url: str, tmp_path: Path) -> None:
    parts = urlsplit(redis_url)
    forwarder = Forwarder(parts.hostname, parts.port)
    await forwarder.start()
    stream = f"wardgate:fault:{uuid.uuid4().hex}"
    sink = RedisStreamSink(forwarder.url(redis_url), stream=stream, maxlen=10_000, timeout_s=2.0)
    try:
        stats = await _run_through_outage(sink, forwarder.stop, forwarder.start, tmp_path)
    finally:
        await forwarder.stop()
    client = redis.Redis.from_url(redis_url)
    try:
        entries = await client.xrange(stream)
        await client.delete(stream)
    finally:
        await client.aclose()
    assert (stats["delivered"], stats["dropped"]) == (TOTAL, 0)
    ids = [orjson.loads(fields[b"record"])["request_id"] for _, fields in entries]
    assert ids == EXPECTED_IDS  # exactly once, and in order


async def test_http_outage_loses_and_repeats_nothing(aiohttp_server, tmp_path: Path) -> None:
    received: list[str] = []
    failing = False

    async def ingest(request: web.Request) -> web.Response:
        if failing:
            return web.Response(status=503, text="collector overloaded")
        received.extend(r["request_id"] for r in orjson.loads(await request.read()))
        return web.Response(status=204)

    async def down() -> None:
        nonlocal failing
        failing = True

    async def up() -> None:
        nonlocal failing
        failing = False

    app = web.Application()
    app.router.add_post("/ingest", ingest)
    server = await aiohttp_server(app)
    sink = HttpSink(str(server.make_url("/ingest")), batch_size=40, timeout_s=2.0)
    stats = await _run_through_outage(sink, down, up, tmp_path)
    assert (stats["delivered"], stats["dropped"]) == (TOTAL, 0)
    assert received == EXPECTED_IDS
