"""The behaviour every StateStore promises, run against the memory store and a real Redis."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from wardgate.state import (
    Charge,
    Limit,
    MemoryStateStore,
    RedisStateStore,
    StateStore,
    Unit,
    Window,
    window_span,
)

TEAM = "search"


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


NOW = at(2026, 11, 24, 10, 0, 0)


async def _drop_prefix(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"wgtest-{uuid.uuid4().hex[:10]}"
    redis_store = RedisStateStore.from_url(url, prefix=prefix)
    try:
        yield redis_store
    finally:
        await redis_store.close()
        await _drop_prefix(url, prefix)


def rid() -> str:
    return uuid.uuid4().hex


async def state_of(store: StateStore, limit: Limit, now: float):
    return next(s for s in await store.snapshot(TEAM, now=now) if s.limit.counter_id == limit.counter_id)


async def test_concurrent_reserves_never_overspend(store: StateStore) -> None:
    tokens = Limit("team:search", Window.DAY, Unit.TOKENS, 10_000)
    amounts = [random.Random(seed).randint(50, 150) for seed in range(300)]
    ids = [rid() for _ in amounts]
    results = await asyncio.gather(
        *(store.reserve(TEAM, i, [Charge(tokens, a)], ttl_s=60, now=NOW) for i, a in zip(ids, amounts))
    )
    admitted = [(i, a) for i, a, r in zip(ids, amounts, results) if r.ok]
    total = sum(a for _, a in admitted)
    assert any(not r.ok for r in results)
    assert 10_000 - 150 < total <= 10_000  # exact: full use, never over
    state = await state_of(store, tokens, NOW)
    assert state.used + state.reserved == total
    await asyncio.gather(*(store.settle(TEAM, i, [Charge(tokens, a * 0.9)], now=NOW + 1) for i, a in admitted))
    state = await state_of(store, tokens, NOW + 1)
    assert state.reserved == 0
    assert state.used == sum(round(a * 0.9) for _, a in admitted) <= 10_000


async def test_refusal_holds_nothing_and_names_first_failing_counter(store: StateStore) -> None:
    requests = Limit("team:search", Window.DAY, Unit.REQUESTS, 100)
    tokens = Limit("user:search:u-42", Window.DAY, Unit.TOKENS, 500)
    result = await store.reserve(TEAM, rid(), [Charge(requests, 1), Charge(tokens, 600)], ttl_s=60, now=NOW)
    assert not result.ok
    assert result.denied is not None and result.denied.limit == tokens
    assert result.denied.remaining == 500
    assert result.retry_after_s is None  # 600 never fits under 500, waiting cannot help
    assert [s.reserved for s in result.states] == [0, 0]
    assert (await state_of(store, requests, NOW)).reserved == 0


async def test_settle_with_less_frees_the_difference(store: StateStore) -> None:
    tokens = Limit("team:search", Window.DAY, Unit.TOKENS, 1000)
    first = rid()
    assert (await store.reserve(TEAM, first, [Charge(tokens, 800)], ttl_s=60, now=NOW)).ok
    assert not (await store.reserve(TEAM, rid(), [Charge(tokens, 300)], ttl_s=60, now=NOW)).ok
    assert await store.settle(TEAM, first, [Charge(tokens, 350)], now=NOW + 1)
    state = await state_of(store, tokens, NOW + 1)
    assert (state.used, state.reserved, state.remaining) == (350, 0, 650)
    assert (await store.reserve(TEAM, rid(), [Charge(tokens, 650)], ttl_s=60, now=NOW + 1)).ok


async def test_settle_twice_counts_once(store: StateStore) -> None:
    tokens = Limit("team:search", Window.DAY, Unit.TOKENS, 1000)
    one = rid()
    await store.reserve(TEAM, one, [Charge(tokens, 100)], ttl_s=60, now=NOW)
    assert await store.settle(TEAM, one, {tokens: 90}, now=NOW + 1)
    assert not await store.settle(TEAM, one, {tokens: 90}, now=NOW + 2)
    assert not await store.release(TEAM, one, now=NOW + 2)
    assert (await state_of(store, tokens, NOW + 2)).used == 90


async def test_release_frees_everything_and_is_idempotent(store: StateStore) -> None:
    tokens = Limit("team:search", Window.DAY, Unit.TOKENS, 1000)
    requests = Limit("team:search", Window.MINUTE, Unit.REQUESTS, 10)
    one = rid()
    await store.reserve(TEAM, one, [Charge(tokens, 1000), Charge(requests, 1)], ttl_s=60, now=NOW)
    assert await store.release(TEAM, one, now=NOW + 1)
    assert not await store.release(TEAM, one, now=NOW + 1)
    assert not await store.settle(TEAM, one, [Charge(tokens, 500)], now=NOW + 1)  # released: nothing to charge
    for limit in (tokens, requests):
        state = await state_of(store, limit, NOW + 1)
        assert (state.used, state.reserved) == (0, 0)


async def test_lost_reservation_expires(store: StateStore) -> None:
    tokens = Limit("team:search", Window.DAY, Unit.TOKENS, 1000)
    await store.reserve(TEAM, rid(), [Charge(tokens, 1000)], ttl_s=5, now=NOW)  # its replica dies
    assert not (await store.reserve(TEAM, rid(), [Charge(tokens, 1)], ttl_s=5, now=NOW + 4.9)).ok
    assert (await store.reserve(TEAM, rid(), [Charge(tokens, 1000)], ttl_s=5, now=NOW + 5)).ok


async def test_settle_after_expiry_charges_actual_once(store: StateStore) -> None:
    tokens = Limit("team:search", Window.DAY, Unit.TOKENS, 1000)
    late = rid()
    await store.reserve(TEAM, late, [Charge(tokens, 600)], ttl_s=5, now=NOW)
    assert await store.settle(TEAM, late, [Charge(tokens, 300)], now=NOW + 30)
    assert not await store.settle(TEAM, late, [Charge(tokens, 300)], now=NOW + 31)
    state = await state_of(store, tokens, NOW + 31)
    assert (state.used, state.reserved) == (300, 0)


async def test_counters_missing_from_actual_are_charged_as_reserved(store: StateStore) -> None:
    requests = Limit("team:search", Window.DAY, Unit.REQUESTS, 10)
    tokens = Limit("team:search", Window.DAY, Unit.TOKENS, 1000)
    extra = Limit("key:search-prod", Window.DAY, Unit.TOKENS, 1000)  # not reserved: charged now
    one = rid()
    await store.reserve(TEAM, one, [Charge(requests, 1), Charge(tokens, 500)], ttl_s=60, now=NOW)
    await store.settle(TEAM, one, [Charge(tokens, 200), Charge(extra, 200)], now=NOW + 1)
    assert [(await state_of(store, limit, NOW + 1)).used for limit in (requests, tokens, extra)] == [1, 200, 200]


async def test_charges_on_one_counter_add_up(store: StateStore) -> None:
    tokens = Limit("team:search", Window.DAY, Unit.TOKENS, 1000)
    result = await store.reserve(TEAM, rid(), [Charge(tokens, 600), Charge(tokens, 500)], ttl_s=60, now=NOW)
    assert not result.ok and len(result.states) == 1


async def test_dollars_are_exact(store: StateStore) -> None:
    usd = Limit("team:search", Window.MONTH, Unit.USD, 0.3)
    for _ in range(3):  # 0.1 + 0.1 + 0.1 > 0.3 in floats
        assert (await store.reserve(TEAM, rid(), [Charge(usd, 0.1)], ttl_s=60, now=NOW)).ok
    refused = await store.reserve(TEAM, rid(), [Charge(usd, 0.000001)], ttl_s=60, now=NOW)
    assert not refused.ok and refused.denied is not None and refused.denied.reserved == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("window", "last_moment", "next_window"),
    [
        (Window.MINUTE, at(2026, 11, 24, 10, 0, 59), at(2026, 11, 24, 10, 1)),
        (Window.HOUR, at(2026, 11, 24, 10, 59, 59), at(2026, 11, 24, 11)),
        (Window.DAY, at(2026, 11, 24, 23, 59, 59), at(2026, 11, 25)),
        (Window.MONTH, at(2026, 1, 31, 23, 59, 59), at(2026, 2, 1)),
        (Window.MONTH, at(2025, 2, 28, 23, 59, 59), at(2025, 3, 1)),  # no 29th in 2025
        (Window.MONTH, at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1)),
    ],
)
async def test_calendar_window_resets_at_its_boundary(
    store: StateStore, window: Window, last_moment: float, next_window: float
) -> None:
    limit = Limit("team:search", window, Unit.REQUESTS, 2)
    one, two = rid(), rid()
    await store.reserve(TEAM, one, [Charge(limit, 1)], ttl_s=60, now=last_moment - 0.5)
    await store.settle(TEAM, one, [Charge(limit, 1)], now=last_moment - 0.5)
    assert (await store.reserve(TEAM, two, [Charge(limit, 1)], ttl_s=60, now=last_moment)).ok
    refused = await store.reserve(TEAM, rid(), [Charge(limit, 1)], ttl_s=60, now=last_moment + 0.5)
    assert not refused.ok
    assert refused.denied is not None and refused.denied.resets_at == next_window
    assert refused.retry_after_s == pytest.approx(0.5)
    fresh = await store.reserve(TEAM, rid(), [Charge(limit, 2)], ttl_s=60, now=next_window)
    assert fresh.ok and fresh.states[0].used == 0
    # The reservation made before the boundary settles into its own window, not the new one.
    await store.settle(TEAM, two, [Charge(limit, 1)], now=next_window + 1)
    assert (await state_of(store, limit, next_window + 1)).reserved == 2


async def test_total_never_resets(store: StateStore) -> None:
    limit = Limit("key:search-prod", Window.TOTAL, Unit.TOKENS, 100)
    one = rid()
    await store.reserve(TEAM, one, [Charge(limit, 100)], ttl_s=60, now=NOW)
    await store.settle(TEAM, one, [Charge(limit, 100)], now=NOW)
    refused = await store.reserve(TEAM, rid(), [Charge(limit, 1)], ttl_s=60, now=NOW + 400 * 86400)
    assert not refused.ok and refused.retry_after_s is None
    assert refused.denied is not None and refused.denied.resets_at is None and refused.denied.used == 100


async def _admit(store: StateStore, limit: Limit, now: float, amount: float = 1):
    return await store.reserve(TEAM, rid(), [Charge(limit, amount)], ttl_s=60, now=now)


async def test_rate_limit_admits_a_burst_then_one_per_interval(store: StateStore) -> None:
    rpm = Limit("team:search", Window.RATE_MINUTE, Unit.REQUESTS, 60)
    burst = [await _admit(store, rpm, NOW) for _ in range(61)]
    assert all(r.ok for r in burst[:60])
    assert not burst[60].ok and burst[60].retry_after_s == pytest.approx(1.0)
    assert burst[60].denied is not None and burst[60].denied.remaining == 0
    assert not (await _admit(store, rpm, NOW + 0.99)).ok
    assert (await _admit(store, rpm, NOW + 1.0)).ok
    admitted = [await _admit(store, rpm, NOW + 1 + step / 10) for step in range(1, 101)]
    assert sum(r.ok for r in admitted) == 10  # ten seconds at one a second
    refused = next(r for r in admitted if not r.ok)
    assert 0 < refused.retry_after_s <= 1.0


async def test_rate_limit_is_smooth_across_the_minute_boundary(store: StateStore) -> None:
    rpm = Limit("team:search", Window.RATE_MINUTE, Unit.REQUESTS, 60)
    before = [await _admit(store, rpm, at(2026, 11, 24, 12, 0, 59)) for _ in range(60)]
    after = [await _admit(store, rpm, at(2026, 11, 24, 12, 1, 0)) for _ in range(60)]
    assert sum(r.ok for r in before) == 60
    assert sum(r.ok for r in after) == 1  # a calendar minute would admit all 60 again


async def test_rate_limit_burst_and_token_correction(store: StateStore) -> None:
    small_burst = Limit("key:search-prod", Window.RATE_MINUTE, Unit.REQUESTS, 60, burst=5)
    assert [(await _admit(store, small_burst, NOW)).ok for _ in range(6)] == [True] * 5 + [False]
    tpm = Limit("team:search", Window.RATE_MINUTE, Unit.TOKENS, 1000)
    assert (await _admit(store, tpm, NOW, 4000)).retry_after_s is None  # over the bucket: never fits
    one = rid()
    assert (await store.reserve(TEAM, one, [Charge(tpm, 800)], ttl_s=60, now=NOW)).states[0].remaining == 200
    await store.settle(TEAM, one, [Charge(tpm, 100)], now=NOW)  # the estimate was high: give it back
    assert (await state_of(store, tpm, NOW)).remaining == 900


async def test_hit_counts_a_sliding_window(store: StateStore) -> None:
    counts = [await store.hit(TEAM, "session:abc", 10, now=NOW + t) for t in (0, 1, 2, 10.5, 12.5)]
    assert counts == [1, 2, 3, 3, 2]
    assert await store.hit(TEAM, "session:other", 10, now=NOW + 12.5) == 1
    assert await store.hit("other-team", "session:abc", 10, now=NOW + 12.5) == 1


async def test_hit_many_counts_each_key_in_one_call(store: StateStore) -> None:
    assert await store.hit_many(TEAM, ["a", "b"], 10, now=NOW) == [1, 1]
    assert await store.hit_many(TEAM, ["a", "c", "b"], 10, now=NOW + 1) == [2, 1, 2]
    assert await store.hit(TEAM, "a", 10, now=NOW + 10.5) == 2  # the event at NOW left the window
    assert await store.hit_many(TEAM, ["b"], 10, now=NOW + 11.5) == [1]


async def test_snapshot_lists_each_counter_in_its_current_window(store: StateStore) -> None:
    day = Limit("team:search", Window.DAY, Unit.TOKENS, 1000)
    rpm = Limit("team:search", Window.RATE_MINUTE, Unit.REQUESTS, 60)
    await store.reserve(TEAM, rid(), [Charge(day, 100), Charge(rpm, 1)], ttl_s=60, now=NOW)
    states = {s.limit.counter_id: s for s in await store.snapshot(TEAM, now=NOW)}
    assert set(states) == {day.counter_id, rpm.counter_id}
    assert states[day.counter_id].reserved == 100 and states[day.counter_id].limit.limit == 1000
    assert states[rpm.counter_id].remaining == 59
    tomorrow = {s.limit.counter_id: s for s in await store.snapshot(TEAM, now=NOW + 86400)}
    assert tomorrow[day.counter_id].reserved == 0
    assert await store.snapshot("nobody", now=NOW) == []


async def test_bad_input_is_refused(store: StateStore) -> None:
    tokens = Limit("team:search", Window.DAY, Unit.TOKENS, 1000)
    one = rid()
    await store.reserve(TEAM, one, [Charge(tokens, 1)], ttl_s=60, now=NOW)
    with pytest.raises(ValueError):
        await store.reserve(TEAM, one, [Charge(tokens, 1)], ttl_s=60, now=NOW)
    with pytest.raises(ValueError):
        await store.reserve("a}b", rid(), [Charge(tokens, 1)], ttl_s=60, now=NOW)
    with pytest.raises(ValueError):
        await store.reserve(TEAM, rid(), [Charge(tokens, -1)], ttl_s=60, now=NOW)
    with pytest.raises(ValueError):
        Limit("team:search", Window.DAY, Unit.TOKENS, 10, burst=5)
    with pytest.raises(ValueError):
        Limit("user:search:u\x1f1", Window.DAY, Unit.TOKENS, 10)


async def test_hit_tolerates_a_clock_step_back(store: StateStore) -> None:
    counts = [await store.hit(TEAM, "identical:x", 10, now=NOW + t) for t in (5, 3, 14)]
    assert counts == [1, 2, 2]  # at 14 the window is (4, 14]: the events at 5 and 14


def test_calendar_labels_name_the_window() -> None:
    moment = at(2026, 12, 31, 23, 59, 30)
    labels = {window: window_span(window, moment) for window in (Window.MINUTE, Window.HOUR, Window.DAY, Window.MONTH)}
    assert [span.label for span in labels.values()] == ["202612312359", "2026123123", "20261231", "202612"]
    assert {span.resets_at for span in labels.values()} == {at(2027, 1, 1)}
    assert labels[Window.MONTH].start == at(2026, 12, 1)
    assert window_span(Window.TOTAL, moment).resets_at is None
