"""What only the Redis store must show: replicas sharing one cap, Cluster-safe keys, TTLs, outages."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from redis.cluster import key_slot

from wardgate.state import (
    Charge,
    Limit,
    MemoryStateStore,
    RedisStateStore,
    StateUnavailable,
    Unit,
    Window,
)

from .test_contract import NOW, TEAM, _drop_prefix, rid, state_of


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    name = f"wgtest-{uuid.uuid4().hex[:10]}"
    yield name
    await _drop_prefix(redis_url, name)


@pytest.fixture
async def replicas(redis_url: str, prefix: str) -> AsyncIterator[Callable[[], RedisStateStore]]:
    made: list[RedisStateStore] = []

    def make() -> RedisStateStore:
        # Three "replicas" share this test's one event loop: up to 192 connects at once, which can take
        # longer than the production 0.5 s connect budget of one process on a loaded machine.
        made.append(RedisStateStore.from_url(redis_url, prefix=prefix, connect_timeout_s=5.0, socket_timeout_s=5.0))
        return made[-1]

    yield make
    for store in made:
        await store.close()


async def _keys(redis_url: str, prefix: str) -> list[str]:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        return sorted([key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)])
    finally:
        await client.aclose()


async def test_three_replicas_share_one_exact_cap(replicas: Callable[[], RedisStateStore]) -> None:
    stores = [replicas() for _ in range(3)]
    tokens = Limit("team:search", Window.DAY, Unit.TOKENS, 10_000)
    rng = random.Random(7)
    calls = [(stores[n % 3], rid(), rng.randint(50, 150)) for n in range(300)]
    results = await asyncio.gather(*(s.reserve(TEAM, i, [Charge(tokens, a)], ttl_s=60, now=NOW) for s, i, a in calls))
    admitted = [(s, i, a) for (s, i, a), r in zip(calls, results) if r.ok]
    assert 10_000 - 150 < sum(a for _, _, a in admitted) <= 10_000
    # Settle each on a different replica than reserved it: the record in Redis says what it holds.
    others = {id(s): stores[(stores.index(s) + 1) % 3] for s in stores}
    await asyncio.gather(*(others[id(s)].settle(TEAM, i, [Charge(tokens, a)], now=NOW + 1) for s, i, a in admitted))
    state = await state_of(stores[0], tokens, NOW + 1)
    assert state.reserved == 0 and state.used == sum(a for _, _, a in admitted)
    # The replica that reserved cannot charge again afterwards.
    assert not any(await asyncio.gather(*(s.settle(TEAM, i, [Charge(tokens, a)], now=NOW + 2) for s, i, a in admitted)))
    assert (await state_of(stores[1], tokens, NOW + 2)).used == state.used


async def test_every_key_of_a_team_shares_its_hash_slot_and_expires(
    replicas: Callable[[], RedisStateStore], redis_url: str, prefix: str
) -> None:
    store = replicas()
    limits = [
        Limit("team:search", Window.MINUTE, Unit.REQUESTS, 600),
        Limit("team:search", Window.RATE_MINUTE, Unit.TOKENS, 200_000),
        Limit("team:search", Window.MONTH, Unit.USD, 500),
        Limit("user:search:u-{42}", Window.DAY, Unit.TOKENS, 100_000),  # braces in a user id stay harmless
        Limit("key:search-prod", Window.TOTAL, Unit.TOKENS, 10**9),
    ]
    one, two = rid(), rid()
    assert (await store.reserve(TEAM, one, [Charge(limit, 1) for limit in limits], ttl_s=60)).ok
    assert (await store.reserve(TEAM, two, [Charge(limit, 1) for limit in limits], ttl_s=60)).ok
    await store.settle(TEAM, one, [Charge(limits[1], 2)])
    await store.hit(TEAM, "session:abc", 600)
    keys = await _keys(redis_url, prefix)
    assert len(keys) >= 10
    assert all(key.startswith(f"{prefix}:{{{TEAM}}}:") for key in keys)
    assert len({key_slot(key.encode()) for key in keys}) == 1
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        ttls = {key: await client.pttl(key) for key in keys}
    finally:
        await client.aclose()
    forever = {key for key, ttl in ttls.items() if ttl < 0}
    assert forever and all(":total:" in key for key in forever)  # only `total` counters never expire


async def test_memory_and_redis_agree_on_a_random_history(replicas: Callable[[], RedisStateStore]) -> None:
    stores = (MemoryStateStore(), replicas())
    limits = [
        Limit("team:search", Window.MINUTE, Unit.REQUESTS, 20),
        Limit("team:search", Window.RATE_MINUTE, Unit.TOKENS, 3000, burst=1500),
        Limit("team:search", Window.HOUR, Unit.USD, 0.3),
        Limit("user:search:u-1", Window.DAY, Unit.TOKENS, 20_000),
        Limit("key:search-prod", Window.TOTAL, Unit.TOKENS, 40_000),
    ]
    rng = random.Random(11)
    now, open_ids = NOW, []
    for step in range(400):
        now += rng.choice([0, 0, 0.3, 2.5, 17])
        action = rng.random()
        if action < 0.55 or not open_ids:
            chosen = rng.sample(limits, rng.randint(1, len(limits)))
            charges = [Charge(limit, _amount(rng, limit)) for limit in chosen]
            one = f"r{step}"
            ttl_s = rng.choice([5, 60])
            got = [await s.reserve(TEAM, one, charges, ttl_s=ttl_s, now=now) for s in stores]
            assert got[0] == got[1], step
            if got[0].ok:
                open_ids.append((one, chosen))
        elif action < 0.85:
            one, chosen = open_ids.pop(rng.randrange(len(open_ids)))
            actual = [Charge(limit, _amount(rng, limit)) for limit in chosen if rng.random() < 0.8]
            got = [await s.settle(TEAM, one, actual, now=now) for s in stores]
            assert got[0] == got[1], step
        elif action < 0.95:
            one, _ = open_ids.pop(rng.randrange(len(open_ids)))
            assert await stores[0].release(TEAM, one, now=now) == await stores[1].release(TEAM, one, now=now)
        else:
            key = rng.choice(["a", "b"])
            assert await stores[0].hit(TEAM, key, 30, now=now) == await stores[1].hit(TEAM, key, 30, now=now)
    assert await stores[0].snapshot(TEAM, now=now) == await stores[1].snapshot(TEAM, now=now)


def _amount(rng: random.Random, limit: Limit) -> float:
    if limit.unit is Unit.USD:
        return round(rng.uniform(0, 0.01), 6)
    if limit.unit is Unit.REQUESTS:
        return 1
    return rng.randint(0, 1200)


async def test_unreachable_redis_raises_state_unavailable() -> None:
    store = RedisStateStore.from_url("redis://127.0.0.1:1/0", prefix="wgtest-down")
    limit = Limit("team:search", Window.DAY, Unit.TOKENS, 100)
    try:
        assert await store.ping() is False
        with pytest.raises(StateUnavailable):
            await store.reserve(TEAM, rid(), [Charge(limit, 1)], ttl_s=60)
        with pytest.raises(StateUnavailable):
            await store.settle(TEAM, rid(), [Charge(limit, 1)])
        with pytest.raises(StateUnavailable):
            await store.release(TEAM, rid())
        with pytest.raises(StateUnavailable):
            await store.hit(TEAM, "session:abc", 60)
        with pytest.raises(StateUnavailable):
            await store.snapshot(TEAM)
    finally:
        await store.close()


async def test_ping_and_real_time_defaults(replicas: Callable[[], RedisStateStore]) -> None:
    store = replicas()
    assert await store.ping() is True
    limit = Limit("team:search", Window.DAY, Unit.TOKENS, 100)
    one = rid()
    assert (await store.reserve(TEAM, one, [Charge(limit, 60)], ttl_s=60)).ok
    assert not (await store.reserve(TEAM, rid(), [Charge(limit, 60)], ttl_s=60)).ok
    assert await store.release(TEAM, one)
    assert (await store.reserve(TEAM, rid(), [Charge(limit, 60)], ttl_s=60)).ok


@pytest.mark.parametrize("reply", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b""], ids=["not-redis", "silent"])
async def test_a_peer_that_is_not_redis_is_unavailable(reply: bytes) -> None:
    done = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(reply)  # or nothing at all: a hung server
        await writer.drain()
        await done.wait()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStateStore.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.2)
    try:
        with pytest.raises(StateUnavailable):
            await store.hit(TEAM, "session:abc", 60)
        assert await store.ping() is False
    finally:
        await store.close()
        done.set()
        server.close()
        await server.wait_closed()


async def test_concurrent_calls_share_pipelines_and_keep_their_own_replies(redis_url: str, prefix: str) -> None:
    """Calls made in one loop turn go to Redis as one pipeline; each caller still gets its own answer,
    and a cap shared by all of them holds exactly."""
    store = RedisStateStore.from_url(redis_url, prefix=prefix)
    cap = Limit("team:search", Window.DAY, Unit.REQUESTS, 40)
    try:
        results = await asyncio.gather(*[store.reserve(TEAM, rid(), [Charge(cap, 1)], ttl_s=60, now=NOW)
                                         for _ in range(100)])
        counts = await asyncio.gather(*[store.hit_many(TEAM, [f"k{i % 5}"], 60, now=NOW) for i in range(50)])
        assert sum(r.ok for r in results) == 40
        assert sorted(c[0] for c in counts) == sorted(n for _ in range(5) for n in range(1, 11))
        batcher = store._batcher
        assert batcher is not None and batcher.calls == 150 and batcher.batches < 20
        assert (await store.snapshot(TEAM, now=NOW))[0].reserved == 40
    finally:
        await store.close()


async def test_a_batch_after_a_script_flush_reloads_the_scripts(redis_url: str, prefix: str) -> None:
    store = RedisStateStore.from_url(redis_url, prefix=prefix)
    admin = Redis.from_url(redis_url)
    try:
        await store.hit(TEAM, "warm", 60)
        await admin.script_flush()  # a Redis restart forgets the loaded scripts
        counts = await asyncio.gather(*[store.hit_many(TEAM, ["same"], 60, now=NOW) for _ in range(8)])
        assert sorted(c[0] for c in counts) == list(range(1, 9))
    finally:
        await admin.aclose()
        await store.close()


async def test_a_batch_to_an_unreachable_redis_fails_every_call(prefix: str) -> None:
    store = RedisStateStore.from_url("redis://127.0.0.1:1/0", prefix=prefix)
    try:
        results = await asyncio.gather(*[store.hit(TEAM, f"k{i}", 60) for i in range(6)], return_exceptions=True)
        assert all(isinstance(r, StateUnavailable) for r in results)
    finally:
        await store.close()


async def test_a_caller_cancelled_before_its_batch_leaves_is_not_sent(redis_url: str, prefix: str) -> None:
    store = RedisStateStore.from_url(redis_url, prefix=prefix)
    try:
        calls = [asyncio.ensure_future(store.hit(TEAM, "c", 60, now=NOW)) for _ in range(6)]
        await asyncio.sleep(0)
        calls[0].cancel()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert sorted(results[1:]) == [1, 2, 3, 4, 5]  # cancelled before the batch left: never sent
    finally:
        await store.close()


async def test_the_index_is_written_once_a_minute_per_counter(redis_url: str, prefix: str,
                                                             replicas: Callable[[], RedisStateStore]) -> None:
    store = replicas()
    day = Limit("team:search", Window.DAY, Unit.TOKENS, 10_000)
    client = Redis.from_url(redis_url, decode_responses=True)
    index = f"{prefix}:{{{TEAM}}}:idx"

    async def scores() -> dict[str, float]:
        return {member.split("\x1f")[0]: score for member, score in await client.zrange(index, 0, -1, withscores=True)}

    try:
        await store.reserve(TEAM, rid(), [Charge(day, 1)], ttl_s=60, now=NOW)
        assert await scores() == {day.counter_id: NOW * 1e6}
        await client.delete(index)  # what the next reserves write, if anything
        await store.reserve(TEAM, rid(), [Charge(day, 1)], ttl_s=60, now=NOW + 30)
        assert await scores() == {}  # written 30 s ago by this process: skipped
        rate = Limit("team:search", Window.RATE_MINUTE, Unit.REQUESTS, 100)
        raised = Limit("team:search", Window.DAY, Unit.TOKENS, 20_000)  # a reload raised the cap: a new member
        await store.reserve(TEAM, rid(), [Charge(rate, 1), Charge(raised, 1)], ttl_s=60, now=NOW + 31)
        assert await scores() == {rate.counter_id: (NOW + 31) * 1e6, raised.counter_id: (NOW + 31) * 1e6}
        assert await client.pttl(index) > 30 * 86400 * 1000  # trimmed and kept alive when written
        await store.reserve(TEAM, rid(), [Charge(day, 1)], ttl_s=60, now=NOW + 61)
        assert (await scores())[day.counter_id] == (NOW + 61) * 1e6  # a minute on: written again
        # Another replica has not written it yet: it does, whatever this one did.
        await client.delete(index)
        await replicas().reserve(TEAM, rid(), [Charge(day, 1)], ttl_s=60, now=NOW + 62)
        assert set(await scores()) == {day.counter_id}
        assert {s.limit for s in await store.snapshot(TEAM, now=NOW + 62)} == {day}
    finally:
        await client.aclose()
