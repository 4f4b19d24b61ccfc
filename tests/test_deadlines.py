"""The timer wheel behind upstream deadlines: asyncio.timeout_at's contract, on real event loops."""

from __future__ import annotations

import asyncio

import pytest

from wardgate.deadlines import Deadlines


async def test_a_passed_deadline_raises_timeout_error_and_leaves_nothing_behind():
    wheel = Deadlines(tick=0.005)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with wheel.at(started + 0.05) as d:
            await asyncio.sleep(5)
    waited = loop.time() - started
    assert d.expired and 0.05 <= waited < 2.0
    assert len(wheel) == 0


async def test_a_block_that_ends_in_time_is_untouched():
    wheel = Deadlines(tick=0.005)
    loop = asyncio.get_running_loop()
    async with wheel.at(loop.time() + 0.2) as d:
        await asyncio.sleep(0.01)
    assert not d.expired and len(wheel) == 0
    await asyncio.sleep(0.3)  # the wheel's timer fires on an empty bucket: nothing is cancelled
    assert not asyncio.current_task().cancelling()


async def test_an_outside_cancellation_is_not_turned_into_a_timeout():
    wheel = Deadlines(tick=0.005)
    loop = asyncio.get_running_loop()
    entered = asyncio.Event()

    async def body() -> None:
        async with wheel.at(loop.time() + 30):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(wheel) == 0


async def test_reschedule_moves_the_deadline_both_ways():
    wheel = Deadlines(tick=0.005)
    loop = asyncio.get_running_loop()
    async with wheel.at(loop.time() + 0.03) as d:
        d.reschedule(loop.time() + 10)  # later: survives the first deadline
        await asyncio.sleep(0.1)
    assert not d.expired
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with wheel.at(started + 10) as d:
            d.reschedule(started + 0.03)  # sooner: the wheel's timer is moved forward
            await asyncio.sleep(5)
    assert loop.time() - started < 1.0


async def test_a_deadline_already_past_expires_at_the_first_await():
    wheel = Deadlines(tick=0.005)
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with wheel.at(loop.time() - 1):
            await asyncio.sleep(1)


async def test_many_deadlines_fire_in_order_and_only_their_own_tasks():
    wheel = Deadlines(tick=0.005)
    loop = asyncio.get_running_loop()
    fired: list[int] = []
    now = loop.time()

    async def one(i: int, after: float, work: float) -> None:
        try:
            async with wheel.at(now + after):
                await asyncio.sleep(work)
        except TimeoutError:
            fired.append(i)

    # Even i: the work outlasts the deadline; odd i: it ends well before.
    await asyncio.gather(*(one(i, 0.02 + 0.01 * i, 5 if i % 2 == 0 else 0.001) for i in range(20)))
    assert fired == list(range(0, 20, 2))
    assert len(wheel) == 0
