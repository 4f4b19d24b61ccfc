"""Cost of one request's budget round (reserve + settle) in the memory store and in Redis.

    .venv/bin/python bench/state_store.py [--redis-url redis://127.0.0.1:6379/0] [--requests 20000]
                                          [--cap-keys 200000]

64 concurrent tasks each run reserve-then-settle over a realistic set of counters (team rate limits,
team day/month budgets, a per-user day budget). Prints wall-clock µs per request (throughput view)
and the p50/p99 latency of each reserve and settle call as one task sees it.

Then the memory store's loop counters at their cap, in the steady state of one-shot traffic (a new
session per request, so every hit adds a counter and forgets the least recently hit one).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from wardgate.state import Charge, Limit, MemoryStateStore, RedisStateStore, StateStore, Unit, Window

CONCURRENCY = 64
TEAM = "bench"


def _limits(user: int) -> list[Limit]:
    big = 10**12
    return [
        Limit("team:bench", Window.RATE_MINUTE, Unit.REQUESTS, big),
        Limit("team:bench", Window.RATE_MINUTE, Unit.TOKENS, big),
        Limit("team:bench", Window.DAY, Unit.TOKENS, big),
        Limit("team:bench", Window.MONTH, Unit.USD, big),
        Limit(f"user:bench:u-{user}", Window.DAY, Unit.TOKENS, big),
    ]


async def _worker(store: StateStore, worker: int, count: int, reserve_us: list[float], settle_us: list[float]) -> None:
    limits = _limits(worker % 8)
    estimate = [1, 1000, 1000, 0.002, 1000]
    actual = [1, 400, 400, 0.0008, 400]
    for _ in range(count):
        rid = uuid.uuid4().hex
        start = time.perf_counter()
        result = await store.reserve(TEAM, rid, [Charge(limit, a) for limit, a in zip(limits, estimate)], ttl_s=60)
        middle = time.perf_counter()
        assert result.ok
        await store.settle(TEAM, rid, [Charge(limit, a) for limit, a in zip(limits, actual)])
        end = time.perf_counter()
        reserve_us.append((middle - start) * 1e6)
        settle_us.append((end - middle) * 1e6)


async def _run(name: str, store: StateStore, requests: int) -> None:
    reserve_us: list[float] = []
    settle_us: list[float] = []
    per_task = requests // CONCURRENCY
    await _worker(store, 0, 50, [], [])  # warm up: connections, script loading
    start = time.perf_counter()
    await asyncio.gather(*(_worker(store, w, per_task, reserve_us, settle_us) for w in range(CONCURRENCY)))
    wall = time.perf_counter() - start
    done = per_task * CONCURRENCY

    def pct(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1]

    print(
        f"{name:<14} {done:>6} requests  {wall / done * 1e6:8.1f} µs/request (wall, {CONCURRENCY} tasks)  "
        f"reserve p50 {pct(reserve_us, 50):7.0f} p99 {pct(reserve_us, 99):7.0f} µs  "
        f"settle p50 {pct(settle_us, 50):7.0f} p99 {pct(settle_us, 99):7.0f} µs"
    )


async def _at_cap(cap: int) -> None:
    store = MemoryStateStore(max_hit_keys=cap)
    now = 1_000_000.0
    for i in range(2 * cap):  # past the cap: from here on every hit trims one counter
        await store.hit(TEAM, f"session-{i}", 600, now + i / 1000)
    count = 50_000
    start = time.perf_counter()
    for i in range(2 * cap, 2 * cap + count):
        await store.hit(TEAM, f"session-{i}", 600, now + i / 1000)
    print(f"{'memory at cap':<14} {count:>6} hits      {(time.perf_counter() - start) / count * 1e6:8.1f} µs/hit "
          f"with {cap} loop counters, one new session per hit")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--cap-keys", type=int, default=200_000)
    args = parser.parse_args()
    await _run("memory", MemoryStateStore(), args.requests)
    await _at_cap(args.cap_keys)
    prefix = f"wgbench-{uuid.uuid4().hex[:8]}"
    store = RedisStateStore.from_url(args.redis_url, prefix=prefix)
    try:
        await _run("redis", store, args.requests)
    finally:
        client = store._redis  # the bench cleans up its own keys
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for chunk in range(0, len(keys), 500):
            await client.delete(*keys[chunk : chunk + 500])
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
