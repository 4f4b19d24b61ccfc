"""What only the memory store must show: a long-lived process forgets what no call can observe."""

from __future__ import annotations

from wardgate.state import Charge, Limit, MemoryStateStore, Unit, Window

from .test_contract import NOW, TEAM, rid, state_of


def _held(store: MemoryStateStore) -> int:
    # Internal sizes: the only way to see that old windows, records and buckets are forgotten.
    return len(store._counters) + len(store._records) + len(store._rates) + len(store._hits)


async def test_old_windows_records_and_buckets_are_forgotten() -> None:
    store = MemoryStateStore()
    minute = Limit("team:search", Window.MINUTE, Unit.REQUESTS, 100)
    rpm = Limit("session:search:s", Window.RATE_MINUTE, Unit.REQUESTS, 600)
    sizes = []
    for step in range(6 * 60):  # six hours, one request a minute, each in a new minute window
        now = NOW + step * 60
        one = rid()
        await store.reserve(TEAM, one, [Charge(minute, 1), Charge(rpm, 1)], ttl_s=30, now=now)
        await store.settle(TEAM, one, [Charge(minute, 1)], now=now + 1)
        await store.hit(TEAM, f"identical:{step}", 600, now=now)
        sizes.append(_held(store))
    assert max(sizes[-60:]) < 300  # about an hour and a half of state, not six hours of it
    assert max(sizes[-60:]) <= max(sizes[120:180]) + 5  # flat once the grace period has passed


async def test_sweeping_keeps_what_a_settle_still_needs() -> None:
    store = MemoryStateStore()
    day = Limit("team:search", Window.DAY, Unit.TOKENS, 1000)
    long_call = rid()
    await store.reserve(TEAM, long_call, [Charge(day, 500)], ttl_s=600, now=NOW)
    for step in range(1, 10):  # other traffic triggers sweeps while the long call streams
        other = Limit(f"user:search:u-{step}", Window.MINUTE, Unit.REQUESTS, 5)
        await store.reserve(TEAM, rid(), [Charge(other, 1)], ttl_s=5, now=NOW + step * 61)
    assert await store.settle(TEAM, long_call, [Charge(day, 420)], now=NOW + 590)
    state = await state_of(store, day, NOW + 590)
    assert (state.used, state.reserved) == (420, 0)
