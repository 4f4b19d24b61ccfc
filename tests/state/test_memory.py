"""What only the memory store must show: a long-lived process forgets what no call can observe."""

from __future__ import annotations

from wardgate.state import Charge, Limit, MemoryStateStore, Unit, Window

from .test_contract import NOW, TEAM, rid, state_of


def _held(store: MemoryStateStore) -> int:
    # Internal sizes: the only way to see that old windows, records and buckets are forgotten.
    return len(store._counters) + len(store._records) + len(store._closed) + len(store._rates) + len(store._hits)


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


async def test_loop_counters_past_the_cap_forget_the_least_recently_hit() -> None:
    store = MemoryStateStore(max_hit_keys=3)
    for key in ("a", "b", "c"):
        assert await store.hit(TEAM, key, 600, now=NOW) == 1
    assert await store.hit(TEAM, "a", 600, now=NOW + 1) == 2  # "a" is now the most recently hit
    assert await store.hit(TEAM, "d", 600, now=NOW + 2) == 1  # the cap is reached: "b" goes
    assert len(store._hits) == 3
    assert await store.hit(TEAM, "a", 600, now=NOW + 3) == 3  # kept, with its count
    assert await store.hit(TEAM, "b", 600, now=NOW + 4) == 1  # forgotten: it starts again


async def test_one_shot_sessions_do_not_pile_up() -> None:
    """Every request its own session (one-shot traffic): the counters held stay those of one window."""
    store = MemoryStateStore()
    for step in range(5000):  # ten requests a second for 500 s, a 60 s window
        await store.hit(TEAM, f"loop:req:s{step}", 60, now=NOW + step / 10)
    assert len(store._hits) <= 60 * 10 + 2


async def test_settled_reservations_are_remembered_up_to_a_cap() -> None:
    from wardgate.state import memory

    store = MemoryStateStore()
    cap = Limit("team:search", Window.DAY, Unit.TOKENS, 10**9)
    first = rid()
    await store.reserve(TEAM, first, [Charge(cap, 10)], ttl_s=60, now=NOW)
    assert await store.settle(TEAM, first, [Charge(cap, 7)], now=NOW) is True
    assert await store.settle(TEAM, first, [Charge(cap, 7)], now=NOW) is False  # a duplicate counts nothing
    for n in range(memory._MAX_CLOSED + 10):
        await store.settle(TEAM, f"other-{n}", {}, now=NOW)
    assert len(store._closed) <= memory._MAX_CLOSED
    assert (await state_of(store, cap, NOW)).used == 7


async def test_settled_reservations_leave_no_expiry_behind_in_a_busy_window() -> None:
    store = MemoryStateStore()
    day = Limit("team:search", Window.DAY, Unit.TOKENS, 10**9)
    open_ones = [rid() for _ in range(10)]
    for one in open_ones:  # still in flight while the rest come and go: their expiries must survive
        await store.reserve(TEAM, one, [Charge(day, 5)], ttl_s=900, now=NOW)
    for step in range(20_000):  # a busy day window, each reservation settled at once (ttl 15 min)
        one = rid()
        await store.reserve(TEAM, one, [Charge(day, 10)], ttl_s=900, now=NOW + step * 0.001)
        await store.settle(TEAM, one, [Charge(day, 7)], now=NOW + step * 0.001)
    (counter,) = store._counters.values()
    assert len(counter.expiries) < 200  # was one entry per reservation until its ttl passed: 20,010
    state = await state_of(store, day, NOW + 20)
    assert (state.used, state.reserved) == (7 * 20_000, 50)
    state = await state_of(store, day, NOW + 901)  # the open ones expire on time
    assert (state.used, state.reserved) == (7 * 20_000, 0)
