"""Cost of ``SinkWriter.submit()`` on the request path, with each sink type delivering behind it.

    .venv/bin/python bench/sink_writer.py [--records 20000] [--rate 5000] [--redis-url ...] [--postgres-dsn ...]

Submits records in bursts of 64 (as concurrent requests finishing together would) paced at ``--rate``
records/s (0: as fast as the loop goes, a flood that overflows the queues into the spill files),
timing every call. Scenarios: each sink alone, all four together, and an HTTP sink that is down
with a small queue (the spill path: every submit appends a line to disk). Prints p50/p99/max µs per
submit, then how long close() took to deliver the rest and the writer's counters.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import redis.asyncio as redis
from aiohttp import web

from wardgate.sinks import HttpSink, JsonlSink, PostgresSink, RedisStreamSink, Sink, SinkWriter

BURST = 64


def _record(i: int, run: str) -> dict:
    return {
        "schema": "wardgate.trace/1", "request_id": f"{run}-{i}", "trace_id": uuid.uuid4().hex,
        "session_id": f"s-{i % 97}", "time": "2026-11-24T10:00:00.123Z", "team": "search",
        "key_id": "search-prod", "user": f"u-{i % 41}", "route": "/v1/chat/completions",
        "model": "gpt-4o-mini", "upstream": "openai", "upstream_model": "gpt-4o-mini", "stream": True,
        "status": 200, "outcome": "served",
        "verdicts": [{"stage": "injection", "action": "flag", "code": "injection.override", "score": 0.74,
                      "message": "instruction override"}],
        "redactions": [{"entity": "EMAIL_ADDRESS", "count": 1, "where": "input"}],
        "usage": {"prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908}, "cost_usd": 0.000179,
        "timings_ms": {"total": 1412.5, "overhead": 0.9, "upstream": 1411.6, "ttft": 380.2,
                       "stages": {"redact": 0.21}},
        "tags": {"feature": "search"}, "prompt": "search-answer@v7",
        "request": {"messages": ["Summarize the attached notes for <EMAIL_ADDRESS_1>. " * 8]},
        "response": {"content": "Here is a summary of the notes you attached. " * 10}, "error": None,
    }


async def collector() -> tuple[web.AppRunner, str]:
    """A loopback HTTP collector that accepts every batch (the http sink's peer in benchmarks)."""
    async def ingest(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/ingest", ingest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/ingest"


async def _scenario(label: str, sinks: list[Sink], records: int, rate: float, spill_dir: Path,
                    **options: int) -> None:
    writer = SinkWriter(sinks, spill_dir=spill_dir, retry_interval_s=0.2, **options)
    await writer.start()
    run = uuid.uuid4().hex[:8]
    payloads = [_record(i, run) for i in range(records)]
    timings: list[float] = []
    clock = time.perf_counter_ns
    began = time.perf_counter()
    for start in range(0, records, BURST):
        for record in payloads[start:start + BURST]:
            t0 = clock()
            writer.submit(record)
            timings.append((clock() - t0) / 1000)
        due = began + (start + BURST) / rate - time.perf_counter() if rate else 0
        await asyncio.sleep(max(due, 0))
    t0 = time.perf_counter()
    await writer.close(timeout_s=60 if "down" not in label else 0.5)
    drain = time.perf_counter() - t0
    q = statistics.quantiles(timings, n=100)
    counters = {name: {k: v for k, v in s.items() if v} for name, s in writer.stats().items()}
    print(f"{label:<22} submit µs p50 {q[49]:6.2f}  p99 {q[98]:6.2f}  max {max(timings):8.1f}   "
          f"close {drain * 1000:7.1f} ms   {counters}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=5000.0, help="records/s; 0 = flood")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    runner, url = await collector()
    table = f"wardgate_bench_{uuid.uuid4().hex[:8]}"
    stream = f"wardgate:bench:{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        makers = {
            "jsonl": lambda: JsonlSink(root / "traces.jsonl", max_bytes=256 * 1024 * 1024),
            "redis_stream": lambda: RedisStreamSink(args.redis_url, stream=stream, maxlen=100_000),
            "postgres": lambda: PostgresSink(args.postgres_dsn, table=table, retention_days=None),
            "http": lambda: HttpSink(url),
        }
        try:
            for name, make in makers.items():
                await _scenario(name, [make()], args.records, args.rate, root / name)
            await _scenario("all four", [make() for make in makers.values()], args.records, args.rate, root / "all")
            await _scenario("http down, queue 100", [HttpSink("http://127.0.0.1:9/ingest", timeout_s=0.2)],
                            args.records, args.rate, root / "down", queue_size=100)
        finally:
            await runner.cleanup()
            conn = await asyncpg.connect(args.postgres_dsn)
            await conn.execute(f"DROP TABLE IF EXISTS {table}, {table}_feedback")
            await conn.close()

            client = redis.Redis.from_url(args.redis_url)
            await client.delete(stream)
            await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
